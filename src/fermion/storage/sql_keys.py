"""The API key store on SQLAlchemy: SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Row, insert, select, update
from sqlalchemy.exc import IntegrityError as SqlIntegrityError

from fermion.entities import ApiKeyRecord
from fermion.errors import ConflictError, NotFoundError
from fermion.storage.base import KeyStore
from fermion.storage.sql_datasets import utc
from fermion.storage.tables import api_keys


def _utc(value: datetime | None) -> datetime | None:
    return None if value is None else utc(value).astimezone(UTC)


def _to_record(row: Row[Any]) -> ApiKeyRecord:
    return ApiKeyRecord(
        name=row.name,
        key_id=row.key_id,
        scopes=tuple(str(s) for s in row.scopes),
        rate_per_s=None if row.rate_per_s is None else float(row.rate_per_s),
        created_at=utc(row.created_at).astimezone(UTC),
        expires_at=_utc(row.expires_at),
        revoked_at=_utc(row.revoked_at),
        salt=row.salt,
        secret_hash=row.hash,
    )


class SqlKeyStore(KeyStore):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add_key(self, record: ApiKeyRecord) -> ApiKeyRecord:
        try:
            with self._engine.begin() as conn:
                conn.execute(
                    insert(api_keys).values(
                        name=record.name,
                        key_id=record.key_id,
                        salt=record.salt,
                        hash=record.secret_hash,
                        scopes=list(record.scopes),
                        rate_per_s=record.rate_per_s,
                        created_at=record.created_at,
                        expires_at=record.expires_at,
                        revoked_at=record.revoked_at,
                    )
                )
        except SqlIntegrityError as exc:
            with self._engine.connect() as conn:
                taken = conn.scalar(select(api_keys.c.id).where(api_keys.c.name == record.name))
            if taken is not None:
                raise ConflictError(f"an API key named {record.name!r} already exists") from exc
            raise ConflictError(f"an API key with id {record.key_id!r} already exists") from exc
        return self.get_key(record.name)

    def get_key(self, name: str) -> ApiKeyRecord:
        with self._engine.connect() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.name == name)).first()
        if row is None:
            raise NotFoundError(f"no API key named {name!r}")
        return _to_record(row)

    def list_keys(self) -> list[ApiKeyRecord]:
        with self._engine.connect() as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.name)).all()
        return [_to_record(row) for row in rows]

    def revoke_key(self, name: str) -> ApiKeyRecord:
        with self._engine.begin() as conn:
            conn.execute(
                update(api_keys)
                .where(api_keys.c.name == name, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=datetime.now(UTC))
            )
        return self.get_key(name)
