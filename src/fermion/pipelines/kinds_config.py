"""Reading a step's config with its types checked, and the outputs the built-in kinds give.

Every error names the step and the key, since the YAML loader checks which keys a step has
but not what they hold."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

from fermion.errors import InvalidInputError
from fermion.pipelines.types import DATASET, MODEL, StepContext, StepOutput

if TYPE_CHECKING:
    from fermion.data.dataset import Dataset
    from fermion.entities import ModelVersion

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")


class StepConfig:
    """Typed reads of `ctx.spec.config`: each method returns the default when the key is
    absent (or null) and raises `InvalidInputError` when its value has the wrong type."""

    def __init__(self, ctx: StepContext) -> None:
        self._ctx = ctx
        self._config = ctx.spec.config

    def has(self, key: str) -> bool:
        return self._config.get(key) is not None

    def invalid(self, key: str, expected: str) -> InvalidInputError:
        value = self._config.get(key)
        return InvalidInputError(
            f"step {self._ctx.spec.name!r}: {key} must be {expected}, not {value!r}"
        )

    @overload
    def text(self, key: str) -> str | None: ...
    @overload
    def text(self, key: str, default: str) -> str: ...
    def text(self, key: str, default: str | None = None) -> str | None:
        value = self._config.get(key)
        if value is None:
            return default
        if not isinstance(value, str) or not value:
            raise self.invalid(key, "a non-empty string")
        return value

    def required_text(self, key: str) -> str:
        value = self.text(key)
        if value is None:
            raise InvalidInputError(f"step {self._ctx.spec.name!r} needs {key}")
        return value

    @overload
    def integer(self, key: str) -> int | None: ...
    @overload
    def integer(self, key: str, default: int) -> int: ...
    def integer(self, key: str, default: int | None = None) -> int | None:
        value = self._config.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.invalid(key, "a whole number")
        return value

    @overload
    def number(self, key: str) -> float | None: ...
    @overload
    def number(self, key: str, default: float) -> float: ...
    def number(self, key: str, default: float | None = None) -> float | None:
        value = self._config.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.invalid(key, "a number")
        return float(value)

    def flag(self, key: str, default: bool = False) -> bool:
        value = self._config.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.invalid(key, "true or false")
        return value

    def mapping(self, key: str) -> dict[str, Any]:
        value = self._config.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise self.invalid(key, "a mapping of names to values")
        return dict(value)

    def names(self, key: str) -> list[str]:
        """A list of strings, or one string standing for a list of one."""
        value = self._config.get(key)
        if value is None:
            return []
        if isinstance(value, str) and value:
            return [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self.invalid(key, "a name or a list of names")
        return list(value)

    def path(self, key: str) -> Path | None:
        """A file path, relative to the project folder unless absolute."""
        value = self.text(key)
        return None if value is None else self._ctx.path(value)

    def seconds(self, key: str) -> float | None:
        """A duration: a number of seconds, or text such as `90s`, `10m` or `1.5h`."""
        value = self._config.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.invalid(key, "a duration such as 600, 90s, 10m or 1h")
        if isinstance(value, str):
            match = _DURATION.match(value)
            if match is None:
                raise self.invalid(key, "a duration such as 600, 90s, 10m or 1h")
            value = float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]
        if value <= 0:
            raise self.invalid(key, "a positive duration")
        return float(value)


def input_ref(ctx: StepContext, key: str, kind: str) -> str | None:
    """The ref an input key gives (another step's output or a literal ref), None if unset."""
    if key not in ctx.inputs and ctx.spec.config.get(key) is None:
        return None
    return ctx.ref(key, kind)


def input_hash(ctx: StepContext, key: str, kind: str, fallback: str) -> str:
    """The hash the step named by `key` gave for its `kind`, else `fallback` (the target's own
    content hash), so that a step passing its input on keeps what its producer said of it."""
    given = ctx.inputs.get(key)
    if given is not None and kind in given.hashes:
        return given.hashes[kind]
    return fallback


def combined_hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


def dataset_output(
    dataset: Dataset,
    summary: str,
    *,
    digest: str | None = None,
    metrics: Mapping[str, float] | None = None,
) -> StepOutput:
    return StepOutput(
        refs={DATASET: dataset.ref},
        hashes={DATASET: digest or dataset.content_hash},
        metrics={
            "rows": float(dataset.num_rows),
            "columns": float(dataset.num_columns),
            **(metrics or {}),
        },
        summary=summary,
    )


def model_output(
    version: ModelVersion, summary: str, metrics: Mapping[str, float] | None = None
) -> StepOutput:
    return StepOutput(
        refs={MODEL: version.ref},
        hashes={MODEL: version.content_hash},
        metrics=dict(metrics or {}),
        summary=summary,
    )


def shape_text(dataset: Dataset) -> str:
    return f"{dataset.num_rows:,} rows, {dataset.num_columns} columns"


def headline(metrics: Mapping[str, float], task: str) -> str:
    """The task's primary metric as `roc_auc 0.912`, or empty when it is not there."""
    from fermion.training.metrics import PRIMARY_METRIC

    name = next((metric for kind, metric in PRIMARY_METRIC.items() if kind == task), None)
    if name is None or name not in metrics:
        return ""
    return f"{name} {metrics[name]:.4g}"
