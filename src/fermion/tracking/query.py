"""Filter and sort expressions for listing runs, e.g. `params.model = 'lightgbm'`."""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fermion.entities import RunRecord
from fermion.errors import InvalidInputError

_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "=": operator.eq,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_ATTRIBUTES = ("id", "name", "status", "experiment", "parent_id", "duration_s")
_CONDITION = re.compile(
    r"""\s*(?P<field>[A-Za-z_][\w.\-]*)\s*(?P<op>==|!=|<=|>=|=|<|>)\s*
        (?P<value>'(?:[^']*)'|"(?:[^"]*)"|[-+]?\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*""",
    re.VERBOSE,
)


def field_value(run: RunRecord, field: str) -> Any:
    """`params.x`, `metrics.x`, `tags.x`, or a run attribute; None where the run lacks it."""
    section, _, key = field.partition(".")
    if section == "params" and key:
        return run.params.get(key)
    if section == "metrics" and key:
        return run.metrics.get(key)
    if section == "tags" and key:
        return run.tags.get(key)
    if field in _ATTRIBUTES:
        value = getattr(run, field)
        return value.value if hasattr(value, "value") else value
    raise InvalidInputError(
        f"unknown run field {field!r}: use params.NAME, metrics.NAME, tags.NAME or one of "
        + ", ".join(_ATTRIBUTES)
    )


@dataclass(frozen=True)
class Condition:
    field: str
    op: str
    value: Any

    def matches(self, run: RunRecord) -> bool:
        actual = field_value(run, self.field)
        if actual is None:
            return False
        expected = self.value
        if isinstance(expected, float) and not isinstance(actual, bool | int | float):
            try:
                actual = float(actual)
            except (TypeError, ValueError):
                return False
        elif isinstance(expected, str) and not isinstance(actual, str):
            actual = str(actual)
        try:
            return _OPERATORS[self.op](actual, expected)
        except TypeError:
            return False


def parse_filter(text: str) -> list[Condition]:
    """Conditions joined by `and`; strings in quotes, numbers bare."""
    conditions = []
    for part in re.split(r"\s+and\s+", text.strip(), flags=re.IGNORECASE):
        match = _CONDITION.fullmatch(part)
        if match is None:
            raise InvalidInputError(
                f"cannot parse filter {part.strip()!r}: expected FIELD OP VALUE, e.g. "
                "\"params.model = 'lightgbm'\" or 'metrics.roc_auc > 0.8'"
            )
        raw = match["value"]
        value: Any = raw[1:-1] if raw[0] in "'\"" else float(raw)
        field_value(RunRecord(0, "", "", _status(), _epoch(), None), match["field"])
        conditions.append(Condition(match["field"], match["op"], value))
    return conditions


def parse_sort(text: str) -> tuple[str, bool]:
    """`metrics.roc_auc` (highest first), `metrics.rmse asc`, `-metrics.rmse` (lowest first)."""
    words = text.strip().split()
    if not words or len(words) > 2:
        raise InvalidInputError(f"cannot parse sort {text!r}: expected FIELD [asc|desc]")
    field, descending = words[0], True
    if field.startswith("-"):
        field, descending = field[1:], False
    if len(words) == 2:
        if words[1].lower() not in ("asc", "desc"):
            raise InvalidInputError(f"sort order must be asc or desc, got {words[1]!r}")
        descending = words[1].lower() == "desc"
    field_value(RunRecord(0, "", "", _status(), _epoch(), None), field)
    return field, descending


def sort_runs(runs: list[RunRecord], field: str, descending: bool) -> list[RunRecord]:
    """Runs without the field go last, whatever the order."""
    present = [r for r in runs if field_value(r, field) is not None]
    missing = [r for r in runs if field_value(r, field) is None]
    present.sort(key=lambda r: _sort_key(field_value(r, field)), reverse=descending)
    return present + missing


def _sort_key(value: Any) -> tuple[int, Any]:
    if isinstance(value, bool | int | float):
        return (0, float(value))
    return (1, str(value))


def _status() -> Any:
    from fermion.entities import RunStatus

    return RunStatus.RUNNING


def _epoch() -> Any:
    from datetime import UTC, datetime

    return datetime(1970, 1, 1, tzinfo=UTC)
