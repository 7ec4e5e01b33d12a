"""The one Parquet writer every dataset version goes through, and the types it stores.

Fixed settings (zstd level, row-group size) make equal frames give equal bytes, which
content addressing relies on; only types that pyarrow, and so pandas, read are stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import polars as pl

if TYPE_CHECKING:
    from polars._typing import PolarsDataType

ROW_GROUP_ROWS = 128 * 1024
ZSTD_LEVEL = 1  # a third faster to write than the default level, a few per cent larger
Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


def write_parquet(frame: pl.LazyFrame, staged: Path) -> None:
    """Stream `frame` to Parquet; fixed settings, so equal frames give equal bytes."""
    storable(frame).sink_parquet(
        staged, compression="zstd", compression_level=ZSTD_LEVEL, row_group_size=ROW_GROUP_ROWS
    )


def storable(frame: Frame) -> Frame:
    """`frame` with its 128-bit integers (also inside lists and structs) as Decimal(38, 0),
    and columns of the Null type (a JSON key that is always null) as text.

    pyarrow, and so pandas, cannot read 128-bit integers from Parquet; the decimal is exact.
    A value of more than 38 digits fails the (strict) cast with an error naming the column.
    """
    schema = frame.collect_schema()
    casts = [
        pl.col(name).cast(_storable_dtype(dtype))
        for name, dtype in schema.items()
        if _storable_dtype(dtype) != dtype
    ]
    return frame.with_columns(casts) if casts else frame


def _storable_dtype(dtype: PolarsDataType) -> PolarsDataType:
    if dtype in (pl.Int128, pl.UInt128):
        return pl.Decimal(38, 0)
    if dtype == pl.Null:  # a key that is always null: text, so recipes can fill or cast it
        return pl.String()
    if isinstance(dtype, pl.List):
        return pl.List(_storable_dtype(dtype.inner))
    if isinstance(dtype, pl.Array):
        return pl.Array(_storable_dtype(dtype.inner), dtype.shape)
    if isinstance(dtype, pl.Struct):
        return pl.Struct({field.name: _storable_dtype(field.dtype) for field in dtype.fields})
    return dtype
