"""The `cast` cleaning step: convert columns to a logical type without losing values silently.

A conversion that would turn a value into null (text that is not a number, a float with a
fractional part cast to integer, text that does not match the datetime format) is refused.
Whether it would depends on the data, and steps are lazy, so `Cast.verify` counts the values
that would be lost with one aggregate query over the plan so far; `apply_recipe` runs it before
adding the step. The check and the conversion come from the same `_Conversion`, so they agree.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import polars as pl

from fermion.data.cleaning_steps import Step
from fermion.data.schema import dtype_kind
from fermion.entities import LogicalType
from fermion.errors import InvalidInputError

_NUMERIC = (LogicalType.INTEGER, LogicalType.FLOAT)
_TEXT = (LogicalType.STRING, LogicalType.CATEGORICAL)
_WORDS = {"true": True, "false": False, "yes": True, "no": False, "1": True, "0": False,
          "t": True, "f": False, "y": True, "n": False}  # fmt: skip
ISO_FORMATS = (
    "%Y-%m-%d",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%dT%H:%M",
    "%Y-%m-%d %H:%M",
)


@dataclass(frozen=True)
class Cast(Step):
    """Convert columns to a logical type. YAML: `cast: {columns: {Age: float}}`.

    Text is stripped first, and text that is empty after stripping counts as missing. Text
    becomes boolean from true/false, yes/no, 1/0, t/f, y/n (any case), and numbers from 0/1.
    Text becomes datetime by `format` (`cast: {columns: {When: datetime}, format: "%d/%m/%Y"}`,
    strftime codes, one format for every column of the step) or, without one, by ISO 8601
    (`2024-01-31`, `2024-01-31T10:00[:00[.123]]`, a space for the T; no offsets). Numbers
    and booleans never become datetimes, nor datetimes numbers.

    Refused at run time, naming the column, the count and one example: any non-null value that
    would become null, and a float with a fractional part cast to integer (NaN counts as null).
    """

    name: ClassVar[str] = "cast"
    columns: Mapping[str, str]
    format: str | None = None

    def __post_init__(self) -> None:
        targets = self.columns
        if not isinstance(targets, Mapping) or not targets:
            raise InvalidInputError(f"columns must map column names to types, not {targets!r}")
        known = [str(t) for t in LogicalType]
        for column, target in targets.items():
            if not isinstance(column, str) or target not in known:
                raise InvalidInputError(
                    f"cannot cast {column!r} to {target!r}; types are {', '.join(known)}"
                )
        if self.format is not None:
            if not isinstance(self.format, str) or "%" not in self.format:
                raise InvalidInputError(
                    f"format must be strftime text such as '%d/%m/%Y', not {self.format!r}"
                )
            if LogicalType.DATETIME not in targets.values():
                raise InvalidInputError("format applies only to casts to datetime")
        object.__setattr__(self, "columns", dict(targets))

    def __hash__(self) -> int:
        return hash((tuple(self.columns.items()), self.format))

    def to_args(self) -> Any:
        # format only when given, so recipes written before it keep their fingerprint
        args: dict[str, Any] = {"columns": dict(self.columns)}
        if self.format is not None:
            args["format"] = self.format
        return args

    def reads(self, schema: pl.Schema) -> tuple[str, ...]:
        return tuple(self.columns)

    def _conversions(self, schema: pl.Schema) -> list[_Conversion]:
        return [
            _Conversion(column, schema[column], LogicalType(target), self.format)
            for column, target in self.columns.items()
        ]

    def check(self, schema: pl.Schema) -> None:
        for conversion in self._conversions(schema):
            conversion.check()

    def verify(self, lf: pl.LazyFrame, schema: pl.Schema) -> None:
        conversions = [c for c in self._conversions(schema) if c.can_lose()]
        if not conversions:
            return
        exprs = []
        for number, conversion in enumerate(conversions):
            lost = conversion.lost()
            example = pl.col(conversion.column).filter(lost).first().cast(pl.String)
            exprs += [lost.sum().alias(f"n{number}"), example.alias(f"e{number}")]
        row = lf.select(exprs).collect().row(0)
        for number, conversion in enumerate(conversions):
            count, example = row[2 * number], row[2 * number + 1]
            if count:
                raise InvalidInputError(conversion.refusal(count, example))

    def apply(self, lf: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
        return lf.with_columns(c.converted().alias(c.column) for c in self._conversions(schema))


@dataclass(frozen=True)
class _Conversion:
    """One column's conversion: the expression, and which of its values it would lose."""

    column: str
    source: pl.DataType
    target: LogicalType
    format: str | None

    @property
    def kind(self) -> LogicalType | None:
        return dtype_kind(self.source)

    def check(self) -> None:
        kind, column, target = self.kind, self.column, self.target
        if kind is None:
            raise InvalidInputError(f"cannot cast {self.source} column {column!r}")
        if target is LogicalType.DATETIME and kind not in (*_TEXT, LogicalType.DATETIME):
            raise InvalidInputError(
                f"cannot cast {kind} column {column!r} to datetime: its values are not dates; "
                "cast text columns (with format: for non-ISO text)"
            )
        if kind is LogicalType.DATETIME and target in (*_NUMERIC, LogicalType.BOOLEAN):
            raise InvalidInputError(
                f"cannot cast datetime column {column!r} to {target}; cast it to string"
            )
        if self.format is not None and target is LogicalType.DATETIME and kind not in _TEXT:
            raise InvalidInputError(f"format applies to text columns; {column!r} is {kind}")

    def can_lose(self) -> bool:
        """False where no value can be lost, to spare the query."""
        kind, target = self.kind, self.target
        if target in _TEXT or kind is LogicalType.BOOLEAN or kind is target is LogicalType.DATETIME:
            return False
        if target is LogicalType.FLOAT:
            return kind not in _NUMERIC
        return not (target is kind is LogicalType.INTEGER and self.source != pl.UInt64)

    def _text(self) -> pl.Expr:
        return pl.col(self.column).cast(pl.String).str.strip_chars()

    def present(self) -> pl.Expr:
        """True where the source holds a value: not null, not NaN, not blank text."""
        col = pl.col(self.column)
        if self.kind in _TEXT:
            return col.is_not_null() & (self._text() != "")
        if self.source.is_float():
            return col.is_not_null() & ~col.is_nan()
        return col.is_not_null()

    def converted(self) -> pl.Expr:
        col, target = pl.col(self.column), self.target
        is_text = self.kind in _TEXT
        if target is LogicalType.STRING:
            return col.cast(pl.String)
        if target is LogicalType.CATEGORICAL:
            return col.cast(pl.String).cast(pl.Categorical)
        source = self._text() if is_text else col
        if target is LogicalType.INTEGER:
            return source.cast(pl.Int64, strict=False)
        if target is LogicalType.FLOAT:
            return source.cast(pl.Float64, strict=False)
        if target is LogicalType.BOOLEAN:
            if is_text:
                words = self._text().str.to_lowercase()
                return words.replace_strict(_WORDS, default=None, return_dtype=pl.Boolean)
            return pl.when(col == 1).then(True).when(col == 0).then(False).otherwise(None)
        if not is_text:
            return col.cast(pl.Datetime)
        formats = (self.format,) if self.format else ISO_FORMATS
        parsed = [self._text().str.to_datetime(f, strict=False) for f in formats]
        return parsed[0] if len(parsed) == 1 else pl.coalesce(parsed)

    def lost(self) -> pl.Expr:
        """True where a value would become null, or change, by the conversion."""
        converted = self.converted()
        lost = self.present() & converted.is_null()
        if self.target is LogicalType.INTEGER and self.kind is LogicalType.FLOAT:
            lost = lost | (converted.cast(pl.Float64) != pl.col(self.column).cast(pl.Float64))
        return lost.fill_null(False)

    def refusal(self, count: int, example: str | None) -> str:
        values = "value" if count == 1 else "values"
        start = f"{count} {values} of {self.column!r} would be lost casting to {self.target}"
        if self.target is LogicalType.DATETIME:
            how = f"format {self.format!r}" if self.format else "ISO 8601 (give format: ...)"
            start += f": not dates in {how}"
        elif self.target is LogicalType.INTEGER and self.kind is LogicalType.FLOAT:
            start += ": fractional or out of range"
        shown = repr(example) if self.kind in _TEXT else example
        return f"{start}, e.g. {shown}; replace or drop them first"
