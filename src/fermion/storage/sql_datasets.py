"""The dataset store on SQLAlchemy: SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Row, delete, func, insert, select
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from fermion.entities import (
    ColumnSchema,
    DatasetSummary,
    DatasetVersion,
    Profile,
    SplitRecord,
    ValidationRecord,
)
from fermion.errors import NotFoundError, StorageError
from fermion.storage.base import DatasetStore, NewVersion
from fermion.storage.tables import (
    dataset_splits,
    dataset_validations,
    dataset_versions,
    datasets,
)

_RETRIES = 8  # concurrent writers racing for the next version number


def utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every stored time is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _version_query() -> Any:
    return select(dataset_versions, datasets.c.name).join(
        datasets, datasets.c.id == dataset_versions.c.dataset_id
    )


def _to_version(row: Row[Any]) -> DatasetVersion:
    m = row._mapping
    return DatasetVersion(
        id=m["id"],
        name=m["name"],
        version=m["version"],
        content_hash=m["content_hash"],
        num_rows=m["num_rows"],
        num_columns=m["num_columns"],
        size_bytes=m["size_bytes"],
        schema=tuple(ColumnSchema.from_dict(c) for c in m["schema"]),
        profile=Profile.from_dict(m["profile"]),
        operation=m["operation"],
        parent_id=m["parent_id"],
        source=dict(m["source"]),
        created_at=utc(m["created_at"]),
    )


def _to_split(row: Row[Any]) -> SplitRecord:
    m = row._mapping
    return SplitRecord(
        id=m["id"],
        version_id=m["version_id"],
        params=dict(m["params"]),
        params_hash=m["params_hash"],
        content_hash=m["content_hash"],
        counts={k: int(v) for k, v in m["counts"].items()},
        created_at=utc(m["created_at"]),
    )


class SqlDatasetStore(DatasetStore):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add_version(self, new: NewVersion) -> tuple[DatasetVersion, bool]:
        for _ in range(_RETRIES):
            existing = self.find_version(new.name, content_hash=new.content_hash)
            if existing is not None:
                return existing, False
            try:
                return self._insert_version(new), True
            except SqlIntegrityError:
                continue  # another writer took the number or the content first: look again
        raise StorageError(f"could not record a version of {new.name!r}: too much contention")

    def _insert_version(self, new: NewVersion) -> DatasetVersion:
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            dataset_id = conn.scalar(select(datasets.c.id).where(datasets.c.name == new.name))
            if dataset_id is None:
                dataset_id = conn.scalar(
                    insert(datasets).returning(datasets.c.id).values(name=new.name, created_at=now)
                )
            latest = conn.scalar(
                select(func.max(dataset_versions.c.version)).where(
                    dataset_versions.c.dataset_id == dataset_id
                )
            )
            version_id = conn.scalar(
                insert(dataset_versions)
                .returning(dataset_versions.c.id)
                .values(
                    dataset_id=dataset_id,
                    version=(latest or 0) + 1,
                    content_hash=new.content_hash,
                    num_rows=new.num_rows,
                    num_columns=new.num_columns,
                    size_bytes=new.size_bytes,
                    schema=[c.to_dict() for c in new.schema],
                    profile=new.profile.to_dict(),
                    operation=new.operation,
                    parent_id=new.parent_id,
                    derivation_key=new.derivation_key,
                    source=new.source,
                    created_at=now,
                )
            )
        return self.get_version_by_id(version_id)

    def get_version(self, name: str, version: int | None = None) -> DatasetVersion:
        query = _version_query().where(datasets.c.name == name)
        if version is None:
            query = query.order_by(dataset_versions.c.version.desc()).limit(1)
        else:
            query = query.where(dataset_versions.c.version == version)
        with self._engine.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            if version is None or not self._dataset_exists(name):
                raise NotFoundError(f"no dataset named {name!r}")
            raise NotFoundError(f"dataset {name!r} has no version {version}")
        return _to_version(row)

    def _dataset_exists(self, name: str) -> bool:
        with self._engine.connect() as conn:
            found = conn.scalar(select(datasets.c.id).where(datasets.c.name == name))
        return found is not None

    def get_version_by_id(self, version_id: int) -> DatasetVersion:
        with self._engine.connect() as conn:
            row = conn.execute(_version_query().where(dataset_versions.c.id == version_id)).first()
        if row is None:
            raise NotFoundError(f"no dataset version with id {version_id}")
        return _to_version(row)

    def find_version(
        self, name: str, *, content_hash: str | None = None, derivation_key: str | None = None
    ) -> DatasetVersion | None:
        query = _version_query().where(datasets.c.name == name)
        if content_hash is not None:
            query = query.where(dataset_versions.c.content_hash == content_hash)
        if derivation_key is not None:
            query = query.where(dataset_versions.c.derivation_key == derivation_key)
        with self._engine.connect() as conn:
            row = conn.execute(query.order_by(dataset_versions.c.version).limit(1)).first()
        return None if row is None else _to_version(row)

    def list_datasets(self) -> list[DatasetSummary]:
        counts = (
            select(
                dataset_versions.c.dataset_id,
                func.max(dataset_versions.c.version).label("latest"),
                func.count().label("n"),
            )
            .group_by(dataset_versions.c.dataset_id)
            .subquery()
        )
        query = (
            select(datasets.c.name, counts.c.latest, counts.c.n, dataset_versions)
            .join(counts, counts.c.dataset_id == datasets.c.id)
            .join(
                dataset_versions,
                (dataset_versions.c.dataset_id == datasets.c.id)
                & (dataset_versions.c.version == counts.c.latest),
            )
            .order_by(datasets.c.name)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            DatasetSummary(
                name=r.name,
                latest_version=r.latest,
                num_versions=r.n,
                num_rows=r.num_rows,
                num_columns=r.num_columns,
                updated_at=utc(r.created_at),
            )
            for r in rows
        ]

    def list_versions(self, name: str) -> list[DatasetVersion]:
        query = _version_query().where(datasets.c.name == name).order_by(dataset_versions.c.version)
        with self._engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            raise NotFoundError(f"no dataset named {name!r}")
        return [_to_version(row) for row in rows]

    def delete_version(self, version_id: int) -> None:
        with self._engine.begin() as conn:
            dataset_id = conn.scalar(
                select(dataset_versions.c.dataset_id).where(dataset_versions.c.id == version_id)
            )
            if dataset_id is None:
                raise NotFoundError(f"no dataset version with id {version_id}")
            # Explicit deletes: SQLite's cascades depend on a per-connection pragma.
            for table in (dataset_splits, dataset_validations):
                conn.execute(delete(table).where(table.c.version_id == version_id))
            conn.execute(
                dataset_versions.update()
                .where(dataset_versions.c.parent_id == version_id)
                .values(parent_id=None)
            )
            conn.execute(delete(dataset_versions).where(dataset_versions.c.id == version_id))
            remaining = conn.scalar(
                select(func.count()).where(dataset_versions.c.dataset_id == dataset_id)
            )
            if not remaining:
                conn.execute(delete(datasets).where(datasets.c.id == dataset_id))

    def content_in_use(self, content_hash: str) -> bool:
        with self._engine.connect() as conn:
            for table in (dataset_versions, dataset_splits):
                found = conn.scalar(
                    select(table.c.id).where(table.c.content_hash == content_hash).limit(1)
                )
                if found is not None:
                    return True
        return False

    def add_split(
        self,
        version_id: int,
        *,
        params: dict[str, Any],
        params_hash: str,
        content_hash: str,
        counts: dict[str, int],
    ) -> tuple[SplitRecord, bool]:
        for split in self.list_splits(version_id):
            if split.params_hash == params_hash:
                return split, False
        try:
            with self._engine.begin() as conn:
                split_id = conn.scalar(
                    insert(dataset_splits)
                    .returning(dataset_splits.c.id)
                    .values(
                        version_id=version_id,
                        params=params,
                        params_hash=params_hash,
                        content_hash=content_hash,
                        counts=counts,
                        created_at=datetime.now(UTC),
                    )
                )
        except SqlIntegrityError:
            for split in self.list_splits(version_id):
                if split.params_hash == params_hash:
                    return split, False
            raise NotFoundError(f"no dataset version with id {version_id}") from None
        return next(s for s in self.list_splits(version_id) if s.id == split_id), True

    def list_splits(self, version_id: int) -> list[SplitRecord]:
        query = (
            select(dataset_splits)
            .where(dataset_splits.c.version_id == version_id)
            .order_by(dataset_splits.c.id.desc())
        )
        with self._engine.connect() as conn:
            return [_to_split(row) for row in conn.execute(query)]

    def add_validation(
        self, version_id: int, *, rules_hash: str, passed: bool, report: dict[str, Any]
    ) -> ValidationRecord:
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            record_id = conn.scalar(
                insert(dataset_validations)
                .returning(dataset_validations.c.id)
                .values(
                    version_id=version_id,
                    rules_hash=rules_hash,
                    passed=passed,
                    report=report,
                    created_at=now,
                )
            )
        return ValidationRecord(record_id, version_id, rules_hash, passed, report, now)

    def list_validations(self, version_id: int) -> list[ValidationRecord]:
        query = (
            select(dataset_validations)
            .where(dataset_validations.c.version_id == version_id)
            .order_by(dataset_validations.c.id.desc())
        )
        with self._engine.connect() as conn:
            return [
                ValidationRecord(
                    r.id, r.version_id, r.rules_hash, r.passed, dict(r.report), utc(r.created_at)
                )
                for r in conn.execute(query)
            ]
