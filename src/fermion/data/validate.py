"""Validation rules over a frame, and the report of which rows break them.

```yaml
rules:
  - {column: Status, allowed: [good, bad]}
  - {column: Age, type: integer, range: {min: 18, max: 100}}
  - {column: Opened, range: {min: 2020-01-01}}
  - {rows: {min: 100}}
```

A mapping may hold several checks on its column; each becomes its own rule and result.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import polars as pl

from fermion.data.spec_file import check_keys, fingerprint, read_yaml
from fermion.data.validation_rules import (
    ColumnExists,
    ColumnType,
    NotNull,
    RowCount,
    RowRule,
    Rule,
    SchemaRule,
    Unique,
)
from fermion.data.validation_values import Allowed, Range, Regex
from fermion.errors import InvalidInputError

RULE_KEYS = ("column", "exists", "type", "not_null", "unique", "range", "allowed", "regex", "rows")

__all__ = [
    "Allowed",
    "ColumnExists",
    "ColumnType",
    "NotNull",
    "Range",
    "Regex",
    "RowCount",
    "Rule",
    "RuleResult",
    "RuleSet",
    "Unique",
    "ValidationReport",
    "validate_frame",
]


def _flag(value: Any, key: str) -> None:
    if value is not True:
        raise InvalidInputError(f"{key} must be true (leave the key out otherwise), not {value!r}")


def _parse_rule(item: Any) -> list[Rule]:
    """The rules of one YAML mapping: `{rows: {...}}`, or `column:` with one or more checks."""
    if not isinstance(item, dict):
        raise InvalidInputError(
            f"a rule must be a mapping like {{column: Age, not_null: true}}, not {item!r}"
        )
    check_keys(item, RULE_KEYS, "")
    if "rows" in item:
        if len(item) > 1 or not isinstance(item["rows"], dict):
            raise InvalidInputError("rows takes a mapping {min:, max:} and stands alone")
        check_keys(item["rows"], ("min", "max"), "rows")
        return [RowCount(**item["rows"])]
    column = item.get("column")
    if not isinstance(column, str) or not column:
        raise InvalidInputError(f"a rule needs a column name under 'column', not {column!r}")
    checks = [key for key in item if key != "column"]
    if not checks:
        raise InvalidInputError(f"rule on {column!r} checks nothing; add e.g. not_null: true")
    rules: list[Rule] = []
    for key in checks:
        value = item[key]
        if key in ("exists", "not_null", "unique"):
            _flag(value, key)
            flag_rule = (
                ColumnExists if key == "exists" else NotNull if key == "not_null" else Unique
            )
            rules.append(flag_rule(column))
        elif key == "type":
            rules.append(ColumnType(column, value))
        elif key == "range":
            if not isinstance(value, dict):
                raise InvalidInputError(f"range must be a mapping {{min:, max:}}, not {value!r}")
            check_keys(value, ("min", "max"), "range")
            rules.append(Range(column, **value))
        elif key == "allowed":
            rules.append(Allowed(column, value))
        else:
            rules.append(Regex(column, value))
    return rules


@dataclass(frozen=True)
class RuleSet:
    """An ordered, immutable list of rules; `fingerprint()` ignores YAML key order."""

    rules: Sequence[Rule] = ()

    def __post_init__(self) -> None:
        rules = tuple(self.rules)
        for number, rule in enumerate(rules, 1):
            if not isinstance(rule, Rule):
                raise InvalidInputError(f"rule {number} is not a validation rule: {rule!r}")
        object.__setattr__(self, "rules", rules)

    @classmethod
    def from_dict(cls, data: Any) -> RuleSet:
        """Build from `{"rules": [...]}` or the bare list of rule mappings."""
        if isinstance(data, dict):
            extra = sorted(str(key) for key in data if key != "rules")
            if extra:
                raise InvalidInputError(f"unknown key {extra[0]!r}; expected 'rules'")
            data = data.get("rules")
        if not isinstance(data, list):
            raise InvalidInputError(f"expected a list of rules under 'rules', not {data!r}")
        rules: list[Rule] = []
        for number, item in enumerate(data, 1):
            try:
                rules.extend(_parse_rule(item))
            except InvalidInputError as exc:
                raise InvalidInputError(f"rule {number}: {exc}") from None
        return cls(tuple(rules))

    @classmethod
    def from_yaml(cls, path: str | Path) -> RuleSet:
        """Read a rules file; every error names the file."""
        data = read_yaml(path, "rules")
        try:
            return cls.from_dict(data)
        except InvalidInputError as exc:
            raise InvalidInputError(f"rules file {str(path)!r}: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        return {"rules": [rule.to_dict() for rule in self.rules]}

    def fingerprint(self) -> str:
        """sha256 (hex) of the canonical JSON form."""
        return fingerprint(self.to_dict())


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one rule.

    `failed` counts the failing rows of a row rule; it is None for schema and row-count rules
    and for a row rule that could not run (its column is missing or of the wrong type), in
    which case `message` says why. `examples` are `{"row": 1-based number, "values": {...}}`.
    """

    rule: str
    spec: dict[str, Any]
    passed: bool
    failed: int | None = None
    examples: tuple[dict[str, Any], ...] = ()
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "spec": self.spec, "passed": self.passed,
                "failed": self.failed, "examples": list(self.examples),
                "message": self.message}  # fmt: skip


@dataclass(frozen=True)
class ValidationReport:
    passed: bool
    num_rows: int
    results: tuple[RuleResult, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "num_rows": self.num_rows,
                "results": [result.to_dict() for result in self.results]}  # fmt: skip


def _json_value(value: Any) -> Any:
    """An example value as JSON can hold it: dates as ISO text, NaN and infinities as text."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    return str(value)


def _examples(lf: pl.LazyFrame, mask: pl.Expr, schema: pl.Schema, limit: int) -> tuple[Any, ...]:
    index = "__row"
    while index in schema:
        index = f"_{index}"
    rows = lf.with_row_index(index, offset=1).filter(mask).head(limit).collect().rows(named=True)
    return tuple(
        {"row": row.pop(index), "values": {k: _json_value(v) for k, v in row.items()}}
        for row in rows
    )


def validate_frame(lf: pl.LazyFrame, rules: RuleSet, examples: int = 5) -> ValidationReport:
    """Check `rules` on `lf`: the row count and every row rule's failures in one query, then
    one small query per failing rule for up to `examples` example rows.

    A rule on a missing column, or one it cannot apply to (range on text, regex on a nested
    column, an allowed value the column can never hold), fails with a message saying why; it is
    never an exception, since the same rules may meet versions whose schemas differ.
    """
    if examples < 0:
        raise InvalidInputError(f"examples must be 0 or more, not {examples}")
    try:
        schema = lf.collect_schema()
    except pl.exceptions.PolarsError as exc:
        raise InvalidInputError(f"cannot validate: the input is unreadable: {exc}") from None
    masks: dict[int, pl.Expr] = {}
    problems: dict[int, str] = {}
    aggregates = [pl.len().alias("rows")]
    for number, rule in enumerate(rules.rules):
        problem = rule.problem(schema) if isinstance(rule, RowRule | SchemaRule) else None
        if problem is not None:
            problems[number] = problem
        elif isinstance(rule, RowRule):
            masks[number] = rule.failing(schema)
            aggregates.append(masks[number].sum().alias(f"r{number}"))
        elif isinstance(rule, ColumnType):
            aggregates += [e.alias(f"t{number}.{i}") for i, e in enumerate(rule.counts(schema))]
    try:
        counts = lf.select(aggregates).collect()
    except pl.exceptions.PolarsError as exc:
        raise InvalidInputError(f"cannot validate: {str(exc).strip().splitlines()[0]}") from None
    num_rows = int(counts["rows"][0])
    results = []
    for number, rule in enumerate(rules.rules):
        described = (rule.describe(), rule.to_dict())
        if number in problems:
            results.append(RuleResult(*described, passed=False, message=problems[number]))
        elif number in masks:
            failed = int(counts[f"r{number}"][0])
            found = _examples(lf, masks[number], schema, examples) if failed and examples else ()
            message = f"{failed} of {num_rows} rows fail" if failed else None
            results.append(RuleResult(*described, not failed, failed, found, message))
        elif isinstance(rule, ColumnType):
            values = [int(counts[n][0]) for n in counts.columns if n.startswith(f"t{number}.")]
            message = rule.verdict(schema, num_rows, values)
            results.append(RuleResult(*described, passed=message is None, message=message))
        elif isinstance(rule, RowCount):
            message = rule.check(num_rows)
            results.append(RuleResult(*described, passed=message is None, message=message))
        else:
            results.append(RuleResult(*described, passed=True))
    return ValidationReport(all(r.passed for r in results), num_rows, tuple(results))
