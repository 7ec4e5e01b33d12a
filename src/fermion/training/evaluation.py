"""Evaluate a model on rows with a known target: metrics, and the data plots are made from."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import polars as pl

from fermion.errors import InvalidInputError
from fermion.registry.model import Model
from fermion.training.importance import FeatureImportance, permutation_importance
from fermion.training.metrics import (
    GREATER_IS_BETTER,
    PRIMARY_METRIC,
    Task,
    classification_metric,
    classification_metrics,
    regression_metrics,
)
from fermion.training.plots import evaluation_plots
from fermion.training.task import TargetEncoding, check_target

if TYPE_CHECKING:
    from fermion.data.dataset import Dataset
    from fermion.workspace import Workspace


@dataclass(frozen=True)
class Evaluation:
    task: Task
    metrics: dict[str, float]
    y_true: npt.NDArray[Any]
    output: npt.NDArray[Any]  # class probabilities (n, k) or predicted values (n,)
    labels: list[str]
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def primary_metric(self) -> str:
        return PRIMARY_METRIC[self.task]


def evaluate(model: Model, frame: pl.DataFrame, target: str | None = None) -> Evaluation:
    """Score `model` on `frame`, which holds its input columns and the target."""
    target = target or model.signature.target
    if not target:
        raise InvalidInputError("the model records no target column: name one to evaluate on")
    if frame.height == 0:
        raise InvalidInputError("there are no rows to evaluate on")
    task: Task = model.task  # type: ignore[assignment]
    y, labels = _truth(model, frame, target)
    if task == "regression":
        predicted = model.predict(frame)
        return Evaluation(task, regression_metrics(y, predicted), y, predicted, [])
    proba = model.predict_proba(frame)
    result = classification_metrics(y, proba, labels)
    details = {"confusion": result.confusion, "calibration": result.calibration}
    metrics = dict(result.metrics)
    if task == "binary":  # the confusion matrix as metrics, the second class being positive
        (tn, fp), (fn, tp) = result.confusion
        metrics |= {
            "true_negatives": float(tn),
            "false_positives": float(fp),
            "false_negatives": float(fn),
            "true_positives": float(tp),
        }
    return Evaluation(task, metrics, y, proba, labels, details)


def _truth(model: Model, frame: pl.DataFrame, target: str) -> tuple[npt.NDArray[Any], list[str]]:
    """The target column of `frame` as the metrics take it: float values for a regression,
    else class codes 0..k-1 in the model's class order, with the class labels."""
    column = check_target(frame, target)
    if model.task == "regression":
        return column.cast(pl.Float64).to_numpy(), []
    encoding = TargetEncoding(model.task, tuple(model.classes))  # type: ignore[arg-type]
    return encoding.encode(_as_class_type(column, model.classes)), encoding.labels


def _as_class_type(column: pl.Series, classes: list[Any]) -> pl.Series:
    """Target values typed like the training classes (a CSV may read 0/1 as text or numbers)."""
    if not classes or column.dtype == pl.Null:
        return column
    sample = classes[0]
    try:
        if isinstance(sample, bool):
            return column.cast(pl.Boolean)
        if isinstance(sample, int):
            return column.cast(pl.Int64)
        if isinstance(sample, str):
            return column.cast(pl.String)
    except pl.exceptions.PolarsError:
        return column
    return column


def importance(
    model: Model, frame: pl.DataFrame, target: str, *, seed: int = 0
) -> list[FeatureImportance]:
    """Permutation importance of each raw input column for the task's primary metric.

    Each shuffle is scored on that one metric alone: a full evaluation (every metric, the
    confusion matrix, calibration) took 70% of the time on a 13-column credit model."""
    task: Task = model.task  # type: ignore[assignment]
    metric = PRIMARY_METRIC[task]
    sign = 1.0 if GREATER_IS_BETTER[metric] else -1.0

    def score(rows: pl.DataFrame) -> float:  # the shuffles leave the target column as it was
        y, labels = _truth(model, rows, target)
        if task == "regression":
            return sign * regression_metrics(y, model.predict(rows))[metric]
        proba = model.predict_proba(rows)
        value = classification_metric(metric, y, proba, labels)
        if value is None:  # undefined on this sample (e.g. one class): accuracy instead
            value = classification_metric("accuracy", y, proba, labels) or 0.0
        return sign * value

    return permutation_importance(score, frame, model.signature.input_names, seed=seed)


def save_plots(
    evaluation: Evaluation, folder: Path, importances: list[FeatureImportance] | None
) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    labels = evaluation.labels or None
    output = evaluation.output if evaluation.task != "regression" else np.asarray(evaluation.output)
    return evaluation_plots(evaluation.task, evaluation.y_true, output, labels, importances, folder)


@dataclass(frozen=True)
class EvaluationReport:
    """`evaluate_registered`'s result: where it ran, on which rows, and what it measured."""

    model: str
    data: str
    part: str
    rows: int
    run_id: int
    evaluation: Evaluation
    plots: list[str]


def evaluate_registered(
    ws: Workspace,
    model_ref: str,
    data_ref: str,
    *,
    part: str = "all",
    plots: bool = True,
    trusted: bool = False,
    seed: int = 0,
) -> EvaluationReport:
    """Evaluate a registered model on a dataset version with the same columns, as a tracked
    run (experiment `evaluate-<model>`) holding the metrics and plots.

    `part` is `all` (every row) or `train`/`valid`/`test` of the version's newest split.
    """
    import shutil
    import uuid

    version = ws.models.get(model_ref)
    model = ws.models.load(version, trusted=trusted)
    dataset = ws.datasets.get(data_ref)
    frame = _rows(dataset, part)
    target = model.signature.target
    evaluation = evaluate(model, frame, target)
    with ws.runs.start(
        f"{version.ref} on {dataset.ref}", experiment=f"evaluate-{version.name}", nested=False
    ) as run:
        run.log_input(dataset, "evaluate")
        run.log_params({"model": version.ref, "data": dataset.ref, "part": part})
        run.log_metrics(evaluation.metrics)
        saved: list[str] = []
        if plots:
            folder = ws.scratch_dir / f"evaluate-{uuid.uuid4().hex}"
            try:
                importances = importance(model, frame, target, seed=seed)
                save_plots(evaluation, folder, importances)
                saved = [a.path for a in run.log_artifacts(folder, "plots")]
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    return EvaluationReport(version.ref, dataset.ref, part, frame.height, run.id, evaluation, saved)


def _rows(dataset: Dataset, part: str) -> pl.DataFrame:
    if part == "all":
        return dataset.to_polars()
    if part not in ("train", "valid", "test"):
        raise InvalidInputError(f"part must be all, train, valid or test, not {part!r}")
    splits = dataset.splits
    if not splits:
        raise InvalidInputError(f"dataset {dataset.ref} has no split to take the {part} rows from")
    frames = dataset.split_frames(splits[0])
    if part not in frames:
        raise InvalidInputError(f"the split of {dataset.ref} has no {part} rows")
    return frames[part]
