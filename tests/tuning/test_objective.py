"""The cross-validation objective: folds, scores, pruning hooks and per-round reports."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import polars as pl
import pytest

from fermion.errors import InvalidInputError
from fermion.training.families import get_family
from fermion.training.task import TargetEncoding
from fermion.tuning.objective import FOLD_STEP, CrossValidation, Pruned, Reporter, fold_indices

FEATURES = ["age", "income", "city", "member"]


class Recorder(Reporter):
    """Keeps every report; asks to prune once it has seen `prune_at` (a step), if given."""

    def __init__(self, prune_at: int | None = None) -> None:
        self.reports: list[tuple[int, float]] = []
        self.prune_at = prune_at

    def report(self, value: float, step: int) -> None:
        self.reports.append((step, value))

    def should_prune(self) -> bool:
        return self.prune_at is not None and any(s >= self.prune_at for s, _ in self.reports)

    @property
    def rounds(self) -> list[tuple[int, float]]:
        return [(s, v) for s, v in self.reports if s < FOLD_STEP]

    @property
    def folds(self) -> list[tuple[int, float]]:
        return [(s, v) for s, v in self.reports if s >= FOLD_STEP]


class PruneAlways(Reporter):
    def should_prune(self) -> bool:
        return True


def _cv(
    frame: pl.DataFrame,
    family: str = "logistic",
    *,
    metric: str = "roc_auc",
    features: list[str] = FEATURES,
    seed: int = 0,
) -> CrossValidation:
    encoding = TargetEncoding.fit(frame.get_column("status"), "binary")
    return CrossValidation(
        get_family(family),
        frame,
        target="status",
        features=features,
        task="binary",
        encode_target=encoding.encode,
        n_classes=encoding.n_classes,
        metric=metric,
        n_folds=3,
        seed=seed,
    )


def _count_fits(monkeypatch: pytest.MonkeyPatch, family: str) -> list[int]:
    """Patch the family's `fit` to count its calls; returns the (growing) list of calls."""
    model = get_family(family)
    calls: list[int] = []
    original = model.fit

    def counting(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(model, "fit", counting)
    return calls


def test_classification_folds_are_stratified_and_cover_each_row_once(
    make_frame: Callable[..., pl.DataFrame],
) -> None:
    y = (make_frame(400).get_column("status") == "good").to_numpy().astype(np.int64)
    folds = fold_indices(y, "binary", 3, seed=0)

    assert len(folds) == 3
    valid = np.concatenate([va for _, va in folds])
    assert sorted(valid.tolist()) == list(range(len(y)))
    for train, va in folds:
        assert not set(train.tolist()) & set(va.tolist())
        assert abs(y[va].sum() - y.sum() * len(va) / len(y)) <= 1  # the class share holds

    cv = _cv(make_frame(400))
    assert [len(f.y_valid) for f in cv.folds] == [len(va) for _, va in folds]
    assert sorted(int(f.y_valid.sum()) for f in cv.folds) == sorted(
        int(y[va].sum()) for _, va in folds
    )


def test_folds_refuse_too_few_rows_of_a_class() -> None:
    y = np.array([0] * 20 + [1] * 2)
    with pytest.raises(InvalidInputError, match="rarest class has 2 rows"):
        fold_indices(y, "binary", 3, seed=0)
    assert len(fold_indices(np.linspace(0, 1, 9), "regression", 3, seed=0)) == 3


def test_logistic_scores_equal_a_manual_sklearn_cross_validation(
    make_frame: Callable[..., pl.DataFrame],
) -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import StandardScaler

    frame = make_frame(400, seed=3).with_columns(pl.col("income").fill_null(50_000.0))
    cv = _cv(frame, features=["age", "income"], seed=7)
    result = cv.evaluate({"C": 0.05})

    X = frame.select("age", "income").to_numpy().astype(np.float64)
    y = (frame.get_column("status") == "good").to_numpy().astype(np.int64)
    expected = []
    for train, valid in StratifiedKFold(3, shuffle=True, random_state=7).split(X, y):
        scaler = StandardScaler().fit(X[train])
        model = LogisticRegression(C=0.05, max_iter=1000, random_state=7)
        model.fit(scaler.transform(X[train]).astype(np.float32), y[train])
        proba = model.predict_proba(scaler.transform(X[valid]).astype(np.float32))[:, 1]
        expected.append(roc_auc_score(y[valid], proba))

    assert result.fold_scores == pytest.approx(expected, abs=1e-6)
    assert result.mean == pytest.approx(np.mean(expected), abs=1e-6)
    assert result.std == pytest.approx(np.std(expected), abs=1e-6)
    assert result.mean > 0.75  # the signal is learnable
    assert result.rounds is None  # no boosting rounds to carry over to the final fit


def test_a_reporter_that_asks_to_prune_stops_the_trial_after_the_first_fold(
    make_frame: Callable[..., pl.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    cv = _cv(make_frame(400))
    fits = _count_fits(monkeypatch, "logistic")

    with pytest.raises(Pruned):
        cv.evaluate({}, PruneAlways())
    assert len(fits) == 1

    fits.clear()
    after_second = Recorder(prune_at=FOLD_STEP + 1)
    with pytest.raises(Pruned, match="after fold 2 of 3"):
        cv.evaluate({}, after_second)
    assert len(fits) == 2

    fits.clear()
    patient = Recorder()
    result = cv.evaluate({}, patient)
    assert len(fits) == 3
    running_means = [np.mean(result.fold_scores[: k + 1]) for k in range(3)]
    assert patient.folds == [
        (FOLD_STEP + k, pytest.approx(mean)) for k, mean in enumerate(running_means)
    ]
    assert patient.rounds == []  # logistic regression has no rounds


@pytest.mark.parametrize(("metric", "sign"), [("roc_auc", -1.0), ("log_loss", 1.0)])
def test_boosting_reports_each_round_of_the_first_fold_in_the_study_direction(
    make_frame: Callable[..., pl.DataFrame], metric: str, sign: float
) -> None:
    params = {"num_boost_round": 25, "early_stopping_rounds": 100, "num_leaves": 7}
    cv = _cv(make_frame(400), "lightgbm", metric=metric)
    recorder = Recorder()
    result = cv.evaluate(params, recorder)

    losses: list[float] = []
    fold = cv.folds[0]
    get_family("lightgbm").fit(
        fold.X_train,
        fold.y_train,
        task="binary",
        n_classes=2,
        params=params,
        valid=(fold.X_valid, fold.y_valid),
        categorical_features=cv.categorical,
        seed=0,
        on_progress=lambda step, total, values: losses.append(values["valid_loss"]),
    )
    assert [s for s, _ in recorder.rounds] == list(range(1, 26))
    # the validation loss of the first fold, negated when the metric is maximised
    assert [v for _, v in recorder.rounds] == pytest.approx([sign * x for x in losses])
    assert [s for s, _ in recorder.folds] == [FOLD_STEP, FOLD_STEP + 1, FOLD_STEP + 2]
    assert len(result.best_steps) == 3
    assert result.rounds == round(float(np.mean(result.best_steps)))
