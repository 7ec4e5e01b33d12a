"""The "torch_export" flavor: a user's own PyTorch module, captured with `torch.export`.

A custom training function may return any `torch.nn.Module` that maps a float32 feature matrix
to logits (classification; one output for binary is read as a sigmoid logit) or to values
(regression). `torch.export` records the computation graph with a dynamic batch size, so
loading needs neither the module's Python class nor pickle.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fermion.errors import InvalidInputError, StorageError, require
from fermion.training.families.base import FittedModel, Floats, Matrix, fields_from_meta

_LOADING = threading.Lock()

MODEL_FILE = "module.pt2"


class ExportedTorchModel(FittedModel):
    flavor: ClassVar[str] = "torch_export"

    def _module(self) -> Any:
        module = getattr(self, "_callable", None)
        if module is None:
            module = self._callable = self.estimator.module()
        return module

    def _predict_raw(self, X: Matrix) -> Floats:
        import torch

        with torch.no_grad():
            output = self._module()(torch.from_numpy(X)).float().cpu().numpy()
        output = output.astype(np.float64)
        if self.task == "regression":
            values: Floats = output.reshape(-1)
            return values
        if output.ndim == 1 or output.shape[1] == 1:
            positive = 1.0 / (1.0 + np.exp(-output.reshape(-1)))
            return np.column_stack([1.0 - positive, positive])
        if output.shape[1] != self.n_classes:
            raise InvalidInputError(
                f"the module gives {output.shape[1]} outputs for {self.n_classes} classes"
            )
        shifted = np.exp(output - output.max(axis=1, keepdims=True))
        proba: Floats = shifted / shifted.sum(axis=1, keepdims=True)
        return proba


def export_module(module: Any, example: Matrix, **fields: Any) -> ExportedTorchModel:
    """Capture `module` as an exported program, with the batch dimension left dynamic."""
    import torch

    module.eval()
    sample = torch.from_numpy(np.ascontiguousarray(example))
    try:
        program = torch.export.export(
            module, (sample,), dynamic_shapes=({0: torch.export.Dim("batch")},)
        )
    except Exception as exc:
        raise InvalidInputError(
            f"cannot export the PyTorch module with torch.export: {type(exc).__name__}: {exc}"
        ) from exc
    return ExportedTorchModel(program, **fields)


class TorchExportFlavor:
    name: ClassVar[str] = "torch_export"
    pickle_based: ClassVar[bool] = False

    def save(self, model: FittedModel, folder: Path) -> dict[str, Any]:
        if not isinstance(model, ExportedTorchModel):
            raise InvalidInputError(
                f"the torch_export flavor saves exported modules, not {model!r}"
            )
        require("torch", "torch")
        import torch

        folder.mkdir(parents=True, exist_ok=True)
        torch.export.save(model.estimator, folder / MODEL_FILE)
        return {
            "flavor": self.name,
            "file": MODEL_FILE,
            "library": "torch",
            "library_version": torch.__version__,
            **model.fields(),
        }

    def load(self, folder: Path, meta: Mapping[str, Any], *, trusted: bool) -> FittedModel:
        require("torch", "torch")
        import torch

        path = folder / MODEL_FILE
        if not path.is_file():
            raise StorageError(f"model file {path} is missing")
        with _LOADING:  # torch.export.load keeps global state: two threads at once fail
            program = torch.export.load(path)
        return ExportedTorchModel(program, **fields_from_meta(meta))
