"""The "torch" flavor: a `TabularMLP` as a state dict, its shape and target scaling as metadata.

The weights are read with `torch.load(weights_only=True)`, which refuses anything but tensors
and plain containers, so no pickled code runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from fermion.errors import InvalidInputError, StorageError, require
from fermion.training.families.base import FittedModel, fields_from_meta
from fermion.training.families.torch_mlp import MLPConfig, TorchMLPModel, build_mlp

WEIGHTS_FILE = "weights.pt"


def config_from_meta(raw: object) -> MLPConfig:
    """The network config stored in the metadata, checked field by field."""
    if not isinstance(raw, Mapping):
        raise InvalidInputError("torch model metadata lacks its network 'config'")
    input_dim, hidden = raw.get("input_dim"), raw.get("hidden")
    dropout, output_dim = raw.get("dropout"), raw.get("output_dim")
    if (
        not isinstance(input_dim, int)
        or not isinstance(output_dim, int)
        or not isinstance(dropout, int | float)
        or not isinstance(hidden, list)
        or not all(isinstance(size, int) for size in hidden)
    ):
        raise InvalidInputError(f"torch model metadata has a malformed network config: {raw!r}")
    return MLPConfig(
        input_dim=input_dim, hidden=list(hidden), dropout=float(dropout), output_dim=output_dim
    )


class TorchFlavor:
    name: ClassVar[str] = "torch"
    pickle_based: ClassVar[bool] = False

    def save(self, model: FittedModel, folder: Path) -> dict[str, Any]:
        if not isinstance(model, TorchMLPModel):
            raise InvalidInputError(f"the torch flavor saves TorchMLPModel, not {model!r}")
        require("torch", "torch")
        import torch

        folder.mkdir(parents=True, exist_ok=True)
        torch.save(model.estimator.state_dict(), folder / WEIGHTS_FILE)
        return {
            "flavor": self.name,
            "file": WEIGHTS_FILE,
            "library": "torch",
            "library_version": torch.__version__,
            "config": dict(model.config),
            "y_mean": model.y_mean,
            "y_scale": model.y_scale,
            **model.fields(),
        }

    def load(self, folder: Path, meta: Mapping[str, Any], *, trusted: bool) -> FittedModel:
        require("torch", "torch")
        import torch

        path = folder / WEIGHTS_FILE
        if not path.is_file():
            raise StorageError(f"model file {path} is missing")
        config = config_from_meta(meta.get("config"))
        y_mean, y_scale = meta.get("y_mean", 0.0), meta.get("y_scale", 1.0)
        if not isinstance(y_mean, int | float) or not isinstance(y_scale, int | float):
            raise InvalidInputError("torch model metadata has a malformed target scaling")
        network = build_mlp(config)
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        network.eval()
        return TorchMLPModel(
            network,
            config=config,
            y_mean=float(y_mean),
            y_scale=float(y_scale),
            **fields_from_meta(meta),
        )
