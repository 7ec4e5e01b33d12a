"""Flavors: how a fitted model of each library is written to a folder and read back.

A flavor writes its files into the folder it is given and returns JSON-serialisable metadata for
the model's manifest; `load` rebuilds an equivalent `FittedModel` from the folder and that
metadata. The registry decides whether a model's source is trusted; a flavor only enforces it:
a pickle-based flavor (or a file holding types outside its library) refuses to load untrusted.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

from fermion.errors import InvalidInputError

if TYPE_CHECKING:
    from fermion.registry.flavors.onnx_text import OnnxEncoder
    from fermion.registry.flavors.sentence_transformers_flavor import SentenceEncoder
    from fermion.training.families.base import FittedModel

# name -> (module, class); a flavor's module (and the libraries and family it imports) loads
# when the flavor is first asked for, so loading one model imports one flavor's code.
_FLAVOR_CLASSES: dict[str, tuple[str, str]] = {
    "sklearn": ("sklearn_flavor", "SklearnFlavor"),
    "lightgbm": ("lightgbm_flavor", "LightGBMFlavor"),
    "xgboost": ("xgboost_flavor", "XGBoostFlavor"),
    "torch": ("torch_flavor", "TorchFlavor"),
    "torch_export": ("torch_export_flavor", "TorchExportFlavor"),
    "python": ("python_flavor", "PythonFlavor"),
    "sentence_transformers": ("sentence_transformers_flavor", "SentenceTransformersFlavor"),
    "onnx": ("onnx_flavor", "OnnxFlavor"),
}

__all__ = ["FLAVORS", "Flavor", "flavor_for", "get_flavor"]


class Flavor(Protocol):
    """Saves and loads one kind of `FittedModel`."""

    @property
    def name(self) -> str: ...

    @property
    def pickle_based(self) -> bool: ...

    def save(self, model: FittedModel, folder: Path) -> dict[str, Any]:
        """Write the model's files into `folder` (created if missing); return its metadata."""
        ...

    def load(
        self, folder: Path, meta: Mapping[str, Any], *, trusted: bool
    ) -> FittedModel | SentenceEncoder | OnnxEncoder:
        """Rebuild the model saved in `folder` with metadata `meta` (an embedding model is a
        `SentenceEncoder` or an `OnnxEncoder`, not a trained `FittedModel`)."""
        ...


@functools.cache
def _flavor(name: str) -> Flavor:
    module, cls = _FLAVOR_CLASSES[name]
    flavor: Flavor = getattr(importlib.import_module(f"{__name__}.{module}"), cls)()
    return flavor


def get_flavor(name: str) -> Flavor:
    if name not in _FLAVOR_CLASSES:
        raise InvalidInputError(
            f"unknown model flavor {name!r}; choose one of: {', '.join(_FLAVOR_CLASSES)}"
        )
    return _flavor(name)


def __getattr__(name: str) -> Mapping[str, Flavor]:
    if name == "FLAVORS":  # every flavor, loaded
        return MappingProxyType({flavor: _flavor(flavor) for flavor in _FLAVOR_CLASSES})
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def flavor_for(model: FittedModel) -> Flavor:
    """The flavor that saves `model` (the one its class names)."""
    return get_flavor(model.flavor)
