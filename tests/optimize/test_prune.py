"""Pruning the torch MLP: a smaller or sparser copy that still predicts, the source untouched."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from fermion.errors import InvalidInputError
from fermion.optimize.prune import fine_tune, prune_mlp, weight_sparsity
from fermion.training.families import get_family
from fermion.training.families.torch_mlp import TorchMLPModel

Split = tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]


@pytest.fixture(scope="module")
def data() -> dict[str, Split]:
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=1600, n_features=20, n_informative=8, class_sep=1.5, random_state=0
    )
    X = X.astype(np.float32)
    return {
        "train": (X[:1000], y[:1000]),
        "valid": (X[1000:1300], y[1000:1300]),
        "test": (X[1300:], y[1300:]),
    }


@pytest.fixture(scope="module")
def model(data: dict[str, Split]) -> TorchMLPModel:
    fitted = get_family("torch_mlp").fit(
        *data["train"],
        task="binary",
        n_classes=2,
        params={"hidden": "64,64", "epochs": 15, "patience": None},
        threads=1,
    )
    assert isinstance(fitted, TorchMLPModel)
    return fitted


def accuracy(model: TorchMLPModel, split: Split) -> float:
    return float((model.predict(split[0]) == split[1]).mean())


def snapshot(model: TorchMLPModel) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.estimator.state_dict().items()}


def test_structured_pruning_shrinks_the_network(
    model: TorchMLPModel, data: dict[str, Split]
) -> None:
    before = snapshot(model)
    result = prune_mlp(model, 0.5, structured=True)

    pruned = result.model
    assert result.structured
    assert pruned.config["hidden"] == [32, 32]
    assert pruned.config["input_dim"] == 20 and pruned.config["output_dim"] == 2
    shapes = [
        tuple(layer.weight.shape) for layer in pruned.estimator.net if hasattr(layer, "weight")
    ]
    assert shapes == [(32, 20), (32, 32), (2, 32)]
    # 20*64+64 + 64*64+64 + 64*2+2 = 5634 -> 20*32+32 + 32*32+32 + 32*2+2 = 1794
    assert (result.params_before, result.params_after) == (5634, 1794)
    assert result.sparsity == 0.0

    tuned = fine_tune(
        pruned,
        *data["train"],
        epochs=3,
        X_valid=data["valid"][0],
        y_valid=data["valid"][1],
        threads=1,
    )
    assert tuned.config["hidden"] == [32, 32]
    assert accuracy(tuned, data["test"]) >= accuracy(model, data["test"]) - 0.03
    # the source model and the pruned one are left as they were
    assert model.config["hidden"] == [64, 64]
    after = snapshot(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert pruned.estimator is not tuned.estimator


def test_unstructured_pruning_zeroes_half_the_weights_and_fine_tune_keeps_them(
    model: TorchMLPModel, data: dict[str, Split]
) -> None:
    before = snapshot(model)
    result = prune_mlp(model, 0.5, structured=False)

    pruned = result.model
    assert not result.structured
    assert result.sparsity == pytest.approx(0.5, abs=0.001)
    assert result.params_after == result.params_before
    assert pruned.config["hidden"] == [64, 64]
    # plain weight tensors (the pruning reparametrisation removed), saved like any other
    assert all(not k.endswith(("_orig", "_mask")) for k in pruned.estimator.state_dict())
    zeros = [layer.weight == 0 for layer in pruned.estimator.net if hasattr(layer, "weight")]

    tuned = fine_tune(pruned, *data["train"], epochs=3, threads=1)  # no validation rows
    assert weight_sparsity(tuned) == pytest.approx(result.sparsity)
    tuned_layers = [layer for layer in tuned.estimator.net if hasattr(layer, "weight")]
    for was_zero, layer in zip(zeros, tuned_layers, strict=True):
        assert bool((layer.weight[was_zero] == 0).all())
    assert not any(k.endswith(("_orig", "_mask")) for k in tuned.estimator.state_dict())
    assert accuracy(tuned, data["test"]) >= accuracy(model, data["test"]) - 0.03
    after = snapshot(model)
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert weight_sparsity(model) < 0.01


def test_regression_fine_tune_uses_the_standardised_target() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 5)).astype(np.float32)
    y = 1000 + 50 * X[:, 0] - 30 * X[:, 1] + rng.normal(0, 1, 600)
    fitted = get_family("torch_mlp").fit(
        X[:500],
        y[:500],
        task="regression",
        n_classes=0,
        params={"hidden": "32", "epochs": 30, "patience": None, "learning_rate": 0.01},
        threads=1,
    )
    assert isinstance(fitted, TorchMLPModel)
    pruned = prune_mlp(fitted, 0.25, structured=True).model
    tuned = fine_tune(pruned, X[:500], y[:500], epochs=5, lr=1e-3, threads=1)

    assert (tuned.y_mean, tuned.y_scale) == (fitted.y_mean, fitted.y_scale)
    rmse = float(np.sqrt(np.mean((tuned.predict(X[500:]) - y[500:]) ** 2)))
    assert rmse < 0.5 * float(np.std(y))


def test_refusals(model: TorchMLPModel, data: dict[str, Split]) -> None:
    for amount in (0.0, 1.0, -0.1, 1.5, float("nan")):
        with pytest.raises(InvalidInputError, match="between 0 and 1"):
            prune_mlp(model, amount, structured=False)
    other = get_family("logistic").fit(*data["train"], task="binary", n_classes=2, params={})
    with pytest.raises(InvalidInputError, match="pruning is for PyTorch models; this is a sklearn"):
        prune_mlp(other, 0.5, structured=True)
    with pytest.raises(InvalidInputError, match="20 feature columns"):
        fine_tune(model, data["train"][0][:, :5], data["train"][1])
    with pytest.raises(InvalidInputError, match="class codes"):
        fine_tune(model, data["train"][0], data["train"][1] + 5)
    with pytest.raises(InvalidInputError, match="both X_valid and y_valid"):
        fine_tune(model, *data["train"], X_valid=data["valid"][0])
