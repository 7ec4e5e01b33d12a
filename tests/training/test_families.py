"""Model families: each trains on every task it supports, reports progress, parses its params."""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sklearn.datasets import make_classification, make_regression

from fermion.errors import InvalidInputError, MissingDependencyError
from fermion.training.families import FAMILIES, get_family
from fermion.training.families.base import Task

Data = tuple[npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any], npt.NDArray[Any], int]

# few rounds and epochs keep the whole file fast
FAST: Mapping[str, dict[str, object]] = {
    "random_forest": {"n_estimators": 30},
    "hist_gb": {"max_iter": 40},
    "lightgbm": {"num_boost_round": 60},
    "xgboost": {"num_boost_round": 60},
    "torch_mlp": {"epochs": 15, "batch_size": 64},
}
STEPPED = ["lightgbm", "xgboost", "torch_mlp"]
CASES = [(name, task) for name, family in FAMILIES.items() for task in sorted(family.tasks)]


def _dataset(task: Task) -> Data:
    if task == "regression":
        X, y = make_regression(n_samples=400, n_features=8, noise=5.0, random_state=0)
        k = 0
    else:
        k = 2 if task == "binary" else 3
        X, y = make_classification(
            n_samples=400, n_features=8, n_informative=5, n_classes=k, random_state=0
        )
    X = X.astype(np.float32)
    return X[:300], y[:300], X[300:], y[300:], k


@pytest.fixture(scope="module")
def datasets() -> dict[Task, Data]:
    return {task: _dataset(task) for task in ("binary", "multiclass", "regression")}


def _score(task: Task, pred: npt.NDArray[Any], y: npt.NDArray[Any]) -> float:
    if task == "regression":
        return float(1 - np.mean((pred - y) ** 2) / np.var(y))
    return float(np.mean(pred == y))


@pytest.mark.parametrize(("name", "task"), CASES)
def test_family_beats_a_trivial_baseline(name: str, task: Task, datasets: dict[Task, Data]) -> None:
    X, y, X_valid, y_valid, k = datasets[task]
    calls: list[tuple[int, int, dict[str, float]]] = []
    model = get_family(name).fit(
        X,
        y,
        task=task,
        n_classes=k,
        params=FAST.get(name, {}),
        valid=(X_valid, y_valid),
        on_progress=lambda step, total, metrics: calls.append((step, total, metrics)),
    )
    pred = model.predict(X_valid)
    if task == "regression":
        assert pred.dtype == np.float64
        assert _score(task, pred, y_valid) > 0.5
    else:
        assert pred.dtype == np.int64
        majority = np.bincount(y_valid).max() / len(y_valid)
        assert _score(task, pred, y_valid) > majority + 0.1
        proba = model.predict_proba(X_valid)
        assert proba.shape == (len(X_valid), k)
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert calls and "valid_loss" in calls[-1][2]
    assert model.flavor == get_family(name).flavor
    if name in STEPPED:
        assert len(calls) == len(model.history["valid_loss"])
        assert model.best_step == int(np.argmin(model.history["valid_loss"])) + 1


@pytest.mark.parametrize("name", STEPPED)
def test_should_stop_ends_training_early(name: str, datasets: dict[Task, Data]) -> None:
    X, y, X_valid, y_valid, k = datasets["binary"]
    seen: list[int] = []

    def stop(step: int, value: float) -> bool:
        seen.append(step)
        return step == 3

    model = get_family(name).fit(
        X,
        y,
        task="binary",
        n_classes=k,
        params=FAST[name],
        valid=(X_valid, y_valid),
        should_stop=stop,
    )
    assert seen == [1, 2, 3]
    assert len(model.history["valid_loss"]) == 3
    assert model.predict(X_valid).shape == (len(X_valid),)


@pytest.mark.parametrize("name", ["logistic", "random_forest", "hist_gb"])
def test_should_stop_is_never_called_without_steps(name: str, datasets: dict[Task, Data]) -> None:
    X, y, X_valid, y_valid, k = datasets["binary"]
    model = get_family(name).fit(
        X,
        y,
        task="binary",
        n_classes=k,
        params=FAST.get(name, {}),
        valid=(X_valid, y_valid),
        should_stop=lambda step, value: pytest.fail("called"),
    )
    assert model.predict(X_valid).shape == (len(X_valid),)


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("lightgbm", {"num_boost_round": 400, "early_stopping_rounds": 5, "learning_rate": 0.5}),
        ("xgboost", {"num_boost_round": 400, "early_stopping_rounds": 5, "eta": 0.5}),
        ("torch_mlp", {"epochs": 400, "patience": 3, "learning_rate": 0.05}),
    ],
)
def test_early_stopping_keeps_the_best_step(
    name: str, params: dict[str, object], datasets: dict[Task, Data]
) -> None:
    X, y, X_valid, y_valid, k = datasets["binary"]
    model = get_family(name).fit(
        X, y, task="binary", n_classes=k, params=params, valid=(X_valid, y_valid)
    )
    losses = model.history["valid_loss"]
    assert len(losses) < 400
    assert model.best_step is not None and model.best_step < len(losses)
    assert model.loss(X_valid, y_valid) == pytest.approx(min(losses), rel=1e-5)


@pytest.mark.parametrize("name", ["lightgbm", "torch_mlp"])
def test_without_a_validation_split_the_training_loss_is_reported(
    name: str, datasets: dict[Task, Data]
) -> None:
    X, y, _, _, _ = datasets["regression"]
    calls: list[dict[str, float]] = []
    model = get_family(name).fit(
        X,
        y,
        task="regression",
        n_classes=0,
        params=FAST[name],
        on_progress=lambda step, total, metrics: calls.append(metrics),
    )
    assert set(model.history) == {"train_loss"}
    assert model.best_step == len(calls) == len(model.history["train_loss"])


@pytest.mark.parametrize("name", ["lightgbm", "xgboost", "torch_mlp", "random_forest"])
def test_fits_are_deterministic_given_a_seed(name: str, datasets: dict[Task, Data]) -> None:
    X, y, X_valid, _, k = datasets["multiclass"]
    family = get_family(name)
    runs = [
        family.fit(X, y, task="multiclass", n_classes=k, params=FAST[name], seed=7)
        for _ in range(2)
    ]
    np.testing.assert_array_equal(runs[0].predict_proba(X_valid), runs[1].predict_proba(X_valid))


@pytest.mark.parametrize(
    ("name", "task"), [("logistic", "binary"), ("logistic", "multiclass"), ("linear", "regression")]
)
def test_linear_models_predict_what_their_estimator_does(
    name: str, task: Task, datasets: dict[Task, Data]
) -> None:
    X, y, X_valid, _, k = datasets[task]
    model = get_family(name).fit(X, y, task=task, n_classes=k, params={}, seed=3)
    estimator = model.estimator
    if task == "regression":
        expected = estimator.predict(X_valid)
        np.testing.assert_allclose(model.predict(X_valid), expected, rtol=1e-12, atol=1e-12)
    else:
        expected = estimator.predict_proba(X_valid)
        # numpy's float32 exp and the C library's (scipy's expit) may differ in the last bit
        np.testing.assert_allclose(model.predict_proba(X_valid), expected, rtol=3e-7, atol=1e-15)
        np.testing.assert_array_equal(model.predict(X_valid[:1]), [np.argmax(expected[0])])


@pytest.mark.parametrize("name", ["lightgbm", "xgboost", "torch_mlp"])
def test_predictions_do_not_change_with_a_thread_limit(
    name: str, datasets: dict[Task, Data]
) -> None:
    import torch

    X, y, X_valid, _, k = datasets["multiclass"]
    model = get_family(name).fit(X, y, task="multiclass", n_classes=k, params=FAST[name], seed=3)
    before = model.predict_proba(X_valid)
    threads = torch.get_num_threads()
    try:
        model.limit_threads(1)
        assert model.predict_threads == 1
        np.testing.assert_allclose(model.predict_proba(X_valid), before, rtol=1e-6)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("name", ["hist_gb", "lightgbm", "xgboost", "random_forest"])
def test_tree_families_take_missing_values_and_categorical_codes(
    name: str, datasets: dict[Task, Data]
) -> None:
    X, y, X_valid, _, k = datasets["binary"]
    X = X.copy()
    X[:, 0] = np.floor(np.abs(X[:, 0]) * 2)
    X[::7, 1] = np.nan
    model = get_family(name).fit(
        X, y, task="binary", n_classes=k, params=FAST[name], categorical_features=[0]
    )
    assert np.isfinite(model.predict_proba(X_valid)).all()


def test_torch_fit_restores_threads_and_global_random_state(
    datasets: dict[Task, Data],
) -> None:
    import torch

    X, y, _, _, k = datasets["binary"]
    threads = torch.get_num_threads()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    get_family("torch_mlp").fit(X, y, task="binary", n_classes=k, params={"epochs": 1})
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.rand(3), expected)


def test_a_class_missing_from_training_gets_a_zero_column(datasets: dict[Task, Data]) -> None:
    X, y, X_valid, _, _ = datasets["binary"]
    model = get_family("logistic").fit(X, y, task="multiclass", n_classes=3, params={})
    proba = model.predict_proba(X_valid)
    assert proba.shape == (len(X_valid), 3)
    assert (proba[:, 2] == 0).all()


def test_coerce_params_parses_strings_and_fills_defaults() -> None:
    family = get_family("lightgbm")
    params = family.coerce_params(
        "binary",
        {
            "learning_rate": "0.05",
            "num_leaves": "63",
            "max_depth": "None",
            "early_stopping_rounds": "null",
            "lambda_l2": 1,
        },
    )
    assert params["learning_rate"] == 0.05
    assert params["num_leaves"] == 63
    assert params["max_depth"] is None
    assert params["early_stopping_rounds"] is None
    assert params["lambda_l2"] == 1.0 and isinstance(params["lambda_l2"], float)
    assert params["num_boost_round"] == 1000
    assert set(params) == {spec.name for spec in family.params("binary")}
    assert family.coerce_params("binary", params) == params
    assert get_family("random_forest").default_params("regression")["max_features"] == "all"


@pytest.mark.parametrize(
    ("name", "raw", "message"),
    [
        ("lightgbm", {"num_leaves": "abc"}, "param 'num_leaves' must be an integer, got 'abc'"),
        ("lightgbm", {"num_leaves": 2.5}, "param 'num_leaves' must be an integer, got 2.5"),
        ("lightgbm", {"num_leaves": True}, "param 'num_leaves' must be an integer"),
        ("lightgbm", {"learning_rate": "nan"}, "param 'learning_rate' must be a number"),
        ("lightgbm", {"learning_rate": None}, "param 'learning_rate' must be a number, got None"),
        ("lightgbm", {"learning_rate": 0}, "param 'learning_rate' must be > 0"),
        ("lightgbm", {"feature_fraction": 1.5}, "param 'feature_fraction' must be <= 1"),
        ("lightgbm", {"max_depth": "x"}, "must be an integer or None"),
        ("random_forest", {"max_features": "half"}, "must be one of: sqrt, log2, all"),
        ("torch_mlp", {"hidden": "128,x"}, "param 'hidden' must be comma-separated"),
        ("lightgbm", {"num_leaf": 3}, "unknown param 'num_leaf' for model family 'lightgbm'"),
    ],
)
def test_coerce_params_refuses_bad_values(name: str, raw: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(message)):
        get_family(name).coerce_params("binary", raw)


def test_unknown_param_error_lists_the_accepted_names() -> None:
    with pytest.raises(InvalidInputError, match=r"accepted: .*num_leaves"):
        get_family("lightgbm").coerce_params("binary", {"leaves": 3})


def test_booleans_parse_from_words() -> None:
    from fermion.training.families.params import ParamSpec

    spec = ParamSpec("flag", bool, False)
    assert [spec.coerce(v) for v in ("true", "No", 1, False)] == [True, False, True, False]
    with pytest.raises(InvalidInputError, match="a boolean"):
        spec.coerce("maybe")


def test_unknown_family_names_the_choices() -> None:
    with pytest.raises(
        InvalidInputError, match=r"unknown model family 'x'; choose one of: .*lightgbm"
    ):
        get_family("x")


@pytest.mark.parametrize(("name", "task"), [("logistic", "regression"), ("linear", "binary")])
def test_a_family_refuses_tasks_it_does_not_support(name: str, task: Task) -> None:
    with pytest.raises(InvalidInputError, match=f"does not support task '{task}'"):
        get_family(name).default_params(task)


def test_fit_refuses_unusable_inputs(datasets: dict[Task, Data]) -> None:
    X, y, _, _, _ = datasets["binary"]
    family = get_family("logistic")
    with pytest.raises(InvalidInputError, match="the training split is empty"):
        family.fit(X[:0], y[:0], task="binary", n_classes=2, params={})
    with pytest.raises(InvalidInputError, match="missing values"):
        family.fit(
            X, np.where(np.arange(len(y)) == 3, np.nan, y), task="binary", n_classes=2, params={}
        )
    with pytest.raises(InvalidInputError, match="class codes"):
        family.fit(X, y + 1, task="binary", n_classes=2, params={})
    with pytest.raises(InvalidInputError, match="needs X without missing"):
        family.fit(np.where(X > 1, np.nan, X), y, task="binary", n_classes=2, params={})
    with pytest.raises(InvalidInputError, match="n_classes=3"):
        family.fit(X, y, task="binary", n_classes=3, params={})


def test_predict_refuses_the_wrong_number_of_features(datasets: dict[Task, Data]) -> None:
    X, y, X_valid, _, _ = datasets["regression"]
    model = get_family("linear").fit(X, y, task="regression", n_classes=0, params={})
    with pytest.raises(InvalidInputError, match="8 feature columns"):
        model.predict(X_valid[:, :5])
    with pytest.raises(InvalidInputError, match="classification"):
        model.predict_proba(X_valid)


def test_a_missing_library_names_its_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "lightgbm", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'fermion\[lightgbm\]'"):
        get_family("lightgbm").check_available()
