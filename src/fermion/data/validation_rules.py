"""The rules a `RuleSet` holds, and how one YAML rule mapping becomes them.

A rule is either about the schema (`ColumnExists`, `ColumnType`), the row count (`RowCount`),
or the rows (`NotNull`, `Unique`, `Range`, `Allowed`, `Regex`): a row rule is a boolean
"this row fails" expression, so all of them are counted in one query.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from fermion.data.schema import dtype_kind
from fermion.data.schema import logical_type as infer_type
from fermion.data.spec_file import check_number, check_scalar
from fermion.entities import LogicalType
from fermion.errors import InvalidInputError

_NUMERIC = (LogicalType.INTEGER, LogicalType.FLOAT)
_TEXT = (LogicalType.STRING, LogicalType.CATEGORICAL)


class Rule(ABC):
    """One check. `to_dict()` is its canonical YAML mapping, `describe()` its one-line name."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]: ...

    @abstractmethod
    def describe(self) -> str: ...


class SchemaRule(Rule):
    @abstractmethod
    def problem(self, schema: pl.Schema) -> str | None:
        """Why the schema breaks the rule, or None if it holds."""


class RowRule(Rule):
    column: str

    def problem(self, schema: pl.Schema) -> str | None:
        """Why the rule cannot be checked on `schema` (missing column, wrong type), or None."""
        if self.column not in schema:
            return f"column {self.column!r} does not exist"
        return None

    @abstractmethod
    def failing(self, schema: pl.Schema) -> pl.Expr:
        """True on the rows that break the rule (never null)."""


@dataclass(frozen=True)
class ColumnExists(SchemaRule):
    column: str

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "exists": True}

    def describe(self) -> str:
        return f"column {self.column!r} exists"

    def problem(self, schema: pl.Schema) -> str | None:
        return None if self.column in schema else f"column {self.column!r} does not exist"


@dataclass(frozen=True)
class ColumnType(Rule):
    """The column's logical type as `fermion.data.schema` records it, so a String column
    with few distinct values is categorical here too; that takes two counts, see `counts`."""

    column: str
    type: LogicalType | str

    def __post_init__(self) -> None:
        known = [str(t) for t in LogicalType]
        if self.type not in known:
            raise InvalidInputError(f"unknown type {self.type!r}; types are {', '.join(known)}")
        object.__setattr__(self, "type", LogicalType(self.type))

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "type": str(self.type)}

    def describe(self) -> str:
        return f"{self.column!r} is {self.type}"

    def counts(self, schema: pl.Schema) -> list[pl.Expr]:
        """Aggregates the verdict needs: nulls and distinct values of a String column."""
        if self.column not in schema or schema[self.column] != pl.String:
            return []
        column = pl.col(self.column)
        return [column.null_count(), column.drop_nulls().n_unique()]

    def verdict(self, schema: pl.Schema, rows: int, counts: Sequence[int]) -> str | None:
        """Why the column is not of the type (None if it is), given `counts()`'s values."""
        if self.column not in schema:
            return f"column {self.column!r} does not exist"
        missing, distinct = counts if counts else (0, None)
        actual = infer_type(schema[self.column], rows, missing, distinct)
        return None if actual is self.type else f"{self.column!r} is {actual}, not {self.type}"


@dataclass(frozen=True)
class RowCount(SchemaRule):
    """Inclusive bounds on the number of rows; `problem` is not used, see `check`."""

    min: int | None = None
    max: int | None = None

    def __post_init__(self) -> None:
        for bound in (self.min, self.max):
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int)):
                raise InvalidInputError(f"rows bounds must be whole numbers, not {bound!r}")
        if self.min is None and self.max is None:
            raise InvalidInputError("rows needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise InvalidInputError(f"rows min {self.min} is above max {self.max}")

    def to_dict(self) -> dict[str, Any]:
        return {"rows": {"min": self.min, "max": self.max}}

    def describe(self) -> str:
        return f"row count in {_interval(self.min, self.max)}"

    def problem(self, schema: pl.Schema) -> str | None:
        return None

    def check(self, num_rows: int) -> str | None:
        if self.min is not None and num_rows < self.min:
            return f"{num_rows} rows, fewer than {self.min}"
        if self.max is not None and num_rows > self.max:
            return f"{num_rows} rows, more than {self.max}"
        return None


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _interval(low: float | None, high: float | None) -> str:
    def show(value: float | None, infinity: str) -> str:
        if value is None:
            return infinity
        return str(int(value)) if float(value).is_integer() else str(value)

    return f"[{show(low, '-inf')}, {show(high, 'inf')}]"


@dataclass(frozen=True)
class NotNull(RowRule):
    column: str

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "not_null": True}

    def describe(self) -> str:
        return f"{self.column!r} has no nulls"

    def failing(self, schema: pl.Schema) -> pl.Expr:
        return pl.col(self.column).is_null()


@dataclass(frozen=True)
class Unique(RowRule):
    """Every non-null value occurs once; all rows holding a repeated value fail."""

    column: str

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "unique": True}

    def describe(self) -> str:
        return f"{self.column!r} is unique"

    def failing(self, schema: pl.Schema) -> pl.Expr:
        col = pl.col(self.column)
        return col.is_duplicated() & col.is_not_null()


@dataclass(frozen=True)
class Range(RowRule):
    """Inclusive numeric bounds; nulls pass (use not_null for them), NaN fails."""

    column: str
    min: float | None = None
    max: float | None = None

    def __post_init__(self) -> None:
        if self.min is None and self.max is None:
            raise InvalidInputError("range needs min, max or both")
        for name in ("min", "max"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, check_number(getattr(self, name), f"range {name}"))
        if self.min is not None and self.max is not None and self.min > self.max:
            raise InvalidInputError(f"range min {self.min:g} is above max {self.max:g}")

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "range": {"min": self.min, "max": self.max}}

    def describe(self) -> str:
        return f"{self.column!r} in {_interval(self.min, self.max)}"

    def problem(self, schema: pl.Schema) -> str | None:
        if self.column in schema and dtype_kind(schema[self.column]) not in _NUMERIC:
            kind = dtype_kind(schema[self.column]) or schema[self.column]
            return f"range needs a numeric column; {self.column!r} is {kind}"
        return super().problem(schema)

    def failing(self, schema: pl.Schema) -> pl.Expr:
        col = pl.col(self.column)
        outside = pl.lit(False)
        if self.min is not None:
            outside = outside | (col < self.min)
        if self.max is not None:
            outside = outside | (col > self.max)
        if schema[self.column].is_float():
            outside = outside | col.is_nan()
        return outside.fill_null(False)


@dataclass(frozen=True)
class Allowed(RowRule):
    """Non-null values are among `values`; text columns compare as text, numbers as floats."""

    column: str
    values: Sequence[Any]

    def __post_init__(self) -> None:
        if isinstance(self.values, str) or not isinstance(self.values, list | tuple):
            raise InvalidInputError(f"allowed must be a list of values, not {self.values!r}")
        for value in self.values:
            check_scalar(value, "an allowed value")
        object.__setattr__(self, "values", tuple(self.values))

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "allowed": list(self.values)}

    def describe(self) -> str:
        return f"{self.column!r} is one of {list(self.values)}"

    def problem(self, schema: pl.Schema) -> str | None:
        kind = dtype_kind(schema[self.column]) if self.column in schema else LogicalType.STRING
        if kind is None or kind is LogicalType.DATETIME:
            return f"allowed cannot check {kind or schema[self.column]} column {self.column!r}"
        return super().problem(schema)

    def failing(self, schema: pl.Schema) -> pl.Expr:
        col, kind = pl.col(self.column), dtype_kind(schema[self.column])
        if kind in _NUMERIC:
            numbers = [float(v) for v in self.values if _is_number(v)]
            values, as_type = pl.Series(numbers, dtype=pl.Float64), col.cast(pl.Float64)
        elif kind is LogicalType.BOOLEAN:
            flags = [v for v in self.values if isinstance(v, bool)]
            values, as_type = pl.Series(flags, dtype=pl.Boolean), col
        else:
            texts = [v if isinstance(v, str) else str(v) for v in self.values if v is not None]
            values, as_type = pl.Series(texts, dtype=pl.String), col.cast(pl.String)
        return (~as_type.is_in(values.implode())).fill_null(False)


@dataclass(frozen=True)
class Regex(RowRule):
    """Non-null values, as text, contain a match of `pattern` (anchor it with ^...$)."""

    column: str
    pattern: str

    def __post_init__(self) -> None:
        if not isinstance(self.pattern, str):
            raise InvalidInputError(f"regex must be text, not {self.pattern!r}")
        try:
            pl.Series([""], dtype=pl.String).str.contains(self.pattern)
        except pl.exceptions.PolarsError as exc:
            reason = " ".join(str(exc).split())
            raise InvalidInputError(f"invalid regex {self.pattern!r}: {reason}") from None

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "regex": self.pattern}

    def describe(self) -> str:
        return f"{self.column!r} matches {self.pattern!r}"

    def problem(self, schema: pl.Schema) -> str | None:
        if self.column in schema and dtype_kind(schema[self.column]) is None:
            return f"regex cannot check {schema[self.column]} column {self.column!r}"
        return super().problem(schema)

    def failing(self, schema: pl.Schema) -> pl.Expr:
        text = pl.col(self.column).cast(pl.String)
        return (~text.str.contains(self.pattern)).fill_null(False)
