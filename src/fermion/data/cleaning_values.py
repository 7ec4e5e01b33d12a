"""Cleaning steps that change values: replace, fill, and clip or drop outliers (`cast` lives in
`cleaning_cast`).

Statistics (mean, median, mode, quartiles, std) are lazy aggregate expressions, so they are
computed over the whole column, as it stands at that step, inside the same query.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import polars as pl

from fermion.data.cleaning_steps import Step
from fermion.data.schema import dtype_kind
from fermion.data.spec_file import check_names, check_number, check_scalar
from fermion.entities import LogicalType
from fermion.errors import InvalidInputError

_NUMERIC = (LogicalType.INTEGER, LogicalType.FLOAT)
_TEXT = (LogicalType.STRING, LogicalType.CATEGORICAL)


def _check_fits(value: Any, column: str, dtype: pl.DataType) -> None:
    """Raise unless `value` (a scalar, or null) can stand in `column`."""
    kind = dtype_kind(dtype)
    if value is None:
        return
    if kind not in (*_NUMERIC, *_TEXT, LogicalType.BOOLEAN):
        raise InvalidInputError(f"column {column!r} is {kind or dtype}: values cannot be set")
    fits = (
        (kind in _NUMERIC and isinstance(value, int | float) and not isinstance(value, bool))
        or (kind in _TEXT and isinstance(value, str))
        or (kind is LogicalType.BOOLEAN and isinstance(value, bool))
    )
    if fits and isinstance(dtype, pl.Enum) and value not in dtype.categories:
        raise InvalidInputError(f"value {value!r} is not a category of enum column {column!r}")
    if not fits:
        raise InvalidInputError(f"value {value!r} does not fit {kind} column {column!r}")


def _widened(column: str, dtype: pl.DataType, values: Sequence[Any]) -> pl.Expr:
    """The column, as Float64 if it is an integer column and a float is to be put in it, as
    `fill_null` with a float would do: putting 1.5 in an Int64 column must not make it 1."""
    col = pl.col(column)
    floats = any(isinstance(v, float) for v in values)
    return col.cast(pl.Float64) if floats and dtype.is_integer() else col


def _check_numeric(columns: Sequence[str], schema: pl.Schema, why: str) -> None:
    for column in columns:
        kind = dtype_kind(schema[column])
        if kind not in _NUMERIC:
            raise InvalidInputError(f"{why} needs a numeric column; {column!r} is {kind}")


@dataclass(frozen=True)
class Replace(Step):
    """Replace exact values in `columns`. YAML: `{columns: [...], values: {old: new}}`.

    A float replacement (`{1: 1.5}`) turns an integer column into a float one, as fill_missing
    does; a fractional value to replace in an integer column, which cannot occur, is refused.

    `values` may also be a list of `[old, new]` pairs, which is the canonical form: JSON
    object keys are text only, and `99999999` must stay a number.
    """

    name: ClassVar[str] = "replace"
    columns: Sequence[str]
    values: Mapping[Any, Any] | Sequence[Sequence[Any]]

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", check_names(self.columns, "columns"))
        raw = self.values
        if isinstance(raw, Mapping):
            pairs = list(raw.items())
        elif isinstance(raw, list | tuple) and all(
            isinstance(p, list | tuple) and len(p) == 2 for p in raw
        ):
            pairs = [(p[0], p[1]) for p in raw]
        else:
            raise InvalidInputError(f"values must be a mapping of old to new, not {raw!r}")
        if not pairs:
            raise InvalidInputError("values must hold at least one replacement")
        for old, new in pairs:
            check_scalar(old, "a value to replace")
            check_scalar(new, "a replacement")
            if old is None:
                raise InvalidInputError("cannot replace null: use fill_missing")
        pairs.sort(key=lambda p: json.dumps(p[0]))
        object.__setattr__(self, "values", tuple(pairs))

    def to_args(self) -> Any:
        return {"columns": list(self.columns), "values": [list(p) for p in self.values]}

    def reads(self, schema: pl.Schema) -> tuple[str, ...]:
        return tuple(self.columns)

    def check(self, schema: pl.Schema) -> None:
        for column in self.columns:
            for old, new in self.values:
                _check_fits(old, column, schema[column])
                _check_fits(new, column, schema[column])
                if isinstance(old, float) and schema[column].is_integer() and not old.is_integer():
                    raise InvalidInputError(
                        f"value {old!r} cannot occur in integer column {column!r}"
                    )

    def apply(self, lf: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
        old = [p[0] for p in self.values]
        new = [p[1] for p in self.values]
        return lf.with_columns(
            _widened(c, schema[c], new).replace(old, new).alias(c) for c in self.columns
        )


@dataclass(frozen=True)
class FillMissing(Step):
    """Fill nulls with a `constant` (`value:`), or the column's `mean`, `median` or `mode`.

    mean and median, and a float constant, turn an integer column into a float one; mode takes
    the smallest of tied most frequent values, so the result is deterministic.
    """

    name: ClassVar[str] = "fill_missing"
    columns: Sequence[str]
    strategy: str = "constant"
    value: Any = None

    strategies: ClassVar[tuple[str, ...]] = ("constant", "mean", "median", "mode")

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", check_names(self.columns, "columns"))
        if self.strategy not in self.strategies:
            raise InvalidInputError(
                f"unknown strategy {self.strategy!r}; expected one of {', '.join(self.strategies)}"
            )
        check_scalar(self.value, "value")
        if self.strategy == "constant" and self.value is None:
            raise InvalidInputError("strategy constant needs a value")
        if self.strategy != "constant" and self.value is not None:
            raise InvalidInputError(f"value applies only to strategy constant, not {self.strategy}")

    def to_args(self) -> Any:
        args: dict[str, Any] = {"columns": list(self.columns), "strategy": self.strategy}
        if self.strategy == "constant":
            args["value"] = self.value
        return args

    def reads(self, schema: pl.Schema) -> tuple[str, ...]:
        return tuple(self.columns)

    def check(self, schema: pl.Schema) -> None:
        if self.strategy in ("mean", "median"):
            _check_numeric(self.columns, schema, f"strategy {self.strategy}")
        for column in self.columns:
            _check_fits(self.value, column, schema[column])

    def _fill(self, column: str, dtype: pl.DataType) -> pl.Expr:
        col = _widened(column, dtype, [self.value])
        if self.strategy == "mean":
            return col.fill_null(col.mean())
        if self.strategy == "median":
            return col.fill_null(col.median())
        if self.strategy == "mode":
            return col.fill_null(col.drop_nulls().mode().sort().first())
        return col.fill_null(pl.lit(self.value))

    def apply(self, lf: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
        return lf.with_columns(self._fill(c, schema[c]).alias(c) for c in self.columns)


@dataclass(frozen=True)
class _Outliers(Step):
    """Outliers are values outside `[q1 - factor*iqr, q3 + factor*iqr]` (method iqr, factor
    1.5 by default) or `mean ± threshold*std` (method zscore, threshold 3 by default). Nulls
    are never outliers; NaN counts as null for the statistics."""

    columns: Sequence[str]
    method: str = "iqr"
    factor: float | None = None
    threshold: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "columns", check_names(self.columns, "columns"))
        own, other = ("factor", "threshold") if self.method == "iqr" else ("threshold", "factor")
        if self.method not in ("iqr", "zscore"):
            raise InvalidInputError(f"unknown method {self.method!r}; expected iqr or zscore")
        if getattr(self, other) is not None:
            raise InvalidInputError(f"{other} does not apply to method {self.method}; use {own}")
        given = getattr(self, own)
        value = (1.5 if own == "factor" else 3.0) if given is None else check_number(given, own)
        if value <= 0:
            raise InvalidInputError(f"{own} must be positive, not {given!r}")
        object.__setattr__(self, own, value)

    def to_args(self) -> Any:
        own = "factor" if self.method == "iqr" else "threshold"
        return {"columns": list(self.columns), "method": self.method, own: getattr(self, own)}

    def reads(self, schema: pl.Schema) -> tuple[str, ...]:
        return tuple(self.columns)

    def check(self, schema: pl.Schema) -> None:
        _check_numeric(self.columns, schema, self.name)

    def bounds(self, column: str, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
        """Lazy lower and upper bounds; null (no bound) where the statistic is undefined."""
        col = pl.col(column).fill_nan(None) if dtype.is_float() else pl.col(column)
        if self.method == "iqr":
            q1 = col.quantile(0.25, interpolation="linear")
            q3 = col.quantile(0.75, interpolation="linear")
            spread = (q3 - q1) * self.factor
            return q1 - spread, q3 + spread
        spread = col.std() * self.threshold
        return col.mean() - spread, col.mean() + spread


@dataclass(frozen=True)
class ClipOutliers(_Outliers):
    """Clip outliers to the bounds; integer columns stay integer, bounds rounded inwards."""

    name: ClassVar[str] = "clip_outliers"

    def apply(self, lf: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
        exprs = []
        for column in self.columns:
            low, high = self.bounds(column, schema[column])
            if schema[column].is_integer():
                low, high = low.ceil(), high.floor()
            exprs.append(pl.col(column).clip(low, high))
        return lf.with_columns(exprs)


@dataclass(frozen=True)
class DropOutliers(_Outliers):
    """Drop rows holding an outlier in any of `columns`; bounds come from the input rows."""

    name: ClassVar[str] = "drop_outliers"

    def apply(self, lf: pl.LazyFrame, schema: pl.Schema) -> pl.LazyFrame:
        keep = []
        for column in self.columns:
            low, high = self.bounds(column, schema[column])
            inside = pl.col(column).is_between(low, high)
            if schema[column].is_float():
                inside = inside | pl.col(column).is_nan()
            keep.append(inside.fill_null(True))
        return lf.filter(pl.all_horizontal(keep))
