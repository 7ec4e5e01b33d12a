"""Offline graph optimization: ORT's extended level for a tabular graph, BERT fusion for an
embedding graph; same outputs either way."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch

from fermion.errors import InvalidInputError
from fermion.optimize.graph import bert_dimensions, count_ops, optimize_graph
from fermion.optimize.quantize import convert_fp16, quantize_dynamic_int8

Feeds = dict[str, np.ndarray[Any, Any]]


def run(path: Path, feeds: Feeds) -> np.ndarray[Any, Any]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out: np.ndarray[Any, Any] = session.run(None, feeds)[0]
    return out


@pytest.fixture(scope="module")
def mlp_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from sklearn.datasets import make_classification

    from fermion.training.families import get_family

    X, y = make_classification(n_samples=400, n_features=20, random_state=0)
    model = get_family("torch_mlp").fit(
        X, y, task="binary", n_classes=2, params={"hidden": "32,16", "epochs": 2}, threads=1
    )
    path = tmp_path_factory.mktemp("mlp") / "model.onnx"
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # legacy exporter
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
    return path


def test_matrix_graph_is_fused_and_gives_the_same_outputs(mlp_onnx: Path, tmp_path: Path) -> None:
    result = optimize_graph(mlp_onnx, tmp_path / "opt.onnx", kind="matrix")

    assert result.path == tmp_path / "opt.onnx"
    assert result.fused == {"FusedGemm": 2}  # Gemm+Relu, twice
    assert count_ops(result.path) == {"FusedGemm": 2, "Gemm": 1}
    X = np.random.default_rng(0).normal(size=(64, 20)).astype(np.float32)
    feeds = {"features": X}
    np.testing.assert_allclose(run(result.path, feeds), run(mlp_onnx, feeds), atol=1e-5)
    assert [p.name for p in tmp_path.iterdir()] == ["opt.onnx"]


def test_bert_dimensions_are_read_from_the_graph(bert_onnx: tuple[Path, Feeds]) -> None:
    assert bert_dimensions(bert_onnx[0]) == (2, 32)


def test_bert_attention_is_fused(bert_onnx: tuple[Path, Feeds], tmp_path: Path) -> None:
    src, feeds = bert_onnx
    result = optimize_graph(src, tmp_path / "opt.onnx", kind="embedding")

    assert result.fused["Attention"] == 2  # one per layer
    assert result.fused["SkipLayerNormalization"] >= 2
    assert result.fused.get("EmbedLayerNormalization") == 1
    ops = count_ops(result.path)
    assert ops["Attention"] == 2 and "Softmax" not in ops
    np.testing.assert_allclose(run(result.path, feeds), run(src, feeds), atol=1e-3)


def test_fused_bert_quantizes_and_converts_to_fp16(
    bert_onnx: tuple[Path, Feeds], tmp_path: Path
) -> None:
    src, feeds = bert_onnx
    fused = optimize_graph(src, tmp_path / "opt.onnx", kind="embedding").path
    reference = run(src, feeds)

    int8 = quantize_dynamic_int8(fused, tmp_path / "int8.onnx")
    assert count_ops(int8)["QAttention"] == 2  # the fused attention's Q, K, V weights too
    assert float((run(int8, feeds) * reference).sum(axis=1).min()) > 0.99

    # the mean pooling's Cast(to=float) must become a float16 cast inside an fp16 graph
    fp16 = convert_fp16(fused, tmp_path / "fp16.onnx")
    out = run(fp16, feeds)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, reference, atol=2e-3)


def test_bad_inputs_leave_no_file(mlp_onnx: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="'matrix' or 'embedding'"):
        optimize_graph(mlp_onnx, tmp_path / "opt.onnx", kind="image")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match="no ONNX model at"):
        optimize_graph(tmp_path / "missing.onnx", tmp_path / "opt.onnx", kind="matrix")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07junk")
    with pytest.raises(InvalidInputError):
        optimize_graph(garbage, tmp_path / "opt.onnx", kind="embedding")
    assert [p.name for p in tmp_path.iterdir()] == ["garbage.onnx"]
