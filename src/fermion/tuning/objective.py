"""The objective Fermion owns: k-fold cross-validation of one family with given params.

The folds are encoded once per process (the preprocessing depends on the rows, not on the
params), so a trial only fits and scores. Pruning needs no user code: the family reports its
validation loss per boosting round or epoch on the first fold, and the running mean score after
each fold; a pruner that finds the trial hopeless stops it there.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from fermion.errors import InvalidInputError
from fermion.training.families.base import FittedModel, Matrix, ModelFamily
from fermion.training.metrics import (
    GREATER_IS_BETTER,
    Task,
    classification_metric,
    regression_metrics,
)

# Intermediate values: boosting rounds of the first fold at steps 0, 1, ...; the running mean
# after fold k at FOLD_STEP + k, so that the two kinds never share a step.
FOLD_STEP = 1_000_000
# The param that caps rounds or epochs; the final fit uses the folds' mean best step.
ROUND_PARAMS = {"lightgbm": "num_boost_round", "xgboost": "num_boost_round", "torch_mlp": "epochs"}
# Objectives measured on the model rather than scored on its predictions; both are minimized.
MODEL_OBJECTIVES = {
    "size_kb": "the fitted model's serialized size in KiB (last fold)",
    "latency_ms": "predict time per 1,000 rows in ms (median over folds)",
}


class Pruned(Exception):
    """Raised by a `Reporter` to stop a trial; the study turns it into a pruned trial."""


class Reporter:
    """Where a trial reports intermediate values; the Optuna glue implements it."""

    def report(self, value: float, step: int) -> None:
        return None

    def should_prune(self) -> bool:
        return False


@dataclass(frozen=True)
class Fold:
    X_train: Matrix
    y_train: npt.NDArray[Any]
    X_valid: Matrix
    y_valid: npt.NDArray[Any]


@dataclass(frozen=True)
class CVResult:
    """Scores of one trial: the mean is the objective; the spread is its noise band."""

    mean: float
    std: float
    fold_scores: list[float]
    best_steps: list[int] = field(default_factory=list)
    fit_seconds: float = 0.0
    objectives: dict[str, float] = field(default_factory=dict)  # the extra objectives asked for

    @property
    def rounds(self) -> int | None:
        """Rounds or epochs for a final fit on all rows: the folds' mean best step."""
        if not self.best_steps:
            return None
        return max(1, round(float(np.mean(self.best_steps))))


def fold_indices(
    y: npt.NDArray[Any], task: Task, n_folds: int, seed: int
) -> list[tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]]:
    """Stratified folds for classification, plain shuffled folds for regression."""
    from sklearn.model_selection import KFold, StratifiedKFold

    if n_folds < 2:
        raise InvalidInputError(f"cross-validation needs at least 2 folds, not {n_folds}")
    if len(y) < n_folds:
        raise InvalidInputError(f"{len(y)} rows are too few for {n_folds} folds")
    if task == "regression":
        splitter: Any = KFold(n_splits=n_folds, shuffle=True, random_state=seed)
    else:
        smallest = int(np.bincount(y.astype(np.int64)).min())
        if smallest < n_folds:
            raise InvalidInputError(
                f"the rarest class has {smallest} rows, too few for {n_folds} stratified folds"
            )
        splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    return [(tr.astype(np.int64), va.astype(np.int64)) for tr, va in splitter.split(y, y)]


class CrossValidation:
    """Scores params of one family by k-fold cross-validation on `frame`'s rows."""

    def __init__(
        self,
        family: ModelFamily,
        frame: pl.DataFrame,
        *,
        target: str,
        features: Sequence[str],
        task: Task,
        encode_target: Callable[[pl.Series], npt.NDArray[Any]],
        n_classes: int,
        metric: str,
        n_folds: int = 5,
        seed: int = 0,
        text_columns: Sequence[str] = (),
        threads: int | None = None,
        objectives: Sequence[str] = (),
    ) -> None:
        from fermion.training.preprocess import column_roles, preprocessor_for

        self.family = family
        self.task = task
        self.n_classes = n_classes
        self.metric = metric
        self.objectives = tuple(objectives)
        self._scored = (metric, *(o for o in objectives if o not in MODEL_OBJECTIVES))
        self.greater_is_better = GREATER_IS_BETTER[metric]
        self.seed = seed
        self.threads = threads
        y = encode_target(frame.get_column(target))
        roles = column_roles(frame, features, text_columns=text_columns)
        self.folds: list[Fold] = []
        self.categorical: list[int] = []
        for train_rows, valid_rows in fold_indices(y, task, n_folds, seed):
            train_part, valid_part = frame[train_rows], frame[valid_rows]
            preprocessor = preprocessor_for(family.preprocessing, roles).fit(train_part)
            self.categorical = preprocessor.categorical_feature_indices
            self.folds.append(
                Fold(
                    preprocessor.transform(train_part),
                    y[train_rows],
                    preprocessor.transform(valid_part),
                    y[valid_rows],
                )
            )

    def evaluate(self, params: dict[str, object], reporter: Reporter | None = None) -> CVResult:
        """Fit and score every fold; `reporter` may stop the trial by raising `Pruned`."""
        reporter = reporter or Reporter()
        scores: list[float] = []
        extra: dict[str, list[float]] = {name: [] for name in self.objectives}
        best_steps: list[int] = []
        started = time.perf_counter()
        for index, fold in enumerate(self.folds):
            should_stop = self._round_hook(reporter) if index == 0 else None
            fitted = self.family.fit(
                fold.X_train,
                fold.y_train,
                task=self.task,
                n_classes=max(self.n_classes, 1),
                params=params,
                valid=(fold.X_valid, fold.y_valid),
                categorical_features=self.categorical,
                seed=self.seed,
                should_stop=should_stop,
                threads=self.threads,
            )
            if index == 0 and reporter.should_prune():
                raise Pruned(f"pruned during the first fold at step {fitted.best_step}")
            values = self.score(fitted, fold)
            if "size_kb" in extra and index == len(self.folds) - 1:  # one model's size is enough
                values["size_kb"] = _size_kb(fitted)
            scores.append(values[self.metric])
            for name, kept in extra.items():
                if name in values:
                    kept.append(values[name])
            if fitted.best_step is not None:
                best_steps.append(fitted.best_step)
            reporter.report(float(np.mean(scores)), FOLD_STEP + index)
            if index < len(self.folds) - 1 and reporter.should_prune():
                raise Pruned(f"pruned after fold {index + 1} of {len(self.folds)}")
        return CVResult(
            mean=float(np.mean(scores)),
            std=float(np.std(scores)),
            fold_scores=scores,
            best_steps=best_steps,
            fit_seconds=time.perf_counter() - started,
            objectives={
                name: float(np.median(v) if name == "latency_ms" else np.mean(v))
                for name, v in extra.items()
            },
        )

    def score(self, fitted: FittedModel, fold: Fold) -> dict[str, float]:
        """The metric and the extra objectives on one fold; the predict call is timed."""
        started = time.perf_counter()
        if self.task == "regression":
            predicted = fitted.predict(fold.X_valid)
            elapsed = time.perf_counter() - started
            metrics = regression_metrics(fold.y_valid, predicted)
            values = {name: metrics.get(name) for name in self._scored}
        else:
            proba = fitted.predict_proba(fold.X_valid)
            elapsed = time.perf_counter() - started
            labels = [str(i) for i in range(self.n_classes)]
            values = {
                name: classification_metric(name, fold.y_valid, proba, labels)
                for name in self._scored
            }
        scores: dict[str, float] = {}
        for name, value in values.items():
            if value is None:
                raise InvalidInputError(
                    f"metric {name!r} is undefined on a validation fold (e.g. one class only)"
                )
            if not math.isfinite(value):
                raise InvalidInputError(f"metric {name!r} is not finite on a validation fold")
            scores[name] = value
        scores["latency_ms"] = 1000.0 * elapsed * 1000.0 / max(1, len(fold.y_valid))
        return scores

    def _round_hook(self, reporter: Reporter) -> Callable[[int, float], bool]:
        """Per-round validation loss of the first fold, in the study's direction."""
        sign = -1.0 if self.greater_is_better else 1.0

        def should_stop(step: int, loss: float) -> bool:
            reporter.report(sign * loss, step)
            return reporter.should_prune()

        return should_stop


def _size_kb(fitted: FittedModel) -> float:
    """The fitted estimator's size as cloudpickle writes it (the registry's formats are close)."""
    import cloudpickle

    return len(cloudpickle.dumps(fitted.estimator)) / 1024.0
