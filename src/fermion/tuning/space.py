"""Search spaces: which params of a model family a study samples, over which ranges, and when.

A space is the family's built-in one (`default_space`) or one changed by a space file
(`load_space`; the format and the built-in spaces are in `default_spaces`).
"""

from __future__ import annotations

import decimal
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias, get_args

from fermion.data.spec_file import fingerprint as sha256_of
from fermion.data.spec_file import read_yaml
from fermion.errors import InvalidInputError
from fermion.training.families import ModelFamily, Task, get_family
from fermion.tuning.default_spaces import check_param, default_entries, entry_fields, file_entries

if TYPE_CHECKING:
    from optuna.trial import BaseTrial

Kind = Literal["float", "int", "categorical"]
Choice: TypeAlias = bool | int | float | str | None

KINDS: Final = get_args(Kind)
_ABSENT: Final = object()


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _show(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else repr(value)


@dataclass(frozen=True)
class Dimension:
    """One searched param: a float or int range (optionally log-scaled or stepped) or choices.

    `when` makes it conditional: it is sampled only when every named param was sampled with one
    of the listed values. Bad values raise `InvalidInputError` naming the param.
    """

    name: str
    kind: Kind
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Choice, ...] = ()
    when: Mapping[str, tuple[Choice, ...]] | None = field(default=None, hash=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise self._error(f"unknown type {self.kind!r}; expected one of: {', '.join(KINDS)}")
        if self.kind == "categorical":
            self._check_choices()
        else:
            self._check_range()
        if self.when is not None:
            self._check_when(self.when)

    @classmethod
    def from_entry(cls, name: str, entry: object) -> Dimension:
        """Read a space file's entry, `{type: float, low: 0.01, high: 0.3, log: true}`."""
        return cls(name=name, **entry_fields(name, entry))

    def to_entry(self) -> dict[str, Any]:
        """The space-file entry (JSON-safe) that `from_entry` reads back into this dimension."""
        entry: dict[str, Any] = {"type": self.kind}
        if self.kind == "categorical":
            entry["choices"] = list(self.choices)
        else:
            entry.update(low=self.low, high=self.high, log=self.log, step=self.step)
        if self.when:
            entry["when"] = {parent: list(values) for parent, values in self.when.items()}
        return entry

    def holds(self, sampled: Mapping[str, object]) -> bool:
        """Whether this dimension's condition holds for the params sampled so far."""
        return not self.when or all(
            parent in sampled and sampled[parent] in values for parent, values in self.when.items()
        )

    def sample(self, trial: BaseTrial) -> Choice:
        if self.kind == "categorical":
            return trial.suggest_categorical(self.name, self.choices)
        assert self.low is not None and self.high is not None
        if self.kind == "int":
            step = int(self.step or 1)
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=step, log=self.log
            )
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def _nearest(self, value: object) -> object:
        """`value` clipped into the range (and onto the step grid), or `_ABSENT` if impossible."""
        if self.kind == "categorical":
            return value if value in self.choices else _ABSENT
        if not _is_number(value) or self.low is None or self.high is None:
            return _ABSENT
        assert isinstance(value, int | float)
        point = min(max(float(value), self.low), self.high)
        if self.step is not None:
            point = min(self.low + round((point - self.low) / self.step) * self.step, self.high)
        return round(point) if self.kind == "int" else point

    def describe(self) -> dict[str, object]:
        if self.kind == "categorical":
            values = ", ".join(_show(choice) for choice in self.choices)
        else:
            values = f"{_show(self.low)} .. {_show(self.high)}"
            values += f" (step {_show(self.step)})" if self.step is not None else ""
        condition = " and ".join(
            f"{parent} in [{', '.join(_show(v) for v in allowed)}]"
            for parent, allowed in (self.when or {}).items()
        )
        return {
            "name": self.name,
            "kind": self.kind,
            "values": values,
            "log": self.log,
            "condition": condition,
        }

    def _error(self, problem: str) -> InvalidInputError:
        return InvalidInputError(f"param '{self.name}': {problem}")

    def _check_choices(self) -> None:
        if self.low is not None or self.high is not None or self.step is not None or self.log:
            raise self._error("type categorical takes choices, not low, high, log or step")
        if not isinstance(self.choices, tuple) or not self.choices:
            raise self._error("empty choices; list at least one value")
        for choice in self.choices:
            if not (choice is None or isinstance(choice, bool | str) or _is_number(choice)):
                raise self._error(f"choice {choice!r} is not a number, string, boolean or null")
        if len(set(self.choices)) != len(self.choices):
            raise self._error(f"repeated choices in {list(self.choices)}")

    def _check_range(self) -> None:
        if self.choices:
            raise self._error(f"type {self.kind} takes low and high, not choices")
        word = "an integer" if self.kind == "int" else "a number"
        for key in ("low", "high", "step"):
            value = getattr(self, key)
            if (value is not None or key != "step") and not (
                _is_number(value) and (self.kind == "float" or isinstance(value, int))
            ):
                raise self._error(f"{key} must be {word}, got {value!r}")
            if self.kind == "float" and value is not None:
                object.__setattr__(self, key, float(value))
        low, high, step = self.low, self.high, self.step
        assert low is not None and high is not None
        if low >= high:
            raise self._error(f"empty range [{_show(low)}, {_show(high)}]")
        if not isinstance(self.log, bool):
            raise self._error(f"log must be true or false, got {self.log!r}")
        if self.log and low <= 0:
            raise self._error(f"a log range needs low > 0, got {_show(low)}")
        if step is None:
            return
        if self.log:
            raise self._error("a log range cannot have a step")
        span = decimal.Decimal(str(high)) - decimal.Decimal(str(low))
        if step <= 0 or span % decimal.Decimal(str(step)) != 0:
            raise self._error(f"step {_show(step)} does not divide [{_show(low)}, {_show(high)}]")

    def _check_when(self, when: object) -> None:
        if not isinstance(when, Mapping):
            raise self._error(f"when must map param names to values, got {when!r}")
        for parent, values in when.items():
            if parent == self.name:
                raise self._error("its condition names the param itself")
            if not isinstance(parent, str) or not isinstance(values, list | tuple) or not values:
                raise self._error(f"when must map param names to lists of values, got {when!r}")
        frozen = {parent: tuple(values) for parent, values in when.items()}
        object.__setattr__(self, "when", MappingProxyType(frozen) if frozen else None)


class SearchSpace:
    """The dimensions a study samples for one model family and task, plus params held fixed.

    Construction checks everything against the family: each name must be one of its params for
    the task, ranges and choices must be values it accepts, and conditions must name a searched
    or fixed param without cycles. Dimensions are put in an order where parents come first. A
    condition on a fixed param is settled at once: the dimension is kept without it when the
    fixed value is allowed, and dropped (with the dimensions that depend on it) otherwise.
    """

    def __init__(
        self,
        family: str,
        task: Task,
        dimensions: Iterable[Dimension],
        fixed: Mapping[str, object] | None = None,
    ) -> None:
        model = get_family(family)
        self._defaults = model.default_params(task)
        self.family, self.task = family, task
        self.fixed: Mapping[str, object] = MappingProxyType(
            {name: _coerce(model, task, name, value) for name, value in (fixed or {}).items()}
        )
        dims: dict[str, Dimension] = {}
        for dim in dimensions:
            if dim.name in dims or dim.name in self.fixed:
                raise InvalidInputError(f"param '{dim.name}' appears twice in the search space")
            dims[dim.name] = _fitted(model, task, dim)
        ordered = _ordered(model, task, dims, self.fixed)
        self.dimensions: tuple[Dimension, ...] = _settled(ordered, self.fixed)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SearchSpace) and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        names = ", ".join(dim.name for dim in self.dimensions)
        return f"<SearchSpace {self.family} {self.task}: {names}; fixed {dict(self.fixed)}>"

    def suggest(self, trial: BaseTrial) -> dict[str, object]:
        """Sample the params of one trial: every dimension whose condition holds, plus `fixed`."""
        sampled: dict[str, object] = {}
        for dim in self.dimensions:
            if dim.holds(sampled):
                sampled[dim.name] = dim.sample(trial)
        return {**sampled, **self.fixed}

    def defaults(self) -> dict[str, object]:
        """The family's defaults for the searched params, plus `fixed`, for `enqueue_trial`.

        A default outside its range is clipped into it (onto the step grid, for a stepped
        range): Optuna warns about an out-of-range enqueued value. A default that is not among
        a dimension's choices (or None for a range) is left out, so the sampler picks it.
        """
        values: dict[str, object] = {}
        for dim in self.dimensions:
            if dim.holds(values):
                start = dim._nearest(self._defaults[dim.name])
                if start is not _ABSENT:
                    values[dim.name] = start
        return {**values, **self.fixed}

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON form, the same whatever order the dimensions came in."""
        return sha256_of(self.to_dict())

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form: family, task, dimensions (space-file entries by name) and fixed."""
        return {
            "family": self.family,
            "task": self.task,
            "dimensions": {dim.name: dim.to_entry() for dim in self.dimensions},
            "fixed": dict(self.fixed),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SearchSpace:
        keys = ("family", "task", "dimensions", "fixed")
        if not isinstance(data, Mapping) or sorted(data) != sorted(keys):
            raise InvalidInputError(f"a search space needs exactly the keys {', '.join(keys)}")
        task, dims = data["task"], data["dimensions"]
        if task not in get_args(Task):
            raise InvalidInputError(f"unknown task {task!r}; expected one of {get_args(Task)}")
        if not isinstance(dims, Mapping) or not isinstance(data["fixed"], Mapping):
            raise InvalidInputError("a search space's dimensions and fixed must be mappings")
        return cls(
            str(data["family"]),
            task,
            [Dimension.from_entry(name, entry) for name, entry in dims.items()],
            data["fixed"],
        )

    def describe(self) -> list[dict[str, object]]:
        """Table rows: name, kind, values (range or choices), log, condition; fixed ones last."""
        rows = [dim.describe() for dim in self.dimensions]
        rows += [
            {"name": n, "kind": "fixed", "values": _show(v), "log": False, "condition": ""}
            for n, v in self.fixed.items()
        ]
        return rows


def default_space(family: str, task: Task) -> SearchSpace:
    """The built-in space of `family` for `task`."""
    return _built(family, task, default_entries(get_family(family).name), {})


def load_space(path: Path, family: str, task: Task) -> SearchSpace:
    """The default space of `family` changed by the space file at `path`; errors name the file."""
    data = read_yaml(path, "search space")
    try:
        return _built(family, task, *file_entries(family, task, data))
    except InvalidInputError as exc:
        raise InvalidInputError(f"search space file {str(path)!r}: {exc}") from None


def _built(
    family: str, task: Task, entries: Mapping[str, object], fixed: Mapping[str, object]
) -> SearchSpace:
    dims = [Dimension.from_entry(name, entry) for name, entry in entries.items()]
    return SearchSpace(family, task, dims, fixed)


def _coerce(model: ModelFamily, task: Task, name: str, value: object) -> Choice:
    coerced = model.coerce_params(task, {check_param(model, task, name): value})[name]
    assert coerced is None or isinstance(coerced, bool | int | float | str)
    return coerced


def _fitted(model: ModelFamily, task: Task, dim: Dimension) -> Dimension:
    """`dim` with its choices in the family's types, once its range fits the family's param."""
    name = check_param(model, task, dim.name)
    kind = next(spec.kind for spec in model.params(task) if spec.name == name)
    allowed = {int: ("int", "categorical"), float: KINDS}.get(kind, ("categorical",))
    if dim.kind not in allowed:
        raise InvalidInputError(
            f"param '{name}' takes {kind.__name__} values; search it as type "
            f"{' or '.join(allowed)}, not {dim.kind}"
        )
    if dim.kind != "categorical":
        _coerce(model, task, name, dim.low)
        _coerce(model, task, name, dim.high)
        return dim
    return replace(dim, choices=tuple(_coerce(model, task, name, c) for c in dim.choices))


def _ordered(
    model: ModelFamily, task: Task, dims: Mapping[str, Dimension], fixed: Mapping[str, object]
) -> list[Dimension]:
    """Parents before children, condition values in the parent's types; refuses cycles."""
    pending: list[Dimension] = []
    for dim in dims.values():
        when: dict[str, tuple[Choice, ...]] = {}
        for parent, values in (dim.when or {}).items():
            if parent not in dims and parent not in fixed:
                raise InvalidInputError(
                    f"param '{dim.name}': its condition names '{parent}', which is not in the "
                    "search space"
                )
            when[parent] = tuple(_coerce(model, task, parent, value) for value in values)
        pending.append(replace(dim, when=when or None))
    ordered: list[Dimension] = []
    placed = set(fixed)
    while pending:
        ready = next((dim for dim in pending if set(dim.when or ()) <= placed), None)
        if ready is None:
            names = ", ".join(dim.name for dim in pending)
            raise InvalidInputError(f"the conditions of params {names} form a cycle")
        ordered.append(ready)
        placed.add(ready.name)
        pending.remove(ready)
    return ordered


def _settled(dims: list[Dimension], fixed: Mapping[str, object]) -> tuple[Dimension, ...]:
    """Conditions on fixed params decided: met ones dropped, dimensions failing one dropped."""
    kept: dict[str, Dimension] = {}
    for dim in dims:
        conditions = dim.when or {}
        if any(p in fixed and fixed[p] not in allowed for p, allowed in conditions.items()):
            continue
        when = {p: allowed for p, allowed in conditions.items() if p not in fixed}
        if set(when) <= set(kept):
            kept[dim.name] = replace(dim, when=when or None)
    return tuple(kept.values())
