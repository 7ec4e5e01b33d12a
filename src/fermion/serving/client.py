"""A small Python client for a Fermion server: `Client(url, api_key).predict("credit", rows)`.

Errors come back as Fermion's own exceptions (the server's one-line message), so code calling
a remote model handles failures as it would a local one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from fermion.errors import (
    AuthenticationError,
    FermionError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
)

KEY_ENV = "FERMION_API_KEY"


class ServerError(FermionError):
    """The server could not answer (it is down, overloaded, or failed on its side)."""


class Client:
    """Talks to `fermion serve`. The key defaults to `$FERMION_API_KEY`."""

    def __init__(
        self, url: str = "http://127.0.0.1:8080", api_key: str | None = None, timeout: float = 30
    ) -> None:
        import httpx

        key = api_key if api_key is not None else os.environ.get(KEY_ENV)
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._http = httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=timeout)

    def predict(self, model: str, rows: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> Any:
        """Predictions for one row (a dict) or several (a list of dicts): the server's answer,
        `{"model", "version", "predictions", "classes"?, "probabilities"?}`."""
        batch = [rows] if isinstance(rows, Mapping) else list(rows)
        return self._call("POST", f"/v1/models/{model}/predict", {"rows": batch})

    def model(self, model: str) -> Any:
        """The served version, task, input columns and classes of `model`."""
        return self._call("GET", f"/v1/models/{model}", None)

    def ready(self) -> bool:
        import httpx

        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _call(self, method: str, path: str, body: Any) -> Any:
        import httpx

        try:
            answer = self._http.request(method, path, json=body)
        except httpx.TransportError as exc:
            raise ServerError(f"cannot reach {self._http.base_url}: {exc}") from exc
        if answer.status_code < 400:
            return answer.json()
        raise _error(answer)


def _error(answer: Any) -> FermionError:
    try:
        message = str(answer.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        message = answer.text[:200] or answer.reason_phrase
    status = answer.status_code
    if status == 401:
        return AuthenticationError(message)
    if status == 403:
        return PermissionDeniedError(message)
    if status == 404:
        return NotFoundError(message)
    if status == 429:
        return RateLimitedError(message, float(answer.headers.get("retry-after", "1")))
    if status < 500:
        return InvalidInputError(message)
    return ServerError(f"{status}: {message}")
