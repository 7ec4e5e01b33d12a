"""OpenAI-compatible embeddings: `POST /v1/embeddings`, answered by a served embedding model.

Request: `{"model": served name, "input": text or [texts], "encoding_format": "float" or
"base64", "dimensions": the model's own only, "user": ignored}`. Answer, as OpenAI's:
`{"object": "list", "data": [{"object": "embedding", "index", "embedding"}], "model", "usage"}`
where a base64 embedding is the vector's little-endian float32 bytes (what the official client
asks for by default and decodes). Texts of concurrent requests go to the model in one batch.
Errors come in OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, so OpenAI's
clients raise their usual exceptions.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from fermion.errors import NotFoundError
from fermion.serving.http import HTTPError, json_response, openai_error_response, read_json

if TYPE_CHECKING:
    from fermion.serving.app import Exchange, Handler, ServerState
    from fermion.serving.served import ServedModel

MAX_INPUTS = 2048  # OpenAI's own limit of texts per request
FORMATS = ("float", "base64")


class RequestError(HTTPError):
    """A request refused as OpenAI's API would refuse it; `param` names the field at fault."""

    def __init__(
        self, message: str, param: str | None, *, status: int = 400, code: str = "invalid_value"
    ) -> None:
        super().__init__(status, code, message)
        self.param = param


async def embeddings(request: Request, state: ServerState, exchange: Exchange) -> Response:
    body = await read_json(request, state.options.max_body_bytes, state.options.request_timeout_s)
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object", None, code="invalid_request")
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise RequestError("'model' must be the name of a served embedding model", "model")
    exchange.model = name
    state.authorize(request, f"predict:{name}", exchange)
    served = _embedding_model(state, name)
    exchange.version = str(served.version.version)
    texts = _texts(body.get("input"))
    encoding = body.get("encoding_format")
    encoding = "float" if encoding is None else encoding
    if encoding not in FORMATS:
        raise RequestError(
            f"'encoding_format' must be 'float' or 'base64', not {encoding!r}", "encoding_format"
        )
    _check_dimensions(body.get("dimensions"), served)
    exchange.rows = len(texts)
    async with asyncio.timeout(state.options.request_timeout_s):
        tokens = await asyncio.to_thread(served.model.count_tokens, texts)
        prediction = await served.predict({served.checker.names[0]: texts}, len(texts))
    data = [
        {"object": "embedding", "index": index, "embedding": _encoded(vector, encoding)}
        for index, vector in enumerate(prediction.values)
    ]
    used = sum(tokens)
    return json_response(
        {
            "object": "list",
            "data": data,
            "model": name,
            "usage": {"prompt_tokens": used, "total_tokens": used},
        }
    )


def _embedding_model(state: ServerState, name: str) -> ServedModel:
    try:
        served = state.models.get(name)
    except NotFoundError:
        raise RequestError(
            f"the model {name!r} does not exist: it is not served here",
            "model",
            status=404,
            code="model_not_found",
        ) from None
    if served.task != "embedding":
        raise RequestError(
            f"the model {name!r} is a {served.task} model, not an embedding model", "model"
        )
    return served


def _texts(value: Any) -> list[str]:
    """`input` as a list of texts; token ids (which OpenAI also takes) are refused with 422."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise RequestError("'input' must be a string or a list of strings", "input")
    if not value:
        raise RequestError("'input' is an empty list: send at least one text", "input")
    if len(value) > MAX_INPUTS:
        raise RequestError(f"'input' holds {len(value)} texts; the most is {MAX_INPUTS}", "input")
    for index, text in enumerate(value):
        if isinstance(text, str):
            if not text:
                raise RequestError(f"input[{index}] is an empty string", "input")
            continue
        if _is_token(text) or (isinstance(text, list) and all(_is_token(t) for t in text)):
            raise RequestError(
                "'input' holds token ids; this server embeds text only: send strings",
                "input",
                status=422,
                code="unsupported_input",
            )
        raise RequestError(f"input[{index}] must be a string, not {text!r:.40}", "input")
    return value


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_dimensions(value: Any, served: ServedModel) -> None:
    if value is None:
        return
    dimension = served.model.manifest.get("flavor_meta", {}).get("dimension")
    if not _is_token(value) or value != dimension:
        raise RequestError(
            f"{served.name} gives {dimension}-dimensional embeddings and cannot shorten them: "
            f"leave 'dimensions' out or send {dimension}, not {value!r}",
            "dimensions",
        )


def _encoded(vector: np.ndarray, encoding: str) -> Any:
    if encoding == "base64":
        raw = np.ascontiguousarray(vector, dtype="<f4").tobytes()
        return base64.b64encode(raw).decode("ascii")
    return vector  # a float32 row: orjson writes it as a list of numbers


def _openai_errors(handler: Handler) -> Handler:
    """`handler` with its errors answered in OpenAI's shape (statuses as everywhere else)."""

    async def answer(request: Request, state: ServerState, exchange: Exchange) -> Response:
        try:
            return await handler(request, state, exchange)
        except Exception as exc:
            return openai_error_response(exc)

    return answer


def routes(state: ServerState) -> list[BaseRoute]:
    endpoint: Callable[[Request], Awaitable[Response]] = state.endpoint(
        "openai", _openai_errors(embeddings)
    )
    return [Route("/v1/embeddings", endpoint, methods=["POST"])]
