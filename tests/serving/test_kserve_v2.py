"""The KServe V2 / Open Inference Protocol as clients see it: probes, metadata, JSON and binary
tensors, V2-shaped errors, and tritonclient's own HTTP client against a real server."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import numpy as np
import orjson
import pytest

from fermion.serving.options import ServeOptions
from fermion.workspace import Workspace

INFER = "/v2/models/credit/infer"
ROWS = [
    {"age": 41, "income": 3100.5, "city": "lyon"},
    {"age": 19, "income": 900.0, "city": "paris"},
    {"age": 66, "income": 4200.0, "city": "nice"},
]


def tensors(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows as V2 JSON input tensors, one per column, flat data."""
    types = {"age": "INT64", "income": "FP64", "city": "BYTES"}
    return [
        {"name": name, "shape": [len(rows)], "datatype": kind, "data": [r[name] for r in rows]}
        for name, kind in types.items()
    ]


@pytest.fixture(scope="module")
def client(serve: Any, served_workspace: Workspace) -> Iterator[Any]:
    from fermion.training.trainer import train

    train(served_workspace, "credit", "income", "linear", name="income")  # a regression
    with serve(served_workspace, ["credit@production", "income"]) as (client, _):
        yield client


@pytest.fixture(scope="module")
def local(served_workspace: Workspace) -> Any:
    return served_workspace.models.load("credit@production")


def test_probes_answer_without_revealing_anything(client: Any) -> None:
    live = client.get("/v2/health/live")
    ready = client.get("/v2/health/ready")
    assert (live.status_code, live.json()) == (200, {"live": True})
    assert (ready.status_code, ready.json()) == (200, {"ready": True})


def test_server_metadata_names_fermion_and_the_binary_extension(client: Any) -> None:
    from fermion import __version__

    meta = client.get("/v2").json()
    assert meta == {"name": "fermion", "version": __version__, "extensions": ["binary_tensor_data"]}


def test_model_metadata_has_one_tensor_per_column_and_the_outputs(client: Any) -> None:
    meta = client.get("/v2/models/credit").json()
    assert meta["name"] == "credit"
    assert meta["versions"] == ["1"]
    assert meta["platform"] == "fermion-sklearn"
    assert meta["inputs"] == [
        {"name": "age", "datatype": "INT64", "shape": [-1]},
        {"name": "income", "datatype": "FP64", "shape": [-1]},
        {"name": "city", "datatype": "BYTES", "shape": [-1]},
    ]
    assert meta["outputs"] == [
        {"name": "predictions", "datatype": "BYTES", "shape": [-1]},
        {"name": "probabilities", "datatype": "FP64", "shape": [-1, 2]},
    ]
    assert client.get("/v2/models/credit/versions/1").json() == meta
    regression = client.get("/v2/models/income").json()
    assert regression["outputs"] == [{"name": "predictions", "datatype": "FP64", "shape": [-1]}]


def test_model_readiness_and_versions_not_serving(client: Any) -> None:
    assert client.get("/v2/models/credit/ready").json() == {"name": "credit", "ready": True}
    assert client.get("/v2/models/credit/versions/1/ready").status_code == 200
    for path in ["/v2/models/credit/versions/7", "/v2/models/credit/versions/7/ready"]:
        answer = client.get(path)
        assert answer.status_code == 404
        assert answer.json() == {"error": "model 'credit' serves version 1 here, not '7'"}
    unknown = client.get("/v2/models/churn/ready")
    assert unknown.status_code == 404 and "not served here" in unknown.json()["error"]
    answer = client.post("/v2/models/credit/versions/7/infer", json={"inputs": tensors(ROWS)})
    assert answer.status_code == 404


def test_infer_answers_like_the_model(client: Any, local: Any) -> None:
    answer = client.post(INFER, json={"id": "req-1", "inputs": tensors(ROWS)})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["model_name"], body["model_version"], body["id"]) == ("credit", "1", "req-1")
    predictions, probabilities = body["outputs"]
    assert predictions == {
        "name": "predictions",
        "datatype": "BYTES",
        "shape": [3],
        "data": local.predict(ROWS).tolist(),
    }
    assert (probabilities["datatype"], probabilities["shape"]) == ("FP64", [3, 2])
    assert probabilities["data"] == pytest.approx(local.predict_proba(ROWS).ravel().tolist())


def test_nested_data_and_n_by_1_shapes_answer_like_flat_data(client: Any) -> None:
    flat = client.post(INFER, json={"inputs": tensors(ROWS)}).json()
    nested = tensors(ROWS)
    for tensor in nested:
        tensor["shape"] = [3, 1]
        tensor["data"] = [[value] for value in tensor["data"]]
    answer = client.post(INFER, json={"inputs": nested})
    assert answer.status_code == 200, answer.text
    assert answer.json() == flat
    assert "id" not in flat


def test_only_the_requested_outputs_come_back(client: Any, local: Any) -> None:
    body = {"inputs": tensors(ROWS), "outputs": [{"name": "probabilities"}]}
    outputs = client.post(INFER, json=body).json()["outputs"]
    assert [o["name"] for o in outputs] == ["probabilities"]
    unknown = client.post(INFER, json={**body, "outputs": [{"name": "scores"}]})
    assert unknown.status_code == 400
    assert unknown.json() == {
        "error": "unknown output 'scores'; the model gives: predictions, probabilities"
    }


def test_a_regression_gives_fp64_predictions(client: Any, served_workspace: Workspace) -> None:
    rows = [{"age": r["age"], "city": r["city"], "status": "good"} for r in ROWS]
    types = {"age": "INT64", "city": "BYTES", "status": "BYTES"}
    inputs = [
        {"name": n, "shape": [3], "datatype": t, "data": [r[n] for r in rows]}
        for n, t in types.items()
    ]
    answer = client.post("/v2/models/income/infer", json={"inputs": inputs})
    assert answer.status_code == 200, answer.text
    (output,) = answer.json()["outputs"]
    assert (output["datatype"], output["shape"]) == ("FP64", [3])
    expected = served_workspace.models.load("income").predict(rows)
    assert output["data"] == pytest.approx(expected.tolist())


def _replace(name: str, **changes: Any) -> list[dict[str, Any]]:
    return [{**t, **changes} if t["name"] == name else t for t in tensors(ROWS)]


@pytest.mark.parametrize(
    ("inputs", "words"),
    [
        ([t for t in tensors(ROWS) if t["name"] != "city"], "missing input tensor 'city'"),
        ([*tensors(ROWS), {**tensors(ROWS)[0], "name": "colour"}], "unknown input tensor 'colour'"),
        (_replace("age", datatype="FP64"), "'age': datatype FP64 does not fit its integer"),
        (_replace("city", datatype="INT64"), "'city': element 0 is not an integer"),
        (_replace("age", datatype="BF16"), "'age': datatype 'BF16' is not supported"),
        (_replace("age", shape=[4]), "'age': shape [4] holds 4 values but data has 3"),
        (_replace("age", shape=[3, 2]), "'age': shape must be [N] or [N, 1]"),
        (_replace("income", data=[1.0, "x", 2.0]), "'income': element 1 is not a number"),
        (_replace("age", data=[[1], [2], [3]]), "'age': nested data does not match shape [3]"),
        (_replace("age", data=None), "'age' needs 'data' (a list) or binary_data_size"),
        (
            _replace("city", shape=[2], data=["lyon", "nice"]),
            "different lengths: 'age' has 3 rows, 'city' has 2",
        ),
        ([*tensors(ROWS), tensors(ROWS)[0]], "input tensor 'age' is given twice"),
    ],
)
def test_inputs_that_do_not_fit_are_400_naming_the_tensor(
    client: Any, inputs: list[dict[str, Any]], words: str
) -> None:
    answer = client.post(INFER, json={"inputs": inputs})
    assert answer.status_code == 400
    assert list(answer.json()) == ["error"]
    assert words in answer.json()["error"]


@pytest.mark.parametrize(
    ("content", "status", "words"),
    [
        (b"{not json", 400, "malformed JSON"),
        (b"", 400, "the body is empty"),
        (b"[1]", 400, "must be a JSON object"),
        (b'{"inputs": []}', 400, "'inputs' must be a list of tensors"),
    ],
)
def test_malformed_bodies_are_v2_errors(
    client: Any, content: bytes, status: int, words: str
) -> None:
    answer = client.post(INFER, content=content, headers={"content-type": "application/json"})
    assert answer.status_code == status
    assert words in answer.json()["error"]


def binary_body(inputs: Any, outputs: Any = None) -> tuple[bytes, dict[str, str]]:
    from tritonclient.http import InferenceServerClient

    body, json_size = InferenceServerClient.generate_request_body(inputs, outputs=outputs)
    return body, {"Inference-Header-Content-Length": str(json_size)}


def numpy_inputs(binary: bool) -> list[Any]:
    from tritonclient.http import InferInput

    columns = {
        "age": np.array([r["age"] for r in ROWS], dtype=np.int64),
        "income": np.array([r["income"] for r in ROWS], dtype=np.float64),
        "city": np.array([r["city"].encode() for r in ROWS], dtype=np.object_),
    }
    types = {"age": "INT64", "income": "FP64", "city": "BYTES"}
    return [
        InferInput(name, [3], types[name]).set_data_from_numpy(array, binary_data=binary)
        for name, array in columns.items()
    ]


def test_binary_tensors_in_and_out_answer_like_json(client: Any, local: Any) -> None:
    from tritonclient.http import InferenceServerClient

    body, headers = binary_body(numpy_inputs(binary=True))  # no outputs named: all in binary
    answer = client.post(INFER, content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/octet-stream"
    length = int(answer.headers["inference-header-content-length"])
    result = InferenceServerClient.parse_response_body(answer.content, header_length=length)
    labels = [label.decode() for label in result.as_numpy("predictions")]
    assert labels == local.predict(ROWS).tolist()
    np.testing.assert_allclose(result.as_numpy("probabilities"), local.predict_proba(ROWS))


def test_binary_inputs_with_json_outputs_and_other_mixes(client: Any) -> None:
    from tritonclient.http import InferRequestedOutput

    json_answer = client.post(INFER, json={"inputs": tensors(ROWS)}).json()
    outputs = [InferRequestedOutput(n, binary_data=False) for n in ["predictions", "probabilities"]]
    body, headers = binary_body(numpy_inputs(binary=True), outputs)
    answer = client.post(INFER, content=body, headers=headers)
    assert answer.headers["content-type"] == "application/json"
    assert answer.json() == json_answer
    mixed = [*numpy_inputs(binary=False)[:2], numpy_inputs(binary=True)[2]]
    body, headers = binary_body(mixed, [InferRequestedOutput("predictions", binary_data=False)])
    answer = client.post(INFER, content=body, headers=headers)
    assert answer.json()["outputs"] == json_answer["outputs"][:1]


def _raw_request(header: dict[str, Any], data: bytes) -> tuple[bytes, dict[str, str]]:
    head = orjson.dumps(header)
    return head + data, {"Inference-Header-Content-Length": str(len(head))}


def _city_bytes(*texts: bytes) -> bytes:
    return b"".join(struct.pack("<I", len(t)) + t for t in texts)


@pytest.mark.parametrize(
    ("city", "extra", "header_length", "words"),
    [
        (_city_bytes(b"lyon", b"nice"), b"", None, "'city': shape holds 3 values"),
        (_city_bytes(b"lyon", b"nice", b"\xff"), b"", None, "'city': BYTES element 2 is not"),
        (_city_bytes(b"lyon", b"nice") + b"\x09\x00", b"", None, "inside a length prefix"),
        (_city_bytes(b"lyon", b"nice", b"paris")[:-1], b"", None, "element 2 is cut short"),
        (_city_bytes(b"lyon", b"nice", b"nice"), b"xx", None, "bytes of tensor data"),
        (_city_bytes(b"lyon", b"nice", b"nice"), b"", "9999", "Inference-Header-Content-Length"),
    ],
)
def test_malformed_binary_tensors_are_400(
    client: Any, city: bytes, extra: bytes, header_length: str | None, words: str
) -> None:
    inputs = [t for t in tensors(ROWS) if t["name"] != "city"]
    spec = {"name": "city", "shape": [3], "datatype": "BYTES"}
    inputs.append({**spec, "parameters": {"binary_data_size": len(city)}})
    body, headers = _raw_request({"inputs": inputs}, city + extra)
    if header_length is not None:
        headers["Inference-Header-Content-Length"] = header_length
    answer = client.post(INFER, content=body, headers=headers)
    assert answer.status_code == 400
    assert words in answer.json()["error"]


def test_fixed_size_binary_tensors_are_checked(client: Any) -> None:
    inputs = [t for t in tensors(ROWS) if t["name"] != "age"]
    ages = np.array([41, 19, 66], dtype="<i8").tobytes()
    spec = {"name": "age", "shape": [3], "datatype": "INT64"}
    short = [*inputs, {**spec, "parameters": {"binary_data_size": 16}}]
    answer = client.post(
        INFER,
        content=_raw_request({"inputs": short}, ages[:16])[0],
        headers={"Inference-Header-Content-Length": str(len(orjson.dumps({"inputs": short})))},
    )
    assert answer.status_code == 400
    assert "'age': 3 INT64 values take 24 bytes" in answer.json()["error"]
    no_header = [*inputs, {**spec, "parameters": {"binary_data_size": 24}}]
    answer = client.post(INFER, content=orjson.dumps({"inputs": no_header}) + ages)
    assert answer.status_code == 400
    no_header_json = client.post(INFER, json={"inputs": no_header})
    assert "no Inference-Header-Content-Length" in no_header_json.json()["error"]


def test_nan_in_binary_floats_is_imputed_like_null(client: Any) -> None:
    from tritonclient.http import InferenceServerClient

    inputs = numpy_inputs(binary=True)
    inputs[1].set_data_from_numpy(np.array([np.nan, 900.0, np.nan]), binary_data=True)
    body, headers = binary_body(inputs)
    answer = client.post(INFER, content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    length = int(answer.headers["inference-header-content-length"])
    result = InferenceServerClient.parse_response_body(answer.content, header_length=length)
    assert np.isfinite(result.as_numpy("probabilities")).all()
    with_nulls = tensors(ROWS)
    with_nulls[1]["data"] = [None, 900.0, None]
    assert client.post(INFER, json={"inputs": with_nulls}).status_code == 200


def test_requests_count_as_kserve_v2_and_limits_keep_their_status(
    serve: Any, served_workspace: Workspace
) -> None:
    options = ServeOptions(auth=False, max_body_bytes=300)
    with serve(served_workspace, ["credit@production"], options) as (client, log):
        assert client.post(INFER, json={"inputs": tensors(ROWS[:1])}).status_code == 200
        big = client.post(INFER, json={"inputs": tensors(ROWS * 10)})
        assert big.status_code == 413
        assert big.json() == {"error": "the body is over the 300-byte limit"}
        zipped = client.post(INFER, content=b"x", headers={"content-encoding": "gzip"})
        assert zipped.status_code == 415 and "gzip" in zipped.json()["error"]
        metrics = client.get("/metrics").text
    line = 'fermion_requests_total{model="credit",protocol="kserve_v2",status="200",version="1"}'
    assert line in metrics
    logged = [orjson.loads(line) for line in log.getvalue().splitlines()]
    assert [(e["status"], e["rows"]) for e in logged if e["path"] == INFER][:2] == [
        (200, 1),
        (413, 0),
    ]


def test_a_model_still_loading_is_not_ready(
    serve: Any, served_workspace: Workspace, held_loading: Any
) -> None:
    release = held_loading
    with serve(served_workspace, ["credit"], wait_ready=False) as (client, _):
        assert client.get("/v2/health/live").status_code == 200
        ready = client.get("/v2/health/ready")
        assert (ready.status_code, ready.json()) == (503, {"ready": False})
        model = client.get("/v2/models/credit/ready")
        assert (model.status_code, model.json()) == (503, {"name": "credit", "ready": False})
        answer = client.post(INFER, json={"inputs": tensors(ROWS)})
        assert answer.status_code == 503
        assert answer.json() == {"error": "model 'credit' is loading"}
        assert answer.headers["retry-after"] == "1"
        release.set()


def test_probes_need_no_key_and_everything_else_the_models_key(
    serve: Any, served_workspace: Workspace
) -> None:
    from fermion.serving.auth import KeyGuard

    keys = served_workspace.keys
    _, key = keys.create("v2-client", ["predict:credit"])
    _, other = keys.create("v2-other", ["predict:churn"])
    with serve(served_workspace, ["credit@production"], guard=KeyGuard(keys)) as (client, _):
        assert client.get("/v2/health/live").status_code == 200
        assert client.get("/v2/health/ready").status_code == 200
        body = {"inputs": tensors(ROWS)}
        refused = client.post(INFER, json=body)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == "Bearer"
        assert "missing API key" in refused.json()["error"]
        assert client.get("/v2/models/credit").status_code == 401
        bearer = {"Authorization": f"Bearer {key}"}
        assert client.post(INFER, json=body, headers=bearer).status_code == 200
        assert client.get("/v2/models/credit/ready", headers=bearer).status_code == 200
        wrong = client.post(INFER, json=body, headers={"Authorization": f"Bearer {other}"})
        assert wrong.status_code == 403 and "does not grant" in wrong.json()["error"]


@pytest.mark.slow
def test_tritonclient_against_a_real_server(
    start_server: Any, served_workspace: Workspace, local: Any
) -> None:
    import tritonclient.http as triton

    process, url = start_server(served_workspace.root, "credit@production", "--no-auth")
    try:
        client = triton.InferenceServerClient(url.removeprefix("http://"))
        assert client.is_server_live()
        assert client.is_server_ready()
        assert client.is_model_ready("credit")
        assert client.is_model_ready("credit", "1")
        assert not client.is_model_ready("credit", "2")
        meta = client.get_model_metadata("credit")
        assert [i["datatype"] for i in meta["inputs"]] == ["INT64", "FP64", "BYTES"]
        assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]
        expected_labels = local.predict(ROWS).tolist()
        expected_proba = local.predict_proba(ROWS)
        for binary_in in (True, False):
            for binary_out in (True, False):
                outputs = [
                    triton.InferRequestedOutput("predictions", binary_data=binary_out),
                    triton.InferRequestedOutput("probabilities", binary_data=binary_out),
                ]
                result = client.infer("credit", numpy_inputs(binary_in), outputs=outputs)
                labels = result.as_numpy("predictions")
                assert [v.decode() if isinstance(v, bytes) else v for v in labels] == (
                    expected_labels
                )
                np.testing.assert_allclose(result.as_numpy("probabilities"), expected_proba)
        default = client.infer("credit", numpy_inputs(True), request_id="r1", model_version="1")
        assert default.get_response()["id"] == "r1"
        np.testing.assert_allclose(default.as_numpy("probabilities"), expected_proba)
        with pytest.raises(triton.InferenceServerException, match="missing input tensor 'city'"):
            client.infer("credit", numpy_inputs(True)[:2])
        client.close()
    finally:
        process.terminate()
        process.communicate(timeout=30)
