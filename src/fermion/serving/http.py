"""The HTTP edge shared by every protocol: JSON bodies within limits, errors as JSON.

This is the one place where Fermion's errors become HTTP statuses. Error bodies are
`{"error": {"code": ..., "message": ...}}` (plus `field` for a bad input value) and never
carry a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from fermion.errors import (
    AuthenticationError,
    FermionError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitedError,
)
from fermion.serving.inputs import FieldError
from fermion.serving.model_set import ModelNotReadyError

log = logging.getLogger("fermion.serving")
JSON_TYPE = "application/json"


class HTTPError(FermionError):
    """An error that is about HTTP itself (a body too large, malformed JSON, a timeout)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def json_response(
    content: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(body, status_code=status, headers=headers, media_type=JSON_TYPE)


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, **extra}}


def error_response(exc: BaseException) -> Response:
    """The response for any exception a handler raised; unexpected ones are logged, not shown."""
    status, code, extra, headers = _classify(exc)
    message = _public_message(exc, status, code)
    return json_response(error_body(code, message, **extra), status, headers)


_OPENAI_TYPES = {401: "authentication_error", 403: "permission_error", 429: "rate_limit_error"}


def openai_error_response(exc: BaseException) -> Response:
    """`error_response` in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`,
    for the OpenAI-compatible routes: the same statuses and headers; `param` names the field
    at fault (an exception's `param`, a `FieldError`'s field) or is null."""
    status, code, extra, headers = _classify(exc)
    message = _public_message(exc, status, code)
    kind = "server_error" if status >= 500 else _OPENAI_TYPES.get(status, "invalid_request_error")
    param = getattr(exc, "param", None) or extra.get("field")
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return json_response(body, status, headers)


def _public_message(exc: BaseException, status: int, code: str) -> str:
    if status == 500:
        log.error("internal error: %s", exc, exc_info=exc)
        return "internal error; the server log has the details"
    return str(exc).strip().splitlines()[0] if str(exc).strip() else code


def _classify(exc: BaseException) -> tuple[int, str, dict[str, Any], dict[str, str] | None]:
    if isinstance(exc, HTTPError):
        return exc.status, exc.code, {}, None
    if isinstance(exc, FieldError):
        return 422, "invalid_input", {"field": exc.field}, None
    if isinstance(exc, AuthenticationError):
        return 401, "unauthenticated", {}, {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, PermissionDeniedError):
        return 403, "forbidden", {}, None
    if isinstance(exc, RateLimitedError):
        retry = str(max(1, math.ceil(exc.retry_after)))
        return 429, "rate_limited", {}, {"Retry-After": retry}
    if isinstance(exc, ModelNotReadyError):
        return 503, "model_not_ready", {}, {"Retry-After": "1"}
    if isinstance(exc, NotFoundError):
        return 404, "not_found", {}, None
    if isinstance(exc, InvalidInputError):
        return 422, "invalid_input", {}, None
    if isinstance(exc, TimeoutError):
        return 504, "timeout", {}, None
    return 500, "internal", {}, None


async def read_json(request: Request, limit: int, timeout_s: float | None) -> Any:
    """The body parsed as JSON: 413 past `limit` bytes (before reading it whole when the
    client declares its length), 408 when it takes longer than `timeout_s` (None: the caller
    times it), 400 if malformed."""
    body = await read_body(request, limit, timeout_s)
    if not body:
        raise HTTPError(400, "bad_request", "the body is empty; send a JSON object")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPError(400, "malformed_json", f"malformed JSON: {exc}") from None


async def read_body(request: Request, limit: int, timeout_s: float | None) -> bytes:
    """The raw body, possibly empty: 413 past `limit` bytes (before reading it whole when the
    client declares its length), 408 when it takes longer than `timeout_s` (None: the caller
    times it and answers `slow_body()`)."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not (declared.isascii() and declared.isdigit()):
            raise HTTPError(400, "bad_request", "Content-Length must be a whole number")
        if int(declared) > limit:
            raise HTTPError(413, "body_too_large", f"the body is over the {limit}-byte limit")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(timeout_s):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise HTTPError(
                        413, "body_too_large", f"the body is over the {limit}-byte limit"
                    )
                chunks.append(chunk)
    except TimeoutError:
        raise slow_body() from None
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def slow_body() -> HTTPError:
    return HTTPError(408, "request_timeout", "the body took too long to arrive")


def credential(request: Request) -> str | None:
    """The API key a client sent: `Authorization: Bearer <key>` or `X-API-Key: <key>`."""
    headers = request.headers
    return headers.get("authorization") or headers.get("x-api-key")
