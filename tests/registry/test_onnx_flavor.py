"""The onnx flavor: a registered ONNX version loads with `ws.models.load` and answers as ONNX
Runtime itself does, and as the model it was made from; embedding graphs with their tokenizer."""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper, save_model

from fermion.entities import ColumnSpec, LogicalType, Signature
from fermion.errors import InvalidInputError, StorageError
from fermion.registry.flavors import FLAVORS, get_flavor
from fermion.registry.flavors.onnx_flavor import (
    OnnxFlavor,
    OnnxModel,
    machine_threads,
)
from fermion.registry.flavors.onnx_text import OnnxEncoder, length_batches
from fermion.training.trainer import train
from fermion.workspace import Workspace

ROWS = [
    {"age": 23, "income": 1800.0, "city": "paris"},
    {"age": 41, "income": 3100.5, "city": "lyon"},
    {"age": 66, "income": 4200.0, "city": "nice"},
    {"age": 35, "income": None, "city": "paris"},
]
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cat", "sat", "on", "mat", "a", "dog"]
DIMENSION = 4


def _save(graph: Any, path: Path) -> Path:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    save_model(model, str(path))
    return path


def linear_graph(coef: npt.NDArray[Any], intercept: npt.NDArray[Any], path: Path) -> Path:
    """softmax(features @ W.T + b) as `probabilities`; a binary logistic model's one row of
    log-odds weights becomes the rows (0, w), so that softmax gives (1 - p, p)."""
    if coef.shape[0] == 1:
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.concatenate([[0.0], intercept])
    k, n = coef.shape
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["features", "W", "b"], ["scores"], transB=1),
            helper.make_node("Softmax", ["scores"], ["probabilities"], axis=1),
        ],
        "linear",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", n])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", k])],
        [
            numpy_helper.from_array(coef.astype(np.float32), "W"),
            numpy_helper.from_array(intercept.astype(np.float32), "b"),
        ],
    )
    return _save(graph, path)


def regression_graph(weights: npt.NDArray[Any], path: Path, *, column: bool) -> Path:
    """`values` = features @ weights + 1, of shape (batch, 1) or (batch,)."""
    n = len(weights)
    nodes = [helper.make_node("Gemm", ["features", "W", "b"], ["column"])]
    shape: list[Any] = ["batch", 1]
    if not column:
        nodes.append(helper.make_node("Squeeze", ["column", "axes"], ["values"]))
        shape = ["batch"]
    else:
        nodes[0].output[0] = "values"
    graph = helper.make_graph(
        nodes,
        "regression",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", n])],
        [helper.make_tensor_value_info("values", TensorProto.FLOAT, shape)],
        [
            numpy_helper.from_array(weights.reshape(n, 1).astype(np.float32), "W"),
            numpy_helper.from_array(np.ones(1, dtype=np.float32), "b"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axes"),
        ],
    )
    return _save(graph, path)


def embedding_table() -> npt.NDArray[np.float32]:
    return np.random.default_rng(0).normal(size=(len(VOCAB), DIMENSION)).astype(np.float32)


def embedding_graph(path: Path, *, token_types: bool = False) -> Path:
    """Mean of the token vectors under the attention mask, then L2-normalized: `embeddings`."""
    inputs = ["input_ids", "attention_mask"] + (["token_type_ids"] if token_types else [])
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["tokens"]),
        helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask", "last"], ["mask3"]),
        helper.make_node("Mul", ["tokens", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "seq"], ["summed"], keepdims=0),
        helper.make_node("ReduceSum", ["mask3", "seq"], ["counts"], keepdims=0),
        helper.make_node("Max", ["counts", "tiny"], ["safe"]),
        helper.make_node("Div", ["summed", "safe"], ["mean"]),
        helper.make_node("LpNormalization", ["mean"], ["embeddings"], axis=1, p=2),
    ]
    if token_types:  # adds zero times the token types, so the input is used
        nodes += [
            helper.make_node("Cast", ["token_type_ids"], ["types"], to=TensorProto.FLOAT),
            helper.make_node("Unsqueeze", ["types", "last"], ["types3"]),
            helper.make_node("Mul", ["types3", "zero"], ["nothing"]),
            helper.make_node("Add", ["tokens_raw", "nothing"], ["tokens"]),
        ]
        nodes[0].output[0] = "tokens_raw"
    graph = helper.make_graph(
        nodes,
        "embedding",
        [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "seq"]) for n in inputs],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", DIMENSION])],
        [
            numpy_helper.from_array(embedding_table(), "table"),
            numpy_helper.from_array(np.array([2], dtype=np.int64), "last"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "seq"),
            numpy_helper.from_array(np.array(1e-9, dtype=np.float32), "tiny"),
            numpy_helper.from_array(np.array(0.0, dtype=np.float32), "zero"),
        ],
    )
    return _save(graph, path)


def tokenizer_file(path: Path) -> Path:
    """A word-level tokenizer that adds [CLS] and [SEP] and pads with [PAD] (id 0)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    tokenizer = Tokenizer(models.WordLevel({w: i for i, w in enumerate(VOCAB)}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
    tokenizer.save(str(path))
    return path


def expected_embeddings(texts: list[str], max_seq_length: int = 8) -> npt.NDArray[np.float32]:
    """The vectors computed by hand: mean of the words' rows with [CLS] and [SEP], normalized."""
    table = embedding_table()
    index = {w: i for i, w in enumerate(VOCAB)}
    vectors = []
    for text in texts:
        words = [index.get(w, 1) for w in text.lower().split()][: max_seq_length - 2]
        ids = [2, *words, 3]
        mean = table[ids].mean(axis=0)
        vectors.append(mean / np.linalg.norm(mean))
    return np.asarray(vectors, dtype=np.float32)


def embedding_meta(**extra: Any) -> dict[str, Any]:
    return {"kind": "embedding", "dimension": DIMENSION, "max_seq_length": 8, **extra}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, credit_csv: Any) -> Any:
    """A workspace with a logistic `credit` model (version 1) and the same model as an ONNX
    graph registered as version 2."""
    root = tmp_path_factory.mktemp("onnx")
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("FERMION_")]:
            patch.delenv(key)
        with Workspace.init(root) as ws:
            ws.datasets.add(credit_csv(root / "credit.csv", seed=1), name="credit")
            version = train(ws, "credit", "status", "logistic").model
            assert version is not None
            original = ws.models.load(version)
            estimator = original.estimator
            bundle = root / "bundle"
            linear_graph(estimator.coef_, estimator.intercept_, bundle / "model" / "model.onnx")
            manifest = ws.models.manifest(version)
            fields = {k: manifest["flavor_meta"][k] for k in ("task", "n_classes", "n_features")}
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
                "best_step": None,
                **fields,
            }
            onnx_version = ws.models.register("credit", bundle, manifest, origin="imported")
            yield ws, original, onnx_version


def test_the_flavor_is_registered_and_loads_untrusted() -> None:
    assert "onnx" in FLAVORS
    assert get_flavor("onnx").pickle_based is False


def test_a_registered_onnx_version_answers_as_the_original(trained: Any) -> None:
    ws, original, version = trained
    model = ws.models.load(version)  # an imported version: loaded untrusted
    assert model.flavor == "onnx"
    assert model.gives_probabilities
    np.testing.assert_array_equal(model.predict(ROWS), original.predict(ROWS))
    proba = model.predict_proba(ROWS)
    assert proba.dtype == np.float64
    assert proba.shape == (4, 2)
    np.testing.assert_allclose(proba, original.predict_proba(ROWS), atol=1e-5)
    session = ort.InferenceSession(str(model.folder / "model" / "model.onnx"))
    own = session.run(["probabilities"], {"features": model.prepare(ROWS)})[0]
    np.testing.assert_array_equal(proba, own.astype(np.float64))
    labels, with_proba = model.predict_with_proba(ROWS)
    np.testing.assert_array_equal(labels, original.predict(ROWS))
    np.testing.assert_array_equal(with_proba, proba)
    assert model.predict([]).shape == (0,)


def test_the_session_is_set_for_the_machine(trained: Any) -> None:
    ws, _, version = trained
    fitted = ws.models.load(version)._estimator
    assert isinstance(fitted, OnnxModel)
    assert fitted.session.threads == machine_threads()
    session = fitted.session.model
    assert ws.models.load(version).estimator.get_providers() == ["CPUExecutionProvider"]
    options = session.get_session_options()
    assert options.intra_op_num_threads == machine_threads()
    assert options.inter_op_num_threads == 1
    assert options.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert options.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert options.enable_cpu_mem_arena


def test_limit_threads_rebuilds_the_session_and_calls_run_side_by_side(trained: Any) -> None:
    ws, _, version = trained
    model = ws.models.load(version)
    expected = model.predict_proba(ROWS * 50)
    model.limit_threads(1)
    fitted = model._estimator
    assert fitted.session.model.get_session_options().intra_op_num_threads == 1
    results: list[npt.NDArray[Any]] = []

    def call() -> None:
        for _ in range(20):
            results.append(model.predict_proba(ROWS * 50))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 80
    for result in results:
        np.testing.assert_array_equal(result, expected)


def test_save_copies_the_graph_and_describes_it(trained: Any, tmp_path: Path) -> None:
    ws, _, version = trained
    model = ws.models.load(version)._estimator
    meta = {"kind": "matrix", "source_flavor": "sklearn", "technique": "export", **model.fields()}
    fresh = OnnxModel.from_file(model.path, meta)
    saved = OnnxFlavor().save(fresh, tmp_path / "model")
    assert (tmp_path / "model" / "model.onnx").read_bytes() == model.path.read_bytes()
    assert saved == {
        **meta,
        "flavor": "onnx",
        "input_names": ["features"],
        "output_name": "probabilities",
        "opset": 17,
        "onnxruntime_version": ort.__version__,
        "best_step": None,
    }
    loaded = OnnxFlavor().load(tmp_path / "model", saved, trusted=False)
    assert isinstance(loaded, OnnxModel)
    X = np.random.default_rng(0).normal(size=(5, model.n_features)).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


@pytest.mark.parametrize("column", [True, False])
def test_a_regression_graph_gives_one_value_per_row(tmp_path: Path, column: bool) -> None:
    weights = np.array([0.5, -2.0, 3.0])
    path = regression_graph(weights, tmp_path / "model.onnx", column=column)
    meta = {"kind": "matrix", "task": "regression", "n_classes": 0, "n_features": 3}
    model = OnnxModel.from_file(path, meta)
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    values = model.predict(X)
    assert values.dtype == np.float64
    np.testing.assert_allclose(values, X @ weights + 1, rtol=1e-6)
    assert model.predict(np.empty((0, 3))).shape == (0,)
    with pytest.raises(InvalidInputError, match="predict_proba needs a classification model"):
        model.predict_proba(X)


def test_a_missing_or_unreadable_graph_is_a_storage_error(tmp_path: Path) -> None:
    meta = {"kind": "matrix", "task": "binary", "n_classes": 2, "n_features": 3}
    with pytest.raises(StorageError, match=r"model\.onnx is missing"):
        OnnxFlavor().load(tmp_path, meta, trusted=False)
    (tmp_path / "model.onnx").write_bytes(b"not a graph")
    model = OnnxFlavor().load(tmp_path, meta, trusted=False)
    assert isinstance(model, OnnxModel)
    with pytest.raises(StorageError, match="cannot load the ONNX model"):
        model.predict(np.zeros((1, 3)))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"kind": "tree"}, "kind 'tree'"),
        ({"task": "ranking"}, "unknown task"),
        ({"n_features": "3"}, "integer 'n_classes' and 'n_features'"),
        ({"input_names": "features"}, "'input_names'"),
        ({"input_names": ["a", "b"]}, "takes one input"),
        ({"output_name": 3}, "'output_name'"),
    ],
)
def test_malformed_metadata_is_refused(
    trained: Any, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    ws, _, version = trained
    folder = ws.models.load(version).folder / "model"
    meta = {**ws.models.manifest(version)["flavor_meta"], **change}
    with pytest.raises(InvalidInputError, match=message):
        OnnxFlavor().load(folder, meta, trusted=False)


def test_a_graph_that_does_not_fit_its_metadata_is_refused(trained: Any) -> None:
    ws, _, version = trained
    folder = ws.models.load(version).folder / "model"
    meta = ws.models.manifest(version)["flavor_meta"]
    X = np.zeros((1, meta["n_features"]), dtype=np.float32)
    path = folder / "model.onnx"
    renamed = OnnxModel.from_file(path, {**meta, "input_names": ["matrix"]})
    with pytest.raises(InvalidInputError, match=r"takes the inputs \['features'\]"):
        renamed.predict(X)
    other = OnnxModel.from_file(path, {**meta, "output_name": "values"})
    with pytest.raises(InvalidInputError, match="has no output 'values'"):
        other.predict(X)
    wider = OnnxModel.from_file(path, {**meta, "n_classes": 3, "task": "multiclass"})
    with pytest.raises(InvalidInputError, match=r"shape \(1, 2\); expected \(1, 3\)"):
        wider.predict(X)


def test_the_flavor_saves_only_onnx_models(trained: Any, tmp_path: Path) -> None:
    _, original, _ = trained
    with pytest.raises(InvalidInputError, match="saves OnnxModel or OnnxEncoder"):
        OnnxFlavor().save(original._estimator, tmp_path)


@pytest.fixture
def embedding_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    embedding_graph(folder / "model.onnx")
    tokenizer_file(folder / "tokenizer.json")
    return folder


TEXTS = ["the cat sat on the mat", "a dog", "", "the cat sat on a mat on the mat dog"]


def test_an_encoder_gives_the_graphs_pooled_vectors(embedding_folder: Path) -> None:
    encoder = OnnxFlavor().load(embedding_folder, embedding_meta(), trusted=False)
    assert isinstance(encoder, OnnxEncoder)
    assert (encoder.dimension, encoder.max_seq_length, encoder.flavor) == (4, 8, "onnx")
    vectors = encoder.encode(TEXTS)
    assert vectors.dtype == np.float32
    assert vectors.shape == (4, DIMENSION)
    np.testing.assert_allclose(vectors, expected_embeddings(TEXTS), atol=1e-6)
    for text, vector in zip(TEXTS, vectors, strict=True):  # padding changes nothing
        np.testing.assert_allclose(encoder.encode([text])[0], vector, atol=1e-6)
    assert encoder.count_tokens(TEXTS) == [8, 4, 2, 8]  # cut at max_seq_length
    assert encoder.encode([]).shape == (0, DIMENSION)
    assert encoder.count_tokens([]) == []


def test_an_encoder_runs_more_texts_than_a_batch_in_order(embedding_folder: Path) -> None:
    encoder = OnnxEncoder.from_file(embedding_folder / "model.onnx", embedding_meta())
    texts = [" ".join(VOCAB[4 + i % 7 :]) for i in range(70)]
    np.testing.assert_allclose(encoder.encode(texts), expected_embeddings(texts), atol=1e-6)
    encoder.limit_threads(1)
    assert encoder.session.model.get_session_options().intra_op_num_threads == 1


def test_length_batches_group_texts_of_similar_length_longest_first() -> None:
    lengths = [15, 50, 3, 14, 3, 16, 15, 28]
    batches = length_batches(lengths, max_rows=32, max_padding=0.2)
    assert sorted(i for batch in batches for i in batch) == list(range(len(lengths)))
    assert batches == [[1], [7], [5, 0, 6, 3], [2, 4]]  # no 50-token padding for the rest
    for batch in batches:  # each batch's padding within the limit
        width = max(lengths[i] for i in batch)
        assert len(batch) * width - sum(lengths[i] for i in batch) <= 0.2 * len(batch) * width
    assert length_batches([7] * 70, max_rows=32) == [
        list(range(0, 32)),
        list(range(32, 64)),
        list(range(64, 70)),
    ]
    assert length_batches([]) == []


def test_an_encoder_feeds_token_types_only_to_a_graph_that_takes_them(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    embedding_graph(folder / "model.onnx", token_types=True)
    tokenizer_file(folder / "tokenizer.json")
    encoder = OnnxEncoder.from_file(folder / "model.onnx", embedding_meta())
    assert encoder.session.input_names == ["input_ids", "attention_mask", "token_type_ids"]
    np.testing.assert_allclose(encoder.encode(TEXTS), expected_embeddings(TEXTS), atol=1e-6)
    saved = OnnxFlavor().save(encoder, tmp_path / "copy")
    assert saved["input_names"] == ["input_ids", "attention_mask", "token_type_ids"]
    assert saved["output_name"] == "embeddings"


def test_an_embedding_bundle_needs_its_tokenizer_and_its_sizes(embedding_folder: Path) -> None:
    with pytest.raises(InvalidInputError, match="positive 'dimension'"):
        OnnxFlavor().load(
            embedding_folder, {"kind": "embedding", "max_seq_length": 8}, trusted=False
        )
    with pytest.raises(InvalidInputError, match="an embedding onnx graph takes"):
        OnnxFlavor().load(embedding_folder, embedding_meta(input_names=["features"]), trusted=False)
    (embedding_folder / "tokenizer.json").unlink()
    with pytest.raises(StorageError, match=r"tokenizer\.json is missing"):
        OnnxFlavor().load(embedding_folder, embedding_meta(), trusted=False)


def test_a_registered_onnx_embedding_model_embeds(
    trained: Any, embedding_folder: Path, tmp_path: Path
) -> None:
    ws = trained[0]
    encoder = OnnxEncoder.from_file(embedding_folder / "model.onnx", embedding_meta())
    bundle = tmp_path / "bundle"
    signature = Signature((ColumnSpec("input", LogicalType.STRING, False),), "embedding")
    manifest: dict[str, Any] = {
        "name": "tiny",
        "flavor": "onnx",
        "flavor_meta": OnnxFlavor().save(encoder, bundle / "model"),
        "family": "onnx:tiny",
        "signature": signature.to_dict(),
        "classes": [],
        "preprocessor": None,
        "inputs": "frame",
        "params": {},
        "metrics": {},
    }
    shutil.rmtree(embedding_folder)  # the bundle holds its own copies
    version = ws.models.register("tiny", bundle, manifest, origin="optimized")
    model = ws.models.load(version)
    np.testing.assert_allclose(model.embed(TEXTS), expected_embeddings(TEXTS), atol=1e-6)
    np.testing.assert_allclose(
        model.predict([{"input": t} for t in TEXTS]), expected_embeddings(TEXTS), atol=1e-6
    )
    assert model.count_tokens(TEXTS) == [8, 4, 2, 8]
    assert not model.gives_probabilities
    assert model.estimator.get_inputs()[0].name == "input_ids"
