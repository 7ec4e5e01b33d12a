"""Model families: what can be trained, with which params, and the registry of them by name.

The families' modules load on first use of `FAMILIES` or `get_family`: a flavor that loads a
saved model needs only its own family's module, and a server's start pays for no other.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType

from fermion.errors import InvalidInputError
from fermion.training.families.base import FittedModel, ModelFamily, Task
from fermion.training.families.params import ParamSpec

__all__ = ["FAMILIES", "FittedModel", "ModelFamily", "ParamSpec", "Task", "get_family"]


@functools.cache
def families() -> Mapping[str, ModelFamily]:
    """Every built-in family by name, in the order the CLI lists them."""
    from fermion.training.families.boosting import LightGBMFamily, XGBoostFamily
    from fermion.training.families.sklearn_models import (
        HistGradientBoostingFamily,
        LinearFamily,
        LogisticFamily,
        RandomForestFamily,
    )
    from fermion.training.families.torch_mlp import TorchMLPFamily

    return MappingProxyType(
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
        return families()[name]
    except KeyError:
        raise InvalidInputError(
            f"unknown model family {name!r}; choose one of: {', '.join(families())}"
        ) from None


def __getattr__(name: str) -> Mapping[str, ModelFamily]:
    if name == "FAMILIES":
        return families()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
