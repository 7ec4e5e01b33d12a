"""`KeyGuard`: what the inference server accepts and refuses, with a fake clock for time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fermion.entities import ApiKeyRecord
from fermion.errors import (
    AuthenticationError,
    InvalidInputError,
    PermissionDeniedError,
    RateLimitedError,
)
from fermion.serving.auth import KeyGuard
from fermion.serving.keys import ApiKeys, hash_secret
from fermion.storage import MetadataStores, open_metadata


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def meta(tmp_path: Path) -> Iterator[MetadataStores]:
    stores = open_metadata(f"sqlite:///{tmp_path / 'fermion.db'}")
    yield stores
    stores.engine.dispose()


@pytest.fixture
def keys(meta: MetadataStores) -> ApiKeys:
    return ApiKeys(meta.keys)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _refused(guard: KeyGuard, credential: str | None, scope: str, error: type[Exception]) -> str:
    with pytest.raises(error) as caught:
        guard.check(credential, scope)
    return str(caught.value)


def test_a_key_is_accepted_as_a_bearer_token_or_a_bare_key(keys: ApiKeys) -> None:
    _, key = keys.create("app1", ["predict:credit"])
    guard = KeyGuard(keys)
    assert guard.check(f"Bearer {key}", "predict:credit") == "app1"
    assert guard.check(f"bearer   {key} ", "predict:credit") == "app1"
    assert guard.check(key, "predict:credit") == "app1"  # an X-API-Key header


@pytest.mark.parametrize("credential", [None, "", "   ", "Bearer", "Bearer   "])
def test_a_missing_key_is_refused(keys: ApiKeys, credential: str | None) -> None:
    keys.create("app1", ["admin"])
    message = _refused(KeyGuard(keys), credential, "admin", AuthenticationError)
    assert "missing API key" in message and "Authorization: Bearer" in message


def test_malformed_keys_are_refused_without_echoing_them(keys: ApiKeys) -> None:
    _, key = keys.create("app1", ["admin"])
    secret = key.split("_", 2)[2]
    guard = KeyGuard(keys)
    for credential in [
        f"Basic {key}",
        f"Token {key}",
        "Bearer sk-proj-abcdefghijklmnopqrstuvwxyz",
        key[:-30],  # cut short
        key.upper(),
        f"{key} extra",
        f"Bearer {key}{key}",
        "fmn_" + secret,
    ]:
        message = _refused(guard, credential, "admin", AuthenticationError)
        assert message.startswith("malformed API key")
        assert secret[:10] not in message


def test_unknown_key_ids_and_wrong_secrets_are_refused(keys: ApiKeys) -> None:
    record, key = keys.create("app1", ["admin"])
    guard = KeyGuard(keys)
    other_id = "0" * 12 if record.key_id != "0" * 12 else "1" * 12
    message = _refused(guard, key.replace(record.key_id, other_id), "admin", AuthenticationError)
    assert message == f"unknown API key id {other_id!r}"
    wrong = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    message = _refused(guard, f"Bearer {wrong}", "admin", AuthenticationError)
    assert message == f"wrong secret for API key id {record.key_id!r}"
    assert "app1" not in message  # the name is only told to whoever holds the key
    assert guard.check(key, "admin") == "app1"
    _refused(guard, wrong, "admin", AuthenticationError)  # a verified key does not vouch for it


def test_a_revoked_key_is_refused_after_the_next_refresh(keys: ApiKeys) -> None:
    _, key = keys.create("app1", ["predict:credit"])
    _, other = keys.create("app2", ["predict:credit"])
    guard = KeyGuard(keys)
    assert guard.check(key, "predict:credit") == "app1"
    keys.revoke("app1")
    assert guard.check(key, "predict:credit") == "app1"  # the in-memory view is not re-read
    guard.refresh()
    message = _refused(guard, key, "predict:credit", AuthenticationError)
    assert message == "API key 'app1' has been revoked"
    assert guard.check(other, "predict:credit") == "app2"


def test_a_new_key_is_known_after_the_next_refresh(keys: ApiKeys) -> None:
    guard = KeyGuard(keys)
    _, key = keys.create("app1", ["admin"])
    assert "unknown API key id" in _refused(guard, key, "admin", AuthenticationError)
    guard.refresh()
    assert guard.check(key, "admin") == "app1"


def test_a_guard_reads_a_key_store_directly(meta: MetadataStores, keys: ApiKeys) -> None:
    _, key = keys.create("app1", ["admin"])
    assert KeyGuard(meta.keys).check(key, "admin") == "app1"


def test_a_key_expires_on_the_guards_clock(keys: ApiKeys, clock: FakeClock) -> None:
    _, key = keys.create("app1", ["admin"], expires="15m")
    _, forever = keys.create("app2", ["admin"])
    guard = KeyGuard(keys, clock=clock)
    assert guard.check(key, "admin") == "app1"
    clock.now += 15 * 60 - 5
    assert guard.check(key, "admin") == "app1"
    clock.now += 10
    assert _refused(guard, key, "admin", AuthenticationError) == "API key 'app1' has expired"
    guard.refresh()  # re-reading the table does not bring it back
    _refused(guard, key, "admin", AuthenticationError)
    assert guard.check(forever, "admin") == "app2"


def test_a_key_stored_already_expired_is_refused(meta: MetadataStores) -> None:
    secret, salt = "s" * 43, "a" * 32
    past = datetime.now(UTC) - timedelta(seconds=1)
    meta.keys.add_key(
        ApiKeyRecord(
            "old",
            "abcdef012345",
            ("admin",),
            None,
            past - timedelta(days=1),
            past,
            salt=salt,
            secret_hash=hash_secret(salt, secret),
        )
    )
    guard = KeyGuard(meta.keys)
    message = _refused(guard, f"fmn_abcdef012345_{secret}", "admin", AuthenticationError)
    assert message == "API key 'old' has expired"


def test_scopes_grant_one_model_every_model_or_everything(keys: ApiKeys) -> None:
    _, credit = keys.create("credit-app", ["predict:credit"])
    _, any_model = keys.create("any-app", ["predict:*"])
    _, admin = keys.create("ops", ["admin"])
    guard = KeyGuard(keys)
    assert guard.check(credit, "predict:credit") == "credit-app"
    message = _refused(guard, credit, "predict:churn", PermissionDeniedError)
    assert message == "API key 'credit-app' does not grant 'predict:churn'"
    _refused(guard, credit, "admin", PermissionDeniedError)
    assert guard.check(any_model, "predict:churn") == "any-app"
    assert guard.check(any_model, "predict:credit") == "any-app"
    _refused(guard, any_model, "admin", PermissionDeniedError)
    for scope in ["admin", "predict:credit", "predict:churn"]:
        assert guard.check(admin, scope) == "ops"


def test_a_rate_limited_key_says_when_to_retry(keys: ApiKeys, clock: FakeClock) -> None:
    _, key = keys.create("app1", ["admin"], rate="2/s")
    _, other = keys.create("app2", ["admin"], rate="2/s")
    guard = KeyGuard(keys, clock=clock)
    guard.check(key, "admin")
    guard.check(key, "admin")  # a burst of up to one second's worth
    with pytest.raises(RateLimitedError) as caught:
        guard.check(key, "admin")
    assert caught.value.retry_after == pytest.approx(0.5)
    assert "'app1' is over its rate of 2/s" in str(caught.value)
    assert guard.check(other, "admin") == "app2"  # each key has its own bucket
    clock.now += 0.25
    with pytest.raises(RateLimitedError) as caught:
        guard.check(key, "admin")
    assert caught.value.retry_after == pytest.approx(0.25)
    clock.now += 0.25
    assert guard.check(key, "admin") == "app1"
    guard.refresh()  # a refresh does not refill the bucket
    _refused(guard, key, "admin", RateLimitedError)
    clock.now += 10  # an idle key saves up no more than its burst
    guard.check(key, "admin")
    guard.check(key, "admin")
    _refused(guard, key, "admin", RateLimitedError)


def test_workers_share_a_keys_rate(keys: ApiKeys, clock: FakeClock) -> None:
    _, key = keys.create("app1", ["admin"], rate="10/s")
    guard = KeyGuard(keys, divisor=2, clock=clock)  # one of two worker processes
    for _ in range(5):
        guard.check(key, "admin")
    with pytest.raises(RateLimitedError) as caught:
        guard.check(key, "admin")
    assert caught.value.retry_after == pytest.approx(0.2)


def test_a_slow_rate_still_allows_one_request(keys: ApiKeys, clock: FakeClock) -> None:
    _, key = keys.create("app1", ["admin"], rate="30/m")
    guard = KeyGuard(keys, divisor=4, clock=clock)
    guard.check(key, "admin")
    with pytest.raises(RateLimitedError) as caught:
        guard.check(key, "admin")
    assert caught.value.retry_after == pytest.approx(8.0)  # 0.5/s over 4 workers


def test_refused_requests_take_no_tokens(keys: ApiKeys, clock: FakeClock) -> None:
    _, key = keys.create("app1", ["predict:credit"], rate="1/s")
    guard = KeyGuard(keys, clock=clock)
    for _ in range(3):
        _refused(guard, key, "predict:churn", PermissionDeniedError)
    assert guard.check(key, "predict:credit") == "app1"


def test_a_divisor_is_at_least_one(keys: ApiKeys) -> None:
    with pytest.raises(InvalidInputError, match="at least 1"):
        KeyGuard(keys, divisor=0)


def test_no_message_echoes_the_secret(keys: ApiKeys, clock: FakeClock) -> None:
    _, key = keys.create("app1", ["predict:credit"], rate="1/s", expires="1h")
    secret = key.split("_", 2)[2]
    guard = KeyGuard(keys, clock=clock)
    messages = [_refused(guard, key, "predict:churn", PermissionDeniedError)]
    guard.check(key, "predict:credit")
    messages.append(_refused(guard, key, "predict:credit", RateLimitedError))
    messages.append(_refused(guard, key[:-1] + "!", "admin", AuthenticationError))
    clock.now += 7200
    messages.append(_refused(guard, key, "predict:credit", AuthenticationError))
    keys.revoke("app1")
    guard.refresh()
    messages.append(_refused(guard, key, "predict:credit", AuthenticationError))
    assert len(set(messages)) == len(messages)
    assert all(secret not in m and secret[:8] not in m for m in messages)
