"""The OpenAPI document of a running server, with a request schema per model built from its
signature, and an interactive page (Swagger UI) to try the endpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route

from fermion.entities import ColumnSpec, LogicalType
from fermion.serving.http import json_response

if TYPE_CHECKING:
    from fermion.serving.app import ServerState
    from fermion.serving.served import ServedModel

_JSON_TYPES: dict[str, dict[str, Any]] = {
    LogicalType.INTEGER: {"type": "integer"},
    LogicalType.FLOAT: {"type": "number"},
    LogicalType.BOOLEAN: {"type": "boolean"},
    LogicalType.DATETIME: {"type": "string", "format": "date-time"},
}
_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string"},
            },
            "required": ["code", "message"],
        }
    },
}
_ERRORS = {
    "400": "Malformed JSON or an empty body",
    "401": "No API key, or a wrong one",
    "403": "The key lacks this model's scope",
    "404": "The model is not served here",
    "413": "The body is over the size limit",
    "422": "An input does not fit the model's signature",
    "429": "Over the key's rate limit",
    "503": "The model is still loading",
}


def _column(spec: ColumnSpec) -> dict[str, Any]:
    schema = dict(_JSON_TYPES.get(spec.type, {"type": "string"}))
    return {"anyOf": [schema, {"type": "null"}]}


def _model_paths(served: ServedModel) -> dict[str, Any]:
    signature = served.model.signature
    row = {
        "type": "object",
        "properties": {spec.name: _column(spec) for spec in signature.inputs},
        "required": [spec.name for spec in signature.inputs],
        "additionalProperties": False,
    }
    body = {
        "oneOf": [
            {
                "type": "object",
                "properties": {"rows": {"type": "array", "items": row}},
                "required": ["rows"],
            },
            {
                "type": "object",
                "properties": {
                    "columns": {"type": "array", "items": {"type": "string"}},
                    "data": {"type": "array", "items": {"type": "array"}},
                },
                "required": ["columns", "data"],
            },
        ]
    }
    value: dict[str, Any] = {"enum": served.classes}
    if signature.task == "regression":
        value = {"type": "number"}
    elif signature.task == "embedding":
        value = {"type": "array", "items": {"type": "number"}}
    answer: dict[str, Any] = {
        "type": "object",
        "properties": {
            "model": {"type": "string"},
            "version": {"type": "integer"},
            "predictions": {"type": "array", "items": value},
        },
        "required": ["model", "version", "predictions"],
    }
    if served.model.gives_probabilities:
        answer["properties"]["classes"] = {"type": "array", "items": {"type": "string"}}
        answer["properties"]["probabilities"] = {
            "type": "array",
            "items": {"type": "array", "items": {"type": "number"}},
        }
    example = {spec.name: None for spec in signature.inputs}
    responses: dict[str, Any] = {
        "200": {
            "description": "Predictions, with the version that answered",
            "content": {"application/json": {"schema": answer}},
        }
    }
    for status, words in _ERRORS.items():
        responses[status] = {
            "description": words,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    return {
        f"/v1/models/{served.name}/predict": {
            "post": {
                "summary": f"Predict with {served.name} ({served.version.ref})",
                "operationId": f"predict_{served.name}",
                "tags": [served.name],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": body, "example": {"rows": [example]}}
                    },
                },
                "responses": responses,
            }
        }
    }


def _embeddings_path(models: list[str]) -> dict[str, Any]:
    body = {
        "type": "object",
        "properties": {
            "model": {"enum": models},
            "input": {
                "anyOf": [
                    {"type": "string", "minLength": 1},
                    {"type": "array", "items": {"type": "string", "minLength": 1}, "minItems": 1},
                ]
            },
            "encoding_format": {"enum": ["float", "base64"]},
        },
        "required": ["model", "input"],
    }
    return {
        "post": {
            "summary": "OpenAI-compatible embeddings",
            "operationId": "embeddings",
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {"200": {"description": "One vector per input text, in order"}},
        }
    }


def document(state: ServerState) -> dict[str, Any]:
    from fermion import __version__

    paths: dict[str, Any] = {}
    for served in state.models.served():
        paths.update(_model_paths(served))
    embedders = [s.name for s in state.models.served() if s.task == "embedding"]
    if embedders:
        paths["/v1/embeddings"] = _embeddings_path(embedders)
    for path, words in (
        ("/healthz", "Live while the process runs"),
        ("/readyz", "Ready once every model has loaded (503 before)"),
        ("/metrics", "Prometheus metrics"),
    ):
        paths[path] = {
            "get": {"summary": words, "security": [], "responses": {"200": {"description": "OK"}}}
        }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Fermion inference server", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": {"Error": _ERROR},
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"apiKey": []}] if state.guard is not None else [],
    }


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Fermion inference server</title>
<link rel="stylesheet" href="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui.css">
</head><body><div id="ui"></div>
<script src="https://cdn.jsdelivr.net/npm/swagger-ui-dist@5/swagger-ui-bundle.js"></script>
<script>SwaggerUIBundle({url: "/openapi.json", dom_id: "#ui"});</script>
</body></html>"""


def routes(state: ServerState) -> list[BaseRoute]:
    async def openapi(request: Request) -> Response:
        return json_response(document(state))

    async def docs(request: Request) -> Response:
        return HTMLResponse(_PAGE)

    return [
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
    ]
