"""Model families: what can be trained, with which params, and the registry of them by name."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from fermion.errors import InvalidInputError
from fermion.training.families.base import FittedModel, ModelFamily, Task
from fermion.training.families.boosting import LightGBMFamily, XGBoostFamily
from fermion.training.families.params import ParamSpec
from fermion.training.families.sklearn_models import (
    HistGradientBoostingFamily,
    LinearFamily,
    LogisticFamily,
    RandomForestFamily,
)
from fermion.training.families.torch_mlp import TorchMLPFamily

__all__ = ["FAMILIES", "FittedModel", "ModelFamily", "ParamSpec", "Task", "get_family"]

FAMILIES: Mapping[str, ModelFamily] = MappingProxyType(
    {
        family.name: family
        for family in (
            LogisticFamily(),
            LinearFamily(),
            RandomForestFamily(),
            HistGradientBoostingFamily(),
            LightGBMFamily(),
            XGBoostFamily(),
            TorchMLPFamily(),
        )
    }
)


def get_family(name: str) -> ModelFamily:
    try:
        return FAMILIES[name]
    except KeyError:
        raise InvalidInputError(
            f"unknown model family {name!r}; choose one of: {', '.join(FAMILIES)}"
        ) from None
