"""Offline graph optimization: ONNX Runtime's rewrites, written to a file once.

A tabular ("matrix") graph gets ORT's extended level: constant folding, redundant-node
elimination and the fusions any CPU runs (Gemm+Relu -> FusedGemm ...). Not the "all" level:
its layout rewrites are specific to the machine that wrote the file. An embedding graph goes
through the transformer optimizer's BERT fusions (Attention, SkipLayerNormalization,
EmbedLayerNormalization, Gelu), which ORT's session-time optimizer does not all find on its own.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from fermion.errors import FermionError, InvalidInputError, first_line, require

GraphKind = Literal["matrix", "embedding"]


@dataclass(frozen=True)
class GraphResult:
    """The optimized file and the fused operators it gained, by op type."""

    path: Path
    fused: dict[str, int] = field(default_factory=dict)


def optimize_graph(
    src: Path, dst: Path, *, kind: GraphKind, num_heads: int = 0, hidden_size: int = 0
) -> GraphResult:
    """Write `src` optimized to `dst` (atomically) for any CPU that runs ONNX Runtime.

    For `kind="embedding"` a `num_heads`/`hidden_size` of 0 is read from the graph
    (`bert_dimensions`): the optimizer's own detection fails on graphs that recent
    transformers export (their attention reshapes carry -1 for the head count).
    """
    if kind not in ("matrix", "embedding"):
        raise InvalidInputError(f"graph kind must be 'matrix' or 'embedding', got {kind!r}")
    load_graph(src)
    if kind == "embedding":
        return _optimize_bert(src, dst, num_heads, hidden_size)
    require("onnxruntime", "onnx")
    import onnxruntime as ort

    with atomic_output(dst) as tmp:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        options.optimized_model_filepath = str(tmp)
        try:
            ort.InferenceSession(str(src), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise InvalidInputError(
                f"ONNX Runtime could not optimize {src.name}: {first_line(exc)}"
            ) from exc
        before, after = count_ops(src), count_ops(tmp)
    gained = {op: n for op, n in after.items() if op not in before}
    return GraphResult(path=dst, fused=gained)


def _optimize_bert(src: Path, dst: Path, num_heads: int, hidden_size: int) -> GraphResult:
    require("onnxruntime", "onnx")
    from onnxruntime.transformers.optimizer import optimize_model

    if num_heads <= 0 or hidden_size <= 0:
        found_heads, found_hidden = bert_dimensions(src)
        num_heads = num_heads if num_heads > 0 else found_heads
        hidden_size = hidden_size if hidden_size > 0 else found_hidden
    with atomic_output(dst) as tmp:
        try:
            # opt_level 1 (ORT's basic, portable rewrites, then the Python fusions) is the
            # level the optimizer recommends for BERT on CPU
            optimized = optimize_model(
                str(src),
                model_type="bert",
                num_heads=num_heads,
                hidden_size=hidden_size,
                opt_level=1,
                use_gpu=False,
            )
            stats: dict[str, int] = optimized.get_fused_operator_statistics()
            optimized.save_model_to_file(str(tmp))
        except FermionError:
            raise
        except Exception as exc:
            raise InvalidInputError(
                f"the transformer optimizer failed on {src.name}: {first_line(exc)}"
            ) from exc
        check_loads(tmp, "the BERT-optimized graph")
    return GraphResult(path=dst, fused={op: n for op, n in stats.items() if n > 0})


def bert_dimensions(path: Path) -> tuple[int, int]:
    """(num_heads, hidden_size) of a BERT-like graph, or (0, 0) where the graph does not say.

    The hidden size is the width of its LayerNormalization scales (the most common one), or of
    its square MatMul weights where LayerNorm is decomposed; the head size is the last
    dimension of the 4-D reshapes that split Q, K and V into heads, whether the shape is a
    constant or a Concat of constants and runtime sizes.
    """
    require("onnx", "onnx")
    from onnx import numpy_helper

    graph = load_graph(path).graph
    constants: dict[str, Any] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    producers = {}
    for node in graph.node:
        for out in node.output:
            producers[out] = node
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    constants[node.output[0]] = numpy_helper.to_array(attr.t)
    widths = Counter(
        int(constants[node.input[1]].shape[0])
        for node in graph.node
        if node.op_type in ("LayerNormalization", "SkipLayerNormalization")
        and len(node.input) > 1
        and node.input[1] in constants
        and constants[node.input[1]].ndim == 1
    )
    if not widths:  # LayerNorm decomposed (opset < 17): the square Q, K, V, O projections
        widths = Counter(
            int(weight.shape[0])
            for node in graph.node
            if node.op_type == "MatMul"
            and (weight := constants.get(node.input[1])) is not None
            and weight.ndim == 2
            and weight.shape[0] == weight.shape[1]
        )
    if not widths:
        return 0, 0
    hidden = widths.most_common(1)[0][0]
    heads: Counter[int] = Counter()
    for node in graph.node:
        if node.op_type != "Reshape" or len(node.input) < 2:
            continue
        shape = _shape_values(node.input[1], constants, producers)
        if shape is None or len(shape) != 4 or shape[3] is None or shape[3] <= 0:
            continue
        head_size, count = shape[3], shape[2]
        if hidden % head_size:
            continue
        if count is None or count <= 0 or count * head_size == hidden:
            heads[hidden // head_size] += 1
    if not heads:
        return 0, hidden
    return heads.most_common(1)[0][0], hidden


def _shape_values(
    name: str, constants: dict[str, Any], producers: dict[str, Any]
) -> list[int | None] | None:
    """A reshape target's entries, None for those only known at run time."""
    if name in constants:
        return [int(v) for v in constants[name].reshape(-1)]
    node = producers.get(name)
    if node is None or node.op_type != "Concat":
        return None
    values: list[int | None] = []
    for part in node.input:
        if part in constants:
            values.extend(int(v) for v in constants[part].reshape(-1))
        else:
            values.append(None)  # a runtime size (batch, sequence), one element in practice
    return values


def count_ops(path: Path) -> dict[str, int]:
    """How many nodes of each op type the graph holds, subgraphs (If, Loop) included."""
    model = load_graph(path)
    counts: Counter[str] = Counter()
    pending = [model.graph]
    while pending:
        graph = pending.pop()
        for node in graph.node:
            counts[node.op_type] += 1
            for attr in node.attribute:
                if attr.HasField("g"):
                    pending.append(attr.g)
                pending.extend(attr.graphs)
    return dict(sorted(counts.items()))


def load_graph(path: Path) -> Any:
    """The `onnx.ModelProto` at `path`, or an InvalidInputError saying why not."""
    require("onnx", "onnx")
    import onnx

    if not Path(path).is_file():
        raise InvalidInputError(f"no ONNX model at {path}")
    try:
        return onnx.load(str(path))
    except Exception as exc:
        raise InvalidInputError(f"{path} is not a readable ONNX model: {first_line(exc)}") from exc


@contextmanager
def atomic_output(dst: Path) -> Iterator[Path]:
    """A temporary path beside `dst` to write to; it becomes `dst` only if the block succeeds.

    Tools write side files (pre-processed copies, calibration graphs) next to their output;
    they all live in one temporary folder in dst's folder, removed in every case.
    """
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{dst.name}.", dir=dst.parent) as folder:
        tmp = Path(folder) / "model.onnx"
        yield tmp
        if not tmp.is_file():
            raise InvalidInputError(f"no model was written for {dst.name}")
        os.replace(tmp, dst)


def check_loads(path: Path, what: str) -> None:
    """Refuse a written graph that ONNX Runtime cannot load, naming ORT's reason."""
    require("onnxruntime", "onnx")
    import onnxruntime as ort

    try:
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise InvalidInputError(f"{what} does not load in ONNX Runtime: {first_line(exc)}") from exc
