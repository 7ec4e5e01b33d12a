"""How a server runs: bind address, workers, limits, batching per model."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from fermion.errors import InvalidInputError

MIB = 1024 * 1024


@dataclass(frozen=True)
class BatchOptions:
    """Adaptive batching of one model: requests waiting together go as one call.

    A request never waits for company when nothing else is queued; `max_wait_ms` bounds how
    long a partly filled batch waits for more rows while others are already queued.
    """

    max_batch_size: int = 64
    max_wait_ms: float = 2.0
    enabled: bool = True

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise InvalidInputError(f"max batch size must be at least 1, got {self.max_batch_size}")
        if self.max_wait_ms < 0:
            raise InvalidInputError(f"max wait must be 0 ms or more, got {self.max_wait_ms}")


@dataclass(frozen=True)
class ServeOptions:
    """Everything `fermion serve` takes besides the models; passed to each worker as JSON."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    auth: bool = True
    max_body_bytes: int = 10 * MIB
    request_timeout_s: float = 30.0
    access_log: bool = True
    docs: bool = True  # /openapi.json and /docs: the served models' names and input schemas
    swap_poll_s: float = 2.0
    key_refresh_s: float = 2.0
    inference_threads: int = 0  # 0: one per core
    batch: BatchOptions = field(default_factory=BatchOptions)
    model_batch: Mapping[str, BatchOptions] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < self.port < 65536:
            raise InvalidInputError(f"port must be between 1 and 65535, got {self.port}")
        if self.workers < 1:
            raise InvalidInputError(f"workers must be at least 1, got {self.workers}")
        if self.max_body_bytes < 1:
            raise InvalidInputError("the request body limit must be at least 1 byte")
        if self.request_timeout_s <= 0:
            raise InvalidInputError("the request timeout must be more than 0 seconds")
        if not self.auth and not is_loopback(self.host):
            raise InvalidInputError(
                f"--no-auth is allowed only on a loopback address (127.0.0.1, ::1, localhost), "
                f"not {self.host}: create a key with `fermion keys create` instead"
            )

    def batching(self, model: str) -> BatchOptions:
        return self.model_batch.get(model, self.batch)

    @property
    def threads(self) -> int:
        return self.inference_threads or os.cpu_count() or 1

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["batch"] = _batch_dict(self.batch)
        data["model_batch"] = {k: _batch_dict(v) for k, v in self.model_batch.items()}
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ServeOptions:
        values = dict(data)
        values["batch"] = BatchOptions(**values.get("batch", {}))
        values["model_batch"] = {
            k: BatchOptions(**v) for k, v in values.get("model_batch", {}).items()
        }
        return cls(**values)


def _batch_dict(options: BatchOptions) -> dict[str, Any]:
    return {f.name: getattr(options, f.name) for f in fields(options)}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
