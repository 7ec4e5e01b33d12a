"""Flavors: how a fitted model of each library is written to a folder and read back.

A flavor writes its files into the folder it is given and returns JSON-serialisable metadata for
the model's manifest; `load` rebuilds an equivalent `FittedModel` from the folder and that
metadata. The registry decides whether a model's source is trusted; a flavor only enforces it:
a pickle-based flavor (or a file holding types outside its library) refuses to load untrusted.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

from fermion.errors import InvalidInputError
from fermion.registry.flavors.lightgbm_flavor import LightGBMFlavor
from fermion.registry.flavors.onnx_flavor import OnnxFlavor
from fermion.registry.flavors.onnx_text import OnnxEncoder
from fermion.registry.flavors.python_flavor import PythonFlavor
from fermion.registry.flavors.sentence_transformers_flavor import (
    SentenceEncoder,
    SentenceTransformersFlavor,
)
from fermion.registry.flavors.sklearn_flavor import SklearnFlavor
from fermion.registry.flavors.torch_export_flavor import TorchExportFlavor
from fermion.registry.flavors.torch_flavor import TorchFlavor
from fermion.registry.flavors.xgboost_flavor import XGBoostFlavor
from fermion.training.families.base import FittedModel

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


FLAVORS: Mapping[str, Flavor] = MappingProxyType(
    {
        flavor.name: flavor
        for flavor in (
            SklearnFlavor(),
            LightGBMFlavor(),
            XGBoostFlavor(),
            TorchFlavor(),
            TorchExportFlavor(),
            PythonFlavor(),
            SentenceTransformersFlavor(),
            OnnxFlavor(),
        )
    }
)


def get_flavor(name: str) -> Flavor:
    try:
        return FLAVORS[name]
    except KeyError:
        raise InvalidInputError(
            f"unknown model flavor {name!r}; choose one of: {', '.join(FLAVORS)}"
        ) from None


def flavor_for(model: FittedModel) -> Flavor:
    """The flavor that saves `model` (the one its class names)."""
    return get_flavor(model.flavor)
