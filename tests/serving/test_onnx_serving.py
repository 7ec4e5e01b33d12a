"""ONNX versions served unchanged for clients: a classifier's ONNX version answers the REST and
KServe V2 predict routes as the version it was made from does (and as ONNX Runtime itself
computes), an alias moved onto it swaps in, and an ONNX embedding model answers OpenAI's
`/v1/embeddings`."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper, save_model

from fermion.entities import ColumnSpec, LogicalType, Signature
from fermion.serving.options import ServeOptions
from fermion.workspace import Workspace

ROWS: list[dict[str, Any]] = [
    {"age": 41, "income": 3100.5, "city": "lyon"},
    {"age": 19, "income": 900.0, "city": "paris"},
    {"age": 66, "income": None, "city": "nice"},
]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cat", "sat", "on", "mat", "a", "dog"]
TEXTS = ["the cat sat on the mat", "a dog", "the mat"]
DIMENSION = 4


def _save(graph: Any, path: Path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, str(path))


def _logistic_graph(coef: npt.NDArray[Any], intercept: npt.NDArray[Any], path: Path) -> None:
    """A binary logistic model as softmax(features @ (0, w).T + (0, b)) = (1 - p, p)."""
    weights = np.vstack([np.zeros_like(coef), coef]).astype(np.float32)
    bias = np.concatenate([[0.0], intercept]).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["features", "W", "b"], ["scores"], transB=1),
            helper.make_node("Softmax", ["scores"], ["probabilities"], axis=1),
        ],
        "logistic",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", coef.shape[1]])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 2])],
        [numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "b")],
    )
    _save(graph, path)


def _embedding_graph(path: Path) -> None:
    """Masked mean of the token vectors, L2-normalized, as `embeddings`."""
    table = np.random.default_rng(0).normal(size=(len(VOCAB), DIMENSION)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["table", "input_ids"], ["tokens"]),
            helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["mask", "last"], ["mask3"]),
            helper.make_node("Mul", ["tokens", "mask3"], ["masked"]),
            helper.make_node("ReduceSum", ["masked", "seq"], ["summed"], keepdims=0),
            helper.make_node("ReduceSum", ["mask3", "seq"], ["counts"], keepdims=0),
            helper.make_node("Div", ["summed", "counts"], ["mean"]),
            helper.make_node("LpNormalization", ["mean"], ["embeddings"], axis=1, p=2),
        ],
        "embedding",
        [
            helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "seq"])
            for name in ("input_ids", "attention_mask")
        ],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", DIMENSION])],
        [
            numpy_helper.from_array(table, "table"),
            numpy_helper.from_array(np.array([2], dtype=np.int64), "last"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "seq"),
        ],
    )
    _save(graph, path)


def _tokenizer(path: Path) -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer.save(str(path))


@pytest.fixture(scope="module")
def workspace(served_workspace: Workspace, tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """The serving workspace with `credit:2`, version 1 as an ONNX graph, and `tiny`, an ONNX
    embedding model with its tokenizer."""
    ws = served_workspace
    root = tmp_path_factory.mktemp("onnx-bundles")
    original = ws.models.load("credit:1")
    _logistic_graph(
        original.estimator.coef_, original.estimator.intercept_, root / "credit/model/model.onnx"
    )
    manifest = ws.models.manifest("credit:1")
    source = manifest["flavor_meta"]
    manifest["flavor"] = "onnx"
    manifest["flavor_meta"] = {
        "flavor": "onnx",
        "kind": "matrix",
        "input_names": ["features"],
        "output_name": "probabilities",
        "opset": 17,
        "source_flavor": "sklearn",
        "technique": "export",
        "onnxruntime_version": ort.__version__,
        **{key: source[key] for key in ("task", "n_classes", "n_features", "best_step")},
    }
    assert ws.models.register("credit", root / "credit", manifest, origin="optimized").version == 2

    _embedding_graph(root / "tiny/model/model.onnx")
    _tokenizer(root / "tiny/model/tokenizer.json")
    signature = Signature((ColumnSpec("input", LogicalType.STRING, False),), "embedding")
    tiny: dict[str, Any] = {
        "name": "tiny",
        "flavor": "onnx",
        "flavor_meta": {
            "flavor": "onnx",
            "kind": "embedding",
            "input_names": ["input_ids", "attention_mask"],
            "output_name": "embeddings",
            "opset": 17,
            "source_flavor": "sentence_transformers",
            "technique": "export",
            "onnxruntime_version": ort.__version__,
            "dimension": DIMENSION,
            "max_seq_length": 16,
        },
        "family": "onnx:tiny",
        "signature": signature.to_dict(),
        "classes": [],
        "preprocessor": None,
        "inputs": "frame",
        "params": {},
        "metrics": {},
    }
    ws.models.register("tiny", root / "tiny", tiny, origin="optimized")
    return ws


@pytest.fixture(scope="module")
def client(serve: Any, workspace: Workspace) -> Iterator[Any]:
    with serve(workspace, ["credit=credit:1", "fast=credit:2", "tiny"]) as (client, _):
        yield client


def _ort_probabilities(workspace: Workspace, rows: list[dict[str, Any]]) -> npt.NDArray[Any]:
    """ONNX Runtime's own answer for the rows, on the registered file."""
    model = workspace.models.load("credit:2")
    assert model.folder is not None
    session = ort.InferenceSession(str(model.folder / "model" / "model.onnx"))
    out: npt.NDArray[Any] = session.run(None, {"features": model.prepare(rows)})[0]
    return out.astype(np.float64)


def test_the_onnx_version_answers_predict_as_the_original(
    client: Any, workspace: Workspace
) -> None:
    original = client.post("/v1/models/credit/predict", json={"rows": ROWS})
    fast = client.post("/v1/models/fast/predict", json={"rows": ROWS})
    assert original.status_code == fast.status_code == 200, fast.text
    want, got = original.json(), fast.json()
    assert set(got) == set(want) == {"model", "version", "predictions", "classes", "probabilities"}
    assert (got["model"], got["version"], want["version"]) == ("fast", 2, 1)
    assert got["predictions"] == want["predictions"]
    assert got["classes"] == want["classes"] == ["bad", "good"]
    assert np.asarray(got["probabilities"]).shape == (3, 2)
    np.testing.assert_allclose(got["probabilities"], want["probabilities"], atol=1e-5)
    np.testing.assert_array_equal(got["probabilities"], _ort_probabilities(workspace, ROWS))
    meta = client.get("/v1/models/fast").json()
    assert (meta["flavor"], meta["version"], meta["task"]) == ("onnx", 2, "binary")


def test_the_served_onnx_model_runs_one_thread_per_call_side_by_side(
    client: Any, workspace: Workspace
) -> None:
    served = client.app.state.fermion.models.get("fast")
    assert served.model.estimator.get_session_options().intra_op_num_threads == 1
    rows = ROWS * 20
    want = _ort_probabilities(workspace, rows)

    def call(_: int) -> Any:
        return client.post("/v1/models/fast/predict", json={"rows": rows})

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(call, range(32)))
    assert {answer.status_code for answer in answers} == {200}
    for answer in answers:
        np.testing.assert_array_equal(answer.json()["probabilities"], want)


def test_kserve_v2_answers_with_the_onnx_version(client: Any) -> None:
    types = {"age": "INT64", "income": "FP64", "city": "BYTES"}
    rows = [row for row in ROWS if row["income"] is not None]
    inputs = [
        {"name": name, "shape": [len(rows)], "datatype": kind, "data": [r[name] for r in rows]}
        for name, kind in types.items()
    ]
    answers = [
        client.post(f"/v2/models/{name}/infer", json={"inputs": inputs})
        for name in ("credit", "fast")
    ]
    assert [a.status_code for a in answers] == [200, 200], answers[1].text
    original, fast = ({o["name"]: o for o in a.json()["outputs"]} for a in answers)
    assert fast["predictions"]["data"] == original["predictions"]["data"]
    assert fast["probabilities"]["shape"] == original["probabilities"]["shape"] == [2, 2]
    np.testing.assert_allclose(
        fast["probabilities"]["data"], original["probabilities"]["data"], atol=1e-5
    )
    meta = client.get("/v2/models/fast").json()
    assert (meta["platform"], meta["versions"]) == ("fermion-onnx", ["2"])


def test_moving_the_alias_onto_the_onnx_version_swaps_it_in(
    serve: Any, workspace: Workspace
) -> None:
    options = ServeOptions(auth=False, swap_poll_s=0.05)
    with serve(workspace, ["credit@production"], options) as (client, _):
        before = client.post("/v1/models/credit/predict", json={"rows": ROWS}).json()
        assert before["version"] == 1
        workspace.models.set_alias("credit", "production", 2)
        try:
            deadline = time.monotonic() + 20
            answer = before
            while answer["version"] != 2:
                assert time.monotonic() < deadline, "the ONNX version never answered"
                response = client.post("/v1/models/credit/predict", json={"rows": ROWS})
                assert response.status_code == 200, response.text
                answer = response.json()
                time.sleep(0.02)
        finally:
            workspace.models.set_alias("credit", "production", 1)
    assert answer["predictions"] == before["predictions"]
    np.testing.assert_allclose(answer["probabilities"], before["probabilities"], atol=1e-5)


def _tiny_reference(workspace: Workspace, texts: list[str]) -> npt.NDArray[np.float32]:
    """ONNX Runtime's own vectors on the registered files: each text tokenized alone, so
    with no padding."""
    from tokenizers import Tokenizer

    folder = workspace.models.load("tiny").folder
    assert folder is not None
    tokenizer = Tokenizer.from_file(str(folder / "model" / "tokenizer.json"))
    session = ort.InferenceSession(str(folder / "model" / "model.onnx"))
    vectors = []
    for text in texts:
        ids = np.asarray([tokenizer.encode(text).ids], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        vectors.append(session.run(None, feeds)[0][0])
    return np.asarray(vectors, dtype=np.float32)


def test_an_onnx_embedding_model_answers_openai_embeddings(
    client: Any, workspace: Workspace
) -> None:
    want = _tiny_reference(workspace, TEXTS)
    answer = client.post("/v1/embeddings", json={"model": "tiny", "input": TEXTS})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["object"], body["model"]) == ("list", "tiny")
    assert [item["index"] for item in body["data"]] == [0, 1, 2]
    vectors = np.asarray([item["embedding"] for item in body["data"]], dtype=np.float32)
    assert vectors.shape == (3, DIMENSION)
    np.testing.assert_allclose(vectors, want, atol=1e-6)
    assert body["usage"] == {"prompt_tokens": 8 + 4 + 4, "total_tokens": 16}  # [CLS] ... [SEP]

    encoded = client.post(
        "/v1/embeddings",
        json={"model": "tiny", "input": "a dog", "encoding_format": "base64", "dimensions": 4},
    )
    assert encoded.status_code == 200, encoded.text
    raw = base64.b64decode(encoded.json()["data"][0]["embedding"])
    np.testing.assert_allclose(np.frombuffer(raw, dtype="<f4"), want[1], atol=1e-6)
    shorter = client.post("/v1/embeddings", json={"model": "tiny", "input": "a", "dimensions": 2})
    assert shorter.status_code == 400
    assert shorter.json()["error"]["param"] == "dimensions"


def test_an_onnx_embedding_model_answers_predict_with_vectors(
    client: Any, workspace: Workspace
) -> None:
    answer = client.post("/v1/models/tiny/predict", json={"rows": [{"input": t} for t in TEXTS]})
    assert answer.status_code == 200, answer.text
    np.testing.assert_allclose(
        answer.json()["predictions"], _tiny_reference(workspace, TEXTS), atol=1e-6
    )
