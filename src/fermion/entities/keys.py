"""API keys of the inference server, as stored: a public id and a salted hash, never the secret."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ApiKeyRecord:
    """One API key. The key text `fmn_<key_id>_<secret>` is shown once, at creation; only
    `salt` and `secret_hash` (hex sha256 of salt + secret) are kept, and neither is printed.

    `rate_per_s` None means no rate limit; `expires_at` None means the key does not expire.
    """

    name: str
    key_id: str
    scopes: tuple[str, ...]
    rate_per_s: float | None
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    salt: str = field(default="", repr=False)
    secret_hash: str = field(default="", repr=False)

    def status(self, now: datetime) -> str:
        """`revoked`, `expired` or `active` at `now` (an aware datetime)."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def to_dict(self) -> dict[str, Any]:
        """Everything but the salt and hash: what adapters may print."""
        return {
            "name": self.name,
            "key_id": self.key_id,
            "scopes": list(self.scopes),
            "rate_per_s": self.rate_per_s,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "revoked_at": self.revoked_at,
        }
