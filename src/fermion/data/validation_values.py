"""The rules on a column's values: `Range`, `Allowed` and `Regex`.

A rule that cannot apply to its column's type (range on text, regex on a nested column, an
allowed value the column can never hold) fails with a message saying why; it never raises, so
the report records it like any other failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import polars as pl

from fermion.data.schema import dtype_kind
from fermion.data.spec_file import check_number, check_scalar
from fermion.data.validation_rules import RowRule, interval, kind_of, show_bound
from fermion.entities import LogicalType
from fermion.errors import InvalidInputError

_NUMERIC = (LogicalType.INTEGER, LogicalType.FLOAT)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _fits(value: Any, kind: LogicalType) -> bool:
    """Whether a column of `kind` can hold `value`; text columns take numbers as their text."""
    if value is None:
        return True
    if kind in _NUMERIC:
        return _is_number(value)
    if kind is LogicalType.BOOLEAN:
        return isinstance(value, bool)
    return not isinstance(value, bool)


@dataclass(frozen=True)
class Range(RowRule):
    """Inclusive bounds; nulls pass (use not_null for them), NaN fails.

    Numbers bound a numeric column; ISO dates or datetimes (`2024-01-31`, `2024-01-31T10:00`,
    or unquoted YAML dates) bound a datetime column, a date meaning its midnight. A bound with
    an offset, and a column with a time zone, compare in UTC; other datetimes are taken as UTC.
    """

    column: str
    min: float | str | None = None
    max: float | str | None = None

    def __post_init__(self) -> None:
        if self.min is None and self.max is None:
            raise InvalidInputError("range needs min, max or both")
        for name in ("min", "max"):
            if getattr(self, name) is not None:
                object.__setattr__(self, name, _bound(getattr(self, name), f"range {name}"))
        if self.min is None or self.max is None:
            return
        if isinstance(self.min, str) != isinstance(self.max, str):
            raise InvalidInputError("range min and max must both be numbers or both be dates")
        low, high = (_moment(b) if isinstance(b, str) else b for b in (self.min, self.max))
        if low > high:  # type: ignore[operator]
            raise InvalidInputError(
                f"range min {show_bound(self.min)} is above max {show_bound(self.max)}"
            )

    @property
    def dates(self) -> bool:
        return isinstance(self.min, str) or isinstance(self.max, str)

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "range": {"min": self.min, "max": self.max}}

    def describe(self) -> str:
        return f"{self.column!r} in {interval(self.min, self.max)}"

    def problem(self, schema: pl.Schema) -> str | None:
        if self.column not in schema:
            return super().problem(schema)
        kind, shown = dtype_kind(schema[self.column]), kind_of(schema, self.column)
        if self.dates and kind is not LogicalType.DATETIME:
            return f"range with dates needs a datetime column; {self.column!r} is {shown}"
        if not self.dates and kind not in _NUMERIC:
            hint = "; give dates as bounds" if kind is LogicalType.DATETIME else ""
            return f"range needs a numeric column; {self.column!r} is {shown}{hint}"
        return None

    def failing(self, schema: pl.Schema) -> pl.Expr:
        col, dtype = pl.col(self.column), schema[self.column]
        if self.dates:
            if isinstance(dtype, pl.Datetime) and dtype.time_zone is not None:
                col = col.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
            col = col.cast(pl.Datetime("us"))
        low, high = (
            None
            if b is None
            else pl.lit(_moment(b), pl.Datetime("us"))
            if isinstance(b, str)
            else b
            for b in (self.min, self.max)
        )
        outside = pl.lit(False)
        if low is not None:
            outside = outside | (col < low)
        if high is not None:
            outside = outside | (col > high)
        if dtype.is_float():
            outside = outside | col.is_nan()
        return outside.fill_null(False)


def _bound(value: Any, what: str) -> float | str:
    """A range bound in canonical form: a float, or normalized ISO text for a date/datetime."""
    if isinstance(value, date):  # a datetime is a date too; YAML gives both unquoted
        return value.isoformat()
    if isinstance(value, str):
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            pass
        try:
            return datetime.fromisoformat(value).isoformat()
        except ValueError:
            raise InvalidInputError(
                f"{what} must be a number or an ISO date, not {value!r}"
            ) from None
    return check_number(value, what)


def _moment(bound: str) -> datetime:
    """An ISO bound as a naive UTC datetime; a date is its midnight."""
    moment = datetime.fromisoformat(bound)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


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
        """Also refuses a value that can never equal one of the column's: text or a boolean in
        a numeric column, anything but a boolean in a boolean one, a boolean in a text one."""
        if self.column not in schema:
            return super().problem(schema)
        kind = dtype_kind(schema[self.column])
        if kind is None or kind is LogicalType.DATETIME:
            return f"allowed cannot check {kind_of(schema, self.column)} column {self.column!r}"
        for value in self.values:
            if _fits(value, kind):
                continue
            hint = " (quote it if it is text)" if isinstance(value, bool) else ""
            return f"allowed value {value!r} can never match {kind} column {self.column!r}{hint}"
        return None

    def failing(self, schema: pl.Schema) -> pl.Expr:
        col, kind = pl.col(self.column), dtype_kind(schema[self.column])
        if schema[self.column].is_integer():
            # exact: as floats, integers past 2**53 would match their neighbours
            whole = [int(v) for v in self.values if _is_number(v) and float(v).is_integer()]
            values, as_type = pl.Series(whole, dtype=pl.Int128), col.cast(pl.Int128)
        elif kind in _NUMERIC:
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
            raise InvalidInputError(f"invalid regex {self.pattern!r}: {_reason(exc)}") from None

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "regex": self.pattern}

    def describe(self) -> str:
        return f"{self.column!r} matches {self.pattern!r}"

    def problem(self, schema: pl.Schema) -> str | None:
        if self.column in schema and dtype_kind(schema[self.column]) is None:
            return f"regex cannot check {kind_of(schema, self.column)} column {self.column!r}"
        return super().problem(schema)

    def failing(self, schema: pl.Schema) -> pl.Expr:
        text = pl.col(self.column).cast(pl.String)
        return (~text.str.contains(self.pattern)).fill_null(False)


def _reason(exc: Exception) -> str:
    """The regex engine's own words ("unclosed character class") without the Polars frame
    around them: the `error:` line, else the first line."""
    lines = [line.strip() for line in str(exc).split("This error occurred")[0].splitlines()]
    for line in lines:
        if line.startswith("error:"):
            return line.removeprefix("error:").strip()
    return next((line for line in lines if line), type(exc).__name__)
