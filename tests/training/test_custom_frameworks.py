"""Custom training functions returning framework objects: PyTorch modules, scikit-learn
estimators, Keras-style models whose predict gives probabilities."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fermion.workspace import Workspace


@pytest.fixture
def credit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    rng = np.random.default_rng(0)
    n = 400
    income = rng.normal(100, 30, n).round(1)
    age = rng.integers(18, 70, n)
    home = rng.choice(["rent", "owner", "parents"], n)
    good = (income + rng.normal(0, 20, n) > 100) | (home == "owner")
    lines = ["income,age,home,status"]
    lines += [
        f"{i},{a},{h},{'good' if g else 'bad'}"
        for i, a, h, g in zip(income, age, home, good, strict=True)
    ]
    (tmp_path / "credit.csv").write_text("\n".join(lines) + "\n")
    monkeypatch.chdir(tmp_path)
    with Workspace.init(tmp_path) as ws:
        ws.datasets.add(tmp_path / "credit.csv", name="credit")
        yield ws


ROW = {"income": 150.0, "age": 40, "home": "owner"}


def test_a_pytorch_module_is_exported_and_served_without_pickle(credit: Workspace) -> None:
    torch = pytest.importorskip("torch")

    def fit(data: Any, run: Any) -> Any:
        torch.manual_seed(0)
        net = torch.nn.Sequential(
            torch.nn.Linear(data.X_train.shape[1], 16),
            torch.nn.ReLU(),
            torch.nn.Linear(16, data.n_classes),
        )
        optimizer = torch.optim.Adam(net.parameters(), lr=0.02)
        X, y = torch.from_numpy(data.X_train), torch.from_numpy(data.y_train)
        for epoch in range(40):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(X), y)
            loss.backward()
            optimizer.step()
            run.log_metric("train_loss", loss.item(), step=epoch)
        return net

    from fermion.training.trainer import train

    trained = train(credit, "credit", "status", fit, name="net")
    assert trained.model is not None and trained.model.flavor == "torch_export"
    assert trained.metrics["roc_auc"] > 0.75
    model = credit.models.load("net")
    proba = model.predict_proba(ROW)
    assert proba.shape == (1, 2) and np.isclose(proba.sum(), 1.0)
    assert model.predict(ROW)[0] == "good"


def test_a_scikit_learn_estimator_is_saved_with_skops(credit: Workspace) -> None:
    from sklearn.linear_model import LogisticRegression

    from fermion.training.trainer import train

    def fit(data: Any, run: Any) -> Any:
        return LogisticRegression(max_iter=500).fit(data.X_train, data.y_train)

    trained = train(credit, "credit", "status", fit, name="logreg")
    assert trained.model is not None and trained.model.flavor == "sklearn"
    assert credit.models.load("logreg").predict(ROW)[0] == "good"


def test_a_model_whose_predict_gives_probabilities_is_accepted(credit: Workspace) -> None:
    from fermion.training.trainer import train

    class KerasLike:
        def predict(self, X: np.ndarray) -> np.ndarray:
            logit = X[:, 0]  # the scaled income
            positive = 1 / (1 + np.exp(-3 * logit))
            return np.column_stack([1 - positive, positive])

    trained = train(credit, "credit", "status", lambda data, run: KerasLike(), name="keras")
    assert trained.model is not None and trained.model.flavor == "python"
    assert trained.metrics["roc_auc"] > 0.7
    assert credit.models.load("keras").predict(ROW)[0] == "good"
