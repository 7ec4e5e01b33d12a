"""The pipeline schedule store on SQLAlchemy: SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Row, delete, insert, select, update
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from fermion.entities import ScheduleRecord
from fermion.errors import ConflictError, NotFoundError
from fermion.storage.base import ScheduleStore
from fermion.storage.sql_datasets import utc
from fermion.storage.tables import schedules


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value).astimezone(UTC)


def _to_record(row: Row[Any]) -> ScheduleRecord:
    return ScheduleRecord(
        name=row.name,
        pipeline=row.pipeline,
        project_file=row.project_file,
        cron=row.cron,
        created_at=utc(row.created_at).astimezone(UTC),
        last_run_at=_utc(row.last_run_at),
        last_run_id=row.last_run_id,
        last_status=row.last_status,
        missed=int(row.missed),
        timezone=row.timezone,
    )


class SqlScheduleStore(ScheduleStore):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add_schedule(self, record: ScheduleRecord) -> ScheduleRecord:
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    insert(schedules).values(
                        name=record.name,
                        pipeline=record.pipeline,
                        project_file=record.project_file,
                        cron=record.cron,
                        created_at=_utc(record.created_at),
                        last_run_at=_utc(record.last_run_at),
                        last_run_id=record.last_run_id,
                        last_status=record.last_status,
                        missed=record.missed,
                        timezone=record.timezone,
                    )
                )
        except SqlIntegrityError as exc:
            raise ConflictError(f"a schedule named {record.name!r} already exists") from exc
        return self.get_schedule(record.name)

    def get_schedule(self, name: str) -> ScheduleRecord:
        with self._engine.connect() as conn:
            row = conn.execute(select(schedules).where(schedules.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"no schedule named {name!r}")
        return _to_record(row)

    def list_schedules(self) -> list[ScheduleRecord]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(schedules).order_by(schedules.c.name)).all()
        return [_to_record(row) for row in rows]

    def remove_schedule(self, name: str) -> None:
        with self._engine.begin() as conn:
            removed = conn.execute(delete(schedules).where(schedules.c.name == name)).rowcount
        if not removed:
            raise NotFoundError(f"no schedule named {name!r}")

    def claim(self, name: str, previous: datetime | None, slot: datetime, missed: int = 0) -> bool:
        was = (
            schedules.c.last_run_at.is_(None)
            if previous is None
            else schedules.c.last_run_at == _utc(previous)
        )
        with self._engine.begin() as conn:
            touched = conn.execute(
                update(schedules)
                .where(schedules.c.name == name, was)
                .values(
                    last_run_at=_utc(slot),
                    last_run_id=None,
                    last_status="running",
                    missed=schedules.c.missed + missed,
                )
            ).rowcount
        return bool(touched)

    def finish(self, name: str, slot: datetime, run_id: int | None, status: str) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                update(schedules)
                .where(schedules.c.name == name, schedules.c.last_run_at == _utc(slot))
                .values(last_run_id=run_id, last_status=status)
            )
