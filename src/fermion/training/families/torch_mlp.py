"""A PyTorch multilayer perceptron for tabular data, early-stopped on the validation loss.

The network is rebuilt from a plain JSON config plus a state dict, so saving it needs no pickle.
Regression targets are standardised for training; their mean and scale live on the fitted model.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypedDict

import numpy as np

from fermion.errors import InvalidInputError, require
from fermion.training.families.base import (
    ALL_TASKS,
    FitInputs,
    FittedModel,
    Floats,
    Matrix,
    ModelFamily,
    Preprocessing,
    StepLog,
    Task,
)
from fermion.training.families.params import (
    ParamSpec,
    get_float,
    get_int,
    get_opt_int,
    get_str,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

_PREDICT_CHUNK = 65_536  # rows per forward pass when predicting, to bound memory


class MLPConfig(TypedDict):
    """Everything needed to rebuild the network's shape; JSON-serialisable."""

    input_dim: int
    hidden: list[int]
    dropout: float
    output_dim: int


def parse_hidden(text: str) -> list[int]:
    """ "128,64" -> [128, 64]; an empty string means no hidden layer."""
    try:
        sizes = [int(part) for part in text.replace(" ", "").split(",") if part]
    except ValueError:
        sizes = [0]
    if any(size < 1 for size in sizes):
        raise InvalidInputError(
            f"param 'hidden' must be comma-separated positive integers such as '128,64', "
            f"got {text!r}"
        )
    return sizes


@functools.cache  # one class per process, so every network is an instance of the same class
def mlp_class() -> type[nn.Module]:
    """The `TabularMLP` module class (defined on first use, as it needs torch)."""
    require("torch", "torch")
    from torch import nn

    class TabularMLP(nn.Module):
        """Linear -> ReLU -> Dropout per hidden size, then a linear output layer."""

        def __init__(self, config: MLPConfig) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            width = config["input_dim"]
            for size in config["hidden"]:
                layers += [nn.Linear(width, size), nn.ReLU(), nn.Dropout(config["dropout"])]
                width = size
            layers.append(nn.Linear(width, config["output_dim"]))
            self.net = nn.Sequential(*layers)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = self.net(x)
            return out

    return TabularMLP


def build_mlp(config: MLPConfig) -> nn.Module:
    """A fresh `TabularMLP` with the shape `config` describes."""
    return mlp_class()(config)


class TorchMLPModel(FittedModel):
    """A trained `TabularMLP` in eval mode, with its config and the target scaling."""

    flavor: ClassVar[str] = "torch"

    def __init__(
        self,
        estimator: Any,
        *,
        config: MLPConfig,
        y_mean: float = 0.0,
        y_scale: float = 1.0,
        task: Task,
        n_classes: int,
        n_features: int,
        best_step: int | None = None,
        history: dict[str, list[float]] | None = None,
    ) -> None:
        super().__init__(
            estimator,
            task=task,
            n_classes=n_classes,
            n_features=n_features,
            best_step=best_step,
            history=history,
        )
        self.config = config
        self.y_mean = y_mean
        self.y_scale = y_scale

    def limit_threads(self, threads: int) -> None:
        """torch's intra-op pool is per process: this sets it for every torch model here."""
        import torch

        super().limit_threads(threads)
        torch.set_num_threads(self.predict_threads)

    def _predict_raw(self, X: Matrix) -> Floats:
        require("torch", "torch")
        import torch

        self.estimator.eval()
        parts: list[Floats] = []
        with torch.inference_mode():
            for start in range(0, len(X), _PREDICT_CHUNK):
                out = self.estimator(torch.tensor(X[start : start + _PREDICT_CHUNK])).double()
                if self.task == "regression":
                    parts.append(out[:, 0].numpy() * self.y_scale + self.y_mean)
                else:
                    parts.append(torch.softmax(out, dim=1).numpy())
        width = (0,) if self.task == "regression" else (0, self.n_classes)
        return np.concatenate(parts) if parts else np.zeros(width, dtype=np.float64)


class TorchMLPFamily(ModelFamily):
    name: ClassVar[str] = "torch_mlp"
    flavor: ClassVar[str] = "torch"
    extra: ClassVar[str | None] = "torch"
    library: ClassVar[str] = "torch"
    preprocessing: ClassVar[Preprocessing] = "linear"
    tasks: ClassVar[frozenset[Task]] = ALL_TASKS

    def params(self, task: Task) -> list[ParamSpec]:
        return [
            ParamSpec("hidden", str, "128,64", "hidden layer sizes, comma-separated"),
            ParamSpec("dropout", float, 0.1, "dropout after each hidden layer", ge=0, lt=1),
            ParamSpec("learning_rate", float, 1e-3, "AdamW learning rate", gt=0),
            ParamSpec("weight_decay", float, 1e-4, "AdamW weight decay", ge=0),
            ParamSpec("batch_size", int, 256, "rows per batch", ge=1),
            ParamSpec("epochs", int, 50, "most epochs", ge=1),
            ParamSpec(
                "patience",
                int,
                8,
                "epochs without validation improvement before stopping",
                nullable=True,
                ge=1,
            ),
        ]

    def coerce_params(self, task: Task, raw: Mapping[str, object]) -> dict[str, object]:
        params = super().coerce_params(task, raw)
        parse_hidden(get_str(params, "hidden"))
        return params

    def _fit(self, inputs: FitInputs, params: Mapping[str, object]) -> FittedModel:
        require("torch", "torch")
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(inputs.threads)
        try:
            # fork_rng keeps the caller's global random state as it was
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(inputs.seed)
                return self._train(inputs, params)
        finally:
            torch.set_num_threads(threads)

    def _train(self, inputs: FitInputs, params: Mapping[str, object]) -> TorchMLPModel:
        import torch
        from torch import nn

        regression = inputs.task == "regression"
        config = MLPConfig(
            input_dim=inputs.n_features,
            hidden=parse_hidden(get_str(params, "hidden")),
            dropout=get_float(params, "dropout"),
            output_dim=1 if regression else inputs.n_classes,
        )
        y_mean, y_scale = 0.0, 1.0
        if regression:
            y_mean = float(np.mean(inputs.y))
            y_scale = float(np.std(inputs.y)) or 1.0
            targets = torch.tensor((inputs.y - y_mean) / y_scale, dtype=torch.float32)
            criterion: nn.Module = nn.MSELoss()
        else:
            targets = torch.tensor(inputs.y, dtype=torch.int64)
            criterion = nn.CrossEntropyLoss()
        network = build_mlp(config)
        model = TorchMLPModel(
            network,
            config=config,
            y_mean=y_mean,
            y_scale=y_scale,
            task=inputs.task,
            n_classes=inputs.n_classes,
            n_features=inputs.n_features,
        )
        optimizer = torch.optim.AdamW(
            network.parameters(),
            lr=get_float(params, "learning_rate"),
            weight_decay=get_float(params, "weight_decay"),
        )
        features = torch.tensor(inputs.X)
        batch = get_int(params, "batch_size")
        epochs = get_int(params, "epochs")
        log = StepLog(inputs, epochs, get_opt_int(params, "patience"))
        generator = torch.Generator().manual_seed(inputs.seed)
        best_state: dict[str, torch.Tensor] | None = None
        for _ in range(epochs):
            network.train()
            order = torch.randperm(len(features), generator=generator)
            total = 0.0
            for start in range(0, len(features), batch):
                rows = order[start : start + batch]
                optimizer.zero_grad()
                out = network(features[rows])
                loss = criterion(out[:, 0] if regression else out, targets[rows])
                loss.backward()
                optimizer.step()
                total += float(loss.item()) * len(rows)
            if inputs.valid is not None:
                value = model.loss(*inputs.valid)
            else:
                mean = total / len(features)
                value = math.sqrt(mean) * y_scale if regression else mean
            stop = log.record(value)
            if inputs.valid is not None and log.last_is_best:
                best_state = {k: v.detach().clone() for k, v in network.state_dict().items()}
            if stop:
                break
        if best_state is not None:
            network.load_state_dict(best_state)
        network.eval()
        model.best_step = log.chosen_step()
        model.history = log.history()
        return model
