"""Evaluation plots as PNG files, drawn on `matplotlib.figure.Figure` objects.

No pyplot: each function builds its own figure and Agg canvas, so plotting leaves no global
state behind and is safe from several threads at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import numpy as np
import numpy.typing as npt

from fermion.errors import InvalidInputError
from fermion.training.metrics import (
    Calibration,
    Task,
    classification_inputs,
    classification_metrics,
    regression_inputs,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from fermion.training.importance import FeatureImportance

DPI = 110
MAX_CURVES = 10
MAX_POINTS = 5000
_MAX_ANNOTATED_CLASSES = 20
_MAX_LABEL = 40


def plot_roc(
    y_true: npt.ArrayLike, proba: npt.ArrayLike, labels: Sequence[str], path: Path
) -> Path:
    """ROC curve of the positive class (binary) or one-vs-rest curves of up to 10 classes,
    the most frequent ones (multiclass)."""
    from sklearn.metrics import auc, roc_curve

    codes, probs = classification_inputs(y_true, proba, labels)
    classes, title = _curve_classes(codes, probs.shape[1], labels, "ROC curve")
    fig = new_figure(6.4, 5.2)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
    drawn = 0
    for cls in classes:
        positive = codes == cls
        if 0 < positive.sum() < codes.shape[0]:
            fpr, tpr, _ = roc_curve(positive, probs[:, cls])
            ax.plot(fpr, tpr, label=f"{_text(labels[cls])} (AUC = {auc(fpr, tpr):.3f})")
            drawn += 1
    if not drawn:
        _note(ax, "undefined: the true labels hold a single class")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), title=title)
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    ax.legend(loc="lower right", fontsize="small")
    return save_figure(fig, path)


def plot_precision_recall(
    y_true: npt.ArrayLike, proba: npt.ArrayLike, labels: Sequence[str], path: Path
) -> Path:
    """Precision-recall curve of the positive class (binary, with the prevalence as baseline)
    or one-vs-rest curves of up to 10 classes (multiclass)."""
    from sklearn.metrics import average_precision_score, precision_recall_curve

    codes, probs = classification_inputs(y_true, proba, labels)
    classes, title = _curve_classes(codes, probs.shape[1], labels, "Precision-recall curve")
    fig = new_figure(6.4, 5.2)
    ax = fig.add_subplot()
    drawn = 0
    for cls in classes:
        positive = codes == cls
        if not positive.any():
            continue
        precision, recall, _ = precision_recall_curve(positive, probs[:, cls])
        ap = average_precision_score(positive, probs[:, cls])
        ax.plot(
            recall, precision, drawstyle="steps-post", label=f"{_text(labels[cls])} (AP = {ap:.3f})"
        )
        if len(classes) == 1:
            prevalence = float(positive.mean())
            ax.axhline(prevalence, linestyle="--", color="grey", linewidth=1, label="chance")
        drawn += 1
    if not drawn:
        _note(ax, "undefined: no positive rows")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), title=title)
    ax.set_xlabel("Recall")
    ax.set_ylabel("Precision")
    if drawn:
        ax.legend(loc="lower left", fontsize="small")
    return save_figure(fig, path)


def plot_confusion_matrix(
    confusion: Sequence[Sequence[int]], labels: Sequence[str], path: Path
) -> Path:
    """Counts (rows true, columns predicted) coloured by each true class's row fraction."""
    counts = np.asarray(confusion)
    k = len(labels)
    if counts.ndim != 2 or counts.shape != (k, k):
        raise InvalidInputError(
            f"the confusion matrix must be {k} x {k} for {k} labels, not of shape {counts.shape}"
        )
    if counts.dtype.kind not in "iu" or (counts < 0).any():
        raise InvalidInputError("the confusion matrix must hold non-negative whole counts")
    totals = counts.sum(axis=1, keepdims=True)
    fractions = counts / np.maximum(totals, 1)
    side = float(np.clip(3.0 + 0.5 * k, 5.0, 14.0))
    fig = new_figure(side + 1.2, side)
    ax = fig.add_subplot()
    image = ax.imshow(fractions, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(image, ax=ax, label="Fraction of the true class", shrink=0.8)
    names = [_text(label) for label in labels]
    ax.set_xticks(range(k), names, rotation=45 if k > 4 else 0, ha="right" if k > 4 else "center")
    ax.set_yticks(range(k), names)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    ax.set_title("Confusion matrix (counts; colour = row fraction)")
    if k <= _MAX_ANNOTATED_CLASSES:
        size = "medium" if k <= 8 else "x-small"
        for (row, col), count in np.ndenumerate(counts):
            colour = "white" if fractions[row, col] > 0.5 else "black"
            # Cells lie inside the axes; keeping them out of the layout pass saves its cost.
            ax.text(
                col, row, str(count), ha="center", va="center", color=colour, fontsize=size
            ).set_in_layout(False)
    return save_figure(fig, path)


def plot_calibration(calibration: Calibration, path: Path) -> Path:
    """Reliability diagram (with the diagonal of perfect calibration) over a count histogram."""
    try:
        predicted = np.asarray(calibration["mean_predicted"], dtype=np.float64)
        observed = np.asarray(calibration["fraction_observed"], dtype=np.float64)
        count = np.asarray(calibration["count"], dtype=np.float64)
        bins = int(calibration["bins"])
        kind, label = calibration["kind"], _text(calibration["label"])
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInputError(
            f"not a calibration summary from classification_metrics: {exc}"
        ) from exc
    if not predicted.shape == observed.shape == count.shape or bins < 1:
        raise InvalidInputError("calibration lists must have equal lengths")
    top_class = kind == "top_class"
    fig = new_figure(6.4, 6.4)
    upper, lower = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    upper.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect")
    upper.plot(predicted, observed, marker="o", label="model")
    upper.set(xlim=(0, 1), ylim=(0, 1.02))
    upper.set_ylabel("Fraction correct" if top_class else f"Observed fraction of {label}")
    upper.set_title(
        "Calibration of top-class confidence" if top_class else f"Calibration ({label})"
    )
    upper.legend(loc="upper left", fontsize="small")
    # Each bin's mean lies inside its bin, so the bin's position can be recovered from it.
    index = np.clip(np.floor(predicted * bins), 0, bins - 1)
    lower.bar((index + 0.5) / bins, count, width=0.9 / bins, color="tab:blue")
    lower.set_xlabel("Mean top-class confidence" if top_class else "Mean predicted probability")
    lower.set_ylabel("Rows")
    return save_figure(fig, path)


def plot_feature_importance(
    importance: Sequence[FeatureImportance], path: Path, top: int = 20
) -> Path:
    """Horizontal bars of the `top` largest mean importances, with ± one std as error bars."""
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise InvalidInputError(f"top must be a positive whole number, not {top!r}")
    if not importance:
        raise InvalidInputError("no feature importances to plot")
    shown = sorted(importance, key=lambda item: -item.mean)[:top][::-1]
    fig = new_figure(7.0, 1.4 + 0.32 * len(shown))
    ax = fig.add_subplot()
    positions = np.arange(len(shown))
    ax.barh(
        positions,
        [item.mean for item in shown],
        xerr=[item.std for item in shown],
        color="tab:blue",
        capsize=3,
    )
    ax.set_yticks(positions, [_text(item.feature) for item in shown])
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel("Score lost when the column is shuffled")
    count = f"top {len(shown)} of {len(importance)}" if len(shown) < len(importance) else "all"
    ax.set_title(f"Permutation importance ({count} columns)")
    return save_figure(fig, path)


def plot_residuals(y_true: npt.ArrayLike, y_pred: npt.ArrayLike, path: Path) -> Path:
    """Residuals (true - predicted) against the prediction, and their histogram."""
    truth, pred = regression_inputs(y_true, y_pred)
    residuals = truth - pred
    n = residuals.shape[0]
    fig = new_figure(11.0, 4.6)
    left, right = fig.subplots(1, 2, width_ratios=[3, 2])
    shown = _subsample(n)
    left.scatter(pred[shown], residuals[shown], s=6, alpha=0.4, linewidths=0)
    left.axhline(0, color="black", linewidth=0.8)
    left.set_xlabel("Predicted value")
    left.set_ylabel("Residual (true - predicted)")
    sample = f" ({shown.shape[0]:,} of {n:,} rows)" if shown.shape[0] < n else ""
    left.set_title(f"Residuals vs predicted{sample}")
    right.hist(residuals, bins=int(np.clip(np.sqrt(n), 10, 50)), color="tab:blue")
    right.axvline(0, color="black", linewidth=0.8)
    right.set_xlabel("Residual (true - predicted)")
    right.set_ylabel("Rows")
    right.set_title("Residual distribution")
    return save_figure(fig, path)


def evaluation_plots(
    task: Task,
    y_true: npt.ArrayLike,
    proba_or_pred: npt.ArrayLike,
    labels: Sequence[str] | None,
    importance: Sequence[FeatureImportance] | None,
    folder: Path,
) -> list[Path]:
    """Write the task's plots into `folder` and return their paths.

    Classification: roc.png, pr.png, confusion_matrix.png, calibration.png; regression:
    residuals.png; both add feature_importance.png when importances are given.
    """
    if task not in get_args(Task):
        raise InvalidInputError(f"unknown task {task!r}; expected one of {get_args(Task)}")
    folder = Path(folder)
    written: list[Path] = []
    if task == "regression":
        written.append(plot_residuals(y_true, proba_or_pred, folder / "residuals.png"))
    else:
        if labels is None:
            raise InvalidInputError(f"a {task} evaluation needs the class labels")
        if task == "binary" and len(labels) != 2:
            raise InvalidInputError(f"a binary task needs 2 class labels, not {len(labels)}")
        evaluation = classification_metrics(y_true, proba_or_pred, labels)
        written += [
            plot_roc(y_true, proba_or_pred, labels, folder / "roc.png"),
            plot_precision_recall(y_true, proba_or_pred, labels, folder / "pr.png"),
            plot_confusion_matrix(evaluation.confusion, labels, folder / "confusion_matrix.png"),
            plot_calibration(evaluation.calibration, folder / "calibration.png"),
        ]
    if importance:
        written.append(plot_feature_importance(importance, folder / "feature_importance.png"))
    return written


def _curve_classes(
    codes: npt.NDArray[np.int64], k: int, labels: Sequence[str], name: str
) -> tuple[list[int], str]:
    """The classes to draw curves for, and the plot's title."""
    if k == 2:
        return [1], f"{name} (positive class: {_text(labels[1])})"
    if k <= MAX_CURVES:
        return list(range(k)), f"{name}s, one vs rest"
    support = np.bincount(codes, minlength=k)
    # Stable sort: among equally frequent classes the lower code wins.
    frequent = np.sort(np.argsort(-support, kind="stable")[:MAX_CURVES])
    return [int(c) for c in frequent], f"{name}s, one vs rest ({MAX_CURVES} most frequent of {k})"


def _subsample(n: int) -> npt.NDArray[np.int64]:
    if n <= MAX_POINTS:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, MAX_POINTS, replace=False))


def _text(label: object) -> str:
    """A label safe to draw: shortened, with `$` escaped so it is not read as mathtext."""
    text = str(label)
    if len(text) > _MAX_LABEL:
        text = text[: _MAX_LABEL - 1] + "…"
    return text.replace("$", r"\$")


def _note(ax: Any, message: str) -> None:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, color="grey")


def new_figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI)
    return path
