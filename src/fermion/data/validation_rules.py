"""The rules a `RuleSet` holds, and how one YAML rule mapping becomes them.

A rule is either about the schema (`ColumnExists`, `ColumnType`), the row count (`RowCount`),
or the rows (`NotNull`, `Unique`, and the value rules `Range`, `Allowed`, `Regex` in
`validation_values`): a row rule is a boolean "this row fails" expression, so all of them are
counted in one query.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from fermion.data.schema import dtype_kind
from fermion.data.schema import logical_type as infer_type
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
        if dtype_kind(schema[self.column]) is None:  # the schema records these as string
            return f"{self.column!r} is {schema[self.column]}, not {self.type}"
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
        return f"row count in {interval(self.min, self.max)}"

    def problem(self, schema: pl.Schema) -> str | None:
        return None

    def check(self, num_rows: int) -> str | None:
        if self.min is not None and num_rows < self.min:
            return f"{num_rows} rows, fewer than {self.min}"
        if self.max is not None and num_rows > self.max:
            return f"{num_rows} rows, more than {self.max}"
        return None


def show_bound(value: float | str | None, infinity: str = "none") -> str:
    """A bound as messages show it: 18 not 18.0, dates as their ISO text."""
    if value is None:
        return infinity
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else str(value)


def interval(low: float | str | None, high: float | str | None) -> str:
    return f"[{show_bound(low, '-inf')}, {show_bound(high, 'inf')}]"


def kind_of(schema: pl.Schema, column: str) -> str:
    """How a message names a column's type: its logical type, else its dtype (nested ones
    said so)."""
    dtype = schema[column]
    kind = dtype_kind(dtype)
    if kind is not None:
        return str(kind)
    return f"nested {dtype}" if dtype.is_nested() else str(dtype)


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
