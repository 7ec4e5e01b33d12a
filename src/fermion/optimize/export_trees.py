"""Scikit-learn's forests and histogram boosting as one ONNX TreeEnsembleRegressor each.

skl2onnx ignores a forest's learned missing-value directions and cannot convert histogram
boosting's categorical splits (and crashes on it with recent scikit-learn), so these are built
here, node by node, from the fitted trees' arrays. This reads scikit-learn internals
(`_predictors`, `_bin_mapper`, `_preprocessor`, `_baseline_prediction`); it is tested against
the scikit-learn version the package installs.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from fermion.errors import InvalidInputError
from fermion.optimize.export import FEATURES, Head, _class_codes, add_head

if TYPE_CHECKING:
    from fermion.training.families.base import FittedModel


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


def forest_graph(fitted: FittedModel, opset: int) -> Any:
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


def hist_graph(fitted: FittedModel, opset: int) -> Any:
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
