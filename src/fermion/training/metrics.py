"""Evaluation metrics for classifiers and regressors, computed with scikit-learn.

A metric that is undefined for the given rows (ROC AUC with one class present, R² of a constant
target) is left out of the result instead of being reported as NaN, and no warning escapes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal, TypedDict

import numpy as np
import numpy.typing as npt

from fermion.errors import InvalidInputError

Task = Literal["binary", "multiclass", "regression"]

PRIMARY_METRIC: Mapping[Task, str] = MappingProxyType(
    {"binary": "roc_auc", "multiclass": "f1_macro", "regression": "rmse"}
)

GREATER_IS_BETTER: Mapping[str, bool] = MappingProxyType(
    {
        "accuracy": True,
        "precision_macro": True,
        "recall_macro": True,
        "f1_macro": True,
        "precision_weighted": True,
        "recall_weighted": True,
        "f1_weighted": True,
        "roc_auc": True,
        "pr_auc": True,
        "log_loss": False,
        "brier": False,
        "ece": False,
        "rmse": False,
        "mae": False,
        "r2": True,
        "mape": False,
        "median_ae": False,
    }
)

CALIBRATION_BINS = 10
_SUM_TOLERANCE = 1e-4  # float32 softmax outputs are off by ~1e-7; anything larger is a bug

_Ints = npt.NDArray[np.int64]
_Floats = npt.NDArray[np.float64]


class Calibration(TypedDict):
    """Reliability-diagram data over equal-width bins of [0, 1]; empty bins are left out.

    `kind` is "positive_class" (binary: predicted probability of `label` vs how often it is the
    true class) or "top_class" (multiclass: top-class confidence vs how often it is correct).
    """

    kind: str
    label: str
    bins: int
    mean_predicted: list[float]
    fraction_observed: list[float]
    count: list[int]


@dataclass(frozen=True)
class ClassificationEvaluation:
    """Metrics by name, the confusion matrix (rows true, columns predicted) and calibration."""

    metrics: dict[str, float]
    confusion: list[list[int]]
    labels: list[str]
    calibration: Calibration

    def to_dict(self) -> dict[str, Any]:
        return {
            "metrics": dict(self.metrics),
            "confusion": [list(row) for row in self.confusion],
            "labels": list(self.labels),
            "calibration": dict(self.calibration),
        }


def classification_inputs(
    y_true: npt.ArrayLike, proba: npt.ArrayLike, labels: Sequence[str]
) -> tuple[_Ints, _Floats]:
    """Check and convert class codes (0..k-1) and an (n, k) probability matrix.

    Rows of `proba` are renormalised to sum to exactly 1 after checking they nearly do.
    """
    codes = np.asarray(y_true)
    probs = np.asarray(proba)
    if codes.ndim != 1:
        raise InvalidInputError(f"y_true must be one-dimensional, not of shape {codes.shape}")
    if probs.ndim != 2:
        raise InvalidInputError(f"proba must be an (n, k) matrix, not of shape {probs.shape}")
    if codes.shape[0] == 0:
        raise InvalidInputError("cannot evaluate on empty input: y_true has no rows")
    if codes.shape[0] != probs.shape[0]:
        raise InvalidInputError(f"y_true has {codes.shape[0]} rows but proba has {probs.shape[0]}")
    k = probs.shape[1]
    if k < 2:
        raise InvalidInputError(f"proba needs at least 2 class columns, not {k}")
    if len(labels) != k:
        raise InvalidInputError(f"{len(labels)} labels given for {k} probability columns")
    if codes.dtype.kind not in "biuf":
        raise InvalidInputError(f"y_true must hold integer class codes, not {codes.dtype}")
    if codes.dtype.kind == "f" and not (np.isfinite(codes).all() and (codes % 1 == 0).all()):
        raise InvalidInputError("y_true must hold whole-number class codes")
    if codes.min() < 0 or codes.max() >= k:
        raise InvalidInputError(
            f"y_true codes must be in 0..{k - 1}, found {int(codes.min())}..{int(codes.max())}"
        )
    if probs.dtype.kind not in "iuf":
        raise InvalidInputError(f"proba must be numeric, not {probs.dtype}")
    probs = probs.astype(np.float64)
    if not np.isfinite(probs).all():
        raise InvalidInputError("proba contains NaN or infinite values")
    if probs.min() < -_SUM_TOLERANCE or probs.max() > 1 + _SUM_TOLERANCE:
        raise InvalidInputError("proba values must lie in [0, 1]")
    sums = probs.sum(axis=1)
    worst = int(np.argmax(np.abs(sums - 1)))
    if abs(sums[worst] - 1) > _SUM_TOLERANCE:
        raise InvalidInputError(f"proba rows must sum to 1; row {worst} sums to {sums[worst]:.6g}")
    probs = np.clip(probs, 0.0, 1.0)
    return codes.astype(np.int64), probs / probs.sum(axis=1, keepdims=True)


def regression_inputs(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> tuple[_Floats, _Floats]:
    """Check and convert targets and predictions to equal-length finite float vectors."""
    out = []
    for name, values in (("y_true", y_true), ("y_pred", y_pred)):
        array = np.asarray(values)
        if array.ndim != 1:
            raise InvalidInputError(f"{name} must be one-dimensional, not of shape {array.shape}")
        if array.dtype.kind not in "biuf":
            raise InvalidInputError(f"{name} must be numeric, not {array.dtype}")
        if array.shape[0] == 0:
            raise InvalidInputError(f"cannot evaluate on empty input: {name} has no rows")
        array = array.astype(np.float64)
        if not np.isfinite(array).all():
            raise InvalidInputError(f"{name} contains NaN or infinite values")
        out.append(array)
    truth, pred = out
    if truth.shape[0] != pred.shape[0]:
        raise InvalidInputError(f"y_true has {truth.shape[0]} rows but y_pred has {pred.shape[0]}")
    return truth, pred


def classification_metrics(
    y_true: npt.ArrayLike, proba: npt.ArrayLike, labels: Sequence[str]
) -> ClassificationEvaluation:
    """Metrics of predicted class probabilities against true class codes 0..k-1.

    Predictions are the arg-max class. Macro averages run over the classes present in y_true
    or the predictions (scikit-learn's convention). Multiclass ROC AUC and PR AUC are one-vs-rest
    macro averages over the classes for which they are defined.
    """
    from sklearn.metrics import (
        accuracy_score,
        brier_score_loss,
        confusion_matrix,
        log_loss,
        precision_recall_fscore_support,
    )

    codes, probs = classification_inputs(y_true, proba, labels)
    k = probs.shape[1]
    predicted = probs.argmax(axis=1)
    metrics: dict[str, float] = {"accuracy": float(accuracy_score(codes, predicted))}
    for average in ("macro", "weighted"):
        precision, recall, f1, _ = precision_recall_fscore_support(
            codes, predicted, average=average, zero_division=0
        )
        metrics[f"precision_{average}"] = float(precision)
        metrics[f"recall_{average}"] = float(recall)
        metrics[f"f1_{average}"] = float(f1)
    classes = [1] if k == 2 else list(range(k))
    roc_auc, pr_auc = _one_vs_rest_areas(codes, probs, classes)
    if roc_auc is not None:
        metrics["roc_auc"] = roc_auc
    if pr_auc is not None:
        metrics["pr_auc"] = pr_auc
    metrics["log_loss"] = float(log_loss(codes, probs, labels=list(range(k))))
    if k == 2:
        positive = (codes == 1).astype(np.int64)
        metrics["brier"] = float(brier_score_loss(positive, probs[:, 1], pos_label=1))
        confidence, outcome = probs[:, 1], positive.astype(np.float64)
        calibration = _calibration(confidence, outcome, "positive_class", str(labels[1]))
    else:
        confidence = probs.max(axis=1)
        outcome = (predicted == codes).astype(np.float64)
        calibration = _calibration(confidence, outcome, "top_class", "top class")
    metrics["ece"] = _expected_calibration_error(confidence, outcome)
    confusion = confusion_matrix(codes, predicted, labels=list(range(k)))
    return ClassificationEvaluation(
        metrics=metrics,
        confusion=[[int(v) for v in row] for row in confusion],
        labels=[str(label) for label in labels],
        calibration=calibration,
    )


def classification_metric(
    name: str, y_true: npt.ArrayLike, proba: npt.ArrayLike, labels: Sequence[str]
) -> float | None:
    """One metric of `classification_metrics`, or None where it is undefined.

    Tuning scores every fold of every trial: the common metrics are computed alone, without
    the confusion matrix and calibration that a full evaluation builds.
    """
    from sklearn.metrics import accuracy_score, log_loss

    codes, probs = classification_inputs(y_true, proba, labels)
    k = probs.shape[1]
    if name in ("roc_auc", "pr_auc"):
        roc_auc, pr_auc = _one_vs_rest_areas(codes, probs, [1] if k == 2 else list(range(k)))
        return roc_auc if name == "roc_auc" else pr_auc
    if name == "log_loss":
        return float(log_loss(codes, probs, labels=list(range(k))))
    if name == "accuracy":
        return float(accuracy_score(codes, probs.argmax(axis=1)))
    kind, _, average = name.partition("_")
    if kind in ("precision", "recall", "f1") and average in ("macro", "weighted"):
        from sklearn.metrics import precision_recall_fscore_support

        scores = precision_recall_fscore_support(
            codes, probs.argmax(axis=1), average=average, zero_division=0
        )
        return float(scores[("precision", "recall", "f1").index(kind)])
    return classification_metrics(codes, probs, labels).metrics.get(name)


def regression_metrics(y_true: npt.ArrayLike, y_pred: npt.ArrayLike) -> dict[str, float]:
    """rmse, mae, median_ae, r2 (left out for fewer than 2 rows or a constant target) and mape.

    mape is a fraction (0.1 = 10 %) over the rows whose true value is not 0; it is left out
    when every true value is 0.
    """
    from sklearn.metrics import (
        mean_absolute_error,
        mean_absolute_percentage_error,
        mean_squared_error,
        median_absolute_error,
        r2_score,
    )

    truth, pred = regression_inputs(y_true, y_pred)
    metrics = {
        "rmse": math.sqrt(float(mean_squared_error(truth, pred))),
        "mae": float(mean_absolute_error(truth, pred)),
        "median_ae": float(median_absolute_error(truth, pred)),
    }
    if truth.shape[0] >= 2 and np.ptp(truth) > 0:
        metrics["r2"] = float(r2_score(truth, pred))
    nonzero = truth != 0
    if nonzero.any():
        metrics["mape"] = float(mean_absolute_percentage_error(truth[nonzero], pred[nonzero]))
    return metrics


def _one_vs_rest_areas(
    codes: _Ints, probs: _Floats, classes: list[int]
) -> tuple[float | None, float | None]:
    """Mean ROC AUC and average precision of each class against the rest, over the classes
    where each is defined (ROC needs positives and negatives, AP needs positives)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    rocs: list[float] = []
    aps: list[float] = []
    for cls in classes:
        positive = codes == cls
        n_positive = int(positive.sum())
        if n_positive == 0:
            continue
        aps.append(float(average_precision_score(positive, probs[:, cls])))
        if n_positive < codes.shape[0]:
            rocs.append(float(roc_auc_score(positive, probs[:, cls])))
    return (
        float(np.mean(rocs)) if rocs else None,
        float(np.mean(aps)) if aps else None,
    )


def _bin_index(confidence: _Floats) -> _Ints:
    # Bins are [0, 0.1), ..., [0.9, 1.0]; a confidence of exactly 1 joins the last bin.
    index = np.floor(confidence * CALIBRATION_BINS).astype(np.int64)
    return np.clip(index, 0, CALIBRATION_BINS - 1)


def _calibration(confidence: _Floats, outcome: _Floats, kind: str, label: str) -> Calibration:
    index = _bin_index(confidence)
    count = np.bincount(index, minlength=CALIBRATION_BINS)
    predicted = np.bincount(index, weights=confidence, minlength=CALIBRATION_BINS)
    observed = np.bincount(index, weights=outcome, minlength=CALIBRATION_BINS)
    filled = count > 0
    return Calibration(
        kind=kind,
        label=label,
        bins=CALIBRATION_BINS,
        mean_predicted=[float(v) for v in predicted[filled] / count[filled]],
        fraction_observed=[float(v) for v in observed[filled] / count[filled]],
        count=[int(v) for v in count[filled]],
    )


def _expected_calibration_error(confidence: _Floats, outcome: _Floats) -> float:
    """Row-weighted mean over bins of |mean confidence - observed frequency|."""
    index = _bin_index(confidence)
    count = np.bincount(index, minlength=CALIBRATION_BINS)
    gap = np.bincount(index, weights=confidence - outcome, minlength=CALIBRATION_BINS)
    return float(np.abs(gap).sum() / count.sum())
