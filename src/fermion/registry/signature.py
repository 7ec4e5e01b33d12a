"""Signatures: built from a dataset's schema at training, checked on every prediction call."""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from fermion.entities import ColumnSchema, ColumnSpec, LogicalType, Signature
from fermion.errors import InvalidInputError

# Polars is imported where frames are built: a server's numeric batches never need it.
if TYPE_CHECKING:
    from typing import TypeAlias

    import polars as pl

    Rows: TypeAlias = Mapping[str, Any] | Sequence[Mapping[str, Any]] | pl.DataFrame | Any
else:
    Rows = Any


@functools.cache
def _dtypes() -> Mapping[str, pl.DataType]:
    """The Polars type of each logical type."""
    import polars as pl

    return {
        LogicalType.INTEGER: pl.Int64(),
        LogicalType.FLOAT: pl.Float64(),
        LogicalType.BOOLEAN: pl.Boolean(),
        LogicalType.CATEGORICAL: pl.String(),
        LogicalType.STRING: pl.String(),
        LogicalType.DATETIME: pl.Datetime("us"),
    }


def signature_from_schema(
    schema: Sequence[ColumnSchema],
    features: Sequence[str],
    *,
    task: str,
    target: str,
    classes: Sequence[Any] = (),
) -> Signature:
    by_name = {c.name: c for c in schema}
    inputs = tuple(
        ColumnSpec(name, str(by_name[name].type), by_name[name].nullable) for name in features
    )
    return Signature(inputs, task, tuple(str(c) for c in classes), target)


def frame_schema(signature: Signature) -> dict[str, pl.DataType]:
    """Column types for rows of JSON values; datetimes stay text until `conform` parses them."""
    import polars as pl

    text, dtypes = pl.String(), _dtypes()
    return {
        spec.name: text if spec.type == LogicalType.DATETIME else dtypes.get(spec.type, text)
        for spec in signature.inputs
    }


def to_frame(rows: Rows) -> pl.DataFrame:
    """Rows as a Polars frame: one dict, a list of dicts, or a Polars or pandas frame."""
    import polars as pl

    if isinstance(rows, pl.DataFrame):
        return rows
    if isinstance(rows, Mapping):
        return _from_dicts([rows])
    if type(rows).__module__.startswith("pandas"):
        return _from_pandas(rows)
    if isinstance(rows, Sequence) and not isinstance(rows, str | bytes):
        if not all(isinstance(r, Mapping) for r in rows):
            raise InvalidInputError("rows must be dicts of column name to value")
        return _from_dicts(rows)
    raise InvalidInputError(
        f"cannot read rows from a {type(rows).__name__}: pass a dict, a list of dicts, "
        "or a pandas or Polars DataFrame"
    )


def _from_pandas(rows: Any) -> pl.DataFrame:
    import polars as pl

    if hasattr(rows, "columns"):
        try:
            return pl.from_pandas(rows)
        except (pl.exceptions.PolarsError, TypeError, ValueError):
            # mixed types in an object column: read it as text, so conform names the column
            return _from_dicts(rows.to_dict("records"))
    if hasattr(rows, "to_dict"):  # a Series: one row, e.g. df.iloc[0]
        return _from_dicts([rows.to_dict()])
    raise InvalidInputError(f"cannot read rows from a pandas {type(rows).__name__}")


def _from_dicts(rows: Sequence[Mapping[str, Any]]) -> pl.DataFrame:
    import polars as pl

    try:
        return pl.DataFrame(list(rows), infer_schema_length=None, strict=False)
    except (pl.exceptions.PolarsError, TypeError, ValueError) as exc:
        raise InvalidInputError(f"cannot read rows: {exc}") from exc


def conform(frame: pl.DataFrame, signature: Signature) -> pl.DataFrame:
    """The signature's columns, in order, cast to their types; extra columns are dropped.

    A missing column, or a value that does not fit its column's type, raises InvalidInputError.
    """
    import polars as pl

    dtypes = _dtypes()
    if frame.width == 0 and frame.height == 0:  # an empty list of rows: no predictions
        return pl.DataFrame(
            schema={spec.name: dtypes.get(spec.type, pl.String()) for spec in signature.inputs}
        )
    missing = [c.name for c in signature.inputs if c.name not in frame.columns]
    if missing:
        raise InvalidInputError(
            "missing input column" + ("s" if len(missing) > 1 else "") + ": " + ", ".join(missing)
        )
    columns = []
    for spec in signature.inputs:
        column = frame.get_column(spec.name)
        target = dtypes.get(spec.type, pl.String())
        if column.dtype != target:
            column = _cast(column, target, spec)
        columns.append(column)
    return pl.DataFrame(columns)


def _cast(column: pl.Series, target: pl.DataType, spec: ColumnSpec) -> pl.Series:
    import polars as pl

    if column.dtype == pl.Null:
        return column.cast(target)
    try:
        if target == pl.Datetime("us") and column.dtype == pl.String:
            return column.str.to_datetime(time_unit="us", strict=True)
        if target == pl.String:
            return column.cast(pl.String)
        if target == pl.Boolean and column.dtype == pl.String:
            return _booleans(column, spec)
        if target.is_numeric() and column.dtype == pl.String:
            column = column.str.strip_chars().cast(pl.Float64, strict=True)
        if target.is_integer() and column.dtype.is_float():
            # a plain cast would truncate 30.7 to 30 and change the prediction silently
            fractional = column.filter(column.is_finite() & (column != column.floor()))
            if fractional.len():
                raise InvalidInputError(
                    f"column {spec.name!r} must be {spec.type}; got {fractional[0]!r}"
                )
        return column.cast(target, strict=True)
    except (pl.exceptions.PolarsError, ValueError) as exc:
        bad = _first_bad(column, target)
        raise InvalidInputError(
            f"column {spec.name!r} must be {spec.type}; got {bad!r}"
            if bad is not None
            else f"column {spec.name!r} must be {spec.type}: {exc}"
        ) from exc


_TRUE = frozenset({"true", "t", "yes", "y", "1"})
_FALSE = frozenset({"false", "f", "no", "n", "0"})


def _booleans(column: pl.Series, spec: ColumnSpec) -> pl.Series:
    """Text such as JSON clients send: true/false, yes/no, 1/0 (any case)."""
    import polars as pl

    words = column.str.strip_chars().str.to_lowercase()
    present = words.drop_nulls()
    unknown = present.filter(~present.is_in(list(_TRUE | _FALSE)))
    if unknown.len():
        raise InvalidInputError(f"column {spec.name!r} must be boolean; got {unknown[0]!r}")
    mapping = dict.fromkeys(_TRUE, True) | dict.fromkeys(_FALSE, False)
    return words.replace_strict(mapping, default=None, return_dtype=pl.Boolean())


def _first_bad(column: pl.Series, target: pl.DataType) -> Any:
    import polars as pl

    for value in column.drop_nulls().to_list()[:10_000]:
        try:
            pl.Series([value]).cast(target, strict=True)
        except (pl.exceptions.PolarsError, ValueError):
            if target.is_numeric() and isinstance(value, str):
                try:
                    pl.Series([value]).cast(pl.Float64, strict=True).cast(target, strict=True)
                    continue
                except (pl.exceptions.PolarsError, ValueError):
                    return value
            return value
    return None
