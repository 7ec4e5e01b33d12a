"""Fermion's own REST protocol: `POST /v1/models/{name}/predict` and model metadata.

Request: `{"rows": [{column: value, ...}, ...]}` or `{"columns": [...], "data": [[...], ...]}`.
Answer: `{"model", "version", "predictions"}`, and for classifiers `classes` with one list of
probabilities per row, in `classes` order.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from fermion.serving.http import json_response, read_json, slow_body
from fermion.serving.inputs import columns_from_body

if TYPE_CHECKING:
    from fermion.serving.app import Exchange, ServerState
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


async def predict(request: Request, state: ServerState, exchange: Exchange) -> Response:
    name = request.path_params["name"]
    exchange.model = name
    state.authorize(request, f"predict:{name}", exchange)
    served = state.models.get(name)
    exchange.version = str(served.version.version)
    options = state.options
    body = None
    try:  # one deadline for the whole request: a timer costs the event loop per request
        async with asyncio.timeout(options.request_timeout_s):
            body = await read_json(request, options.max_body_bytes, None)
            columns, rows = columns_from_body(served.checker, body)
            exchange.rows = rows
            prediction = await served.predict(columns, rows)
    except TimeoutError:
        if body is None:
            raise slow_body() from None
        raise  # the model took too long: 504
    answer: dict[str, Any] = {
        "model": name,
        "version": served.version.version,
        "predictions": prediction.values,
    }
    if prediction.probabilities is not None:
        answer["classes"] = served.classes
        answer["probabilities"] = prediction.probabilities
    return json_response(answer)


async def metadata(request: Request, state: ServerState, exchange: Exchange) -> Response:
    name = request.path_params["name"]
    exchange.model = name
    state.authorize(request, f"predict:{name}", exchange)
    served = state.models.get(name)
    exchange.version = str(served.version.version)
    return json_response(model_metadata(served))


def routes(state: ServerState) -> list[BaseRoute]:
    return [
        Route("/v1/models/{name}/predict", state.endpoint("rest", predict), methods=["POST"]),
        Route("/v1/models/{name}", state.endpoint("rest", metadata), methods=["GET"]),
    ]
