"""What a family's search space starts from: its params, its built-in space, space files.

```yaml
params:                    # each entry replaces or adds one dimension of the default space
  num_leaves: {type: int, low: 16, high: 512, log: true}
  bagging_fraction: {type: float, low: 0.5, high: 1.0, when: {bagging_freq: [1, 5]}}
  num_boost_round: 300     # a bare value fixes the param (not searched)
  lambda_l1: null          # null drops it from the search (the family default applies)
replace: false             # true: search only the params listed here
```

Built-in spaces never search caps on boosting rounds or epochs: early stopping picks those.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fermion.errors import InvalidInputError
from fermion.training.families import ModelFamily, Task, get_family

FILE_KEYS = ("params", "replace")
ENTRY_KEYS = ("type", "low", "high", "log", "step", "choices", "when")


def check_param(model: ModelFamily, task: Task, name: object) -> str:
    """`name` if the family takes such a param for `task`, else an error listing those it takes."""
    accepted = [spec.name for spec in model.params(task)]
    if name not in accepted:
        raise InvalidInputError(
            f"unknown param {name!r} for model family '{model.name}' ({task}); "
            f"accepted: {', '.join(accepted)}"
        )
    return str(name)


def file_entries(
    family: str, task: Task, data: object
) -> tuple[dict[str, object], dict[str, object]]:
    """The dimension entries and fixed values of the default space changed by a space file.

    `data` is the parsed file (None for an empty one); entries are checked later, when they
    become dimensions.
    """
    model = get_family(family)
    model.default_params(task)  # refuses a task the family lacks before any param is named
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise InvalidInputError(f"expected a mapping with the keys {' and '.join(FILE_KEYS)}")
    unknown = sorted(str(key) for key in data if key not in FILE_KEYS)
    if unknown:
        raise InvalidInputError(f"unknown key {unknown[0]!r}; expected {' or '.join(FILE_KEYS)}")
    params, replace = data.get("params") or {}, data.get("replace", False)
    if not isinstance(replace, bool):
        raise InvalidInputError(f"replace must be true or false, got {replace!r}")
    if not isinstance(params, Mapping):
        raise InvalidInputError("params must map param names to ranges or values")
    entries: dict[str, object] = {} if replace else dict(default_entries(family))
    fixed: dict[str, object] = {}
    for key, entry in params.items():
        name = check_param(model, task, key)
        fixed.pop(name, None)
        if isinstance(entry, Mapping):
            entries[name] = entry
            continue
        entries.pop(name, None)
        if entry is not None:
            fixed[name] = entry
    return entries, fixed


def entry_fields(name: str, entry: object) -> dict[str, Any]:
    """The `Dimension` fields (but name) an entry gives; `Dimension` checks their values."""
    if not isinstance(entry, Mapping):
        raise InvalidInputError(f"param '{name}': expected a mapping such as {{type: float}}")
    unknown = sorted(str(key) for key in entry if key not in ENTRY_KEYS)
    if unknown:
        raise InvalidInputError(
            f"param '{name}': unknown key {unknown[0]!r}; expected one of: {', '.join(ENTRY_KEYS)}"
        )
    if "type" not in entry:
        raise InvalidInputError(f"param '{name}' needs a type: float, int or categorical")
    when, choices = entry.get("when"), entry.get("choices", ())
    if isinstance(when, Mapping):  # a single value stands for a list of one
        when = {p: v if isinstance(v, list | tuple) else [v] for p, v in when.items()}
    return {
        "kind": entry["type"],
        "low": entry.get("low"),
        "high": entry.get("high"),
        "log": entry.get("log", False),
        "step": entry.get("step"),
        "choices": tuple(choices) if isinstance(choices, list | tuple) else choices,
        "when": when,
    }


def _log(kind: str, low: float, high: float) -> dict[str, Any]:
    return {"type": kind, "low": low, "high": high, "log": True}


def _span(kind: str, low: float, high: float, step: float | None = None) -> dict[str, Any]:
    return {"type": kind, "low": low, "high": high, "step": step}


def _among(*choices: Any) -> dict[str, Any]:
    return {"type": "categorical", "choices": list(choices)}


def default_entries(family: str) -> dict[str, dict[str, Any]]:
    """The built-in dimensions of `family` as space-file entries by param name."""
    spaces: dict[str, dict[str, dict[str, Any]]] = {
        "logistic": {"C": _log("float", 1e-3, 1e3)},
        "linear": {"alpha": _log("float", 1e-4, 1e3)},
        "random_forest": {
            "n_estimators": _span("int", 100, 500, step=50),
            "max_depth": _among(None, 4, 8, 16, 32),
            "min_samples_leaf": _log("int", 1, 50),
            "max_features": _among("sqrt", "log2", "all"),
        },
        "hist_gb": {
            "learning_rate": _log("float", 0.01, 0.3),
            "max_leaf_nodes": _log("int", 2, 128),
            "min_samples_leaf": _log("int", 5, 100),
            "l2_regularization": _log("float", 1e-8, 10.0),
        },
        "lightgbm": {
            "learning_rate": _log("float", 0.01, 0.3),
            "num_leaves": _log("int", 2, 256),
            "min_data_in_leaf": _log("int", 5, 200),
            "feature_fraction": _span("float", 0.4, 1.0),
            "bagging_freq": _among(0, 1, 5),
            "bagging_fraction": {**_span("float", 0.4, 1.0), "when": {"bagging_freq": [1, 5]}},
            "lambda_l1": _log("float", 1e-8, 10.0),
            "lambda_l2": _log("float", 1e-8, 10.0),
        },
        "xgboost": {
            "eta": _log("float", 0.01, 0.3),
            "max_depth": _span("int", 2, 10),
            "min_child_weight": _log("float", 0.1, 20.0),
            "subsample": _span("float", 0.5, 1.0),
            "colsample_bytree": _span("float", 0.4, 1.0),
            "lambda": _log("float", 1e-8, 10.0),
            "alpha": _log("float", 1e-8, 10.0),
        },
        "torch_mlp": {
            "learning_rate": _log("float", 1e-4, 1e-2),
            "hidden": _among("64", "128", "128,64", "256,128"),
            "dropout": _span("float", 0.0, 0.5),
            "weight_decay": _log("float", 1e-6, 1e-2),
            "batch_size": _among(64, 128, 256),
        },
    }
    return spaces.get(family, {})
