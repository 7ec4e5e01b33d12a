"""The OpenAPI document: one request schema per served model, from its signature."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from fermion.serving.options import ServeOptions
from fermion.workspace import Workspace

ROW = {"age": 41, "income": 3100.5, "city": "lyon"}  # a valid row of the `credit` model


@pytest.fixture(scope="module")
def document(serve: Any, served_workspace: Workspace) -> dict[str, Any]:
    with serve(served_workspace, ["credit@production"]) as (client, _):
        assert "swagger-ui" in client.get("/docs").text
        answer = client.get("/openapi.json")
        assert answer.status_code == 200
        return dict(answer.json())


def _request_schema(document: dict[str, Any]) -> dict[str, Any]:
    operation = document["paths"]["/v1/models/credit/predict"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    return dict(schema)


def test_the_request_schema_accepts_what_the_server_accepts(document: dict[str, Any]) -> None:
    schema = _request_schema(document)
    jsonschema.validate({"rows": [ROW]}, schema)
    jsonschema.validate({"rows": [{"age": None, "income": 3000, "city": None}]}, schema)
    jsonschema.validate({"columns": ["age", "income", "city"], "data": [[1, 2.0, "x"]]}, schema)


@pytest.mark.parametrize(
    "body",
    [
        {"rows": [{"age": 41, "income": 3100.5}]},
        {"rows": [{**ROW, "colour": "red"}]},
        {"rows": [{**ROW, "age": "forty"}]},
        {"rows": [{**ROW, "city": 3}]},
    ],
)
def test_the_request_schema_refuses_what_the_server_refuses(
    document: dict[str, Any], body: dict[str, Any]
) -> None:
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(body, _request_schema(document))


def test_answers_and_errors_are_described(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    responses = document["paths"]["/v1/models/credit/predict"]["post"]["responses"]
    answer = responses["200"]["content"]["application/json"]["schema"]
    assert answer["properties"]["predictions"]["items"] == {"enum": ["bad", "good"]}
    assert "probabilities" in answer["properties"]
    assert {"401", "403", "413", "422", "429"} <= set(responses)
    assert "/healthz" in document["paths"]
    assert document["security"] == []  # served without keys here


def test_no_docs_hides_the_document(serve: Any, served_workspace: Workspace) -> None:
    with serve(served_workspace, ["credit"], ServeOptions(auth=False, docs=False)) as (client, _):
        assert client.get("/openapi.json").status_code == 404
        assert client.get("/docs").status_code == 404
