"""The model-family seam: one class per family, its params, and the fitted model it returns.

Contract of a family: `fit` takes the float32 matrix the preprocessor built (NaN allowed only for
"trees" preprocessing), targets as int64 class codes 0..k-1 or float64 values, and returns a
`FittedModel` that the registry flavor named by `family.flavor` saves and loads. The loss it
reports per step is the log loss for classification and the RMSE for regression, on the
validation split when one is given, else on the training split.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, TypedDict

import numpy as np
import numpy.typing as npt

from fermion.errors import InvalidInputError, require
from fermion.training.families.params import ParamSpec

Task = Literal["binary", "multiclass", "regression"]
Preprocessing = Literal["trees", "linear"]
ProgressCallback = Callable[[int, int, dict[str, float]], None]
StopCallback = Callable[[int, float], bool]
Floats = npt.NDArray[np.float64]
Matrix = npt.NDArray[np.float32]

CLASSIFICATION: frozenset[Task] = frozenset({"binary", "multiclass"})
ALL_TASKS: frozenset[Task] = frozenset({"binary", "multiclass", "regression"})
THREADS = 2  # tuning trials run side by side, so one fit never takes more than two cores


class FittedFields(TypedDict):
    """What every fitted model records besides its estimator; flavors store it as metadata."""

    task: Task
    n_classes: int
    n_features: int
    best_step: int | None


def fields_from_meta(meta: Mapping[str, Any]) -> FittedFields:
    """Read the common fields back from a flavor's metadata, refusing malformed ones."""
    task, n_classes = meta.get("task"), meta.get("n_classes")
    n_features, best_step = meta.get("n_features"), meta.get("best_step")
    if task not in ALL_TASKS:
        raise InvalidInputError(f"model metadata has an unknown task {task!r}")
    if not isinstance(n_classes, int) or not isinstance(n_features, int) or n_features < 1:
        raise InvalidInputError("model metadata lacks integer 'n_classes' and 'n_features'")
    if best_step is not None and not isinstance(best_step, int):
        raise InvalidInputError("model metadata has a non-integer 'best_step'")
    return FittedFields(task=task, n_classes=n_classes, n_features=n_features, best_step=best_step)


class FittedModel(ABC):
    """A trained estimator with the facts needed to predict from it and to save it.

    `predict` returns float64 values (regression) or int64 class codes; `predict_proba` returns
    an (n, n_classes) float64 matrix for classification (two columns for binary). `best_step`
    is the number of boosting rounds or epochs whose model predicts (None without steps).
    """

    flavor: ClassVar[str]

    def __init__(
        self,
        estimator: Any,
        *,
        task: Task,
        n_classes: int,
        n_features: int,
        best_step: int | None = None,
        history: dict[str, list[float]] | None = None,
    ) -> None:
        self.estimator = estimator
        self.task: Task = task
        self.n_classes = n_classes if task in CLASSIFICATION else 0
        self.n_features = n_features
        self.best_step = best_step
        self.history: dict[str, list[float]] = history if history is not None else {}
        self.predict_threads = 0  # 0: the library's default (usually every core)

    def limit_threads(self, threads: int) -> None:
        """Predict with at most `threads` threads: a server runs many predictions side by
        side, where a library's own thread pool per call only adds contention."""
        self.predict_threads = max(1, threads)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.task} best_step={self.best_step}>"

    def fields(self) -> FittedFields:
        return FittedFields(
            task=self.task,
            n_classes=self.n_classes,
            n_features=self.n_features,
            best_step=self.best_step,
        )

    def predict(self, X: npt.ArrayLike) -> npt.NDArray[Any]:
        raw = self._predict_raw(self._matrix(X))
        if self.task == "regression":
            return raw
        codes: npt.NDArray[np.int64] = np.argmax(raw, axis=1).astype(np.int64)
        return codes

    def predict_proba(self, X: npt.ArrayLike) -> Floats:
        if self.task == "regression":
            raise InvalidInputError("predict_proba needs a classification model")
        return self._predict_raw(self._matrix(X))

    def loss(self, X: npt.ArrayLike, y: npt.ArrayLike) -> float:
        """Log loss (classification) or RMSE (regression) on the given rows."""
        target = np.asarray(y)
        if self.task in CLASSIFICATION:
            target = target.astype(np.int64)
        return loss_of(self.task, self._predict_raw(self._matrix(X)), target)

    @abstractmethod
    def _predict_raw(self, X: Matrix) -> Floats:
        """Regression values of shape (n,), or class probabilities of shape (n, n_classes)."""

    def _matrix(self, X: npt.ArrayLike) -> Matrix:
        matrix = np.ascontiguousarray(X, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[1] != self.n_features:
            raise InvalidInputError(
                f"expected a matrix of {self.n_features} feature columns, got shape {matrix.shape}"
            )
        return matrix


@dataclass(frozen=True)
class FitInputs:
    """Validated inputs of one fit, as families receive them."""

    X: Matrix
    y: npt.NDArray[Any]
    task: Task
    n_classes: int
    valid: tuple[Matrix, npt.NDArray[Any]] | None
    categorical_features: tuple[int, ...]
    seed: int
    on_progress: ProgressCallback | None
    should_stop: StopCallback | None
    threads: int = THREADS

    @property
    def n_features(self) -> int:
        return int(self.X.shape[1])

    @property
    def loss_name(self) -> str:
        return "valid_loss" if self.valid is not None else "train_loss"


class ModelFamily(ABC):
    """A kind of model: its params, which tasks and preprocessing it takes, how it fits."""

    name: ClassVar[str]
    flavor: ClassVar[str]
    extra: ClassVar[str | None] = None
    library: ClassVar[str]
    preprocessing: ClassVar[Preprocessing]
    tasks: ClassVar[frozenset[Task]]

    @abstractmethod
    def params(self, task: Task) -> list[ParamSpec]:
        """Every accepted param with its default for `task`."""

    def default_params(self, task: Task) -> dict[str, object]:
        return {spec.name: spec.default for spec in self.params(self._check_task(task))}

    def coerce_params(self, task: Task, raw: Mapping[str, object]) -> dict[str, object]:
        """The defaults overridden by `raw`, each value parsed and checked."""
        specs = {spec.name: spec for spec in self.params(self._check_task(task))}
        unknown = sorted(set(raw) - set(specs))
        if unknown:
            raise InvalidInputError(
                f"unknown param '{unknown[0]}' for model family '{self.name}'; "
                f"accepted: {', '.join(sorted(specs))}"
            )
        return {
            name: spec.coerce(raw[name]) if name in raw else spec.default
            for name, spec in specs.items()
        }

    def check_available(self) -> None:
        if self.extra is not None:
            require(self.library, self.extra)

    def fit(
        self,
        X: npt.ArrayLike,
        y: npt.ArrayLike,
        *,
        task: Task,
        n_classes: int,
        params: Mapping[str, object],
        valid: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
        categorical_features: Sequence[int] = (),
        seed: int = 0,
        on_progress: ProgressCallback | None = None,
        should_stop: StopCallback | None = None,
        threads: int | None = None,
    ) -> FittedModel:
        """Train on (X, y); `params` may be raw (strings) or partial, defaults fill the rest.

        `on_progress(step, total_steps, {"valid_loss": ...})` is called per boosting round or
        epoch (once at the end for models without steps); `should_stop(step, loss)` returning
        True ends training early and is never called for models without steps. `threads`
        caps the cores one fit uses (default 2; parallel tuning workers pass 1).
        """
        self.check_available()
        coerced = self.coerce_params(task, params)
        if task in CLASSIFICATION and (n_classes < 2 or (task == "binary") != (n_classes == 2)):
            raise InvalidInputError(f"task '{task}' cannot have n_classes={n_classes}")
        X_train, y_train = self._checked(X, y, task, n_classes, "training")
        checked_valid = None
        if valid is not None:
            checked_valid = self._checked(valid[0], valid[1], task, n_classes, "validation")
            if checked_valid[0].shape[1] != X_train.shape[1]:
                raise InvalidInputError(
                    "the validation split has a different number of feature columns"
                )
        cats = tuple(int(i) for i in categorical_features)
        if any(not 0 <= i < X_train.shape[1] for i in cats):
            raise InvalidInputError("categorical_features must be column indices of X")
        inputs = FitInputs(
            X=X_train,
            y=y_train,
            task=task,
            n_classes=n_classes,
            valid=checked_valid,
            categorical_features=cats,
            seed=int(seed),
            on_progress=on_progress,
            should_stop=should_stop,
            threads=THREADS if threads is None else max(1, int(threads)),
        )
        return self._fit(inputs, coerced)

    @abstractmethod
    def _fit(self, inputs: FitInputs, params: Mapping[str, object]) -> FittedModel:
        """Train on validated inputs with coerced params."""

    def _check_task(self, task: Task) -> Task:
        if task not in self.tasks:
            supported = ", ".join(sorted(self.tasks))
            raise InvalidInputError(
                f"model family '{self.name}' does not support task '{task}'; it supports: "
                f"{supported}"
            )
        return task

    def _checked(
        self, X: npt.ArrayLike, y: npt.ArrayLike, task: Task, n_classes: int, split: str
    ) -> tuple[Matrix, npt.NDArray[Any]]:
        matrix = np.ascontiguousarray(X, dtype=np.float32)
        target = np.asarray(y, dtype=np.float64)
        if matrix.ndim != 2 or target.ndim != 1 or len(matrix) != len(target):
            raise InvalidInputError(f"the {split} split needs a 2-D X and a 1-D y of equal length")
        if len(matrix) == 0:
            raise InvalidInputError(f"the {split} split is empty")
        if matrix.shape[1] == 0:
            raise InvalidInputError(f"the {split} split has no feature columns")
        if np.isnan(target).any():
            raise InvalidInputError(f"the target of the {split} split has missing values")
        if not np.isfinite(target).all():
            raise InvalidInputError(f"the target of the {split} split has infinite values")
        if self.preprocessing == "linear" and not np.isfinite(matrix).all():
            raise InvalidInputError(
                f"model family '{self.name}' needs X without missing or infinite values "
                "(linear preprocessing)"
            )
        if task == "regression":
            return matrix, target
        if (target != np.round(target)).any() or target.min() < 0 or target.max() >= n_classes:
            raise InvalidInputError(f"class codes of the {split} split must be 0..{n_classes - 1}")
        return matrix, target.astype(np.int64)


class StepLog:
    """Per-step losses of one fit: history, best step, progress and stop hooks, patience."""

    def __init__(self, inputs: FitInputs, total: int, patience: int | None) -> None:
        self.key = inputs.loss_name
        self.total = total
        # early stopping watches the validation loss only; a training loss keeps falling
        self.patience = patience if inputs.valid is not None else None
        self.losses: list[float] = []
        self.best_step = 0
        self._best = math.inf
        self._on_progress = inputs.on_progress
        self._should_stop = inputs.should_stop

    def record(self, loss: float) -> bool:
        """Note the loss of the next step; True when training should stop after it."""
        self.losses.append(loss)
        step = len(self.losses)
        if loss < self._best:
            self._best, self.best_step = loss, step
        if self._on_progress is not None:
            self._on_progress(step, self.total, {self.key: loss})
        if self._should_stop is not None and self._should_stop(step, loss):
            return True
        return self.patience is not None and step - max(self.best_step, 1) >= self.patience

    @property
    def last_is_best(self) -> bool:
        return self.best_step == len(self.losses)

    def chosen_step(self) -> int:
        """The step whose model predicts: the best validation step, else the last one."""
        if self.key == "valid_loss" and self.best_step > 0:
            return self.best_step
        return len(self.losses)

    def history(self) -> dict[str, list[float]]:
        return {self.key: list(self.losses)}


def log_loss(proba: Floats, y: npt.NDArray[np.int64]) -> float:
    picked = np.clip(proba[np.arange(len(y)), y], 1e-15, 1.0)
    return float(-np.mean(np.log(picked)))


def rmse(pred: Floats, y: npt.NDArray[Any]) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred, dtype=np.float64) - y) ** 2)))


def loss_of(task: Task, raw: Floats, y: npt.NDArray[Any]) -> float:
    """Log loss of probabilities, or RMSE of values, against the true targets."""
    return rmse(raw, y) if task == "regression" else log_loss(raw, y)


def binary_columns(positive: npt.NDArray[Any]) -> Floats:
    """Two probability columns from the probabilities of class 1."""
    p = np.asarray(positive, dtype=np.float64).reshape(-1)
    return np.column_stack([1.0 - p, p])
