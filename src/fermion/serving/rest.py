"""Fermion's own REST protocol: `POST /v1/models/{name}/predict` and model metadata.

Request: `{"rows": [{column: value, ...}, ...]}` or `{"columns": [...], "data": [[...], ...]}`.
Answer: `{"model", "version", "predictions"}`, and for classifiers `classes` with one list of
probabilities per row, in `classes` order.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from fermion.serving.app import Exchange
from fermion.serving.http import (
    Deadline,
    error_response,
    header_values,
    json_response,
    parse_json,
    receive_body,
    send_json,
    slow_body,
)
from fermion.serving.inputs import columns_from_body

if TYPE_CHECKING:
    from fermion.serving.app import ServerState
    from fermion.serving.served import ServedModel


def model_metadata(served: ServedModel) -> dict[str, Any]:
    signature = served.model.signature
    return {
        "name": served.name,
        "ref": served.ref,
        "version": served.version.version,
        "flavor": served.model.flavor,
        "task": signature.task,
        "inputs": [
            {"name": c.name, "type": c.type, "nullable": c.nullable} for c in signature.inputs
        ],
        "classes": served.classes,
        "target": signature.target,
    }


class Predict:
    """`POST /v1/models/{name}/predict` as a bare ASGI app behind its Starlette `Route`: no
    `Request` or `Response` objects on the path that carries most of the traffic (about a
    tenth of a request's time at one row). Errors, metrics and the access log as
    `ServerState.endpoint` makes them."""

    def __init__(self, state: ServerState) -> None:
        self._state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self._state
        started = time.perf_counter()
        exchange = Exchange("rest")
        state.metrics.request_started()
        try:
            body = await self._answer(scope, receive, exchange)
        except Exception as exc:
            response = error_response(exc)
            state.finished(scope, exchange, response.status_code, started)
            await response(scope, receive, send)
            return
        state.finished(scope, exchange, 200, started)
        await send_json(send, body)

    async def _answer(self, scope: Scope, receive: Receive, exchange: Exchange) -> bytes:
        state = self._state
        name = scope["path_params"]["name"]
        exchange.model = name
        length, key = header_values(scope["headers"])
        if state.guard is not None:
            state.authorize_key(key, f"predict:{name}", exchange)
        served = state.models.get(name)
        version = served.version.version
        exchange.version = str(version)
        options = state.options
        body = None
        try:  # one deadline for the whole request: a timer costs the event loop per request
            with Deadline(options.request_timeout_s):
                body = await receive_body(receive, length, options.max_body_bytes, None)
                columns, rows = columns_from_body(served.checker, parse_json(body))
                exchange.rows = rows
                prediction = await served.predict(columns, rows)
        except TimeoutError:
            if body is None:
                raise slow_body() from None
            raise  # the model took too long: 504
        answer: dict[str, Any] = {
            "model": name,
            "version": version,
            "predictions": prediction.values,
        }
        if prediction.probabilities is not None:
            answer["classes"] = served.classes
            answer["probabilities"] = prediction.probabilities
        return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)


async def metadata(request: Request, state: ServerState, exchange: Exchange) -> Response:
    name = request.path_params["name"]
    exchange.model = name
    state.authorize(request, f"predict:{name}", exchange)
    served = state.models.get(name)
    exchange.version = str(served.version.version)
    return json_response(model_metadata(served))


class PredictFirst:
    """The app's entry: answers `POST /v1/models/{name}/predict` itself, ahead of Starlette's
    middleware and router (a fifth of a one-row request's time on the server); every other
    request, and a path under a root path, goes on to `app`."""

    def __init__(self, app: ASGIApp, state: ServerState) -> None:
        self._app = app
        self._predict = Predict(state)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            path: str = scope["path"]
            if path.startswith(_PREFIX) and path.endswith(_SUFFIX):
                name = path[len(_PREFIX) : -len(_SUFFIX)]
                if name and "/" not in name:  # what the route's {name} matches
                    scope["path_params"] = {"name": name}
                    await self._predict(scope, receive, send)
                    return
        await self._app(scope, receive, send)


_PREFIX, _SUFFIX = "/v1/models/", "/predict"


def routes(state: ServerState) -> list[BaseRoute]:
    return [
        Route("/v1/models/{name}/predict", Predict(state), methods=["POST"]),
        Route("/v1/models/{name}", state.endpoint("rest", metadata), methods=["GET"]),
    ]
