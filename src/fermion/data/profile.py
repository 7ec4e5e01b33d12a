"""Column statistics of a Parquet file or frame, in two lazy passes over it.

A column is low-cardinality when its first SAMPLE_ROWS rows hold at most LOW_CARDINALITY
distinct values. Pass one is a batch of one `select` and one value count per
low-cardinality column. The `select` holds mean and std of numeric columns and, for the
other columns, missing count, min/max, a HyperLogLog distinct count and quantiles. A
low-cardinality column's count, exact distinct count, min/max, top values, quantiles and
histogram follow from its value counts. Pass two bins the high-cardinality numeric columns
in one query; only a column with an infinite min or max takes another, for its finite range.

So: distinct is exact for low-cardinality columns and estimated (about 2%) above; top
values are listed only for low-cardinality columns (elsewhere nearly every value is
unique); quantiles are exact, except that a high-cardinality column takes them from every
k-th row, k = rows // QUANTILE_SAMPLE (so exact below twice QUANTILE_SAMPLE rows).

Everything returned is JSON-serialisable: NaN and infinities become None, dates and times
ISO strings. Missing counts include float NaN.
"""

from __future__ import annotations

import bisect
import datetime as dt
import decimal
import itertools
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import polars as pl

from fermion.data import schema as schemas
from fermion.entities import ColumnProfile, ColumnSchema, LogicalType, Profile
from fermion.errors import InvalidInputError

QUANTILES = {"p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95}
TOP_VALUES = 10
BINS = 20
LOW_CARDINALITY = 10_000
QUANTILE_SAMPLE = 1_000_000


def profile_parquet(path: Path, schema: tuple[ColumnSchema, ...]) -> Profile:
    """Profile the Parquet file `path`; column types come from `schema` (by name)."""
    frame = schemas.scan(path)
    dtypes = frame.collect_schema()
    types = {column.name: column.type for column in schema}
    unknown = [name for name in dtypes if name not in types]
    if unknown:
        raise InvalidInputError(f"{path}: column {unknown[0]!r} is not in the given schema")
    stats, counts, hists = _passes(frame, dtypes)
    return _profile(dtypes, types, stats, counts, hists)


def describe_parquet(path: Path) -> tuple[tuple[ColumnSchema, ...], Profile]:
    """`infer_schema` and `profile_parquet` in one go, sharing their passes."""
    return describe_frame(schemas.scan(path))


def describe_frame(frame: pl.LazyFrame) -> tuple[tuple[ColumnSchema, ...], Profile]:
    """`describe_parquet` of the rows of `frame`: a scan, or an in-memory frame's `.lazy()`."""
    dtypes = frame.collect_schema()
    stats, counts, hists = _passes(frame, dtypes)
    inferred = schemas.from_stats(dtypes, stats)
    types = {column.name: column.type for column in inferred}
    return inferred, _profile(dtypes, types, stats, counts, hists)


def _is_numeric(dtype: pl.DataType) -> bool:
    return dtype.is_numeric() and not isinstance(dtype, pl.Boolean)


def _is_ordered(dtype: pl.DataType) -> bool:
    """Min and max mean something (and are reported) for these."""
    return _is_numeric(dtype) or dtype.is_temporal() or schemas.is_text(dtype)


def _passes(
    frame: pl.LazyFrame, dtypes: Mapping[str, pl.DataType]
) -> tuple[dict[str, Any], dict[str, pl.DataFrame], dict[str, list[float]]]:
    """(aggregates, value counts of low-cardinality columns, histogram bin counts)."""
    low = schemas.head_distinct(frame, dtypes, LOW_CARDINALITY)
    rows = frame.select(pl.len()).collect().item()
    step = max(1, rows // QUANTILE_SAMPLE)
    exprs: list[pl.Expr] = [pl.len().alias("rows")]
    for name, dtype in dtypes.items():
        exprs += _aggregates(name, dtype, name in low, step)
    # the value counts do not need the aggregates: one batch keeps both cores busy
    first = pl.collect_all(
        [frame.select(exprs), *(_value_counts(frame, n, dtypes[n]) for n in low)]
    )
    stats: dict[str, Any] = first[0].row(0, named=True)
    counts = dict(zip(low, first[1:], strict=True))
    for name, dtype in dtypes.items():
        if name in counts:
            stats.update(_counted_stats(name, dtype, counts[name], stats["rows"]))
        else:
            stats[f"count:{name}"] = stats["rows"] - stats[f"null:{name}"]
    _finite_ranges(frame, dtypes, stats, counts)
    binned = [
        name
        for name, dtype in dtypes.items()
        if _is_numeric(dtype) and name not in low and stats[f"lo:{name}"] is not None
    ]
    return stats, counts, _histograms(frame, stats, binned)


def _aggregates(name: str, dtype: pl.DataType, counted: bool, step: int) -> list[pl.Expr]:
    """What one `select` computes for a column; a `counted` one (whose value counts are
    collected) needs only its mean and std there."""
    column = schemas.values(name, dtype)
    number = column.cast(pl.Float64)
    exprs: list[pl.Expr] = []
    if _is_numeric(dtype):
        exprs += [number.mean().alias(f"mean:{name}"), number.std().alias(f"std:{name}")]
    if counted:
        return exprs
    exprs.append(schemas.nulls(name, dtype))
    if _is_ordered(dtype):
        exprs += [column.min().alias(f"min:{name}"), column.max().alias(f"max:{name}")]
    if schemas.is_opaque(dtype):
        exprs.append(schemas.distinct(name, dtype))
    else:
        exprs.append(column.drop_nulls().approx_n_unique().alias(f"distinct:{name}"))
    if _is_numeric(dtype) and not (dtype.is_integer() or dtype.is_float()):
        # a decimal is always finite, and its min as a Python float may differ in the last bit
        exprs += [number.min().alias(f"lo:{name}"), number.max().alias(f"hi:{name}")]
    if _is_numeric(dtype):
        sample = number.gather_every(step)
        quantiles = sample.quantile(list(QUANTILES.values()), interpolation="linear")
        exprs.append(quantiles.alias(f"quantiles:{name}"))
    return exprs


def _value_counts(frame: pl.LazyFrame, name: str, dtype: pl.DataType) -> pl.LazyFrame:
    return (
        frame.select(schemas.values(name, dtype).alias("value"))
        .drop_nulls()
        .group_by("value")
        .agg(pl.len().alias("count"))
    )


def _counted_stats(
    name: str, dtype: pl.DataType, counts: pl.DataFrame, rows: int
) -> dict[str, Any]:
    """Count, missing, distinct, min and max of a column, from its value counts."""
    count = int(counts["count"].sum())
    stats: dict[str, Any] = {
        f"count:{name}": count,
        f"null:{name}": rows - count,
        f"distinct:{name}": counts.height,
    }
    if _is_ordered(dtype):
        stats[f"min:{name}"] = counts["value"].min()
        stats[f"max:{name}"] = counts["value"].max()
    return stats


def _finite_ranges(
    frame: pl.LazyFrame,
    dtypes: Mapping[str, pl.DataType],
    stats: dict[str, Any],
    counts: Mapping[str, pl.DataFrame],
) -> None:
    """Set "lo:" and "hi:", the least and greatest finite value (None if there is none), of
    each numeric column. Only a column whose min or max is infinite needs another pass."""
    scan: list[str] = []
    for name, dtype in dtypes.items():
        if not _is_numeric(dtype) or f"lo:{name}" in stats:
            continue
        if name in counts:
            value = counts[name]["value"].cast(pl.Float64)
            known = value.filter(value.is_finite())
            stats[f"lo:{name}"], stats[f"hi:{name}"] = known.min(), known.max()
            continue
        low, high = stats[f"min:{name}"], stats[f"max:{name}"]
        if low is None:
            stats[f"lo:{name}"] = stats[f"hi:{name}"] = None
        elif math.isinf(low) or math.isinf(high):
            scan.append(name)
        else:
            stats[f"lo:{name}"], stats[f"hi:{name}"] = float(low), float(high)
    if scan:
        exprs: list[pl.Expr] = []
        for name in scan:
            number = pl.col(name).cast(pl.Float64)
            finite = number.filter(number.is_finite())
            exprs += [finite.min().alias(f"lo:{name}"), finite.max().alias(f"hi:{name}")]
        stats.update(frame.select(exprs).collect().row(0, named=True))


def _edges(stats: Mapping[str, Any], name: str) -> list[float]:
    low, high = float(stats[f"lo:{name}"]), float(stats[f"hi:{name}"])
    if low == high or (high - low) / BINS == 0:  # one value, or a range below float resolution
        low, high = low - 0.5, low + 0.5
    width = (high - low) / BINS
    if not math.isfinite(width):  # the range overflows a float: interpolate instead
        return [low * (1 - i / BINS) + high * (i / BINS) for i in range(BINS)] + [high]
    return [low + i * width for i in range(BINS)] + [high]


def _bin(number: pl.Expr, edges: list[float]) -> pl.Expr:
    """Bin i holds [edge i, edge i+1); the last bin also holds its upper edge; a value that is
    not finite has none (null). For values within the edges, truncating is flooring."""
    width = (edges[-1] - edges[0]) / BINS
    if math.isfinite(width):
        position = (number - edges[0]) / width
    else:  # the range overflows a float: scale before subtracting
        scaled = edges[-1] / BINS - edges[0] / BINS
        position = number / scaled - edges[0] / scaled
    index = position.cast(pl.UInt8, strict=False)
    return index.clip(upper_bound=BINS - 1).alias("bin")


def _histograms(
    frame: pl.LazyFrame, stats: Mapping[str, Any], names: list[str]
) -> dict[str, list[float]]:
    """Bin counts of the columns `names`: their bin indexes in one `select`, then counted."""
    if not names:
        return {}
    bins = frame.select(_bin(pl.col(n).cast(pl.Float64), _edges(stats, n)).alias(n) for n in names)
    # one (index == i).sum() per bin beats a group_by or numpy's bincount several times over
    row = bins.select(
        (pl.col(n) == i).sum().alias(f"{n}:{i}") for n in names for i in range(BINS)
    ).collect()
    return {n: [int(row[f"{n}:{i}"].item()) for i in range(BINS)] for n in names}


def _counted_histogram(counts: pl.DataFrame, edges: list[float]) -> list[float]:
    number = pl.col("value").cast(pl.Float64)
    table = counts.group_by(_bin(number, edges)).agg(pl.col("count").sum()).drop_nulls()
    bins: list[float] = [0] * BINS
    for index, count in table.iter_rows():
        bins[index] = int(count)
    return bins


def _counted_quantiles(counts: pl.DataFrame) -> list[float]:
    """Linear-interpolated quantiles, as `Expr.quantile` gives them, from value counts."""
    table = counts.select(pl.col("value").cast(pl.Float64), "count").sort("value")
    values = table["value"].to_list()
    cumulative = list(itertools.accumulate(table["count"].to_list()))
    total = cumulative[-1]

    def nth(rank: int) -> float:
        return float(values[bisect.bisect_right(cumulative, rank)])

    result = []
    for q in QUANTILES.values():
        position = (total - 1) * q
        below = math.floor(position)
        low = nth(below)
        fraction = position - below
        result.append(low + fraction * (nth(below + 1) - low) if fraction else low)
    return result


def _top(counts: pl.DataFrame) -> list[tuple[Any, int]]:
    """The most frequent values, ties broken by the value so the pick is repeatable."""
    top = counts.sort(["count", "value"], descending=[True, False]).head(TOP_VALUES)
    return [(jsonable(value), int(count)) for value, count in top.iter_rows()]


def _profile(
    dtypes: Mapping[str, pl.DataType],
    types: Mapping[str, LogicalType],
    stats: Mapping[str, Any],
    counts: Mapping[str, pl.DataFrame],
    hists: Mapping[str, list[float]],
) -> Profile:
    columns = tuple(
        _column(name, dtype, types[name], stats, counts.get(name), hists.get(name))
        for name, dtype in dtypes.items()
    )
    return Profile(int(stats["rows"]), len(columns), columns)


def _column(
    name: str,
    dtype: pl.DataType,
    logical: LogicalType,
    stats: Mapping[str, Any],
    counts: pl.DataFrame | None,
    hist: list[float] | None,
) -> ColumnProfile:
    numeric = _is_numeric(dtype)
    quantiles: list[Any] = stats.get(f"quantiles:{name}") or []
    histogram = None
    if numeric and stats[f"lo:{name}"] is not None:
        edges = _edges(stats, name)
        if counts is not None:
            hist = _counted_histogram(counts, edges)
            quantiles = _counted_quantiles(counts)
        histogram = {"edges": edges, "counts": hist or [0] * BINS}
    elif numeric and counts is not None and counts.height:
        quantiles = _counted_quantiles(counts)
    return ColumnProfile(
        name=name,
        type=logical,
        count=int(stats[f"count:{name}"]),
        missing=int(stats[f"null:{name}"]),
        distinct=int(stats[f"distinct:{name}"]),
        min=_bound(stats.get(f"min:{name}"), numeric),
        max=_bound(stats.get(f"max:{name}"), numeric),
        mean=_rounded(stats.get(f"mean:{name}")),
        std=_rounded(stats.get(f"std:{name}")),
        quantiles={
            key: value
            for key, value in zip(QUANTILES, map(_number, quantiles), strict=False)
            if value is not None
        },
        top_values=[] if counts is None else _top(counts),
        histogram=histogram,
    )


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _rounded(value: Any) -> float | None:
    """12 significant digits: parallel sums differ run to run in the last bits."""
    number = _number(value)
    return None if number is None else float(f"{number:.12g}")


def _bound(value: Any, numeric: bool) -> float | str | None:
    if value is None:
        return None
    if numeric:
        return _number(value)
    converted = jsonable(value)
    return converted if isinstance(converted, str) else str(converted)


def jsonable(value: Any) -> Any:
    """A value as JSON can hold it: ISO text for times, None for NaN and infinities."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return _number(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)
