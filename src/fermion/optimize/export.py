"""ONNX export of a registered model: `export_onnx` writes `model.onnx` (and an embedding
model's `tokenizer.json`) into a folder and describes the graph as an `OnnxGraph`.

A tabular graph starts where Fermion's preprocessing ends: it takes the float32 matrix
`features` (batch, n_features) and gives `probabilities` (batch, n_classes) or `values`
(batch,), what the source `FittedModel`'s `predict_proba` and `predict` give. Each converter
builds a raw graph; `add_head` then names its one output and adds what the library computes
after the trees or the network (sigmoid, softmax, target scaling). The source model is never
changed. Scikit-learn's forests and histogram boosting are converted tree by tree in
`export_trees.py` (skl2onnx ignores their learned missing-value directions and cannot convert
categorical splits); any other scikit-learn estimator goes through skl2onnx, LightGBM and
XGBoost through onnxmltools.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from fermion.errors import FermionError, InvalidInputError, first_line, require

if TYPE_CHECKING:
    from fermion.registry.model import Model
    from fermion.training.families.base import FittedModel

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
FEATURES = "features"
PROBABILITIES = "probabilities"
VALUES = "values"
EMBEDDINGS = "embeddings"
MIN_OPSET = 13  # the heads' Softmax works on one axis from opset 13
MAX_OPSET = 20  # the TorchScript exporter's highest (the MLP and embedding graphs)
EXPORTABLE = ("sklearn", "lightgbm", "xgboost", "torch", "torch_export", "sentence_transformers")
_ONNXMLTOOLS_MAX_OPSET = 15  # onnxmltools refuses higher; set_opset raises the graph after

GraphKind = Literal["matrix", "embedding"]
# What turns a converter's raw output into the contract's: already probabilities, logits
# (softmax), one logit of class 1 (sigmoid, then two columns), or values.
Head = Literal["probabilities", "softmax", "sigmoid", "values"]


@dataclass(frozen=True)
class OnnxGraph:
    """An exported graph: its file and what the `onnx` flavor's metadata records of it."""

    path: Path
    kind: GraphKind
    input_names: tuple[str, ...]
    output_name: str
    opset: int
    source_flavor: str
    dimension: int | None = None
    max_seq_length: int | None = None

    def to_meta(self) -> dict[str, Any]:
        """The flavor metadata fields (no path; `None` fields left out)."""
        meta = asdict(self)
        del meta["path"]
        meta["input_names"] = list(self.input_names)
        return {key: value for key, value in meta.items() if value is not None}


def export_onnx(
    model: Model,
    folder: Path,
    *,
    opset: int = 17,
    sample: npt.ArrayLike | Sequence[str] | None = None,
) -> OnnxGraph:
    """Write `model` as `folder/model.onnx` (and `folder/tokenizer.json` for an embedding
    model) and describe the graph.

    `sample` is what the exporters trace with: preprocessed feature rows for a tabular model
    (zeros when omitted), texts for an embedding model. `opset` is the default domain's
    version; the torch.export-based exporter (flavor `torch_export`) starts at 18. A flavor
    or an estimator no converter covers is an `InvalidInputError`; nothing is left in `folder`
    after a failure."""
    flavor = model.flavor
    if flavor not in EXPORTABLE:
        raise InvalidInputError(
            f"a {flavor!r} model cannot be exported to ONNX; exportable flavors: "
            f"{', '.join(EXPORTABLE)}"
        )
    require("onnx", "onnx")
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise InvalidInputError(f"opset must be between {MIN_OPSET} and {MAX_OPSET}, not {opset}")
    folder = Path(folder)
    created = not folder.exists()
    folder.mkdir(parents=True, exist_ok=True)
    try:
        return _export(model, folder, opset, sample)
    except BaseException:
        _clean(folder, created)
        raise


def _export(model: Model, folder: Path, opset: int, sample: Any) -> OnnxGraph:
    """Dispatch on the flavor; a converter's failure names the estimator."""
    import onnx

    estimator: Any = model._estimator
    try:
        if model.flavor == "sentence_transformers":
            from fermion.optimize.export_text import export_encoder

            texts = [sample] if isinstance(sample, str) else sample
            return export_encoder(estimator, folder, opset=opset, sample=texts)
        rows = _sample_rows(estimator.n_features, sample)
        proto = _convert(estimator, opset, rows)
        onnx.checker.check_model(proto)
    except FermionError:
        raise
    except Exception as exc:  # converters raise anything from RuntimeError to KeyError
        inner = getattr(estimator, "model", None) or getattr(estimator, "estimator", estimator)
        raise InvalidInputError(
            f"cannot export the {model.flavor} model ({type(inner).__name__}) to ONNX: "
            f"{type(exc).__name__}: {first_line(exc)}"
        ) from exc
    path = folder / MODEL_FILE
    onnx.save(proto, path)
    return OnnxGraph(
        path=path,
        kind="matrix",
        input_names=(FEATURES,),
        output_name=proto.graph.output[0].name,
        opset=default_opset(proto),
        source_flavor=model.flavor,
    )


def _sample_rows(n_features: int, sample: Any) -> npt.NDArray[np.float32]:
    if sample is None:
        return np.zeros((2, n_features), dtype=np.float32)
    rows = np.ascontiguousarray(sample, dtype=np.float32)
    if rows.ndim != 2 or rows.shape[1] != n_features or len(rows) == 0:
        raise InvalidInputError(
            f"the sample must be a matrix of {n_features} feature columns, not shape {rows.shape}"
        )
    return rows


def _clean(folder: Path, created: bool) -> None:
    """Remove what a failed export wrote: the folder it made, or the files it writes."""
    if created:
        shutil.rmtree(folder, ignore_errors=True)
        return
    for name in (MODEL_FILE, TOKENIZER_FILE):
        (folder / name).unlink(missing_ok=True)


def _convert(fitted: FittedModel, opset: int, rows: npt.NDArray[np.float32]) -> Any:
    """The finished graph of a tabular model."""
    if fitted.flavor == "sklearn":
        return _sklearn_graph(fitted, opset)
    if fitted.flavor in ("lightgbm", "xgboost"):
        return _boosting_graph(fitted, opset)
    from fermion.optimize.export_torch import exported_program_graph, mlp_graph

    if fitted.flavor == "torch":
        return mlp_graph(fitted, opset, rows)
    return exported_program_graph(fitted, opset, rows)


# --- graph surgery shared by every tabular converter -------------------------------------


def default_opset(proto: Any) -> int:
    """The version of the default ONNX domain the graph imports (0 when it imports none)."""
    return max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)


def set_opset(proto: Any, opset: int) -> Any:
    """The graph importing the default domain at `opset` at least: converted when it uses an
    older one, given the import when it has none (a tree ensemble alone is all `ai.onnx.ml`)."""
    from onnx import helper, version_converter

    current = default_opset(proto)
    if current == 0:
        proto.opset_import.append(helper.make_opsetid("", opset))
        return proto
    if current < opset:
        return version_converter.convert_version(proto, opset)
    return proto


def add_head(
    proto: Any,
    source: str,
    head: Head,
    *,
    width: int,
    scale: float = 1.0,
    shift: float = 0.0,
) -> None:
    """Make the tensor `source` the graph's only output, in float32, as the contract names it:
    `probabilities` (batch, width) or `values` (batch,) (times `scale` plus `shift`). A tensor
    already called so inside the graph is renamed first (a graph where two nodes write one
    name does not load), and nodes no longer needed are dropped."""
    from onnx import TensorProto, helper, numpy_helper

    graph = proto.graph
    target = VALUES if head == "values" else PROBABILITIES
    taken = _tensor_names(graph)
    if target in taken:
        moved = _fresh(taken, f"{target}_raw")
        _rename(graph, target, moved)
        source = moved if source == target else source
        taken.add(moved)

    def name(hint: str) -> str:
        fresh = _fresh(taken, f"fermion_{hint}")
        taken.add(fresh)
        return fresh

    def const(hint: str, value: Any, dtype: Any) -> str:
        tensor = numpy_helper.from_array(np.asarray(value, dtype=dtype), name(hint))
        graph.initializer.append(tensor)
        return str(tensor.name)

    nodes: list[Any] = []
    types = {value.name: value.type.tensor_type.elem_type for value in graph.output}
    if types.get(source, TensorProto.FLOAT) != TensorProto.FLOAT:  # a double or half network
        cast = name("float")
        nodes.append(helper.make_node("Cast", [source], [cast], to=TensorProto.FLOAT))
        source = cast
    if head == "values":
        flat = name("flat") if (scale, shift) != (1.0, 0.0) else target
        nodes.append(helper.make_node("Reshape", [source, const("shape", [-1], np.int64)], [flat]))
        if flat != target:
            scaled = name("scaled")
            nodes.append(
                helper.make_node("Mul", [flat, const("scale", scale, np.float32)], [scaled])
            )
            nodes.append(
                helper.make_node("Add", [scaled, const("shift", shift, np.float32)], [target])
            )
    elif head == "probabilities":
        nodes.append(helper.make_node("Identity", [source], [target]))
    elif head == "softmax":
        nodes.append(helper.make_node("Softmax", [source], [target], axis=1))
    else:
        positive, column, negative = name("positive"), name("column"), name("negative")
        nodes.append(helper.make_node("Sigmoid", [source], [positive]))
        shape = const("column_shape", [-1, 1], np.int64)
        nodes.append(helper.make_node("Reshape", [positive, shape], [column]))
        nodes.append(helper.make_node("Sub", [const("one", 1.0, np.float32), column], [negative]))
        nodes.append(helper.make_node("Concat", [negative, column], [target], axis=1))
    for node in nodes:
        node.name = name(node.op_type.lower())
    graph.node.extend(nodes)
    dims: list[str | int] = ["batch"] if head == "values" else ["batch", width]
    del graph.output[:]
    graph.output.append(helper.make_tensor_value_info(target, TensorProto.FLOAT, dims))
    _prune(graph)


def _tensor_names(graph: Any) -> set[str]:
    names = {value.name for value in (*graph.input, *graph.output, *graph.value_info)}
    names.update(tensor.name for tensor in graph.initializer)
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
    return names


def _fresh(taken: set[str], base: str) -> str:
    candidate, number = base, 0
    while candidate in taken:
        number += 1
        candidate = f"{base}_{number}"
    return candidate


def _rename(graph: Any, old: str, new: str) -> None:
    for value in (*graph.input, *graph.output, *graph.value_info, *graph.initializer):
        if value.name == old:
            value.name = new
    for node in graph.node:
        for names in (node.input, node.output):
            for index, value in enumerate(names):
                if value == old:
                    names[index] = new


def _prune(graph: Any) -> None:
    """Drop the nodes and initializers the outputs do not need (a converter's label branch)."""
    from onnx import AttributeProto

    needed = {value.name for value in graph.output}
    kept: list[Any] = []
    for node in reversed(graph.node):
        if not needed.intersection(node.output):
            continue
        kept.append(node)
        needed.update(node.input)
        for attribute in node.attribute:  # a subgraph may read outer tensors by name
            subgraphs = [attribute.g] if attribute.type == AttributeProto.GRAPH else []
            if attribute.type == AttributeProto.GRAPHS:
                subgraphs = list(attribute.graphs)
            for subgraph in subgraphs:
                needed.update(_tensor_names(subgraph))
    kept.reverse()
    del graph.node[:]
    graph.node.extend(kept)
    initializers = [tensor for tensor in graph.initializer if tensor.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(initializers)


# --- scikit-learn -------------------------------------------------------------------------


def _sklearn_graph(fitted: FittedModel, opset: int) -> Any:
    estimator = fitted.estimator
    kind = type(estimator).__name__
    classifier = fitted.task != "regression"
    if kind.startswith(("RandomForest", "ExtraTrees", "DecisionTree")):
        from fermion.optimize.export_trees import forest_graph

        return forest_graph(fitted, opset)
    if kind.startswith("HistGradientBoosting"):
        from fermion.optimize.export_trees import hist_graph

        return hist_graph(fitted, opset)
    require("skl2onnx", "onnx")
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    if classifier:
        _class_codes(estimator, fitted.n_classes)
    proto = to_onnx(
        estimator,
        initial_types=[(FEATURES, FloatTensorType([None, fitted.n_features]))],
        options={id(estimator): {"zipmap": False}} if classifier else None,
        target_opset={"": opset, "ai.onnx.ml": 3},
    )
    return _finish_converted(proto, fitted, opset)


def _class_codes(estimator: Any, n_classes: int) -> npt.NDArray[np.int64]:
    """The estimator's classes as Fermion's class codes, all of them present."""
    codes = np.asarray(estimator.classes_).astype(np.int64)
    if codes.tolist() != list(range(n_classes)):
        raise InvalidInputError(
            f"the estimator knows the classes {codes.tolist()}, not all of 0..{n_classes - 1}"
        )
    return codes


def _finish_converted(proto: Any, fitted: FittedModel, opset: int) -> Any:
    """A converter's graph (outputs `label` and `probabilities`, or one of values) finished."""
    proto = set_opset(proto, opset)
    outputs = [value.name for value in proto.graph.output]
    if fitted.task == "regression":
        add_head(proto, outputs[0], "values", width=1)
    elif PROBABILITIES in outputs:
        add_head(proto, PROBABILITIES, "probabilities", width=fitted.n_classes)
    else:
        raise InvalidInputError(f"the converted graph gives no probabilities (only {outputs})")
    return proto


# --- LightGBM and XGBoost -----------------------------------------------------------------


def _boosting_graph(fitted: FittedModel, opset: int) -> Any:
    """onnxmltools' graph of the Booster, with as many rounds as the model predicts with."""
    require("onnxmltools", "onnx")
    from onnxmltools import convert_lightgbm, convert_xgboost
    from onnxmltools.convert.common.data_types import FloatTensorType

    inputs = [(FEATURES, FloatTensorType([None, fitted.n_features]))]
    target = min(opset, _ONNXMLTOOLS_MAX_OPSET)
    booster = fitted.estimator
    if fitted.flavor == "lightgbm":
        import lightgbm

        # a booster straight from training holds the rounds after its best one too
        text = booster.model_to_string(num_iteration=fitted.best_step)
        cut = lightgbm.Booster(model_str=text)
        proto = convert_lightgbm(cut, initial_types=inputs, target_opset=target, zipmap=False)
    else:
        proto = convert_xgboost(booster, initial_types=inputs, target_opset=target)
    return _finish_converted(proto, fitted, opset)
