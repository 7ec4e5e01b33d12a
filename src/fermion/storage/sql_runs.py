"""The run store on SQLAlchemy: SQLite and PostgreSQL alike."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Row, Select, and_, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from fermion.entities import Experiment, MetricPoint, RunArtifact, RunRecord, RunStatus
from fermion.errors import ConflictError, NotFoundError
from fermion.storage.base import RunStore
from fermion.storage.sql_datasets import utc
from fermion.storage.tables import (
    experiments,
    run_artifacts,
    run_latest_metrics,
    run_metrics,
    run_params,
    run_tags,
    runs,
)
from fermion.storage.upsert import upsert


def _run_query() -> Select[Any]:
    return select(runs, experiments.c.name.label("experiment")).join(
        experiments, experiments.c.id == runs.c.experiment_id
    )


def _newer(table: Any, excluded: Any) -> Any:
    return or_(
        excluded.step > table.c.step,
        and_(excluded.step == table.c.step, excluded.timestamp >= table.c.timestamp),
    )


class SqlRunStore(RunStore):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def experiment(self, name: str) -> Experiment:
        query = select(experiments).where(experiments.c.name == name)
        for _ in range(2):
            with self._engine.connect() as conn:
                row = conn.execute(query).first()
            if row is not None:
                return Experiment(row.id, row.name, utc(row.created_at))
            try:
                with self._engine.begin() as conn:
                    conn.execute(insert(experiments).values(name=name, created_at=_now()))
            except SqlIntegrityError:
                continue  # created by a concurrent writer: read it back
        with self._engine.connect() as conn:
            row = conn.execute(query).one()
        return Experiment(row.id, row.name, utc(row.created_at))

    def list_experiments(self) -> list[Experiment]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(experiments).order_by(experiments.c.name)).all()
        return [Experiment(r.id, r.name, utc(r.created_at)) for r in rows]

    def create_run(
        self,
        experiment: str,
        name: str,
        *,
        parent_id: int | None = None,
        environment: dict[str, Any] | None = None,
    ) -> RunRecord:
        experiment_id = self.experiment(experiment).id
        with self._engine.begin() as conn:
            if parent_id is not None:
                _require_run(conn, parent_id)
            run_id = conn.scalar(
                insert(runs)
                .returning(runs.c.id)
                .values(
                    experiment_id=experiment_id,
                    parent_id=parent_id,
                    name=name,
                    status=RunStatus.RUNNING.value,
                    start_time=_now(),
                    environment=environment or {},
                )
            )
        return self.get_run(int(run_id))

    def end_run(self, run_id: int, status: RunStatus, error: str | None = None) -> None:
        with self._engine.begin() as conn:
            done = conn.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(status=status.value, end_time=_now(), error=error)
            )
        if done.rowcount == 0:
            raise NotFoundError(f"no run with id {run_id}")

    def log_params(self, run_id: int, params: dict[str, Any]) -> None:
        if not params:
            return
        with self._engine.begin() as conn:
            _require_run(conn, run_id)
            stored = {
                r.key: r.value
                for r in conn.execute(
                    select(run_params.c.key, run_params.c.value).where(
                        run_params.c.run_id == run_id, run_params.c.key.in_(list(params))
                    )
                )
            }
            new = []
            for key, value in params.items():
                if key in stored:
                    if _canonical(stored[key]) != _canonical(value):
                        raise ConflictError(
                            f"param {key!r} of run {run_id} is already {stored[key]!r}; "
                            f"params cannot change (got {value!r})"
                        )
                    continue
                new.append({"run_id": run_id, "key": key, "value": value})
            if new:
                conn.execute(insert(run_params), new)

    def set_tags(self, run_id: int, tags: dict[str, str]) -> None:
        rows = [{"run_id": run_id, "key": k, "value": str(v)} for k, v in tags.items()]
        with self._engine.begin() as conn:
            _require_run(conn, run_id)
            upsert(conn, run_tags, rows, ["run_id", "key"], ["value"])

    def log_metrics(self, run_id: int, points: list[MetricPoint]) -> None:
        if not points:
            return
        latest: dict[str, MetricPoint] = {}
        for point in points:
            seen = latest.get(point.key)
            if seen is None or (point.step, point.timestamp) >= (seen.step, seen.timestamp):
                latest[point.key] = point
        with self._engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                _copy_points(conn, run_id, points)
            else:
                conn.execute(
                    insert(run_metrics),
                    [
                        {
                            "run_id": run_id,
                            "key": p.key,
                            "value": p.value,
                            "step": p.step,
                            "timestamp": p.timestamp,
                        }
                        for p in points
                    ],
                )
            upsert(
                conn,
                run_latest_metrics,
                [
                    {
                        "run_id": run_id,
                        "key": p.key,
                        "value": p.value,
                        "step": p.step,
                        "timestamp": p.timestamp,
                    }
                    for p in latest.values()
                ],
                ["run_id", "key"],
                ["value", "step", "timestamp"],
                only_if=_newer,
            )

    def add_artifact(self, run_id: int, artifact: RunArtifact) -> None:
        row = {
            "run_id": run_id,
            "path": artifact.path,
            "content_hash": artifact.content_hash,
            "size_bytes": artifact.size_bytes,
        }
        with self._engine.begin() as conn:
            _require_run(conn, run_id)
            upsert(conn, run_artifacts, [row], ["run_id", "path"], ["content_hash", "size_bytes"])

    def list_artifacts(self, run_id: int) -> list[RunArtifact]:
        query = select(run_artifacts).where(run_artifacts.c.run_id == run_id).order_by("path")
        with self._engine.connect() as conn:
            return [RunArtifact(r.path, r.content_hash, r.size_bytes) for r in conn.execute(query)]

    def get_run(self, run_id: int) -> RunRecord:
        with self._engine.connect() as conn:
            row = conn.execute(_run_query().where(runs.c.id == run_id)).first()
            if row is None:
                raise NotFoundError(f"no run with id {run_id}")
            return self._records(conn, [row])[0]

    def list_runs(
        self, experiment: str | None = None, *, parent_id: int | None = None
    ) -> list[RunRecord]:
        query = _run_query().order_by(runs.c.id.desc())
        if experiment is not None:
            query = query.where(experiments.c.name == experiment)
        if parent_id is not None:
            query = query.where(runs.c.parent_id == parent_id)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
            return self._records(conn, rows)

    def find_runs(
        self, tag: str, value: str, *, status: RunStatus | None = None
    ) -> list[RunRecord]:
        tagged = select(run_tags.c.run_id).where(run_tags.c.key == tag, run_tags.c.value == value)
        query = _run_query().where(runs.c.id.in_(tagged)).order_by(runs.c.id.desc())
        if status is not None:
            query = query.where(runs.c.status == status.value)
        with self._engine.connect() as conn:
            return self._records(conn, conn.execute(query).all())

    def metric_history(self, run_id: int, key: str) -> list[MetricPoint]:
        query = (
            select(run_metrics)
            .where(run_metrics.c.run_id == run_id, run_metrics.c.key == key)
            .order_by(run_metrics.c.step, run_metrics.c.timestamp)
        )
        with self._engine.connect() as conn:
            return [MetricPoint(r.key, r.value, r.step, r.timestamp) for r in conn.execute(query)]

    def _records(self, conn: Connection, rows: Iterable[Row[Any]]) -> list[RunRecord]:
        rows = list(rows)
        ids = [r.id for r in rows]
        params: dict[int, dict[str, Any]] = {i: {} for i in ids}
        tags: dict[int, dict[str, str]] = {i: {} for i in ids}
        metrics: dict[int, dict[str, float]] = {i: {} for i in ids}
        for chunk in _chunks(ids, 500):
            for r in conn.execute(select(run_params).where(run_params.c.run_id.in_(chunk))):
                params[r.run_id][r.key] = r.value
            for r in conn.execute(select(run_tags).where(run_tags.c.run_id.in_(chunk))):
                tags[r.run_id][r.key] = r.value
            latest = select(run_latest_metrics).where(run_latest_metrics.c.run_id.in_(chunk))
            for r in conn.execute(latest):
                metrics[r.run_id][r.key] = r.value
        return [
            RunRecord(
                id=r.id,
                experiment=r.experiment,
                name=r.name,
                status=RunStatus(r.status),
                start_time=utc(r.start_time),
                end_time=None if r.end_time is None else utc(r.end_time),
                parent_id=r.parent_id,
                params=dict(sorted(params[r.id].items())),
                metrics=dict(sorted(metrics[r.id].items())),
                tags=dict(sorted(tags[r.id].items())),
                environment=dict(r.environment),
                error=r.error,
            )
            for r in rows
        ]


def _copy_points(conn: Connection, run_id: int, points: list[MetricPoint]) -> None:
    """PostgreSQL's COPY: several times faster than a multi-row INSERT for a metric batch."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    columns = "run_id, key, value, step, timestamp"
    with cursor, cursor.copy(f"COPY run_metrics ({columns}) FROM STDIN") as copy:
        for point in points:
            copy.write_row((run_id, point.key, point.value, point.step, point.timestamp))


def _require_run(conn: Connection, run_id: int) -> None:
    if conn.scalar(select(runs.c.id).where(runs.c.id == run_id)) is None:
        raise NotFoundError(f"no run with id {run_id}")


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _chunks(items: list[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _now() -> datetime:
    return datetime.now(UTC)
