"""Measuring a variant in a fresh process, and scoring its outputs with Fermion's metrics."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from sklearn import metrics as skm

from fermion.errors import InvalidInputError, NotFoundError
from fermion.optimize.measure import (
    Candidate,
    Measurement,
    MeasurementError,
    default_metric,
    measure,
    metric_names,
    score,
)
from fermion.registry.flavors import get_flavor
from fermion.training.families import FittedModel, get_family

ROWS = 200
FAST = {"seconds": 0.1, "min_calls": 50}
BALLAST_MB = 400


@pytest.fixture(scope="module")
def data() -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float64]]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(2 * ROWS, 6)).astype(np.float32)
    return X, X[:, 0] - 0.5 * X[:, 1] + rng.normal(scale=0.3, size=2 * ROWS)


def saved(
    folder: Path, family: str, flavor: str, model: FittedModel, technique: str = "original"
) -> Candidate:
    meta = get_flavor(flavor).save(model, folder / family)
    return Candidate(family, flavor, folder / family, meta, technique)


@pytest.fixture(scope="module")
def logistic(
    tmp_path_factory: pytest.TempPathFactory, data: tuple[npt.NDArray[Any], npt.NDArray[Any]]
) -> tuple[Candidate, FittedModel]:
    X, target = data
    model = get_family("logistic").fit(
        X[:ROWS], (target[:ROWS] > 0).astype(np.int64), task="binary", n_classes=2, params={}
    )
    return saved(tmp_path_factory.mktemp("models"), "logistic", "sklearn", model), model


def files_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def check_sane(result: Measurement, candidate: Candidate) -> None:
    assert result.name == candidate.name and result.technique == candidate.technique
    assert result.size_bytes == files_bytes(candidate.folder) > 0
    assert 0 < result.p50_ms <= result.p99_ms < 1000
    assert result.latency_calls >= FAST["min_calls"]
    assert result.rows_per_s_32 > 0 and result.rows_per_s_1000 > 0
    assert result.rows_1000 == 1000 and result.threads == 1
    assert result.base_rss_mb > 0 and result.load_rss_mb >= 0
    assert result.peak_rss_mb >= result.base_rss_mb + result.load_rss_mb - 1
    assert result.load_s > 0 and result.notes == ()
    assert result.metric is None and result.parity is None


def test_a_classifier_is_measured_and_its_outputs_are_its_probabilities(
    logistic: tuple[Candidate, FittedModel], data: tuple[npt.NDArray[Any], npt.NDArray[Any]]
) -> None:
    candidate, model = logistic
    X = data[0][ROWS:]
    ballast = np.ones(BALLAST_MB * 2**20, dtype=np.uint8)  # in this process, not the child
    result = measure(candidate, X, threads=1, **FAST)  # type: ignore[arg-type]
    del ballast
    check_sane(result, candidate)
    assert result.peak_rss_mb < BALLAST_MB  # the child's own peak, not its parent's
    np.testing.assert_allclose(result.outputs, model.predict_proba(X), rtol=0, atol=1e-12)
    assert "outputs" not in result.to_dict()
    assert Measurement.from_dict(result.to_dict()) == result


def test_a_regressor_is_measured_and_its_outputs_are_its_predictions(
    tmp_path: Path, data: tuple[npt.NDArray[Any], npt.NDArray[Any]]
) -> None:
    X, target = data
    model = get_family("lightgbm").fit(
        X[:ROWS], target[:ROWS], task="regression", n_classes=0, params={"num_boost_round": 20}
    )
    candidate = saved(tmp_path, "lightgbm", "lightgbm", model, technique="graph")
    result = measure(candidate, X[ROWS:], threads=1, **FAST)  # type: ignore[arg-type]
    check_sane(result, candidate)
    assert result.outputs.shape == (ROWS,)
    np.testing.assert_allclose(result.outputs, model.predict(X[ROWS:]), rtol=1e-12)


def test_a_missing_folder_is_a_clean_error(tmp_path: Path) -> None:
    candidate = Candidate("gone", "sklearn", tmp_path / "gone", {}, "original")
    with pytest.raises(NotFoundError, match="'gone'"):
        measure(candidate, np.zeros((4, 2), np.float32), threads=1)


class _Crash:
    """Unpickling this prints a line to stderr and ends the process at once."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        code = "__import__('sys').stderr.write('boom: disk gone\\n'), __import__('os')._exit(3)"
        return eval, (code,)


def test_an_unreadable_model_is_a_one_line_error_naming_the_variant(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(b"not a pickle")
    broken = Candidate("broken", "python", tmp_path, {}, "int8")
    with pytest.raises(MeasurementError) as caught:
        measure(broken, np.zeros((4, 6), np.float32), threads=1, **FAST)  # type: ignore[arg-type]
    message = str(caught.value)
    assert message.startswith("measuring variant 'broken' failed: UnpicklingError")
    assert "\n" not in message and "Traceback" not in message


def test_a_fermion_error_in_the_child_keeps_its_class(tmp_path: Path) -> None:
    candidate = Candidate("odd", "no-such-flavor", tmp_path, {}, "original")
    with pytest.raises(InvalidInputError, match=r"variant 'odd'.*unknown model flavor"):
        measure(candidate, np.zeros((4, 6), np.float32), threads=1, **FAST)  # type: ignore[arg-type]


def test_a_child_that_dies_is_reported_by_its_last_error_line(tmp_path: Path) -> None:
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(_Crash()))
    doomed = Candidate("doomed", "python", tmp_path, {}, "original")
    with pytest.raises(MeasurementError) as caught:
        measure(doomed, np.zeros((4, 6), np.float32), threads=1, **FAST)  # type: ignore[arg-type]
    assert str(caught.value) == "the process measuring variant 'doomed' died: boom: disk gone"


def test_a_child_past_its_timeout_is_stopped(logistic: tuple[Candidate, FittedModel]) -> None:
    candidate, _ = logistic
    with pytest.raises(MeasurementError, match=r"'logistic' took over 0.05 s"):
        measure(candidate, np.zeros((4, 6), np.float32), threads=1, timeout=0.05)


@pytest.mark.parametrize(
    "inputs", [np.zeros((0, 3), np.float32), np.zeros(3, np.float32), [], ["a", 3]]
)
def test_unusable_inputs_are_refused(inputs: Any, logistic: tuple[Candidate, FittedModel]) -> None:
    with pytest.raises(InvalidInputError):
        measure(logistic[0], inputs, threads=1)


def test_score_matches_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 300)
    p1 = np.clip(y * 0.3 + rng.uniform(size=300) * 0.7, 0, 1)
    proba = np.column_stack([1 - p1, p1])
    assert score("binary", "roc_auc", proba, y, ["no", "yes"]) == pytest.approx(
        skm.roc_auc_score(y, p1)
    )
    assert score("binary", "accuracy", proba, y) == pytest.approx(
        skm.accuracy_score(y, proba.argmax(axis=1))
    )
    assert score("binary", "log_loss", proba, y) == pytest.approx(skm.log_loss(y, proba))

    y3 = rng.integers(0, 3, 300)
    raw = rng.uniform(size=(300, 3)) + np.eye(3)[y3]
    proba3 = raw / raw.sum(axis=1, keepdims=True)
    assert score("multiclass", "f1_macro", proba3, y3, "abc") == pytest.approx(
        skm.f1_score(y3, proba3.argmax(axis=1), average="macro")
    )

    truth = rng.normal(size=300)
    pred = truth + rng.normal(scale=0.2, size=300)
    assert score("regression", "rmse", pred, truth) == pytest.approx(
        np.sqrt(skm.mean_squared_error(truth, pred))
    )
    assert score("regression", "r2", pred, truth) == pytest.approx(skm.r2_score(truth, pred))


def test_score_refuses_unknown_and_undefined_metrics() -> None:
    proba = np.array([[0.2, 0.8], [0.6, 0.4]])
    with pytest.raises(InvalidInputError, match=r"unknown metric 'rmse'.*roc_auc"):
        score("binary", "rmse", proba, [0, 1])
    with pytest.raises(InvalidInputError, match="undefined"):
        score("binary", "roc_auc", proba, [1, 1])
    assert default_metric("binary") == "roc_auc"
    assert default_metric("regression") == "rmse"
    assert "f1_macro" in metric_names("multiclass") and "rmse" not in metric_names("binary")
