"""`ws.keys`: creating, listing and revoking API keys; scopes, rates and expiry as written."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fermion.errors import ConflictError, InvalidInputError, NotFoundError
from fermion.serving.keys import ApiKeys, format_rate, parse_expiry, parse_rate
from fermion.storage import open_metadata
from fermion.workspace import Workspace

KEY = re.compile(r"^fmn_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")


@pytest.fixture
def keys(tmp_path: Path) -> Iterator[ApiKeys]:
    meta = open_metadata(f"sqlite:///{tmp_path / 'fermion.db'}")
    yield ApiKeys(meta.keys)
    meta.engine.dispose()


def test_create_returns_the_key_once_and_stores_only_a_salted_hash(keys: ApiKeys) -> None:
    record, key = keys.create("app1", ["predict:credit"])
    match = KEY.match(key)
    assert match is not None
    key_id, secret = match.groups()
    assert record.key_id == key_id and record.name == "app1"
    assert record.scopes == ("predict:credit",)
    assert record.rate_per_s is None and record.expires_at is None and record.revoked_at is None
    assert record.status(datetime.now(UTC)) == "active"
    (stored,) = keys.list()
    assert stored == record
    assert stored.secret_hash == hashlib.sha256((stored.salt + secret).encode()).hexdigest()
    assert secret not in repr(stored) and secret not in str(stored.to_dict())
    assert stored.secret_hash not in repr(stored)
    assert "salt" not in stored.to_dict() and "secret_hash" not in stored.to_dict()


def test_every_key_is_different(keys: ApiKeys) -> None:
    one = keys.create("app1", ["admin"])
    two = keys.create("app2", ["admin"])
    assert one[1] != two[1]
    assert one[0].key_id != two[0].key_id and one[0].salt != two[0].salt


def test_scopes_are_checked_and_kept_sorted_without_repeats(keys: ApiKeys) -> None:
    record, _ = keys.create("app1", ["predict:credit", "admin", "predict:*", "admin"])
    assert record.scopes == ("admin", "predict:*", "predict:credit")
    assert keys.create("app2", "predict:churn")[0].scopes == ("predict:churn",)
    for bad in ["read", "predict:", "predict:credit@production", "Admin", "predict:../x"]:
        with pytest.raises(InvalidInputError, match=re.escape(repr(bad))):
            keys.create("bad", ["predict:credit", bad])
    with pytest.raises(InvalidInputError, match="at least one scope"):
        keys.create("bad", [])
    assert [r.name for r in keys.list()] == ["app1", "app2"]


def test_names_follow_the_dataset_rules(keys: ApiKeys) -> None:
    with pytest.raises(InvalidInputError, match="invalid name"):
        keys.create("my key", ["admin"])


@pytest.mark.parametrize(
    ("text", "per_second"),
    [("100/s", 100.0), ("6000/m", 100.0), ("50000/h", 50000 / 3600), ("0.5/s", 0.5)],
)
def test_rates_parse_per_second_and_print_back(text: str, per_second: float) -> None:
    assert parse_rate(text) == pytest.approx(per_second)
    assert parse_rate(format_rate(parse_rate(text))) == pytest.approx(per_second)


def test_rates_print_in_the_largest_whole_unit() -> None:
    assert format_rate(parse_rate("50000/h")) == "50000/h"
    assert format_rate(parse_rate("6000/m")) == "100/s"
    assert format_rate(parse_rate("30/m")) == "30/m"
    assert format_rate(None) == "-"


@pytest.mark.parametrize("text", ["100", "100/d", "abc", "-5/s", "/s", "ten/s"])
def test_malformed_rates_are_refused(keys: ApiKeys, text: str) -> None:
    with pytest.raises(InvalidInputError, match="100/s, 6000/m or 50000/h"):
        keys.create("app1", ["admin"], rate=text)
    assert keys.list() == []


def test_a_rate_must_be_more_than_zero(keys: ApiKeys) -> None:
    for rate in ["0/s", "0.0/m", 0, -1.0]:
        with pytest.raises(InvalidInputError, match="more than 0"):
            keys.create("app1", ["admin"], rate=rate)
    assert keys.create("app1", ["admin"], rate=2.5)[0].rate_per_s == 2.5
    assert keys.create("app2", ["admin"], rate="6000/m")[0].rate_per_s == 100.0


def test_expiry_is_a_duration_or_an_iso_date() -> None:
    now = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    assert parse_expiry("30d", now) == now + timedelta(days=30)
    assert parse_expiry("12h", now) == now + timedelta(hours=12)
    assert parse_expiry("15m", now) == now + timedelta(minutes=15)
    assert parse_expiry("2027-01-31", now) == datetime(2027, 1, 31, tzinfo=UTC)
    assert parse_expiry("2027-01-31T10:00:00+02:00", now) == datetime(2027, 1, 31, 8, tzinfo=UTC)
    for bad in ["tomorrow", "30", "3w", "2027-13-01"]:
        with pytest.raises(InvalidInputError, match="30d, 12h, 15m or an ISO date"):
            parse_expiry(bad, now)
    with pytest.raises(InvalidInputError, match="in the past"):
        parse_expiry("2026-01-01", now)
    with pytest.raises(InvalidInputError, match="more than 0"):
        parse_expiry("0d", now)


def test_created_keys_carry_their_expiry(keys: ApiKeys) -> None:
    before = datetime.now(UTC)
    record, _ = keys.create("app1", ["admin"], expires="30d")
    assert record.expires_at is not None
    assert before + timedelta(days=30) <= record.expires_at
    assert record.expires_at <= datetime.now(UTC) + timedelta(days=30)
    assert record.status(record.expires_at) == "expired"
    dated, _ = keys.create("app2", ["admin"], expires=datetime(2099, 1, 1))
    assert dated.expires_at == datetime(2099, 1, 1, tzinfo=UTC)
    with pytest.raises(InvalidInputError, match="in the past"):
        keys.create("app3", ["admin"], expires=timedelta(seconds=-1))


def test_duplicate_names_conflict_and_unknown_names_are_not_found(keys: ApiKeys) -> None:
    keys.create("app1", ["admin"])
    with pytest.raises(ConflictError, match="'app1' already exists"):
        keys.create("app1", ["predict:*"])
    with pytest.raises(NotFoundError, match="no API key named 'ghost'"):
        keys.revoke("ghost")


def test_revoke_marks_the_key_revoked_and_keeps_it_listed(keys: ApiKeys) -> None:
    keys.create("app1", ["admin"])
    keys.create("app2", ["admin"])
    revoked = keys.revoke("app1")
    assert revoked.revoked_at is not None
    assert revoked.status(datetime.now(UTC)) == "revoked"
    assert [(r.name, r.status(datetime.now(UTC))) for r in keys.list()] == [
        ("app1", "revoked"),
        ("app2", "active"),
    ]


def test_the_workspace_keeps_its_keys(workspace_dir: Path) -> None:
    with Workspace.init(workspace_dir) as ws:
        assert isinstance(ws.keys, ApiKeys)
        record, _ = ws.keys.create("app1", ["predict:credit"], rate="10/s")
    with Workspace.open() as ws:
        assert ws.keys.list() == [record]
