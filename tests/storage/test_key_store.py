"""The API key store contract, on every metadata backend (SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from fermion.entities import ApiKeyRecord
from fermion.errors import ConflictError, NotFoundError
from fermion.storage import KeyStore, open_metadata


@pytest.fixture
def keys(metadata_url: str) -> Iterator[KeyStore]:
    meta = open_metadata(metadata_url)
    yield meta.keys
    meta.engine.dispose()


CREATED = datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=UTC)


def _record(
    name: str,
    key_id: str,
    *,
    scopes: tuple[str, ...] = ("predict:credit",),
    rate_per_s: float | None = None,
    expires_at: datetime | None = None,
) -> ApiKeyRecord:
    return ApiKeyRecord(
        name, key_id, scopes, rate_per_s, CREATED, expires_at, salt="5" * 32, secret_hash="h" * 64
    )


def test_a_key_round_trips_every_field(keys: KeyStore) -> None:
    expires = datetime(2027, 1, 31, tzinfo=UTC)
    made = keys.add_key(
        _record(
            "app1",
            "0123456789ab",
            scopes=("admin", "predict:*"),
            rate_per_s=1.5,
            expires_at=expires,
        )
    )
    assert made == keys.get_key("app1")
    assert made.key_id == "0123456789ab"
    assert made.scopes == ("admin", "predict:*")
    assert made.rate_per_s == 1.5
    assert made.expires_at == expires and made.revoked_at is None
    assert made.created_at == CREATED
    assert (made.salt, made.secret_hash) == ("5" * 32, "h" * 64)


def test_keys_list_in_name_order_with_revoked_ones(keys: KeyStore) -> None:
    assert keys.list_keys() == []
    keys.add_key(_record("zeta", "000000000001"))
    keys.add_key(_record("alpha", "000000000002"))
    keys.revoke_key("zeta")
    listed = keys.list_keys()
    assert [k.name for k in listed] == ["alpha", "zeta"]
    assert listed[1].revoked_at is not None and listed[0].revoked_at is None


def test_names_and_key_ids_are_unique(keys: KeyStore) -> None:
    keys.add_key(_record("app1", "000000000001"))
    with pytest.raises(ConflictError, match="named 'app1' already exists"):
        keys.add_key(_record("app1", "000000000002"))
    with pytest.raises(ConflictError, match="id '000000000001' already exists"):
        keys.add_key(_record("app2", "000000000001"))
    keys.revoke_key("app1")
    with pytest.raises(ConflictError, match="app1"):  # a revoked name stays taken
        keys.add_key(_record("app1", "000000000003"))
    assert [k.name for k in keys.list_keys()] == ["app1"]


def test_revoking_keeps_the_first_time(keys: KeyStore) -> None:
    keys.add_key(_record("app1", "000000000001"))
    first = keys.revoke_key("app1")
    assert first.revoked_at is not None
    assert datetime.now(UTC) - first.revoked_at < timedelta(minutes=1)
    again = keys.revoke_key("app1")
    assert again.revoked_at == first.revoked_at


def test_unknown_names_raise_not_found(keys: KeyStore) -> None:
    with pytest.raises(NotFoundError, match="no API key named 'ghost'"):
        keys.get_key("ghost")
    with pytest.raises(NotFoundError, match="no API key named 'ghost'"):
        keys.revoke_key("ghost")
