"""int8 and fp16 variants of an ONNX graph, with ONNX Runtime's and onnxconverter-common's tools.

Quantize the graph as exported, not ORT's extended-optimized one: the quantizer knows
MatMul and Gemm, not the FusedGemm that the optimized file holds (ORT fuses the quantized graph
again when it loads it). A BERT graph fused by `optimize_graph` is fine: its Attention nodes
quantize to QAttention. Every function writes `dst` atomically and checks that ONNX Runtime
loads the result; a tool's failure is an InvalidInputError naming the step and ORT's reason.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from fermion.errors import FermionError, InvalidInputError, first_line, require
from fermion.optimize.graph import atomic_output, check_loads, count_ops, load_graph

__all__ = [
    "DYNAMIC_OP_TYPES",
    "STATIC_OP_TYPES",
    "calibration_feeds",
    "convert_fp16",
    "count_ops",
    "quantize_dynamic_int8",
    "quantize_static_int8",
]

Feed = Mapping[str, npt.NDArray[Any]]

# Attention is there for BERT graphs fused by optimize_graph: its Q, K, V weights are most
# of a layer's; in a graph without Attention nodes it changes nothing.
DYNAMIC_OP_TYPES = ("MatMul", "Gemm", "Attention")
STATIC_OP_TYPES = ("MatMul", "Gemm", "Conv")
# Op types whose presence in the output (beyond the source's) shows a weight was quantized.
_QUANTIZED_OPS = frozenset(
    {
        "MatMulInteger",
        "DynamicQuantizeMatMul",
        "DynamicQuantizeLinear",
        "QAttention",
        "QGemm",
        "QLinearMatMul",
        "DequantizeLinear",
    }
)


# ai.onnx.ml model ops (trees, linear models, SVMs): float32-only, so the converter keeps
# them so and casts around them, which it gets wrong when their outputs lack type information
_FLOAT32_ML_OPS = frozenset(
    {
        "LinearClassifier",
        "LinearRegressor",
        "SVMClassifier",
        "SVMRegressor",
        "TreeEnsemble",
        "TreeEnsembleClassifier",
        "TreeEnsembleRegressor",
    }
)


def quantize_dynamic_int8(
    src: Path,
    dst: Path,
    *,
    per_channel: bool = True,
    reduce_range: bool = True,
    op_types: Sequence[str] = DYNAMIC_OP_TYPES,
    exclude_nodes: Sequence[str] = (),
) -> Path:
    """Weights of `op_types` nodes to int8 (per output channel), activations quantized at run
    time. Raises InvalidInputError when no node had constant weights to quantize.

    `reduce_range` keeps weights to 7 bits. x86 CPUs without VNNI multiply uint8 activations
    by int8 weights with VPMADDUBSW, which adds pairs into a saturating int16: 255*127*2
    overflows it, 255*63*2 does not. Measured on such a machine (AVX2), a 256-256 MLP
    regressor's int8 error against float fell from RMSE 27.8 to 1.7 with it; a VNNI machine
    loses one bit of weight precision, so the file is safe wherever it is served.
    """
    require("onnxruntime", "onnx")
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    _refuse_unquantizable(src, op_types)
    with atomic_output(dst) as tmp:
        prepared = _pre_processed(src, tmp.parent)
        try:
            quantize_dynamic(
                prepared,
                tmp,
                per_channel=per_channel,
                reduce_range=reduce_range,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=list(op_types),
                nodes_to_exclude=list(exclude_nodes),
                # fused (contrib) nodes carry no type information; their tensors are float
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
        except FermionError:
            raise
        except Exception as exc:
            raise InvalidInputError(
                f"dynamic int8 quantization of {src.name} failed: {first_line(exc)}"
            ) from exc
        _check_quantized(src, tmp, op_types)
        check_loads(tmp, f"the int8 graph of {src.name}")
    return Path(dst)


def quantize_static_int8(
    src: Path,
    dst: Path,
    *,
    calibration: Iterable[Feed],
    per_channel: bool = True,
    reduce_range: bool = True,
    op_types: Sequence[str] = STATIC_OP_TYPES,
    exclude_nodes: Sequence[str] = (),
) -> Path:
    """QDQ int8: weights int8 per channel, activations uint8 with ranges calibrated (MinMax)
    on `calibration`, a few batches of graph inputs (`calibration_feeds` builds them).

    Only the weight-carrying ops are quantized, and their outputs stay float: a head after
    them (softmax, sigmoid, a regression target's scaling) computes in float32 rather than on
    256 levels. `reduce_range` as for `quantize_dynamic_int8`. Activations are uint8 because
    that is what runs on x86 either way: its integer kernels multiply uint8 by int8, and ORT
    rewrites int8 activations to uint8 when it loads a QDQ graph (measured: the same loaded
    graph, outputs and latency). MinMax calibration: one pass; on ReLU MLPs it was as
    accurate as Percentile or Entropy, which build histograms and took 1.2-2.7x as long.
    """
    require("onnxruntime", "onnx")
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    _refuse_unquantizable(src, op_types)
    feeds = [dict(feed) for feed in calibration]
    if not feeds:
        raise InvalidInputError("static int8 quantization needs at least one calibration batch")
    with atomic_output(dst) as tmp:
        prepared = _pre_processed(src, tmp.parent)
        try:
            quantize_static(
                prepared,
                tmp,
                _FeedReader(feeds),
                quant_format=QuantFormat.QDQ,
                op_types_to_quantize=list(op_types),
                per_channel=per_channel,
                reduce_range=reduce_range,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=list(exclude_nodes),
                calibrate_method=CalibrationMethod.MinMax,
                extra_options={
                    "DefaultTensorType": onnx.TensorProto.FLOAT,
                    "OpTypesToExcludeOutputQuantization": list(op_types),
                },
            )
        except FermionError:
            raise
        except Exception as exc:
            raise InvalidInputError(
                f"static int8 quantization of {src.name} failed: {first_line(exc)}"
            ) from exc
        _check_quantized(src, tmp, op_types)
        check_loads(tmp, f"the int8 graph of {src.name}")
    return Path(dst)


def calibration_feeds(
    X: npt.ArrayLike, *, input_name: str = "features", rows: int = 1000, batch_size: int = 100
) -> list[dict[str, npt.NDArray[np.float32]]]:
    """Batches of at most `rows` rows of `X`, spread evenly over it (training rows are often
    ordered), as graph feeds for `quantize_static_int8`."""
    matrix = np.ascontiguousarray(X, dtype=np.float32)
    if matrix.ndim != 2 or len(matrix) == 0:
        raise InvalidInputError("calibration rows must be a non-empty 2-D matrix")
    if len(matrix) > rows:
        matrix = matrix[np.linspace(0, len(matrix) - 1, rows).astype(np.int64)]
    step = max(1, batch_size)
    return [{input_name: matrix[i : i + step]} for i in range(0, len(matrix), step)]


def convert_fp16(src: Path, dst: Path, *, keep_io_types: bool = True) -> Path:
    """Weights and activations to float16; with `keep_io_types` the inputs and outputs stay
    float32 (Cast nodes at the edges), so callers feed and read the same arrays.

    fp16 is for GPU targets. ORT's CPU provider has few fp16 kernels and runs the others by
    casting back to float32 around them: the graph loads and runs on CPU, at half the file
    size, but not faster.
    """
    require("onnxconverter_common", "onnx")
    from onnxconverter_common import float16

    model = load_graph(src)
    float_only = sorted(set(count_ops(src)) & _FLOAT32_ML_OPS)
    if float_only:
        raise InvalidInputError(
            f"{src.name} holds {', '.join(float_only)} nodes, which compute in float32 only; "
            "fp16 conversion is for neural network graphs"
        )
    with atomic_output(dst) as tmp:
        try:
            with warnings.catch_warnings():
                # "the float32 number ... will be truncated to 1e-07": expected clamping
                warnings.filterwarnings("ignore", category=UserWarning, module=float16.__name__)
                converted = float16.convert_float_to_float16(model, keep_io_types=keep_io_types)
        except Exception as exc:
            raise InvalidInputError(
                f"fp16 conversion of {src.name} failed: {first_line(exc)}"
            ) from exc
        _fix_float_casts(converted)
        _save(converted, tmp)
        check_loads(tmp, f"the fp16 graph of {src.name}")
    return Path(dst)


def _fix_float_casts(model: Any) -> None:
    """Cast(to=float) nodes inside a converted graph must now cast to float16.

    onnxconverter-common marks their outputs float16 but leaves `to` alone, which ORT refuses
    ("Type (tensor(float16)) of output arg ... does not match"); BERT's mask casts hit it.
    The Casts it adds before graph outputs are not touched (their outputs stay float32).
    """
    import onnx

    float16_values = {
        info.name
        for info in model.graph.value_info
        if info.type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
    }
    for node in model.graph.node:
        if node.op_type != "Cast" or node.output[0] not in float16_values:
            continue
        for attr in node.attribute:
            if attr.name == "to" and attr.i == onnx.TensorProto.FLOAT:
                attr.i = onnx.TensorProto.FLOAT16


def _save(model: Any, path: Path) -> None:
    import onnx

    try:
        onnx.save(model, str(path))
    except Exception as exc:
        raise InvalidInputError(f"could not write {path.name}: {first_line(exc)}") from exc


def _pre_processed(src: Path, folder: Path) -> Path:
    """`src` after ORT's quantization pre-processing (shape inference, basic optimization) in
    `folder`, or `src` itself when the pre-processing fails, as its symbolic shape inference
    does on some exported graphs ("Incomplete symbolic shape inference")."""
    from onnxruntime.quantization import quant_pre_process

    out = folder / "preprocessed.onnx"
    try:
        quant_pre_process(src, out)
    except Exception:
        return Path(src)
    return out


def _refuse_unquantizable(src: Path, op_types: Sequence[str]) -> None:
    """Refuse, before running ORT's tools, a graph they would fail on or leave unchanged."""
    ops = count_ops(src)
    fused = sorted(op for op in ops if op in ("FusedGemm", "FusedMatMul", "FusedConv"))
    if fused:
        raise InvalidInputError(
            f"{src.name} is ONNX Runtime's optimized graph, whose {', '.join(fused)} nodes "
            "the quantizer does not know; quantize the exported graph (ORT fuses the "
            "quantized one when it loads it)"
        )
    if not any(op in ops for op in op_types):
        raise InvalidInputError(
            f"{src.name} has no {'/'.join(op_types)} node to quantize "
            f"(its ops: {', '.join(ops) or 'none'})"
        )


def _check_quantized(src: Path, out: Path, op_types: Sequence[str]) -> None:
    before, after = count_ops(src), count_ops(out)
    if not any(after.get(op, 0) > before.get(op, 0) for op in _QUANTIZED_OPS):
        raise InvalidInputError(
            f"{src.name} has no {'/'.join(op_types)} node with constant weights to quantize "
            f"(its ops: {', '.join(before) or 'none'})"
        )


class _FeedReader:
    """ORT's CalibrationDataReader protocol (a `get_next` method) over a list of feeds."""

    def __init__(self, feeds: list[dict[str, Any]]) -> None:
        self._feeds: Iterator[dict[str, Any]] = iter(feeds)

    def get_next(self) -> dict[str, Any] | None:
        return next(self._feeds, None)
