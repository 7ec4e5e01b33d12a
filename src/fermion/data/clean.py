"""Declarative cleaning: a `Recipe` of steps, read from YAML, applied lazily to a frame.

```yaml
steps:
  - replace: {columns: [Income], values: {99999999: null}}
  - drop_duplicates: {}
  - fill_missing: {columns: [Income], strategy: median}
  - filter: "Age >= 18 and Amount > 0"
```

Each step is one `{name: arguments}` mapping; the step classes document their arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import yaml

from fermion.data.cleaning_cast import Cast
from fermion.data.cleaning_steps import (
    DropColumns,
    DropDuplicates,
    DropMissing,
    Filter,
    Lowercase,
    Rename,
    Step,
    Trim,
)
from fermion.data.cleaning_values import ClipOutliers, DropOutliers, FillMissing, Replace
from fermion.data.spec_file import fingerprint, read_yaml
from fermion.errors import InvalidInputError, first_line

__all__ = [
    "STEP_TYPES",
    "Cast",
    "ClipOutliers",
    "DropColumns",
    "DropDuplicates",
    "DropMissing",
    "DropOutliers",
    "FillMissing",
    "Filter",
    "Lowercase",
    "Recipe",
    "Rename",
    "Replace",
    "Step",
    "Trim",
    "apply_recipe",
]

STEP_TYPES: tuple[type[Step], ...] = (
    Replace,
    DropDuplicates,
    FillMissing,
    DropMissing,
    Cast,
    Rename,
    DropColumns,
    Filter,
    ClipOutliers,
    DropOutliers,
    Trim,
    Lowercase,
)


def _step_type(name: Any) -> type[Step]:
    for step_type in STEP_TYPES:
        if step_type.name == name:
            return step_type
    known = ", ".join(sorted(t.name for t in STEP_TYPES))
    raise InvalidInputError(f"unknown step {name!r}; known steps: {known}")


def _parse_step(item: Any, number: int) -> Step:
    if not isinstance(item, dict) or len(item) != 1:
        raise InvalidInputError(
            f"step {number} must be a mapping with one step name, e.g. "
            f"{{drop_duplicates: {{}}}}, not {item!r}"
        )
    ((name, args),) = item.items()
    try:
        return _step_type(name).from_args(args)
    except InvalidInputError as exc:
        raise InvalidInputError(f"step {number} ({name}): {exc}") from None


@dataclass(frozen=True)
class Recipe:
    """An ordered, immutable list of cleaning steps.

    Equal recipes have equal `fingerprint()`s whatever the YAML's key order or layout, since
    both come from the canonical `to_dict()` form, where every default is spelled out.
    """

    steps: Sequence[Step] = ()

    def __post_init__(self) -> None:
        steps = tuple(self.steps)
        for number, step in enumerate(steps, 1):
            if not isinstance(step, Step):
                raise InvalidInputError(f"step {number} is not a cleaning step: {step!r}")
        object.__setattr__(self, "steps", steps)

    @classmethod
    def from_dict(cls, data: Any) -> Recipe:
        """Build from `{"steps": [...]}` or the bare list of steps."""
        if isinstance(data, dict):
            extra = sorted(str(key) for key in data if key != "steps")
            if extra:
                raise InvalidInputError(f"unknown recipe key {extra[0]!r}; expected 'steps'")
            data = data.get("steps")
        if not isinstance(data, list):
            raise InvalidInputError(f"a recipe needs a list of steps under 'steps', not {data!r}")
        return cls(tuple(_parse_step(item, number) for number, item in enumerate(data, 1)))

    @classmethod
    def from_yaml(cls, path: str | Path) -> Recipe:
        """Read a recipe file; every error names the file."""
        data = read_yaml(path, "recipe")
        try:
            return cls.from_dict(data)
        except InvalidInputError as exc:
            raise InvalidInputError(f"recipe file {str(path)!r}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return {"steps": [{step.name: step.to_args()} for step in self.steps]}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def fingerprint(self) -> str:
        """sha256 (hex) of the canonical JSON form."""
        return fingerprint(self.to_dict())


def _names(schema: pl.Schema, limit: int = 20) -> str:
    names = schema.names()
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def apply_recipe(lf: pl.LazyFrame, recipe: Recipe) -> pl.LazyFrame:
    """Add the recipe's steps to `lf`'s lazy plan.

    Each step is first checked against the schema it will meet (after the previous steps) and
    run on an empty frame of that schema, so a missing column, a wrong type, a filter that does
    not evaluate or a recipe that drops every column raises `InvalidInputError` naming the
    step, not a Polars error at collect.

    Steps that could harm values their schema cannot vouch for (`cast`) are also checked on
    the data: one aggregate query over the plan so far, run here, before the step is added.
    Everything else stays lazy. A recipe that filters out every row is fine: 0 rows.
    """
    try:
        schema = lf.collect_schema()
    except pl.exceptions.PolarsError as exc:
        raise InvalidInputError(
            f"cannot clean: the input is unreadable: {first_line(exc)}"
        ) from None
    probe = pl.DataFrame(schema=schema).lazy()
    for number, step in enumerate(recipe.steps, 1):
        where = f"recipe step {number} ({step.label()})"
        try:
            for column in step.reads(schema):
                if column not in schema:
                    raise InvalidInputError(
                        f"column {column!r} does not exist; columns are {_names(schema)}"
                    )
            step.check(schema)
            probe = step.apply(probe, schema).collect().lazy()
            if not probe.collect_schema():
                raise InvalidInputError("it would drop every column; keep at least one")
            step.verify(lf, schema)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{where}: {exc}") from None
        except pl.exceptions.PolarsError as exc:
            raise InvalidInputError(f"{where} cannot run: {first_line(exc)}") from None
        lf = step.apply(lf, schema)
        schema = probe.collect_schema()
    return lf
