"""The logical schema of a Parquet file: each column's type, nullability and Polars dtype.

Types follow the Polars dtype, except that text splits in two: a String column whose
number of distinct values is at most max(2, min(50, 5% of the rows)), and below its
number of values (so never an all-distinct key), is categorical; other text is string.
Categorical and Enum columns are categorical whatever their size. Int*/UInt* are
integer; Float*/Decimal are float; Boolean is boolean; Date and Datetime are datetime;
every other dtype (Time, Duration, Binary, List, Struct, Null) is string.

A float NaN counts as missing, here and in profiles: the CSV reader already reads "NaN"
as missing, and Parquet from elsewhere should not disagree with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import polars as pl

from fermion.entities import ColumnSchema, LogicalType
from fermion.errors import InvalidInputError

CATEGORICAL_MAX = 50
CATEGORICAL_SHARE = 0.05
SAMPLE_ROWS = 100_000


def infer_schema(path: Path) -> tuple[ColumnSchema, ...]:
    """Read the schema of the Parquet file `path`.

    One pass for null counts, plus exact distinct counts of the text columns that have at
    most CATEGORICAL_MAX distinct values in their first SAMPLE_ROWS rows (the others cannot
    be categorical).
    """
    frame = scan(path)
    dtypes = frame.collect_schema()
    texts = {name: dtype for name, dtype in dtypes.items() if is_text(dtype)}
    small = head_distinct(frame, texts, CATEGORICAL_MAX)
    row = (
        frame.select(
            pl.len().alias("rows"),
            *[nulls(name, dtype) for name, dtype in dtypes.items()],
            *[distinct(name, texts[name]) for name in small],
        )
        .collect()
        .row(0, named=True)
    )
    return from_stats(dtypes, row)


def head_distinct(frame: pl.LazyFrame, dtypes: Mapping[str, pl.DataType], limit: int) -> list[str]:
    """The columns with at most `limit` distinct values in their first SAMPLE_ROWS rows."""
    simple = [name for name, dtype in dtypes.items() if not is_opaque(dtype)]
    if not simple:
        return []
    row = (
        frame.head(SAMPLE_ROWS)
        .select(distinct(name, dtypes[name]) for name in simple)
        .collect()
        .row(0, named=True)
    )
    return [name for name in simple if row[f"distinct:{name}"] <= limit]


def scan(path: Path) -> pl.LazyFrame:
    """`pl.scan_parquet`, with a missing or unreadable file as a Fermion error."""
    if not Path(path).is_file():
        raise InvalidInputError(f"{path}: no such Parquet file")
    frame = pl.scan_parquet(path)
    try:
        frame.collect_schema()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InvalidInputError(f"{path}: not a readable Parquet file: {exc}") from None
    return frame


def from_stats(
    dtypes: Mapping[str, pl.DataType], row: Mapping[str, int]
) -> tuple[ColumnSchema, ...]:
    """Column schemas from the aggregates `nulls` and `distinct` computed under "rows"."""
    return tuple(
        ColumnSchema(
            name,
            logical_type(dtype, row["rows"], row[f"null:{name}"], row.get(f"distinct:{name}")),
            nullable=row[f"null:{name}"] > 0,
            dtype=str(dtype),
        )
        for name, dtype in dtypes.items()
    )


def dtype_kind(dtype: pl.DataType) -> LogicalType | None:
    """The logical type a Polars dtype stands for, text as STRING; None for nested and other
    exotic types."""
    if dtype.is_integer():
        return LogicalType.INTEGER
    if dtype.is_float() or isinstance(dtype, pl.Decimal):
        return LogicalType.FLOAT
    if isinstance(dtype, pl.Boolean):
        return LogicalType.BOOLEAN
    if isinstance(dtype, pl.Date | pl.Datetime):
        return LogicalType.DATETIME
    if isinstance(dtype, pl.Categorical | pl.Enum):
        return LogicalType.CATEGORICAL
    if isinstance(dtype, pl.String):
        return LogicalType.STRING
    return None


def logical_type(dtype: pl.DataType, rows: int, missing: int, distinct: int | None) -> LogicalType:
    """The logical type of a column; `distinct` (non-null distinct values) matters for text."""
    kind = dtype_kind(dtype)
    if kind is LogicalType.STRING and distinct is not None:
        limit = max(2, min(CATEGORICAL_MAX, int(CATEGORICAL_SHARE * rows)))
        if 0 < distinct <= limit and distinct < rows - missing:
            return LogicalType.CATEGORICAL
    return kind or LogicalType.STRING


def is_text(dtype: pl.DataType) -> bool:
    return isinstance(dtype, pl.String | pl.Categorical | pl.Enum)


def is_opaque(dtype: pl.DataType) -> bool:
    """Values that are not ranked or counted one by one: lists, structs, bytes."""
    return dtype.is_nested() or isinstance(dtype, pl.Binary | pl.Object)


def values(name: str, dtype: pl.DataType) -> pl.Expr:
    """The column as profiled: NaN made missing, categories as their text."""
    column = pl.col(name)
    if dtype.is_float():
        return column.fill_nan(None)
    if isinstance(dtype, pl.Categorical | pl.Enum):
        return column.cast(pl.String)
    return column


def nulls(name: str, dtype: pl.DataType) -> pl.Expr:
    return values(name, dtype).null_count().alias(f"null:{name}")


def distinct(name: str, dtype: pl.DataType) -> pl.Expr:
    """Exact count of distinct non-null values (nested values by their hash)."""
    column = values(name, dtype).drop_nulls()
    if is_opaque(dtype):
        column = column.hash()
    return column.n_unique().alias(f"distinct:{name}")
