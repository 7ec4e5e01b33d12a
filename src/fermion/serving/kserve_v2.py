"""The KServe V2 / Open Inference Protocol over HTTP, as tritonclient and KServe speak it.

Health (`/v2/health/live`, `/v2/health/ready`: no key, nothing revealed), server and model
metadata, model readiness, and `POST /v2/models/{name}[/versions/{version}]/infer` with JSON or
binary tensors (Triton's binary tensor data extension; see `tensors.py`). Inputs are one tensor
per signature column; outputs are `predictions` and, for classifiers, `probabilities`.
Errors are the V2 shape `{"error": "<message>"}`: a request that does not fit is 400, other
statuses mean what they mean on every protocol (`http.error_response`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from fermion.errors import InvalidInputError, NotFoundError, first_line
from fermion.serving.http import HTTPError, error_response, json_response, read_body
from fermion.serving.model_set import ModelNotReadyError
from fermion.serving.tensors import (
    HEADER_LENGTH,
    OutputTensor,
    TensorError,
    datatype_of,
    encode_response,
    read_request,
    to_columns,
)

if TYPE_CHECKING:
    from fermion.serving.app import Exchange, Handler, ServerState
    from fermion.serving.served import Prediction, ServedModel

PROTOCOL = "kserve_v2"
EXTENSIONS = ["binary_tensor_data"]
BINARY_TYPE = "application/octet-stream"


def error_response_v2(exc: BaseException) -> Response:
    """`{"error": message}` with the status and headers every protocol gives `exc`, except that
    any input that does not fit is 400, as the V2 protocol has it."""
    if isinstance(exc, InvalidInputError):
        return json_response({"error": first_line(exc)}, 400)
    general = error_response(exc)
    message = orjson.loads(general.body)["error"]["message"]
    skip = {"content-length", "content-type"}
    headers = {k: v for k, v in general.headers.items() if k not in skip}
    return json_response({"error": message}, general.status_code, headers)


def _v2(handler: Handler) -> Handler:
    async def handle(request: Request, state: ServerState, exchange: Exchange) -> Response:
        try:
            return await handler(request, state, exchange)
        except Exception as exc:
            return error_response_v2(exc)

    return handle


def _served(request: Request, state: ServerState, exchange: Exchange) -> ServedModel:
    """The model the path names, once the key may use it; a version not serving is 404."""
    name = request.path_params["name"]
    exchange.model = name
    state.authorize(request, f"predict:{name}", exchange)
    served = state.models.get(name)
    exchange.version = str(served.version.version)
    wanted = request.path_params.get("version")
    if wanted is not None and wanted != exchange.version:
        raise NotFoundError(
            f"model {name!r} serves version {exchange.version} here, not {wanted!r}"
        )
    return served


def _outputs_of(served: ServedModel) -> dict[str, dict[str, Any]]:
    """Output tensors' metadata by name, in answer order."""
    if served.task == "regression":
        return {"predictions": {"name": "predictions", "datatype": "FP64", "shape": [-1]}}
    if served.task == "embedding":
        dimension = served.model.manifest.get("flavor_meta", {}).get("dimension", -1)
        return {"embeddings": {"name": "embeddings", "datatype": "FP32", "shape": [-1, dimension]}}
    outputs = {"predictions": {"name": "predictions", "datatype": "BYTES", "shape": [-1]}}
    if served.model.gives_probabilities:
        shape = [-1, len(served.classes)]
        outputs["probabilities"] = {"name": "probabilities", "datatype": "FP64", "shape": shape}
    return outputs


def model_metadata(served: ServedModel) -> dict[str, Any]:
    return {
        "name": served.name,
        "versions": [str(served.version.version)],
        "platform": f"fermion-{served.model.flavor}",
        "inputs": [
            {"name": spec.name, "datatype": datatype_of(spec), "shape": [-1]}
            for spec in served.model.signature.inputs
        ],
        "outputs": list(_outputs_of(served).values()),
    }


async def live(request: Request) -> Response:
    return json_response({"live": True})


def _ready(state: ServerState) -> Callable[[Request], Awaitable[Response]]:
    async def ready(request: Request) -> Response:
        ready = state.ready
        return json_response({"ready": ready}, 200 if ready else 503)

    return ready


async def server_metadata(request: Request, state: ServerState, exchange: Exchange) -> Response:
    from fermion import __version__

    return json_response({"name": "fermion", "version": __version__, "extensions": EXTENSIONS})


async def metadata(request: Request, state: ServerState, exchange: Exchange) -> Response:
    return json_response(model_metadata(_served(request, state, exchange)))


async def model_ready(request: Request, state: ServerState, exchange: Exchange) -> Response:
    name = request.path_params["name"]
    try:
        _served(request, state, exchange)
    except ModelNotReadyError:
        return json_response({"name": name, "ready": False}, 503, {"Retry-After": "1"})
    return json_response({"name": name, "ready": True})


async def infer(request: Request, state: ServerState, exchange: Exchange) -> Response:
    served = _served(request, state, exchange)
    encoding = request.headers.get("content-encoding", "identity").lower()
    if encoding != "identity":
        raise HTTPError(
            415, "unsupported_encoding", f"Content-Encoding {encoding} is not supported"
        )
    options = state.options
    body = await read_body(request, options.max_body_bytes, options.request_timeout_s)
    asked = read_request(body, request.headers.get(HEADER_LENGTH))
    offered = _outputs_of(served)
    outputs = asked.outputs
    if outputs is not None:
        for output in outputs:
            if output.name not in offered:
                raise TensorError(
                    f"unknown output {output.name!r}; the model gives: {', '.join(offered)}"
                )
    columns, rows = to_columns(served.model.signature.inputs, asked.inputs)
    exchange.rows = rows
    async with asyncio.timeout(options.request_timeout_s):
        prediction = await served.predict(columns, rows)
    tensors = _output_tensors(served, prediction, rows)
    if outputs is None:
        chosen = [(tensor, asked.binary_output) for tensor in tensors.values()]
    else:
        chosen = [
            (tensors[o.name], asked.binary_output if o.binary is None else o.binary)
            for o in outputs
        ]
    head: dict[str, Any] = {"model_name": served.name, "model_version": exchange.version}
    if asked.id is not None:
        head["id"] = asked.id
    content, header_length = encode_response(head, chosen)
    if header_length is None:
        return Response(content, media_type="application/json")
    return Response(
        content,
        media_type=BINARY_TYPE,
        headers={"Inference-Header-Content-Length": str(header_length)},
    )


def _output_tensors(
    served: ServedModel, prediction: Prediction, rows: int
) -> dict[str, OutputTensor]:
    if served.task == "regression":
        values = np.asarray(prediction.values, dtype=np.float64)
        return {"predictions": OutputTensor("predictions", "FP64", [rows], values)}
    if served.task == "embedding":
        vectors = np.ascontiguousarray(prediction.values, dtype=np.float32)
        shape = [rows, vectors.shape[1] if vectors.ndim == 2 else 0]
        return {"embeddings": OutputTensor("embeddings", "FP32", shape, vectors.reshape(-1))}
    labels = [_label_text(value) for value in prediction.values]
    tensors = {"predictions": OutputTensor("predictions", "BYTES", [rows], labels)}
    proba = prediction.probabilities
    if proba is not None:
        flat = np.ascontiguousarray(proba, dtype=np.float64).reshape(-1)
        shape = [rows, len(served.classes)]
        tensors["probabilities"] = OutputTensor("probabilities", "FP64", shape, flat)
    return tensors


def _label_text(value: Any) -> str:
    """A class label as BYTES text: strings as they are, other labels as JSON writes them."""
    return value if isinstance(value, str) else orjson.dumps(value).decode()


def routes(state: ServerState) -> list[BaseRoute]:
    def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        return state.endpoint(PROTOCOL, _v2(handler))

    model = "/v2/models/{name}"
    version = "/v2/models/{name}/versions/{version}"
    return [
        Route("/v2/health/live", live, methods=["GET"]),
        Route("/v2/health/ready", _ready(state), methods=["GET"]),
        Route("/v2", endpoint(server_metadata), methods=["GET"]),
        Route(model, endpoint(metadata), methods=["GET"]),
        Route(version, endpoint(metadata), methods=["GET"]),
        Route(f"{model}/ready", endpoint(model_ready), methods=["GET"]),
        Route(f"{version}/ready", endpoint(model_ready), methods=["GET"]),
        Route(f"{model}/infer", endpoint(infer), methods=["POST"]),
        Route(f"{version}/infer", endpoint(infer), methods=["POST"]),
    ]
