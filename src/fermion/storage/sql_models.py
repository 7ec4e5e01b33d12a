"""The model registry store on SQLAlchemy: SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Row, Select, delete, func, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from fermion.entities import AliasEvent, ModelSummary, ModelVersion, Signature
from fermion.errors import NotFoundError, StorageError
from fermion.storage.base import ModelStore, NewModelVersion
from fermion.storage.sql_datasets import utc
from fermion.storage.tables import alias_events, model_aliases, model_versions, registered_models
from fermion.storage.upsert import upsert

_RETRIES = 8  # concurrent writers racing for the next version number


def _version_query() -> Select[Any]:
    return select(model_versions, registered_models.c.name).join(
        registered_models, registered_models.c.id == model_versions.c.model_id
    )


class SqlModelStore(ModelStore):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add_version(self, new: NewModelVersion) -> ModelVersion:
        for _ in range(_RETRIES):
            try:
                return self._insert_version(new)
            except SqlIntegrityError:
                continue  # another writer took the number (or created the model) first
        raise StorageError(f"could not register a version of {new.name!r}: too much contention")

    def _insert_version(self, new: NewModelVersion) -> ModelVersion:
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            model_id = conn.scalar(
                select(registered_models.c.id).where(registered_models.c.name == new.name)
            )
            if model_id is None:
                model_id = conn.scalar(
                    insert(registered_models)
                    .returning(registered_models.c.id)
                    .values(name=new.name, created_at=now)
                )
            latest = conn.scalar(
                select(func.max(model_versions.c.version)).where(
                    model_versions.c.model_id == model_id
                )
            )
            version_id = conn.scalar(
                insert(model_versions)
                .returning(model_versions.c.id)
                .values(
                    model_id=model_id,
                    version=(latest or 0) + 1,
                    content_hash=new.content_hash,
                    flavor=new.flavor,
                    signature=new.signature.to_dict(),
                    run_id=new.run_id,
                    metrics=new.metrics or {},
                    origin=new.origin,
                    description=new.description,
                    created_at=now,
                )
            )
            row = conn.execute(_version_query().where(model_versions.c.id == version_id)).one()
            return self._to_versions(conn, [row])[0]

    def get_version(self, name: str, version: int | None = None) -> ModelVersion:
        query = _version_query().where(registered_models.c.name == name)
        if version is None:
            query = query.order_by(model_versions.c.version.desc()).limit(1)
        else:
            query = query.where(model_versions.c.version == version)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
            if row is None:
                self._model_id(conn, name)
                raise NotFoundError(f"model {name!r} has no version {version}")
            return self._to_versions(conn, [row])[0]

    def get_by_alias(self, name: str, alias: str) -> ModelVersion:
        with self._engine.connect() as conn:
            model_id = self._model_id(conn, name)
            version_id = conn.scalar(
                select(model_aliases.c.version_id).where(
                    model_aliases.c.model_id == model_id, model_aliases.c.alias == alias
                )
            )
            if version_id is None:
                raise NotFoundError(f"model {name!r} has no alias {alias!r}")
            row = conn.execute(_version_query().where(model_versions.c.id == version_id)).one()
            return self._to_versions(conn, [row])[0]

    def list_models(self) -> list[ModelSummary]:
        counts = (
            select(
                model_versions.c.model_id,
                func.max(model_versions.c.version).label("latest"),
                func.count().label("n"),
            )
            .group_by(model_versions.c.model_id)
            .subquery()
        )
        query = (
            select(registered_models, counts.c.latest, counts.c.n)
            .join(counts, counts.c.model_id == registered_models.c.id)
            .order_by(registered_models.c.name)
        )
        aliases_query = select(
            model_aliases.c.model_id, model_aliases.c.alias, model_versions.c.version
        ).join(model_versions, model_versions.c.id == model_aliases.c.version_id)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
            aliases: dict[int, dict[str, int]] = defaultdict(dict)
            for r in conn.execute(aliases_query):
                aliases[r.model_id][r.alias] = r.version
        return [
            ModelSummary(
                name=r.name,
                latest_version=r.latest,
                num_versions=r.n,
                aliases=dict(sorted(aliases[r.id].items())),
                created_at=utc(r.created_at),
            )
            for r in rows
        ]

    def list_versions(self, name: str) -> list[ModelVersion]:
        with self._engine.connect() as conn:
            model_id = self._model_id(conn, name)
            rows = conn.execute(
                _version_query()
                .where(model_versions.c.model_id == model_id)
                .order_by(model_versions.c.version)
            ).all()
            return self._to_versions(conn, list(rows))

    def set_alias(self, name: str, alias: str, version: int, actor: str) -> AliasEvent:
        with self._engine.begin() as conn:
            model_id = self._model_id(conn, name, lock=True)
            version_id = conn.scalar(
                select(model_versions.c.id).where(
                    model_versions.c.model_id == model_id, model_versions.c.version == version
                )
            )
            if version_id is None:
                raise NotFoundError(f"model {name!r} has no version {version}")
            old = self._aliased_version(conn, model_id, alias)
            upsert(
                conn,
                model_aliases,
                [{"model_id": model_id, "alias": alias, "version_id": version_id}],
                ["model_id", "alias"],
                ["version_id"],
            )
            return self._record_event(conn, model_id, name, alias, old, version, actor)

    def remove_alias(self, name: str, alias: str, actor: str) -> AliasEvent:
        with self._engine.begin() as conn:
            model_id = self._model_id(conn, name, lock=True)
            old = self._aliased_version(conn, model_id, alias)
            if old is None:
                raise NotFoundError(f"model {name!r} has no alias {alias!r}")
            conn.execute(
                delete(model_aliases).where(
                    model_aliases.c.model_id == model_id, model_aliases.c.alias == alias
                )
            )
            return self._record_event(conn, model_id, name, alias, old, None, actor)

    def alias_history(self, name: str) -> list[AliasEvent]:
        with self._engine.connect() as conn:
            model_id = self._model_id(conn, name)
            rows = conn.execute(
                select(alias_events)
                .where(alias_events.c.model_id == model_id)
                .order_by(alias_events.c.id)
            ).all()
        return [
            AliasEvent(name, r.alias, r.old_version, r.new_version, r.actor, utc(r.at))
            for r in rows
        ]

    @staticmethod
    def _model_id(conn: Connection, name: str, *, lock: bool = False) -> int:
        query = select(registered_models.c.id).where(registered_models.c.name == name)
        if lock:  # serialises alias moves of one model, so each event records the true "from"
            query = query.with_for_update()
        model_id = conn.scalar(query)
        if model_id is None:
            raise NotFoundError(f"no model named {name!r}")
        return int(model_id)

    @staticmethod
    def _aliased_version(conn: Connection, model_id: int, alias: str) -> int | None:
        version = conn.scalar(
            select(model_versions.c.version)
            .join(model_aliases, model_aliases.c.version_id == model_versions.c.id)
            .where(model_aliases.c.model_id == model_id, model_aliases.c.alias == alias)
        )
        return None if version is None else int(version)

    @staticmethod
    def _record_event(
        conn: Connection,
        model_id: int,
        name: str,
        alias: str,
        old: int | None,
        new: int | None,
        actor: str,
    ) -> AliasEvent:
        at = datetime.now(UTC)
        conn.execute(
            insert(alias_events).values(
                model_id=model_id,
                alias=alias,
                old_version=old,
                new_version=new,
                actor=actor,
                at=at,
            )
        )
        return AliasEvent(name, alias, old, new, actor, at)

    @staticmethod
    def _to_versions(conn: Connection, rows: list[Row[Any]]) -> list[ModelVersion]:
        ids = [r.id for r in rows]
        aliases: dict[int, list[str]] = defaultdict(list)
        if ids:
            query = (
                select(model_aliases.c.version_id, model_aliases.c.alias)
                .where(model_aliases.c.version_id.in_(ids))
                .order_by(model_aliases.c.alias)
            )
            for r in conn.execute(query):
                aliases[r.version_id].append(r.alias)
        return [
            ModelVersion(
                id=r.id,
                name=r.name,
                version=r.version,
                content_hash=r.content_hash,
                flavor=r.flavor,
                signature=Signature.from_dict(r.signature),
                run_id=r.run_id,
                metrics={k: float(v) for k, v in r.metrics.items()},
                origin=r.origin,
                created_at=utc(r.created_at),
                aliases=tuple(aliases[r.id]),
                description=r.description,
            )
            for r in rows
        ]
