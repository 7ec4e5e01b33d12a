"""Custom training: the user's function fits any model, Fermion tracks, evaluates and registers."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl
import pytest

from fermion.data.dataset import Dataset
from fermion.entities import RunStatus
from fermion.errors import InvalidInputError
from fermion.tracking import Run
from fermion.training.custom import TrainingData
from fermion.training.evaluation import evaluate
from fermion.training.trainer import train
from fermion.workspace import Workspace

AddData = Callable[..., Dataset]
ROW = {"age": 41, "income": 52_000.5, "city": "paris", "member": False, "start": "2021-06-01"}


class Centroids:
    """A nearest-centroid classifier in plain NumPy, with softmax-of-distance probabilities."""

    def fit(self, X: npt.NDArray[Any], y: npt.NDArray[Any], n_classes: int) -> Centroids:
        self.centers_ = np.stack([X[y == k].mean(axis=0) for k in range(n_classes)])
        return self

    def predict_proba(self, X: npt.NDArray[Any]) -> npt.NDArray[np.float64]:
        distance = ((X[:, None, :] - self.centers_[None, :, :]) ** 2).sum(axis=2)
        weight = np.exp(-(distance - distance.min(axis=1, keepdims=True)))
        return weight / weight.sum(axis=1, keepdims=True)

    def predict(self, X: npt.NDArray[Any]) -> npt.NDArray[np.int64]:
        return np.argmax(self.predict_proba(X), axis=1)


class CityMeans:
    """A regressor over named columns: the mean target of each city, else the overall mean."""

    def fit(self, X: Any, y: npt.NDArray[Any]) -> CityMeans:
        cities = np.asarray(X["city"])
        self.overall_ = float(y.mean())
        self.means_ = {c: float(y[cities == c].mean()) for c in np.unique(cities)}
        return self

    def predict(self, X: Any) -> npt.NDArray[np.float64]:
        return np.array([self.means_.get(c, self.overall_) for c in np.asarray(X["city"])])


class NoPredict:
    def fit(self, X: Any, y: Any) -> NoPredict:
        return self


class NoProba:
    def predict(self, X: Any) -> npt.NDArray[np.int64]:
        return np.zeros(len(X), dtype=np.int64)


def _test_rows(dataset: Dataset) -> pl.DataFrame:
    return dataset.split_frames(dataset.splits[0])["test"]


def test_numpy_model_on_a_matrix(sqlite_ws: Workspace, add_data: AddData) -> None:
    dataset = add_data(sqlite_ws, "credit", n=400, target="segment")
    seen: dict[str, Any] = {}

    def fit_centroids(data: TrainingData, run: Run) -> Centroids:
        seen.update(data=data, run_id=run.id)
        run.log_metric("centroid_count", data.n_classes)
        return Centroids().fit(data.X_train, data.y_train, data.n_classes)

    result = train(
        sqlite_ws, "credit", "segment", fit_centroids, {"k": 3}, name="centroids", alias="prod"
    )

    data: TrainingData = seen["data"]
    assert data.task == "multiclass" and data.classes == ["high", "low", "mid"]
    assert isinstance(data.X_train, np.ndarray) and data.X_train.dtype == np.float32
    assert data.X_train.shape[0] == len(data.y_train) == dataset.splits[0].counts["train"]
    assert data.X_valid is not None and data.X_test is not None
    assert set(np.unique(data.y_train)) == {0, 1, 2}
    assert data.params == {"k": 3}

    run = sqlite_ws.runs.get(result.run_id)
    assert seen["run_id"] == result.run_id
    assert run.status == RunStatus.FINISHED
    assert run.params["model"] == "custom:fit_centroids" and run.params["k"] == 3
    assert run.metrics["centroid_count"] == 3
    assert "f1_macro" in run.metrics and "valid_f1_macro" in run.metrics
    assert "plots/confusion_matrix.png" in result.plots

    assert result.model is not None and result.model.flavor == "python"
    loaded = sqlite_ws.models.load("centroids@prod")
    assert isinstance(loaded.estimator, Centroids)
    assert loaded.predict(ROW).tolist()[0] in ("high", "low", "mid")
    assert loaded.predict_proba([ROW, ROW]).shape == (2, 3)
    test = _test_rows(sqlite_ws.datasets.get("credit"))
    assert evaluate(loaded, test, "segment").metrics == pytest.approx(result.metrics, rel=1e-9)


@pytest.mark.parametrize("inputs", ["frame", "pandas"])
def test_frame_model_uses_column_names(
    sqlite_ws: Workspace, add_data: AddData, inputs: Any
) -> None:
    add_data(sqlite_ws, "spend", n=400, target="amount")
    kinds: list[str] = []

    def fit_city_means(data: TrainingData, run: Run) -> CityMeans:
        kinds.append(type(data.X_train).__module__.split(".")[0])
        assert list(data.X_train.columns) == data.features
        return CityMeans().fit(data.X_train, data.y_train)

    result = train(sqlite_ws, "spend", "amount", fit_city_means, inputs=inputs)

    assert kinds == ["polars" if inputs == "frame" else "pandas"]
    assert result.task == "regression" and "rmse" in result.metrics
    loaded = sqlite_ws.models.load("spend")
    test = _test_rows(sqlite_ws.datasets.get("spend"))
    expected = loaded.estimator.predict(test)
    np.testing.assert_allclose(loaded.predict(test.drop("amount").to_dicts()), expected)
    assert evaluate(loaded, test, "amount").metrics == pytest.approx(result.metrics, rel=1e-9)


@pytest.mark.parametrize(
    ("returned", "message"),
    [
        (NoPredict(), "returned a NoPredict, which has no predict(X) method"),
        (None, "returned no model"),
        (NoProba(), "predict_proba(X)"),
    ],
    ids=["no predict", "nothing", "classifier without predict_proba"],
)
def test_unusable_model_fails_the_run(
    sqlite_ws: Workspace, add_data: AddData, returned: object, message: str
) -> None:
    add_data(sqlite_ws, "credit", n=200)

    def fit(data: TrainingData, run: Run) -> object:
        return returned

    with pytest.raises(InvalidInputError, match=re.escape(message)):
        train(sqlite_ws, "credit", "status", fit)
    (run,) = sqlite_ws.runs.list()
    assert run.status == RunStatus.FAILED and run.error is not None and message in run.error
    assert sqlite_ws.models.list() == []


def test_unknown_inputs_kind_is_refused(sqlite_ws: Workspace, add_data: AddData) -> None:
    add_data(sqlite_ws, "credit", n=200)
    with pytest.raises(InvalidInputError, match="inputs must be matrix, frame or pandas"):
        train(sqlite_ws, "credit", "status", lambda data, run: None, inputs="arrow")  # type: ignore[arg-type]
    assert sqlite_ws.models.list() == []
