"""`--model auto`: one study searching across model families.

The family is itself a categorical param (`model`); each family's params are prefixed with
its name (`lightgbm.num_leaves`) and sampled only when that family is chosen, so TPE learns
which families and which of their settings pay off.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fermion.errors import InvalidInputError, MissingDependencyError
from fermion.training.metrics import Task
from fermion.tuning.space import SearchSpace, default_space

if TYPE_CHECKING:
    from optuna.trial import BaseTrial

AUTO = "auto"
FAMILY_PARAM = "model"
# The MLP is left out: on tabular data it rarely wins and costs the most per trial.
CANDIDATES = ("lightgbm", "xgboost", "hist_gb", "random_forest", "logistic", "linear")


class PrefixedTrial:
    """A trial whose suggested names carry a family prefix; the rest passes through."""

    def __init__(self, trial: BaseTrial, prefix: str) -> None:
        self._trial = trial
        self._prefix = prefix

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._trial.suggest_categorical(self._prefix + name, choices)

    def suggest_int(self, name: str, low: int, high: int, **options: Any) -> int:
        return self._trial.suggest_int(self._prefix + name, low, high, **options)

    def suggest_float(self, name: str, low: float, high: float, **options: Any) -> float:
        return self._trial.suggest_float(self._prefix + name, low, high, **options)


class MultiFamilySpace:
    """Several families' spaces under one categorical `model` choice."""

    def __init__(self, spaces: Mapping[str, SearchSpace]) -> None:
        if not spaces:
            raise InvalidInputError("no model family is available for --model auto")
        self.spaces = dict(spaces)

    @property
    def families(self) -> list[str]:
        return list(self.spaces)

    def suggest(self, trial: BaseTrial) -> tuple[str, dict[str, object]]:
        family = str(trial.suggest_categorical(FAMILY_PARAM, self.families))
        prefixed = PrefixedTrial(trial, f"{family}.")
        return family, self.spaces[family].suggest(prefixed)  # type: ignore[arg-type]

    def defaults(self) -> list[dict[str, object]]:
        """One warm-start trial per family: its defaults, under their prefixed names."""
        trials = []
        for family, space in self.spaces.items():
            searched = {dim.name for dim in space.dimensions}
            params = {k: v for k, v in space.defaults().items() if k in searched}
            trials.append({FAMILY_PARAM: family, **{f"{family}.{k}": v for k, v in params.items()}})
        return trials

    def fingerprint(self) -> str:
        parts = {family: space.fingerprint() for family, space in sorted(self.spaces.items())}
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()

    def to_dict(self) -> dict[str, Any]:
        return {"families": {family: space.to_dict() for family, space in self.spaces.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MultiFamilySpace:
        return cls({family: SearchSpace.from_dict(d) for family, d in data["families"].items()})

    def describe(self) -> list[dict[str, object]]:
        rows: list[dict[str, object]] = []
        for family, space in self.spaces.items():
            rows += [{**row, "name": f"{family}.{row['name']}"} for row in space.describe()]
        return rows


def auto_space(task: Task, families: Sequence[str] = CANDIDATES) -> MultiFamilySpace:
    """Every candidate family that supports the task and whose library is installed."""
    from fermion.training.families import get_family

    spaces = {}
    for name in families:
        family = get_family(name)
        if task not in family.tasks:
            continue
        try:
            family.check_available()
        except MissingDependencyError:
            continue
        spaces[name] = default_space(name, task)
    return MultiFamilySpace(spaces)


def is_multi_family(space: Mapping[str, Any]) -> bool:
    """Whether a space's `to_dict()` form is a `MultiFamilySpace`."""
    return "families" in space
