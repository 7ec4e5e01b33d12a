"""ONNX export of a registered model: `export_onnx` writes `model.onnx` (and an embedding
model's `tokenizer.json`) into a folder and describes the graph as an `OnnxGraph`.

A tabular graph starts where Fermion's preprocessing ends: it takes the float32 matrix
`features` (batch, n_features) and gives `probabilities` (batch, n_classes) or `values`
(batch,), what the source `FittedModel`'s `predict_proba` and `predict` give. Each converter
builds a raw graph; `add_head` then names its one output and adds what the library computes
after the trees or the network (sigmoid, softmax, target scaling). The source model is never
changed. Scikit-learn's forests and histogram boosting are converted here, tree by tree
(skl2onnx ignores their learned missing-value directions and cannot convert categorical
splits); any other scikit-learn estimator goes through skl2onnx, LightGBM and XGBoost through
onnxmltools.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
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
        return _forest_graph(fitted, opset)
    if kind.startswith("HistGradientBoosting"):
        return _hist_graph(fitted, opset)
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


def _float32_floor(values: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """The largest float32 at most each float64 threshold: `x <= t` then holds for a float32
    `x` exactly when it holds against the float64 threshold scikit-learn compares with."""
    rounded = values.astype(np.float32)
    above = rounded.astype(np.float64) > values
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded


class _Ensemble:
    """The attributes of one `ai.onnx.ml` TreeEnsembleRegressor, added tree by tree.

    A categorical split (histogram boosting's) becomes a chain of equality tests on the raw
    category values: the left categories go left; when missing values go left, the other
    known ones go right and anything else (NaN, unseen) left; otherwise all the rest right."""

    _NODES = ("treeids", "nodeids", "featureids", "modes", "values", "truenodeids",
              "falsenodeids", "missing_value_tracks_true")  # fmt: skip
    _TARGETS = ("treeids", "nodeids", "ids", "weights")

    def __init__(self) -> None:
        self.nodes: dict[str, list[npt.NDArray[Any]]] = defaultdict(list)
        self.targets: dict[str, list[Any]] = defaultdict(list)
        self.trees = 0

    def add(
        self,
        *,
        feature: npt.NDArray[Any],
        threshold: npt.NDArray[Any],
        children: tuple[npt.NDArray[Any], npt.NDArray[Any]],
        missing_left: npt.NDArray[Any],
        leaf: npt.NDArray[Any],
        values: npt.NDArray[Any],
        targets: Sequence[int],
        categories: dict[int, tuple[list[float], list[float]]] | None = None,
    ) -> None:
        """One tree; `values[node]` holds a leaf's weights for `targets`, and `categories`
        maps a categorical split to its (left, other known) raw category values."""
        leaf = np.asarray(leaf, dtype=bool)
        count, branch = len(leaf), ~leaf
        left, right = (np.where(branch, side, 0).astype(np.int64) for side in children)
        limits = np.where(branch, _float32_floor(np.asarray(threshold, dtype=np.float64)), 0)
        columns: list[npt.NDArray[Any]] = [
            np.full(count, self.trees), np.arange(count), np.where(branch, feature, 0),
            np.where(branch, "BRANCH_LEQ", "LEAF").astype(object), limits.astype(np.float64),
            left, right, np.where(branch, missing_left, 0).astype(np.int64),
        ]  # fmt: skip
        links: list[list[Any]] = []  # the categorical chains' tests after their first
        for node, (go_left, others) in (categories or {}).items():
            missing = bool(missing_left[node])
            chain = [(value, left[node]) for value in go_left]
            chain += [(value, right[node]) for value in others] if missing else []
            # the chain's first test replaces the split; what matched nothing goes on
            ids = [node, *range(count + len(links), count + len(links) + len(chain) - 1)]
            ids.append(left[node] if missing else right[node])
            tests = [
                [self.trees, ids[i], feature[node], "BRANCH_EQ", value, child, ids[i + 1], 0]
                for i, (value, child) in enumerate(chain)
            ]
            for column, item in zip(columns, tests[0], strict=True):
                column[node] = item
            links.extend(tests[1:])
        for key, column, *items in zip(self._NODES, columns, *links, strict=True):
            self.nodes[key].append(np.concatenate([column, np.asarray(items, column.dtype)]))
        leaves = np.flatnonzero(leaf)
        weights = np.asarray(values, dtype=np.float64)[leaves].reshape(-1)
        self.targets["treeids"].extend([self.trees] * weights.size)
        self.targets["nodeids"].extend(np.repeat(leaves, len(targets)).tolist())
        self.targets["ids"].extend(np.tile(targets, len(leaves)).tolist())
        self.targets["weights"].extend(weights.tolist())
        self.trees += 1

    def graph(self, n_features: int, width: int, aggregate: str, base: Sequence[float],
              opset: int) -> Any:  # fmt: skip
        """The model: `features` in, the ensemble's raw scores `raw` (batch, width) out."""
        from onnx import TensorProto, helper

        attributes = {
            f"nodes_{key}": np.concatenate(self.nodes[key]).tolist() for key in self._NODES
        }
        for key in self._TARGETS:
            attributes[f"target_{key}"] = np.asarray(self.targets[key]).tolist()
        node = helper.make_node(
            "TreeEnsembleRegressor", [FEATURES], ["raw"], domain="ai.onnx.ml", name="trees",
            n_targets=width, aggregate_function=aggregate, base_values=list(base), **attributes,
        )  # fmt: skip
        graph = helper.make_graph(
            [node],
            "fermion",
            [helper.make_tensor_value_info(FEATURES, TensorProto.FLOAT, ["batch", n_features])],
            [helper.make_tensor_value_info("raw", TensorProto.FLOAT, ["batch", width])],
        )
        imports = [helper.make_opsetid("", opset), helper.make_opsetid("ai.onnx.ml", 3)]
        version = helper.find_min_ir_version_for(imports)
        return helper.make_model(graph, opset_imports=imports, ir_version=version)


def _forest_graph(fitted: FittedModel, opset: int) -> Any:
    """A forest or one tree: per-tree class fractions or values, averaged."""
    estimator = fitted.estimator
    classifier = fitted.task != "regression"
    targets = _class_codes(estimator, fitted.n_classes).tolist() if classifier else [0]
    ensemble = _Ensemble()
    for member in getattr(estimator, "estimators_", [estimator]):
        tree = member.tree_
        if tree.value.shape[1] != 1:
            raise InvalidInputError("multi-output trees cannot be exported")
        values = tree.value[:, 0, :]
        if classifier:
            values = values / np.maximum(values.sum(axis=1, keepdims=True), 1e-300)
        missing = getattr(tree, "missing_go_to_left", np.zeros(tree.node_count, dtype=np.uint8))
        ensemble.add(
            feature=tree.feature, threshold=tree.threshold, missing_left=missing,
            children=(tree.children_left, tree.children_right), leaf=tree.children_left == -1,
            values=values, targets=targets,
        )  # fmt: skip
    width = len(targets)
    proto = ensemble.graph(fitted.n_features, width, "AVERAGE", [0.0] * width, opset)
    add_head(proto, "raw", "probabilities" if classifier else "values", width=width)
    return proto


def _hist_graph(fitted: FittedModel, opset: int) -> Any:
    """Histogram boosting: raw scores summed over the iterations from the baseline, then the
    link function of its loss. A categorical column reaches the trees as an ordinal code
    (first, before the numeric columns); its splits are written on the raw values."""
    estimator = fitted.estimator
    if estimator.loss not in ("squared_error", "log_loss"):
        raise InvalidInputError(
            f"HistGradientBoosting with loss {estimator.loss!r} cannot be exported"
        )
    order = np.arange(fitted.n_features)
    encoded: list[npt.NDArray[Any]] = []
    preprocessor = getattr(estimator, "_preprocessor", None)
    if preprocessor is not None:
        is_categorical = np.asarray(estimator.is_categorical_, dtype=bool)
        order = np.concatenate([np.flatnonzero(is_categorical), np.flatnonzero(~is_categorical)])
        encoded = list(preprocessor.named_transformers_["encoder"].categories_)
    known, known_index = estimator._bin_mapper.make_known_categories_bitsets()
    baseline = np.asarray(estimator._baseline_prediction, dtype=np.float64).reshape(-1)
    ensemble = _Ensemble()
    for iteration in estimator._predictors:
        for target, predictor in enumerate(iteration):
            nodes = predictor.nodes
            categories: dict[int, tuple[list[float], list[float]]] = {}
            for node in np.flatnonzero(nodes["is_categorical"] & (nodes["is_leaf"] == 0)):
                column = int(nodes["feature_idx"][node])
                raw = encoded[column]  # the category value of each code
                lefts = _bits(predictor.raw_left_cat_bitsets[nodes["bitset_idx"][node]], raw)
                others = _bits(known[known_index[column]], raw) & ~lefts
                categories[int(node)] = (raw[lefts].tolist(), raw[others].tolist())
            ensemble.add(
                feature=order[nodes["feature_idx"]], threshold=nodes["num_threshold"],
                children=(nodes["left"], nodes["right"]), missing_left=nodes["missing_go_to_left"],
                leaf=nodes["is_leaf"], values=nodes["value"].reshape(-1, 1), targets=[target],
                categories=categories,
            )  # fmt: skip
    proto = ensemble.graph(fitted.n_features, len(baseline), "SUM", baseline.tolist(), opset)
    head: Head = "softmax" if fitted.task == "multiclass" else "sigmoid"
    if fitted.task == "regression":
        head = "values"
    add_head(proto, "raw", head, width=max(fitted.n_classes, 1))
    return proto


def _bits(bitset: npt.NDArray[Any], raw: npt.NDArray[Any]) -> npt.NDArray[np.bool_]:
    """Which codes of the categories `raw` a scikit-learn bitset (32-bit words) holds; a
    missing-value category is never one."""
    codes = np.arange(len(raw))
    words = np.asarray(bitset, dtype=np.uint32)[codes // 32]
    held = ((words >> (codes % 32).astype(np.uint32)) & 1).astype(bool)
    result: npt.NDArray[np.bool_] = held & ~np.isnan(np.asarray(raw, dtype=np.float64))
    return result


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
