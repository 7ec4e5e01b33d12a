"""int8 and fp16 variants of a torch MLP's ONNX graph: smaller, same labels, atomic writes."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from fermion.errors import InvalidInputError
from fermion.optimize.graph import load_graph, optimize_graph
from fermion.optimize.quantize import (
    calibration_feeds,
    convert_fp16,
    count_ops,
    quantize_dynamic_int8,
    quantize_static_int8,
)

Rows = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Rows]:
    """A 256-256 MLP classifier exported to ONNX, with training rows and test rows."""
    from sklearn.datasets import make_classification

    from fermion.training.families import get_family

    X, y = make_classification(
        n_samples=1600, n_features=20, n_informative=8, class_sep=1.5, random_state=0
    )
    X = X.astype(np.float32)
    model = get_family("torch_mlp").fit(
        X[:1000],
        y[:1000],
        task="binary",
        n_classes=2,
        params={"hidden": "256,256", "epochs": 8, "patience": None},
        threads=1,
    )
    path = tmp_path_factory.mktemp("mlp") / "model.onnx"
    with warnings.catch_warnings():
        # the TorchScript exporter is the one the architecture names; it warns it is legacy
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(
            model.estimator,
            (torch.zeros(1, 20),),
            str(path),
            dynamo=False,
            input_names=["features"],
            output_names=["logits"],
            dynamic_axes={"features": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
        )
    return path, (X[:1000], X[1000:], y[1000:])


def run(path: Path, X: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out: np.ndarray[Any, Any] = session.run(None, {"features": X})[0]
    return out


def agreement(a: np.ndarray[Any, Any], b: np.ndarray[Any, Any]) -> float:
    return float((a.argmax(axis=1) == b.argmax(axis=1)).mean())


def test_dynamic_int8_is_smaller_and_agrees(mlp: tuple[Path, Rows], tmp_path: Path) -> None:
    src, (_, X_test, _) = mlp
    dst = quantize_dynamic_int8(src, tmp_path / "int8.onnx")

    assert dst == tmp_path / "int8.onnx"
    assert src.stat().st_size / dst.stat().st_size > 2.5
    assert "MatMulInteger" in count_ops(dst)
    assert agreement(run(src, X_test), run(dst, X_test)) >= 0.98
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int8.onnx"]  # no side files


def test_static_int8_calibrated_on_training_rows(mlp: tuple[Path, Rows], tmp_path: Path) -> None:
    src, (X_train, X_test, _) = mlp
    feeds = calibration_feeds(X_train, rows=500, batch_size=100)
    assert len(feeds) == 5 and feeds[0]["features"].shape == (100, 20)

    dst = quantize_static_int8(src, tmp_path / "static.onnx", calibration=feeds)

    ops = count_ops(dst)
    assert ops["QuantizeLinear"] >= 1 and ops["DequantizeLinear"] >= 3
    assert src.stat().st_size / dst.stat().st_size > 2.5
    assert agreement(run(src, X_test), run(dst, X_test)) >= 0.98


class Regressor(torch.nn.Module):
    """The network with the family's de-standardisation as a graph head, as exported."""

    def __init__(self, net: torch.nn.Module, scale: float, mean: float) -> None:
        super().__init__()
        self.net, self.scale, self.mean = net, scale, mean

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.net(x)[:, 0] * self.scale + self.mean
        return out


def test_int8_regression_stays_close_to_float(tmp_path: Path) -> None:
    """Weights kept to 7 bits: on x86 without VNNI, full-range int8 weights saturate the
    uint8 x int8 kernel's int16 sums (measured error vs float 16% of the target's spread)."""
    from sklearn.datasets import make_regression

    from fermion.training.families import get_family

    X, y = make_regression(n_samples=1600, n_features=20, n_informative=10, noise=5, random_state=0)
    X = X.astype(np.float32)
    model = get_family("torch_mlp").fit(
        X[:1000],
        y[:1000],
        task="regression",
        n_classes=0,
        params={"hidden": "256,256", "epochs": 10, "patience": None},
        threads=1,
    )
    src = tmp_path / "regressor.onnx"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        torch.onnx.export(
            Regressor(model.estimator, model.y_scale, model.y_mean),
            (torch.zeros(2, 20),),
            str(src),
            dynamo=False,
            input_names=["features"],
            output_names=["values"],
            dynamic_axes={"features": {0: "batch"}, "values": {0: "batch"}},
            opset_version=17,
        )
    X_test = X[1000:]
    reference = run(src, X_test)
    dynamic = run(quantize_dynamic_int8(src, tmp_path / "dynamic.onnx"), X_test)
    feeds = calibration_feeds(X[:1000], rows=500)
    static = run(quantize_static_int8(src, tmp_path / "static.onnx", calibration=feeds), X_test)

    spread = float(np.std(y))
    for out in (dynamic, static):
        assert float(np.sqrt(np.mean((out - reference) ** 2))) < 0.03 * spread
    # the head (scaling) computes in float: no QuantizeLinear after the last Gemm
    ops = count_ops(tmp_path / "static.onnx")
    assert ops["QuantizeLinear"] == 3  # one per Gemm input, none on the outputs


def test_fp16_halves_the_file_and_runs_on_cpu(mlp: tuple[Path, Rows], tmp_path: Path) -> None:
    src, (_, X_test, _) = mlp
    dst = convert_fp16(src, tmp_path / "fp16.onnx")

    assert src.stat().st_size / dst.stat().st_size > 1.9
    weights = onnx.load(str(dst)).graph.initializer
    assert {w.data_type for w in weights} == {TensorProto.FLOAT16}
    out = run(dst, X_test)  # inputs and outputs stay float32
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, run(src, X_test), atol=0.02)


def test_count_ops(mlp: tuple[Path, Rows]) -> None:
    assert count_ops(mlp[0]) == {"Gemm": 3, "Relu": 2}


def test_failed_calibration_names_the_input_and_leaves_no_file(
    mlp: tuple[Path, Rows], tmp_path: Path
) -> None:
    src, (X_train, _, _) = mlp
    dst = tmp_path / "static.onnx"
    with pytest.raises(
        InvalidInputError,
        match=r"static int8 quantization of model.onnx failed: Required inputs \(\['features'\]\)",
    ):
        quantize_static_int8(src, dst, calibration=[{"wrong_name": X_train[:10]}])
    assert list(tmp_path.iterdir()) == []

    with pytest.raises(InvalidInputError, match="at least one calibration batch"):
        quantize_static_int8(src, dst, calibration=[])


def test_a_failure_keeps_the_previous_dst(mlp: tuple[Path, Rows], tmp_path: Path) -> None:
    src, (X_train, _, _) = mlp
    dst = tmp_path / "static.onnx"
    dst.write_bytes(b"previous")
    with pytest.raises(InvalidInputError, match="invalid dimensions"):
        quantize_static_int8(src, dst, calibration=[{"features": X_train[:10, :5]}])
    assert dst.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["static.onnx"]


def test_graphs_without_neural_weights_are_refused(tmp_path: Path) -> None:
    """A linear model's (or a tree ensemble's) ai.onnx.ml node: nothing int8 or fp16 applies to."""
    node = helper.make_node(
        "LinearRegressor", ["x"], ["y"], domain="ai.onnx.ml", coefficients=[1.0, 2.0, 3.0, 4.0]
    )
    graph = helper.make_graph(
        [node],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 1])],
    )
    opsets = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    src = tmp_path / "linear.onnx"
    onnx.save(helper.make_model(graph, opset_imports=opsets), str(src))
    assert count_ops(src) == {"LinearRegressor": 1}

    with pytest.raises(InvalidInputError, match="no MatMul/Gemm/Attention node to quantize"):
        quantize_dynamic_int8(src, tmp_path / "int8.onnx")
    with pytest.raises(InvalidInputError, match="no MatMul/Gemm/Conv node to quantize"):
        quantize_static_int8(src, tmp_path / "int8.onnx", calibration=[{"x": np.ones((2, 4))}])
    with pytest.raises(InvalidInputError, match="LinearRegressor nodes, which compute in float32"):
        convert_fp16(src, tmp_path / "fp16.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["linear.onnx"]


def test_ort_optimized_graph_is_refused(mlp: tuple[Path, Rows], tmp_path: Path) -> None:
    optimized = optimize_graph(mlp[0], tmp_path / "opt.onnx", kind="matrix").path
    with pytest.raises(InvalidInputError, match="FusedGemm"):
        quantize_dynamic_int8(optimized, tmp_path / "int8.onnx")


def test_not_an_onnx_file(tmp_path: Path) -> None:
    src = tmp_path / "model.onnx"
    src.write_bytes(b"not a protobuf")
    with pytest.raises(InvalidInputError, match="not a readable ONNX model"):
        convert_fp16(src, tmp_path / "fp16.onnx")
    with pytest.raises(InvalidInputError, match="no ONNX model at"):
        quantize_dynamic_int8(tmp_path / "missing.onnx", tmp_path / "int8.onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


def test_static_int8_quantizes_convolutions(tmp_path: Path) -> None:
    import torch

    class SmallCnn(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = torch.nn.Conv2d(1, 8, 3, padding=1)
            self.conv2 = torch.nn.Conv2d(8, 16, 3, padding=1)
            self.head = torch.nn.Linear(16 * 4 * 4, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = torch.relu(self.conv1(x.reshape(-1, 1, 8, 8)))
            x = torch.nn.functional.max_pool2d(torch.relu(self.conv2(x)), 2)
            return self.head(x.flatten(1))

    torch.manual_seed(0)
    src = tmp_path / "cnn.onnx"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # legacy exporter
        torch.onnx.export(
            SmallCnn().eval(),
            (torch.zeros(1, 64),),
            str(src),
            dynamo=False,
            input_names=["features"],
            output_names=["logits"],
            dynamic_axes={"features": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=17,
        )
    X = np.random.default_rng(0).random((300, 64)).astype(np.float32) * 16
    dst = quantize_static_int8(src, tmp_path / "int8.onnx", calibration=calibration_feeds(X))
    # every Conv and the Gemm read int8 weights through a DequantizeLinear
    weights = {
        node.input[1] for node in load_graph(dst).graph.node if node.op_type in ("Conv", "Gemm")
    }
    produced = {n.output[0] for n in load_graph(dst).graph.node if n.op_type == "DequantizeLinear"}
    assert len(weights) == 3 and weights <= produced
    assert dst.stat().st_size < 0.6 * src.stat().st_size  # small: node definitions weigh
    want, got = run(src, X), run(dst, X)
    assert float(np.mean(want.argmax(1) == got.argmax(1))) >= 0.97
