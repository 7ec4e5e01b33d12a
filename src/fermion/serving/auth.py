"""`KeyGuard`: the inference server's check of an API key, its scope and its rate, from memory.

The guard holds a copy of the keys table and checks a request against it with no I/O: the
server calls `refresh()` every few seconds off the event loop, so a revoked key is refused by
every running server within seconds, and `check()` takes microseconds.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

from fermion.entities import ApiKeyRecord
from fermion.errors import (
    AuthenticationError,
    InvalidInputError,
    PermissionDeniedError,
    RateLimitedError,
)
from fermion.serving.keys import ADMIN, PREDICT_ANY, ApiKeys, format_rate, hash_secret, split_key
from fermion.storage import KeyStore

_MISSING = "missing API key: send it as Authorization: Bearer <key>"
_MALFORMED = (
    "malformed API key: send fmn_<id>_<secret> as Authorization: Bearer <key> or X-API-Key: <key>"
)


class _Bucket:
    """A token bucket's state: tokens left at time `updated` (on the guard's clock)."""

    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated


class _Entry:
    """One key as the guard uses it: the record plus what `check` needs precomputed."""

    __slots__ = ("any_predict", "bucket", "capacity", "deadline", "rate", "record", "scopes")

    def __init__(
        self, record: ApiKeyRecord, deadline: float | None, divisor: int, bucket: _Bucket | None
    ) -> None:
        self.record = record
        self.scopes = frozenset(record.scopes)
        self.any_predict = ADMIN in self.scopes or PREDICT_ANY in self.scopes
        self.deadline = deadline  # when the key expires, on the guard's clock
        self.rate = None if record.rate_per_s is None else record.rate_per_s / divisor
        self.capacity = 0.0 if self.rate is None else max(1.0, self.rate)
        self.bucket = bucket

    def grants(self, scope: str) -> bool:
        if scope in self.scopes or ADMIN in self.scopes:
            return True
        return self.any_predict and scope.startswith("predict:")


class KeyGuard:
    """Checks API keys against an in-memory view of the keys table (loaded at construction).

    `divisor` is the number of server worker processes: each process refills a key's token
    bucket at `rate / divisor` per second (holding at most `max(1, rate / divisor)` tokens),
    so all workers together allow the key's rate. Expiry is measured on `clock`, from the wall
    time read at each refresh, so `check` never reads the wall clock.
    """

    def __init__(
        self,
        keys: KeyStore | ApiKeys,
        *,
        divisor: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if divisor < 1:
            raise InvalidInputError(f"divisor is the number of workers, at least 1: {divisor}")
        self._source = keys
        self._divisor = divisor
        self._clock = clock
        # Guards the token buckets and the verified cache: refresh runs on another thread.
        self._lock = threading.Lock()
        self._by_id: dict[str, _Entry] = {}
        # key text -> the record it was verified against: a repeat request skips the hash.
        # Only a right secret gets in, so it holds at most one text per key.
        self._verified: dict[str, ApiKeyRecord] = {}
        self.refresh()

    def refresh(self) -> None:
        """Re-read every key from the store (blocking I/O: call it off the event loop).

        On a storage error the exception propagates and the previous view stays in use.
        """
        source = self._source
        records = source.list() if isinstance(source, ApiKeys) else source.list_keys()
        wall, now = datetime.now(UTC), self._clock()
        old = self._by_id
        by_id: dict[str, _Entry] = {}
        for record in records:
            previous = old.get(record.key_id)
            if previous is not None and previous.record != record:
                previous = None  # changed: verify its key text again, start a new bucket
            if previous is not None:
                record = previous.record  # the same object keeps its verified key text
            deadline = None
            if record.expires_at is not None:
                deadline = now + max(0.0, (record.expires_at - wall).total_seconds())
                if previous is not None and previous.deadline is not None:
                    deadline = min(deadline, previous.deadline)
            bucket = None if previous is None else previous.bucket
            if bucket is None and record.rate_per_s is not None:
                bucket = _Bucket(max(1.0, record.rate_per_s / self._divisor), now)
            by_id[record.key_id] = _Entry(record, deadline, self._divisor, bucket)
        with self._lock:
            self._by_id = by_id
            self._verified = {
                text: record
                for text, record in self._verified.items()
                if (entry := by_id.get(record.key_id)) is not None and entry.record is record
            }

    def check(self, credential: str | None, scope: str) -> str:
        """The name of the key in `credential` (`Bearer <key>` or a bare key) if it may use
        `scope` now, taking one token from its rate; raises `AuthenticationError`,
        `PermissionDeniedError` or `RateLimitedError`. No I/O; never echoes the secret."""
        text = _key_text(credential)
        cached = self._verified.get(text)
        entry = None if cached is None else self._by_id.get(cached.key_id)
        if entry is None or entry.record is not cached:
            entry = self._verify(text)
        record = entry.record
        if record.revoked_at is not None:
            raise AuthenticationError(f"API key {record.name!r} has been revoked")
        now = self._clock()
        if entry.deadline is not None and now >= entry.deadline:
            raise AuthenticationError(f"API key {record.name!r} has expired")
        if not entry.grants(scope):
            raise PermissionDeniedError(f"API key {record.name!r} does not grant {scope!r}")
        if entry.rate is not None and entry.bucket is not None:
            self._take(entry, entry.rate, entry.bucket, now)
        return record.name

    def _verify(self, text: str) -> _Entry:
        parts = split_key(text)
        if parts is None:
            raise AuthenticationError(_MALFORMED)
        key_id, secret = parts
        entry = self._by_id.get(key_id)
        if entry is None:
            raise AuthenticationError(f"unknown API key id {key_id!r}")
        if not hmac.compare_digest(
            hash_secret(entry.record.salt, secret), entry.record.secret_hash
        ):
            raise AuthenticationError(f"wrong secret for API key id {key_id!r}")
        with self._lock:
            self._verified[text] = entry.record
        return entry

    def _take(self, entry: _Entry, rate: float, bucket: _Bucket, now: float) -> None:
        with self._lock:
            elapsed = max(0.0, now - bucket.updated)
            tokens = min(entry.capacity, bucket.tokens + elapsed * rate)
            bucket.updated = max(bucket.updated, now)
            if tokens >= 1.0:
                bucket.tokens = tokens - 1.0
                return
            bucket.tokens = tokens
        retry_after = (1.0 - tokens) / rate
        raise RateLimitedError(
            f"API key {entry.record.name!r} is over its rate of "
            f"{format_rate(entry.record.rate_per_s)}: retry in {retry_after:.3g} s",
            retry_after,
        )


def _key_text(credential: str | None) -> str:
    """The key in an `Authorization: Bearer <key>` or `X-API-Key: <key>` header value."""
    text = (credential or "").strip()
    if not text:
        raise AuthenticationError(_MISSING)
    scheme, _, rest = text.partition(" ")
    if scheme.lower() == "bearer":
        text = rest.strip()
        if not text:
            raise AuthenticationError(_MISSING)
    return text
