"""Magnitude pruning of the torch MLP family's network, and a short fine-tune after it.

Unstructured pruning zeroes the smallest weights over all Linear layers together (a sparse
file compresses, but dense kernels run no faster). Structured pruning removes whole hidden
units, so the saved network is smaller and faster everywhere. The source model is never
modified: each function returns a new `TorchMLPModel`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from fermion.errors import InvalidInputError, require
from fermion.training.families.base import CLASSIFICATION, THREADS, FittedModel
from fermion.training.families.torch_mlp import MLPConfig, TorchMLPModel, build_mlp

if TYPE_CHECKING:
    import torch
    from torch import nn

_BATCH = 256  # the family's default batch size


@dataclass(frozen=True)
class PruneResult:
    """The pruned copy; sparsity is the fraction of zero weights over its Linear layers."""

    model: TorchMLPModel
    sparsity: float
    params_before: int
    params_after: int
    structured: bool


def prune_mlp(model: FittedModel, amount: float, *, structured: bool) -> PruneResult:
    """Prune `amount` (0 < amount < 1) of the network's weights (unstructured: global L1 over
    every Linear weight) or of each hidden layer's units (structured: those whose incoming
    weights have the smallest L2 norm; input and output widths never change)."""
    source = _torch_mlp(model)
    if not (isinstance(amount, int | float) and 0 < amount < 1):
        raise InvalidInputError(f"the pruning amount must be between 0 and 1, got {amount!r}")
    if structured and not source.config["hidden"]:
        raise InvalidInputError("structured pruning needs a network with hidden layers")
    require("torch", "torch")
    import torch

    with torch.no_grad():
        pruned = _structured(source, amount) if structured else _unstructured(source, amount)
    return PruneResult(
        model=pruned,
        sparsity=weight_sparsity(pruned),
        params_before=_param_count(source.estimator),
        params_after=_param_count(pruned.estimator),
        structured=structured,
    )


def fine_tune(
    model: FittedModel,
    X_train: npt.ArrayLike,
    y_train: npt.ArrayLike,
    *,
    epochs: int = 3,
    lr: float = 1e-3,
    seed: int = 0,
    X_valid: npt.ArrayLike | None = None,
    y_valid: npt.ArrayLike | None = None,
    threads: int = THREADS,
) -> TorchMLPModel:
    """A copy of `model` trained `epochs` more epochs with the family's loss (cross-entropy,
    or MSE on the standardised target) and AdamW; weights that are exactly zero stay zero.

    With validation rows, the copy keeps the epoch (the pruned start included) with the
    lowest validation loss, so a fine-tune never makes the validation loss worse.
    """
    source = _torch_mlp(model)
    if epochs < 1 or not lr > 0:
        raise InvalidInputError("fine-tuning needs epochs >= 1 and a positive learning rate")
    require("torch", "torch")
    import torch

    X, y = _rows(source, X_train, y_train, "training")
    if (X_valid is None) != (y_valid is None):
        raise InvalidInputError("give both X_valid and y_valid, or neither")
    valid = None
    if X_valid is not None and y_valid is not None:
        valid = _rows(source, X_valid, y_valid, "validation")
    tuned = _copy(source, copy.deepcopy(source.estimator), source.config)
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, threads))
    try:
        with torch.random.fork_rng(devices=[]):  # leaves the caller's random state alone
            torch.manual_seed(seed)
            _train(tuned, X, y, valid, epochs=epochs, lr=lr, seed=seed)
    finally:
        torch.set_num_threads(previous)
    return tuned


def weight_sparsity(model: TorchMLPModel) -> float:
    """The fraction of the Linear layers' weights (biases aside) that are exactly zero."""
    weights = [layer.weight for layer in _linears(model.estimator)]
    total = sum(int(w.numel()) for w in weights)
    zeros = sum(int((w == 0).sum()) for w in weights)
    return zeros / total if total else 0.0


def _train(
    model: TorchMLPModel,
    X: npt.NDArray[np.float32],
    y: npt.NDArray[Any],
    valid: tuple[npt.NDArray[np.float32], npt.NDArray[Any]] | None,
    *,
    epochs: int,
    lr: float,
    seed: int,
) -> None:
    import torch
    from torch import nn
    from torch.nn.utils import prune

    network = model.estimator
    regression = model.task == "regression"
    if regression:
        targets = torch.tensor((y - model.y_mean) / model.y_scale, dtype=torch.float32)
        criterion: nn.Module = nn.MSELoss()
    else:
        targets = torch.tensor(y, dtype=torch.int64)
        criterion = nn.CrossEntropyLoss()
    # pruning's reparametrisation (weight = weight_orig * mask) keeps zeros at zero
    masked = [layer for layer in _linears(network) if bool((layer.weight == 0).any())]
    for layer in masked:
        prune.custom_from_mask(layer, "weight", layer.weight != 0)  # type: ignore[no-untyped-call]
    optimizer = torch.optim.AdamW(network.parameters(), lr=lr, weight_decay=1e-4)
    features = torch.tensor(X)
    generator = torch.Generator().manual_seed(seed)
    best_loss = model.loss(*valid) if valid is not None else math.inf
    best_state = _state(network) if valid is not None else None
    for _ in range(epochs):
        network.train()
        order = torch.randperm(len(features), generator=generator)
        for start in range(0, len(features), _BATCH):
            rows = order[start : start + _BATCH]
            optimizer.zero_grad()
            out = network(features[rows])
            loss = criterion(out[:, 0] if regression else out, targets[rows])
            loss.backward()
            optimizer.step()
        network.eval()
        if valid is not None:
            value = model.loss(*valid)
            if value < best_loss:
                best_loss, best_state = value, _state(network)
    if best_state is not None:
        network.load_state_dict(best_state)
    for layer in masked:
        prune.remove(layer, "weight")  # type: ignore[no-untyped-call]
    network.eval()


def _state(network: nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in network.state_dict().items()}


def _unstructured(source: TorchMLPModel, amount: float) -> TorchMLPModel:
    from torch.nn.utils import prune

    network = copy.deepcopy(source.estimator)
    linears = _linears(network)
    prune.global_unstructured(
        [(layer, "weight") for layer in linears],
        pruning_method=prune.L1Unstructured,
        amount=amount,
    )
    for layer in linears:
        # the zeros become the plain weight tensor
        prune.remove(layer, "weight")  # type: ignore[no-untyped-call]
    return _copy(source, network, source.config)


def _structured(source: TorchMLPModel, amount: float) -> TorchMLPModel:
    import torch

    linears = _linears(source.estimator)
    weights = [layer.weight.detach().clone() for layer in linears]
    biases = [layer.bias.detach().clone() for layer in linears]
    hidden: list[int] = []
    for i in range(len(linears) - 1):  # the last Linear is the output layer: its rows stay
        width = weights[i].shape[0]
        keep_count = max(1, width - round(amount * width))
        norms = weights[i].norm(p=2, dim=1)
        keep = torch.sort(torch.topk(norms, keep_count).indices).values
        weights[i], biases[i] = weights[i][keep], biases[i][keep]
        weights[i + 1] = weights[i + 1][:, keep]
        hidden.append(keep_count)
    config = MLPConfig(
        input_dim=source.config["input_dim"],
        hidden=hidden,
        dropout=source.config["dropout"],
        output_dim=source.config["output_dim"],
    )
    network = build_mlp(config)
    for layer, weight, bias in zip(_linears(network), weights, biases, strict=True):
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    network.eval()
    return _copy(source, network, config)


def _copy(source: TorchMLPModel, network: nn.Module, config: MLPConfig) -> TorchMLPModel:
    network.eval()
    model = TorchMLPModel(
        network,
        config=config,
        y_mean=source.y_mean,
        y_scale=source.y_scale,
        task=source.task,
        n_classes=source.n_classes,
        n_features=source.n_features,
        best_step=source.best_step,
        history={key: list(values) for key, values in source.history.items()},
    )
    model.predict_threads = source.predict_threads
    return model


def _torch_mlp(model: FittedModel) -> TorchMLPModel:
    if not isinstance(model, TorchMLPModel):
        flavor = getattr(model, "flavor", type(model).__name__)
        raise InvalidInputError(f"pruning is for PyTorch models; this is a {flavor} model")
    return model


def _linears(network: nn.Module) -> list[nn.Linear]:
    from torch import nn

    return [layer for layer in network.modules() if isinstance(layer, nn.Linear)]


def _param_count(network: nn.Module) -> int:
    return sum(int(p.numel()) for p in network.parameters())


def _rows(
    model: TorchMLPModel, X: npt.ArrayLike, y: npt.ArrayLike, split: str
) -> tuple[npt.NDArray[np.float32], npt.NDArray[Any]]:
    matrix = np.ascontiguousarray(X, dtype=np.float32)
    target = np.asarray(y, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[1] != model.n_features:
        raise InvalidInputError(
            f"the {split} rows must be a matrix of {model.n_features} feature columns, "
            f"got shape {matrix.shape}"
        )
    if target.ndim != 1 or len(target) != len(matrix) or len(matrix) == 0:
        raise InvalidInputError(f"the {split} split needs a 1-D y as long as its X, not empty")
    if not np.isfinite(matrix).all() or not np.isfinite(target).all():
        raise InvalidInputError(f"the {split} split has missing or infinite values")
    if model.task in CLASSIFICATION:
        if (
            (target != np.round(target)).any()
            or target.min() < 0
            or target.max() >= model.n_classes
        ):
            raise InvalidInputError(
                f"class codes of the {split} split must be 0..{model.n_classes - 1}"
            )
        return matrix, target.astype(np.int64)
    return matrix, target
