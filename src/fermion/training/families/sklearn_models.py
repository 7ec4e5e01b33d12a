"""Scikit-learn families: logistic and linear regression, random forest, histogram boosting."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple

import numpy as np
import numpy.typing as npt

from fermion.errors import InvalidInputError
from fermion.training.families.base import (
    ALL_TASKS,
    CLASSIFICATION,
    FitInputs,
    FittedModel,
    Floats,
    Matrix,
    ModelFamily,
    Preprocessing,
    Task,
    loss_of,
)
from fermion.training.families.params import (
    ParamSpec,
    get_float,
    get_int,
    get_opt_int,
    get_opt_str,
    get_str,
)

# HistGradientBoosting refuses a categorical column with more categories than bins
_HIST_MAX_CATEGORIES = 255


def class_columns(proba: npt.NDArray[Any], classes: npt.ArrayLike, n_classes: int) -> Floats:
    """Probabilities as (n, n_classes), with zero columns for classes absent when fitting."""
    proba = np.asarray(proba, dtype=np.float64)
    codes = np.asarray(classes).astype(np.int64)
    if proba.shape[1] == n_classes:
        return proba
    full = np.zeros((len(proba), n_classes), dtype=np.float64)
    full[:, codes] = proba
    return full


class LinearWeights(NamedTuple):
    """What a fitted linear estimator predicts with: enough to serve it without scikit-learn."""

    coef: Floats  # (n_outputs, n_features): one row of log-odds weights for binary
    intercept: Floats  # (n_outputs,)
    classes: npt.NDArray[np.int64] | None  # the class codes the estimator saw; None: regression

    @classmethod
    def of(cls, estimator: Any) -> LinearWeights | None:
        if not _is_linear(estimator):
            return None
        # in the estimator's own precision (float32 when fitted on float32), as it predicts
        coef = np.atleast_2d(np.asarray(estimator.coef_))
        intercept = np.atleast_1d(np.asarray(estimator.intercept_))
        classes = getattr(estimator, "classes_", None)
        codes = None if classes is None else np.asarray(classes).astype(np.int64)
        return cls(coef, intercept, codes)


class SklearnModel(FittedModel):
    """A fitted scikit-learn estimator; the "sklearn" flavor saves it with skops.

    A linear model may be built from its `LinearWeights` alone, with `load_estimator` giving
    the scikit-learn object on first use of `estimator`: predicting needs only the weights,
    and a server then starts without importing scikit-learn (about a second)."""

    flavor: ClassVar[str] = "sklearn"
    _estimator: Any

    def __init__(
        self,
        estimator: Any,
        *,
        weights: LinearWeights | None = None,
        load_estimator: Callable[[], Any] | None = None,
        **fields: Any,
    ) -> None:
        if estimator is None and (weights is None or load_estimator is None):
            raise InvalidInputError("SklearnModel needs an estimator, or weights and a loader")
        self._loader = load_estimator
        super().__init__(estimator, **fields)
        self.weights = weights if weights is not None else LinearWeights.of(estimator)

    @property
    def estimator(self) -> Any:
        if self._estimator is None:  # two threads may both load it: the same object either way
            assert self._loader is not None
            self._estimator = self._loader()
        return self._estimator

    @estimator.setter
    def estimator(self, value: Any) -> None:
        self._estimator = value

    def _predict_raw(self, X: Matrix) -> Floats:
        if self.weights is not None:
            return self._predict_linear(X, self.weights)
        if self.task == "regression":
            return np.asarray(self.estimator.predict(X), dtype=np.float64)
        proba = self.estimator.predict_proba(X)
        return class_columns(proba, self.estimator.classes_, self.n_classes)

    def _predict_linear(self, X: Matrix, weights: LinearWeights) -> Floats:
        """What the linear estimator's own predict computes, without its per-call checks
        (about 0.1 ms, most of a one-row call in a server)."""
        scores = X @ weights.coef.T + weights.intercept
        if self.task == "regression":
            return np.asarray(scores, dtype=np.float64).reshape(len(X))
        if scores.shape[1] == 1:  # binary: one column of log-odds
            proba = np.empty((len(X), 2), dtype=scores.dtype)
            proba[:, 1] = _expit(scores.reshape(len(X)))
            np.subtract(1, proba[:, 1], out=proba[:, 0])
        else:
            proba = _softmax(scores)
        assert weights.classes is not None
        return class_columns(proba, weights.classes, self.n_classes)


def _expit(scores: Floats) -> Floats:
    """The logistic function, as scipy's `expit` computes it; scores below -700 (where exp
    would overflow) give about 1e-304 instead of 0."""
    result: Floats = 1.0 / (1.0 + np.exp(-np.maximum(scores, -700.0)))
    return result


def _softmax(scores: Floats) -> Floats:
    """Row-wise softmax in place, in the order of operations scikit-learn's `softmax` uses."""
    scores -= scores.max(axis=1).reshape(-1, 1)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=1).reshape(-1, 1)
    return scores


def _is_linear(estimator: Any) -> bool:
    """LogisticRegression and Ridge: the two linear estimators the families fit."""
    return type(estimator).__name__ in ("LogisticRegression", "Ridge") and type(
        estimator
    ).__module__.startswith("sklearn.linear_model")


class SklearnFamily(ModelFamily):
    """A family whose estimator fits in one call and has no steps to report."""

    flavor: ClassVar[str] = "sklearn"
    library: ClassVar[str] = "sklearn"

    @abstractmethod
    def _estimator(self, inputs: FitInputs, params: Mapping[str, object]) -> Any:
        """An unfitted estimator configured from the coerced params."""

    def _fit(self, inputs: FitInputs, params: Mapping[str, object]) -> FittedModel:
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # no stubs

        estimator = self._estimator(inputs, params)
        with threadpool_limits(limits=inputs.threads):
            estimator.fit(inputs.X, inputs.y)
        model = SklearnModel(
            estimator,
            task=inputs.task,
            n_classes=inputs.n_classes,
            n_features=inputs.n_features,
        )
        self._report(model, inputs)
        return model

    def _report(self, model: SklearnModel, inputs: FitInputs) -> None:
        metrics: dict[str, float] = {}
        if inputs.valid is not None:
            metrics["valid_loss"] = model.loss(*inputs.valid)
        if inputs.on_progress is not None:
            inputs.on_progress(1, 1, metrics)


class LogisticFamily(SklearnFamily):
    name: ClassVar[str] = "logistic"
    preprocessing: ClassVar[Preprocessing] = "linear"
    tasks: ClassVar[frozenset[Task]] = CLASSIFICATION

    def params(self, task: Task) -> list[ParamSpec]:
        return [
            ParamSpec("C", float, 1.0, "inverse regularisation strength", gt=0),
            ParamSpec("max_iter", int, 1000, "solver iterations", ge=1),
            ParamSpec(
                "class_weight",
                str,
                None,
                "'balanced' reweights rare classes",
                nullable=True,
                choices=("balanced",),
            ),
        ]

    def _estimator(self, inputs: FitInputs, params: Mapping[str, object]) -> Any:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(
            C=get_float(params, "C"),
            max_iter=get_int(params, "max_iter"),
            class_weight=get_opt_str(params, "class_weight"),
            random_state=inputs.seed,
        )


class LinearFamily(SklearnFamily):
    name: ClassVar[str] = "linear"
    preprocessing: ClassVar[Preprocessing] = "linear"
    tasks: ClassVar[frozenset[Task]] = frozenset({"regression"})

    def params(self, task: Task) -> list[ParamSpec]:
        return [ParamSpec("alpha", float, 1.0, "L2 penalty (ridge)", ge=0)]

    def _estimator(self, inputs: FitInputs, params: Mapping[str, object]) -> Any:
        from sklearn.linear_model import Ridge

        return Ridge(alpha=get_float(params, "alpha"), random_state=inputs.seed)


class RandomForestFamily(SklearnFamily):
    name: ClassVar[str] = "random_forest"
    preprocessing: ClassVar[Preprocessing] = "trees"  # scikit-learn forests split on NaN
    tasks: ClassVar[frozenset[Task]] = ALL_TASKS

    def params(self, task: Task) -> list[ParamSpec]:
        return [
            ParamSpec("n_estimators", int, 200, "number of trees", ge=1),
            ParamSpec("max_depth", int, None, "depth limit, None for none", nullable=True, ge=1),
            ParamSpec("min_samples_leaf", int, 1, "rows per leaf", ge=1),
            ParamSpec(
                "max_features",
                str,
                "all" if task == "regression" else "sqrt",
                "features tried per split",
                choices=("sqrt", "log2", "all"),
            ),
        ]

    def _estimator(self, inputs: FitInputs, params: Mapping[str, object]) -> Any:
        from sklearn.ensemble import RandomForestClassifier, RandomForestRegressor

        cls = RandomForestRegressor if inputs.task == "regression" else RandomForestClassifier
        max_features = get_str(params, "max_features")
        return cls(
            n_estimators=get_int(params, "n_estimators"),
            max_depth=get_opt_int(params, "max_depth"),
            min_samples_leaf=get_int(params, "min_samples_leaf"),
            max_features=1.0 if max_features == "all" else max_features,
            n_jobs=inputs.threads,
            random_state=inputs.seed,
        )


class HistGradientBoostingFamily(SklearnFamily):
    name: ClassVar[str] = "hist_gb"
    preprocessing: ClassVar[Preprocessing] = "trees"
    tasks: ClassVar[frozenset[Task]] = ALL_TASKS

    def params(self, task: Task) -> list[ParamSpec]:
        return [
            ParamSpec("learning_rate", float, 0.1, "shrinkage per iteration", gt=0),
            ParamSpec("max_iter", int, 200, "boosting iterations", ge=1),
            ParamSpec("max_leaf_nodes", int, 31, "leaves per tree", ge=2),
            ParamSpec("max_depth", int, None, "depth limit, None for none", nullable=True, ge=1),
            ParamSpec("min_samples_leaf", int, 20, "rows per leaf", ge=1),
            ParamSpec("l2_regularization", float, 0.0, "L2 penalty on leaf values", ge=0),
        ]

    def _estimator(self, inputs: FitInputs, params: Mapping[str, object]) -> Any:
        from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

        regression = inputs.task == "regression"
        cls = HistGradientBoostingRegressor if regression else HistGradientBoostingClassifier
        # a column with too many categories is split on as ordinal codes instead of refused
        categorical = [
            i
            for i in inputs.categorical_features
            if len(np.unique(inputs.X[:, i][~np.isnan(inputs.X[:, i])])) <= _HIST_MAX_CATEGORIES
        ]
        return cls(
            learning_rate=get_float(params, "learning_rate"),
            max_iter=get_int(params, "max_iter"),
            max_leaf_nodes=get_int(params, "max_leaf_nodes"),
            max_depth=get_opt_int(params, "max_depth"),
            min_samples_leaf=get_int(params, "min_samples_leaf"),
            l2_regularization=get_float(params, "l2_regularization"),
            categorical_features=categorical or None,
            early_stopping=False,
            random_state=inputs.seed,
        )

    def _report(self, model: SklearnModel, inputs: FitInputs) -> None:
        estimator = model.estimator
        model.best_step = int(estimator.n_iter_)
        metrics: dict[str, float] = {}
        if inputs.valid is not None:
            X_valid, y_valid = inputs.valid
            if inputs.task == "regression":
                staged = (np.asarray(p) for p in estimator.staged_predict(X_valid))
            else:
                staged = (
                    class_columns(p, estimator.classes_, inputs.n_classes)
                    for p in estimator.staged_predict_proba(X_valid)
                )
            losses = [loss_of(inputs.task, raw, y_valid) for raw in staged]
            model.history = {"valid_loss": losses}
            metrics["valid_loss"] = losses[-1]
        if inputs.on_progress is not None:
            inputs.on_progress(model.best_step, model.best_step, metrics)
