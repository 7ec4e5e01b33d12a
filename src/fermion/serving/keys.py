"""API keys (`ws.keys`): create, list and revoke the keys the inference server accepts.

A key reads `fmn_<key_id>_<secret>`: `key_id` is public (12 hex characters, shown by `fermion
keys list` and in error messages), `secret` is 256 random bits and is shown once, at creation.
Only a salted SHA-256 of the secret is stored. Not a slow hash such as scrypt: those protect
guessable passwords, while a 256-bit random secret cannot be guessed from its hash at any speed,
so a slow hash would buy nothing and cost milliseconds on every request.
"""

from __future__ import annotations

import builtins
import hashlib
import math
import re
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from fermion.entities import ApiKeyRecord
from fermion.entities.dataset import check_name
from fermion.errors import InvalidInputError
from fermion.storage import KeyStore

ADMIN = "admin"
PREDICT_ANY = "predict:*"
_PREDICT = "predict:"
# `fmn_`, token_hex(6) and token_urlsafe(32), which is always 43 characters
_KEY = re.compile(r"^fmn_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
_RATE = re.compile(r"^(\d+(?:\.\d*)?|\.\d+)/([smh])$")
_DURATION = re.compile(r"^(\d+)([dhm])$")
_SECONDS = {"s": 1, "m": 60, "h": 3600}
_DURATION_UNITS = {"d": "days", "h": "hours", "m": "minutes"}


def hash_secret(salt: str, secret: str) -> str:
    """The hex SHA-256 of salt + secret: what the store keeps instead of the secret."""
    return hashlib.sha256(f"{salt}{secret}".encode()).hexdigest()


def split_key(text: str) -> tuple[str, str] | None:
    """`(key_id, secret)` of a key text `fmn_<key_id>_<secret>`, or None if it is malformed."""
    match = _KEY.match(text)
    return None if match is None else (match.group(1), match.group(2))


def check_scope(scope: str) -> str:
    """Return `scope` if it is `predict:<model>`, `predict:*` or `admin`, else raise."""
    if scope in (ADMIN, PREDICT_ANY):
        return scope
    if scope.startswith(_PREDICT):
        try:
            check_name(scope.removeprefix(_PREDICT))
            return scope
        except InvalidInputError:
            pass
    raise InvalidInputError(f"invalid scope {scope!r}: use predict:<model>, predict:* or admin")


def parse_rate(text: str) -> float:
    """Requests per second from `100/s`, `6000/m` or `50000/h`."""
    match = _RATE.match(text.strip().replace(" ", ""))
    if match is None:
        raise InvalidInputError(
            f"invalid rate {text!r}: use requests per s, m or h, such as 100/s, 6000/m or 50000/h"
        )
    rate = float(match.group(1)) / _SECONDS[match.group(2)]
    if rate <= 0:
        raise InvalidInputError(f"invalid rate {text!r}: it must be more than 0")
    return rate


def format_rate(rate_per_s: float | None) -> str:
    """`100/s`, `6000/m`... in the largest unit that gives a whole number; `-` for no limit."""
    if rate_per_s is None:
        return "-"
    for unit, seconds in _SECONDS.items():
        count = rate_per_s * seconds
        if abs(count - round(count)) < 1e-6 * max(1.0, count):
            return f"{round(count)}/{unit}"
    return f"{rate_per_s:.4g}/s"


def parse_expiry(text: str, now: datetime) -> datetime:
    """An aware datetime after `now` from `30d`, `12h`, `15m` or an ISO date or time (UTC
    unless it names its offset)."""
    match = _DURATION.match(text.strip())
    if match is not None:
        amount = int(match.group(1))
        if amount == 0:
            raise InvalidInputError(f"invalid expiry {text!r}: it must be more than 0")
        return now + timedelta(**{_DURATION_UNITS[match.group(2)]: amount})
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInputError(
            f"invalid expiry {text!r}: use 30d, 12h, 15m or an ISO date such as 2027-01-31"
        ) from None
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    if when <= now:
        raise InvalidInputError(f"invalid expiry {text!r}: it is in the past")
    return when.astimezone(UTC)


class ApiKeys:
    """The workspace's API keys. `create` returns the key text once; the store keeps a hash."""

    def __init__(self, store: KeyStore) -> None:
        self._store = store

    def create(
        self,
        name: str,
        scopes: Sequence[str],
        *,
        rate: str | float | None = None,
        expires: str | datetime | timedelta | None = None,
    ) -> tuple[ApiKeyRecord, str]:
        """Make a key granting `scopes` (`predict:<model>`, `predict:*`, `admin`), at most
        `rate` requests (`100/s`, `6000/m`, `50000/h`, or a number per second) and valid until
        `expires` (`30d`, `12h`, `15m`, an ISO date, a datetime or a timedelta from now).

        Returns the record and the key text, which cannot be recovered later.
        """
        check_name(name)
        wanted = [scopes] if isinstance(scopes, str) else list(scopes)
        if not wanted:
            raise InvalidInputError(
                "an API key needs at least one scope: predict:<model>, predict:* or admin"
            )
        checked = tuple(sorted({check_scope(scope) for scope in wanted}))
        now = datetime.now(UTC)
        key_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_hex(16)
        record = ApiKeyRecord(
            name=name,
            key_id=key_id,
            scopes=checked,
            rate_per_s=_rate(rate),
            created_at=now,
            expires_at=_expiry(expires, now),
            salt=salt,
            secret_hash=hash_secret(salt, secret),
        )
        return self._store.add_key(record), f"fmn_{key_id}_{secret}"

    def list(self) -> builtins.list[ApiKeyRecord]:
        """Every key, revoked and expired ones included, in name order."""
        return self._store.list_keys()

    def revoke(self, name: str) -> ApiKeyRecord:
        """Revoke the key for good; running servers refuse it from their next refresh."""
        return self._store.revoke_key(name)


def _rate(rate: str | float | None) -> float | None:
    if rate is None:
        return None
    if isinstance(rate, str):
        return parse_rate(rate)
    if not math.isfinite(rate) or rate <= 0:
        raise InvalidInputError(f"invalid rate {rate!r}: it must be a number more than 0")
    return float(rate)


def _expiry(expires: str | datetime | timedelta | None, now: datetime) -> datetime | None:
    if expires is None:
        return None
    if isinstance(expires, str):
        return parse_expiry(expires, now)
    when = now + expires if isinstance(expires, timedelta) else expires
    when = when if when.tzinfo else when.replace(tzinfo=UTC)
    if when <= now:
        raise InvalidInputError(f"invalid expiry {when.isoformat()}: it is in the past")
    return when.astimezone(UTC)
