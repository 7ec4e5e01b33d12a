from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn.metrics import (
    average_precision_score,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
)

from fermion.errors import InvalidInputError
from fermion.training.metrics import (
    GREATER_IS_BETTER,
    PRIMARY_METRIC,
    classification_metric,
    classification_metrics,
    regression_metrics,
)

BINARY_Y = np.array([0, 0, 1, 1])
BINARY_P1 = np.array([0.1, 0.4, 0.35, 0.8])
BINARY_PROBA = np.column_stack([1 - BINARY_P1, BINARY_P1])


def multiclass_data(n: int = 300, k: int = 4) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.5
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return y, proba


def test_binary_metrics_match_hand_computed_values() -> None:
    result = classification_metrics(BINARY_Y, BINARY_PROBA, ["no", "yes"])
    m = result.metrics
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["roc_auc"] == pytest.approx(0.75)
    assert m["pr_auc"] == pytest.approx(average_precision_score(BINARY_Y, BINARY_P1))
    # Class 0: precision 2/3, recall 1; class 1: precision 1, recall 1/2.
    assert m["precision_macro"] == pytest.approx((2 / 3 + 1) / 2)
    assert m["recall_macro"] == pytest.approx(0.75)
    assert m["f1_macro"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert m["brier"] == pytest.approx((0.1**2 + 0.4**2 + 0.65**2 + 0.2**2) / 4)
    assert m["log_loss"] == pytest.approx(log_loss(BINARY_Y, BINARY_PROBA))
    # Every row lands in its own bin: ECE is the mean |p - y|.
    assert m["ece"] == pytest.approx((0.1 + 0.4 + 0.65 + 0.2) / 4)
    assert result.confusion == [[2, 0], [1, 1]]
    assert result.labels == ["no", "yes"]


def test_binary_calibration_bins_positive_class() -> None:
    y = np.array([0, 0, 1, 1, 1, 0])
    p1 = np.array([0.12, 0.18, 0.82, 0.85, 0.86, 0.88])
    cal = classification_metrics(y, np.column_stack([1 - p1, p1]), ["a", "b"]).calibration
    assert cal["kind"] == "positive_class"
    assert cal["label"] == "b"
    assert cal["count"] == [2, 4]
    assert cal["mean_predicted"] == pytest.approx([0.15, (0.82 + 0.85 + 0.86 + 0.88) / 4])
    assert cal["fraction_observed"] == pytest.approx([0.0, 0.75])


def test_multiclass_metrics_agree_with_sklearn() -> None:
    y, proba = multiclass_data()
    pred = proba.argmax(axis=1)
    result = classification_metrics(y, proba, ["a", "b", "c", "d"])
    m = result.metrics
    assert "brier" not in m
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, proba, multi_class="ovr"))
    assert m["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["f1_weighted"] == pytest.approx(f1_score(y, pred, average="weighted"))
    assert m["precision_weighted"] == pytest.approx(precision_score(y, pred, average="weighted"))
    assert m["recall_macro"] == pytest.approx(recall_score(y, pred, average="macro"))
    assert m["log_loss"] == pytest.approx(log_loss(y, proba))
    expected_ap = np.mean([average_precision_score(y == c, proba[:, c]) for c in range(4)])
    assert m["pr_auc"] == pytest.approx(expected_ap)
    assert np.asarray(result.confusion).sum() == len(y)
    assert np.trace(np.asarray(result.confusion)) == (pred == y).sum()
    cal = result.calibration
    assert cal["kind"] == "top_class"
    assert sum(cal["count"]) == len(y)
    confidence = proba.max(axis=1)
    index = np.minimum((confidence * 10).astype(int), 9)
    ece = sum(
        abs(confidence[index == b].mean() - (pred == y)[index == b].mean()) * (index == b).sum()
        for b in np.unique(index)
    ) / len(y)
    assert m["ece"] == pytest.approx(ece)


def test_undefined_metrics_are_left_out_without_warnings() -> None:
    y = np.array([1, 1, 1])
    p1 = np.array([0.2, 0.7, 0.9])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = classification_metrics(y, np.column_stack([1 - p1, p1]), ["n", "p"]).metrics
        no_positive = classification_metrics(1 - y, np.column_stack([1 - p1, p1]), ["n", "p"])
    assert "roc_auc" not in m
    assert m["pr_auc"] == pytest.approx(1.0)
    assert "roc_auc" not in no_positive.metrics
    assert "pr_auc" not in no_positive.metrics
    # Class "p" is predicted but never true: its precision counts as 0, not as a warning.
    assert no_positive.metrics["precision_macro"] == pytest.approx(0.5)
    assert all(math.isfinite(v) for v in (*m.values(), *no_positive.metrics.values()))


def test_multiclass_with_an_absent_class_averages_over_present_ones() -> None:
    y, proba = multiclass_data(k=3)
    keep = y != 2
    y, proba = y[keep], proba[keep]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m = classification_metrics(y, proba, ["a", "b", "c"]).metrics
    expected = np.mean([roc_auc_score(y == c, proba[:, c]) for c in (0, 1)])
    assert m["roc_auc"] == pytest.approx(expected)


def test_float32_probabilities_are_accepted() -> None:
    y, proba = multiclass_data()
    m = classification_metrics(y, proba.astype(np.float32), list("abcd")).metrics
    assert m["log_loss"] == pytest.approx(log_loss(y, proba), rel=1e-5)


@pytest.mark.parametrize(
    ("y", "proba", "labels", "message"),
    [
        (np.array([], dtype=int), np.empty((0, 2)), ["a", "b"], "empty"),
        (np.array([0, 1, 1]), BINARY_PROBA, ["a", "b"], "3 rows but proba has 4"),
        (BINARY_Y, BINARY_PROBA, ["a", "b", "c"], "3 labels"),
        (np.array([0, 1, 2, 1]), BINARY_PROBA, ["a", "b"], "0..1"),
        (BINARY_Y, BINARY_PROBA * 0.5, ["a", "b"], "sum to 1"),
        (BINARY_Y, np.full((4, 2), np.nan), ["a", "b"], "NaN"),
        (BINARY_Y, BINARY_P1, ["a", "b"], "matrix"),
        (np.array(["a", "b", "a", "b"]), BINARY_PROBA, ["a", "b"], "integer"),
    ],
)
def test_classification_refuses_bad_input(
    y: np.ndarray, proba: np.ndarray, labels: list[str], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        classification_metrics(y, proba, labels)


def test_regression_metrics_match_hand_computed_values() -> None:
    m = regression_metrics(np.array([1.0, 2.0, 3.0, 0.0]), np.array([1.5, 2.0, 2.0, 1.0]))
    assert m["rmse"] == pytest.approx(0.75)
    assert m["mae"] == pytest.approx(0.625)
    assert m["median_ae"] == pytest.approx(0.75)
    assert m["r2"] == pytest.approx(1 - 2.25 / 5)
    # The row with y_true == 0 is left out of mape.
    assert m["mape"] == pytest.approx((0.5 + 0 + 1 / 3) / 3)


def test_regression_leaves_out_undefined_metrics() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        zeros = regression_metrics(np.zeros(3), np.array([0.0, 1.0, -1.0]))
        single = regression_metrics(np.array([2.0]), np.array([1.0]))
    assert "mape" not in zeros
    assert "r2" not in zeros
    assert zeros["mae"] == pytest.approx(2 / 3)
    assert "r2" not in single
    assert single["rmse"] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("y", "pred", "message"),
    [
        ([], [], "empty"),
        ([1.0, 2.0], [1.0], "2 rows but y_pred has 1"),
        ([1.0, float("nan")], [1.0, 2.0], "NaN"),
        ([[1.0, 2.0]], [[1.0, 2.0]], "one-dimensional"),
    ],
)
def test_regression_refuses_bad_input(y: list[float], pred: list[float], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        regression_metrics(np.asarray(y), np.asarray(pred))


def test_every_reported_metric_has_a_direction_and_primaries_exist() -> None:
    y, proba = multiclass_data()
    names = set(classification_metrics(y, proba, list("abcd")).metrics)
    names |= set(classification_metrics(BINARY_Y, BINARY_PROBA, ["a", "b"]).metrics)
    names |= set(regression_metrics(np.array([1.0, 2.0, 4.0]), np.array([1.0, 2.5, 3.0])))
    assert names == set(GREATER_IS_BETTER)
    assert set(PRIMARY_METRIC.values()) <= names
    assert GREATER_IS_BETTER["roc_auc"] and not GREATER_IS_BETTER["rmse"]
    with pytest.raises(TypeError):
        GREATER_IS_BETTER["rmse"] = True  # type: ignore[index]


@pytest.mark.parametrize("k", [2, 4])
def test_one_metric_alone_is_the_full_evaluations_value(k: int) -> None:
    y, proba = multiclass_data(k=k) if k > 2 else (BINARY_Y, BINARY_PROBA)
    labels = [str(i) for i in range(k)]
    full = classification_metrics(y, proba, labels).metrics
    for name in full:
        assert classification_metric(name, y, proba, labels) == pytest.approx(full[name]), name
