"""Fermion's REST protocol as a client sees it: answers, input checks, errors as JSON."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from fermion.serving.options import ServeOptions
from fermion.workspace import Workspace

ROW = {"age": 41, "income": 3100.5, "city": "lyon"}  # a valid row of the `credit` model
PREDICT = "/v1/models/credit/predict"


@pytest.fixture(scope="module")
def client(serve: Any, served_workspace: Workspace) -> Any:
    with serve(served_workspace, ["credit@production"]) as (client, _):
        yield client


def test_rows_get_labels_probabilities_and_the_version(
    client: Any, served_workspace: Workspace
) -> None:
    rows = [ROW, {**ROW, "income": 900.0, "age": 19}]
    answer = client.post(PREDICT, json={"rows": rows})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == "credit"
    assert body["version"] == 1
    assert body["classes"] == ["bad", "good"]
    local = served_workspace.models.load("credit@production")
    assert body["predictions"] == local.predict(rows).tolist()
    expected = local.predict_proba(rows)
    for got, want in zip(body["probabilities"], expected, strict=True):
        assert got == pytest.approx(list(want))


def test_the_columns_form_answers_like_the_rows_form(client: Any) -> None:
    rows = client.post(PREDICT, json={"rows": [ROW]}).json()
    names = ["city", "income", "age"]  # any order
    table = client.post(PREDICT, json={"columns": names, "data": [[ROW[n] for n in names]]})
    assert table.status_code == 200, table.text
    assert table.json() == rows


def test_nulls_are_imputed_and_integers_fit_float_columns(client: Any) -> None:
    answer = client.post(PREDICT, json={"rows": [{"age": None, "income": 3000, "city": None}]})
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["predictions"]) == 1


@pytest.mark.parametrize(
    ("row", "field", "words"),
    [
        ({"age": 41, "income": 3100.5}, "rows[0].city", "missing input column 'city'"),
        ({**ROW, "colour": "red"}, "rows[0].colour", "unknown column 'colour'"),
        ({**ROW, "age": "forty"}, "rows[0].age", "must be an integer; got 'forty'"),
        ({**ROW, "age": 41.5}, "rows[0].age", "must be an integer; got 41.5"),
        ({**ROW, "income": True}, "rows[0].income", "must be a number; got True"),
        ({**ROW, "city": 3}, "rows[0].city", "must be a string; got 3"),
    ],
)
def test_bad_rows_are_422_naming_the_field(
    client: Any, row: dict[str, Any], field: str, words: str
) -> None:
    answer = client.post(PREDICT, json={"rows": [row]})
    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "invalid_input"
    assert error["field"] == field
    assert words in error["message"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"{not json", 400, "malformed_json"),
        (b"", 400, "bad_request"),
        (b"[1, 2]", 422, "invalid_input"),
        (b'{"rows": {"age": 1}}', 422, "invalid_input"),
        (b'{"columns": ["age"], "data": [[1]]}', 422, "invalid_input"),
        (b'{"columns": ["age", "income", "city"], "data": [[1, 2]]}', 422, "invalid_input"),
        (b'{"something": 1}', 422, "invalid_input"),
    ],
)
def test_malformed_bodies_are_4xx_json_without_traceback(
    client: Any, body: bytes, status: int, code: str
) -> None:
    answer = client.post(PREDICT, content=body, headers={"content-type": "application/json"})
    assert answer.status_code == status
    error = answer.json()["error"]
    assert error["code"] == code
    assert "Traceback" not in answer.text


def test_unknown_models_paths_and_methods_are_json_errors(client: Any) -> None:
    unknown = client.post("/v1/models/churn/predict", json={"rows": [ROW]})
    assert unknown.status_code == 404
    assert "not served here" in unknown.json()["error"]["message"]
    assert client.get("/nothing").status_code == 404
    assert client.get("/nothing").json()["error"]["code"] == "not_found"
    assert client.get(PREDICT).status_code == 405


def test_model_metadata_gives_the_signature(client: Any) -> None:
    meta = client.get("/v1/models/credit").json()
    assert meta["version"] == 1
    assert meta["task"] == "binary"
    assert [c["name"] for c in meta["inputs"]] == ["age", "income", "city"]
    assert meta["classes"] == ["bad", "good"]


def test_probes_and_metrics_need_no_key(client: Any) -> None:
    assert client.get("/healthz").json() == {"status": "live"}
    assert client.get("/readyz").json() == {"status": "ready"}
    client.post(PREDICT, json={"rows": [ROW]})
    metrics = client.get("/metrics").text
    assert (
        'fermion_requests_total{model="credit",protocol="rest",status="200",version="1"}' in metrics
    )
    assert "fermion_request_seconds_bucket" in metrics
    assert 'fermion_batch_rows_count{model="credit"}' in metrics
    assert "fermion_model_load_seconds" in metrics
    assert "fermion_in_flight_requests" in metrics


def test_a_body_over_the_limit_is_413_unread(serve: Any, served_workspace: Workspace) -> None:
    options = ServeOptions(auth=False, max_body_bytes=200)
    with serve(served_workspace, ["credit"], options) as (client, _):
        big = json.dumps({"rows": [ROW] * 20})
        answer = client.post(PREDICT, content=big, headers={"content-type": "application/json"})
        assert answer.status_code == 413
        assert answer.json()["error"]["code"] == "body_too_large"
        assert client.post(PREDICT, json={"rows": [ROW]}).status_code == 200


def test_the_access_log_is_one_json_line_per_request(
    serve: Any, served_workspace: Workspace
) -> None:
    with serve(served_workspace, ["credit"]) as (client, log):
        client.post(PREDICT, json={"rows": [ROW, ROW]})
        client.post(PREDICT, content=b"{")
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    predict = [line for line in lines if line["path"] == PREDICT]
    assert [(line["status"], line["rows"]) for line in predict] == [(200, 2), (400, 0)]
    assert predict[0]["model"] == "credit" and predict[0]["version"] == "1"
    assert predict[0]["ms"] > 0 and predict[0]["ts"].endswith("Z")


def test_a_model_still_loading_is_503_and_not_ready(
    serve: Any, served_workspace: Workspace, held_loading: Any
) -> None:
    release = held_loading
    with serve(served_workspace, ["credit"], wait_ready=False) as (client, _):
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 503
        answer = client.post(PREDICT, json={"rows": [ROW]})
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "model_not_ready"
        assert answer.headers["retry-after"] == "1"
        release.set()
        state = client.app.state.fermion
        for _ in range(500):
            if state.models.ready:
                break
            time.sleep(0.02)
        assert client.post(PREDICT, json={"rows": [ROW]}).status_code == 200


def test_a_model_slower_than_the_request_timeout_is_504(
    serve: Any, served_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from fermion.serving.served import ServedModel

    slow = threading.Event()
    real = ServedModel._call

    def call(self: ServedModel, columns: Any, rows: int) -> Any:
        if slow.is_set():
            time.sleep(0.5)
        return real(self, columns, rows)

    monkeypatch.setattr(ServedModel, "_call", call)
    options = ServeOptions(auth=False, request_timeout_s=0.1)
    with serve(served_workspace, ["credit"], options) as (client, log):
        slow.set()
        late = client.post(PREDICT, json={"rows": [ROW]})
        assert late.status_code == 504
        assert late.json()["error"]["code"] == "timeout"
        slow.clear()
        time.sleep(0.5)  # the late call finishes and frees its slot
        assert client.post(PREDICT, json={"rows": [ROW]}).status_code == 200
    statuses = [json.loads(line)["status"] for line in log.getvalue().splitlines()]
    assert 504 in statuses
