"""int8 for embedding models: per-token MatMuls, smoothed attention, 8-bit weights narrowed
to 7 bits on CPUs whose kernel saturates."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from fermion.errors import InvalidInputError
from fermion.optimize.graph import count_ops, optimize_graph
from fermion.optimize.quantize_tokens import (
    activation_ranges,
    quantize_embedding_int8,
    quantize_matmuls_per_token,
    smooth_attention,
)
from fermion.registry.flavors import onnx_int8
from fermion.registry.flavors.onnx_flavor import OnnxSession
from fermion.registry.flavors.onnx_int8 import narrowed, saturates

Feeds = dict[str, np.ndarray[Any, Any]]
K, N = 48, 24


def run(model: Path | bytes, feeds: Feeds) -> np.ndarray[Any, Any]:
    source = model if isinstance(model, bytes) else str(model)
    session = ort.InferenceSession(source, providers=["CPUExecutionProvider"])
    out: np.ndarray[Any, Any] = session.run(None, feeds)[0]
    return out


def matmul_graph(path: Path, *, opset: int = 17, seed: int = 0) -> np.ndarray[Any, Any]:
    """x (batch, sequence, K) @ W (K, N) + b: one MatMul with constant weights."""
    rng = np.random.default_rng(seed)
    weight = rng.normal(size=(K, N)).astype(np.float32)
    bias = rng.normal(size=N).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["product"], name="dense"),
            helper.make_node("Add", ["product", "b"], ["y"]),
        ],
        "dense",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "sequence", K])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "sequence", N])],
        [numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    onnx.save(model, str(path))
    return weight


@pytest.mark.parametrize("opset", [17, 18])
def test_each_token_gets_its_own_activation_scale(tmp_path: Path, opset: int) -> None:
    src, dst = tmp_path / "float.onnx", tmp_path / "int8.onnx"
    matmul_graph(src, opset=opset)
    pairs = quantize_matmuls_per_token(src, dst)
    assert pairs == [("dense_weight_int8", "dense_weight_scale")]
    assert count_ops(dst)["MatMulIntegerToFloat"] == 1 and "MatMul" not in count_ops(dst)
    weights = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(dst)).graph.initializer}
    assert weights["dense_weight_int8"].dtype == np.int8
    assert np.abs(weights["dense_weight_int8"]).max() == 127  # 8 bits, per column
    assert "W" not in weights  # the float weights are gone

    rng = np.random.default_rng(1)
    small = rng.normal(size=(1, 3, K)).astype(np.float32)
    outlier = (rng.normal(size=(1, 3, K)) * 200).astype(np.float32)
    alone = run(dst, {"x": small})
    beside = run(dst, {"x": np.concatenate([small, outlier])})[:1]
    # a token's scale is its own: a batch holding far larger values changes nothing
    np.testing.assert_array_equal(alone, beside)
    reference = run(src, {"x": small})
    assert np.abs(alone - reference).max() < 0.02 * np.abs(reference).max()


def test_a_graph_without_constant_weights_is_refused(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "free",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3]),
            helper.make_tensor_value_info("w", TensorProto.FLOAT, [3, 2]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])],
    )
    src = tmp_path / "free.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(src))
    with pytest.raises(InvalidInputError, match="no MatMul with constant weights"):
        quantize_matmuls_per_token(src, tmp_path / "int8.onnx")
    assert not (tmp_path / "int8.onnx").exists()


def test_smoothing_attention_keeps_the_function(
    bert_onnx: tuple[Path, Feeds], tmp_path: Path
) -> None:
    src, feeds = bert_onnx
    fused = optimize_graph(src, tmp_path / "fused.onnx", kind="embedding").path
    inputs = sorted(
        {n.input[0] for n in onnx.load(str(fused)).graph.node if n.op_type == "Attention"}
    )
    ranges = activation_ranges(fused, inputs, [feeds])
    assert set(ranges) == set(inputs)
    assert all(r.shape == (32,) and (r > 0).all() for r in ranges.values())
    smoothed = smooth_attention(fused, tmp_path / "smoothed.onnx", ranges)
    assert count_ops(smoothed)["Mul"] == count_ops(fused).get("Mul", 0) + 2
    np.testing.assert_allclose(run(smoothed, feeds), run(fused, feeds), atol=1e-5)


def test_an_embedding_graph_becomes_int8_and_keeps_its_vectors(
    bert_onnx: tuple[Path, Feeds], tmp_path: Path
) -> None:
    src, feeds = bert_onnx
    fused = optimize_graph(src, tmp_path / "fused.onnx", kind="embedding").path
    dst = tmp_path / "int8.onnx"
    pairs = quantize_embedding_int8(fused, dst, calibration=[feeds])
    ops = count_ops(dst)
    assert ops["QAttention"] == 2 and ops["MatMulIntegerToFloat"] == len(pairs) == 6  # 3 per layer
    assert "MatMul" not in ops
    assert dst.stat().st_size < 0.6 * fused.stat().st_size  # tiny: node definitions weigh
    reference = run(src, feeds)
    assert float((run(dst, feeds) * reference).sum(axis=1).min()) > 0.99
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fused.onnx", "int8.onnx"]

    with pytest.raises(InvalidInputError, match="calibration texts"):
        quantize_embedding_int8(fused, tmp_path / "none.onnx", calibration=[])
    assert not (tmp_path / "none.onnx").exists()


def test_8bit_weights_are_narrowed_where_the_kernel_saturates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    src, dst = tmp_path / "float.onnx", tmp_path / "int8.onnx"
    matmul_graph(src)
    pairs = quantize_matmuls_per_token(src, dst)
    x = np.random.default_rng(2).normal(size=(2, 5, K)).astype(np.float32)
    full, reference = run(dst, {"x": x}), run(src, {"x": x})

    graph = narrowed(dst, pairs)
    weights = {
        i.name: numpy_helper.to_array(i) for i in onnx.load_from_string(graph).graph.initializer
    }
    assert np.abs(weights["dense_weight_int8"]).max() == 63  # 7 bits
    narrow = run(graph, {"x": x})
    assert not np.array_equal(narrow, full)
    assert np.abs(narrow - reference).max() < 0.03 * np.abs(reference).max()

    for saturating, expected in ((True, narrow), (False, full)):
        monkeypatch.setattr(onnx_int8, "int8_saturates", lambda s=saturating: s)
        session = OnnxSession(dst, feeds=["x"], output="y", weights_8bit=pairs)
        np.testing.assert_array_equal(session.run({"x": x}), expected)


def test_which_cpus_saturate() -> None:
    assert saturates("x86_64", "flags\t: fpu sse avx2 avx512f avx512_vnni\n") is False
    assert saturates("x86_64", "flags\t: fpu sse avx2 avx_vnni\n") is False
    assert saturates("x86_64", "flags\t: fpu sse avx2 fma\n") is True
    assert saturates("x86_64", None) is True  # unknown: the safe choice
    assert saturates("aarch64", None) is False
