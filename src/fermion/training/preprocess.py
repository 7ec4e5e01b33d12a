"""Preprocessing that is part of a model: raw rows in, one float32 matrix out.

The fitted state is plain JSON (`to_dict`/`from_dict`), so a registered model needs no pickle,
and `transform` works a column at a time with numpy, since it runs on every serving request.
Columns of the wrong type are cast strictly (numbers sent as strings are read; words are not).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast, get_args

import numpy as np
import polars as pl

from fermion.errors import InvalidInputError
from fermion.training.text import DEFAULT_TEXT_MODEL, embed_texts, embedding_dim

ColumnRole = Literal["numeric", "boolean", "categorical", "datetime", "text"]
Encoding = Literal["ordinal", "onehot"]
ROLES: tuple[str, ...] = get_args(ColumnRole)
TEXT_MEAN_LENGTH = 30
TEXT_DISTINCT_RATIO = 0.5
STATE_VERSION = 1
# Up to this many rows a dict lookup is faster than a cast to a Polars Enum (~40 us a call).
_LOOKUP_ROWS = 256


def column_roles(
    frame: pl.DataFrame, features: Sequence[str], *, text_columns: Sequence[str] = ()
) -> dict[str, ColumnRole]:
    """The role of each feature, from its dtype.

    A String column is categorical, unless it is listed in `text_columns` or reads as free
    text: a mean length over TEXT_MEAN_LENGTH characters and over TEXT_DISTINCT_RATIO of its
    values distinct.
    """
    schema = frame.schema
    missing = [name for name in features if name not in schema]
    if missing:
        raise InvalidInputError(f"no such column(s): {', '.join(missing)}")
    stray = [name for name in text_columns if name not in features]
    if stray:
        raise InvalidInputError(f"text column(s) not among the features: {', '.join(stray)}")
    roles = {name: _dtype_role(name, schema[name]) for name in features}
    for name in text_columns:
        if roles[name] != "categorical":
            raise InvalidInputError(f"column {name!r}: a {schema[name]} column cannot be text")
        roles[name] = "text"
    strings = [name for name, role in roles.items() if role == "categorical"]
    strings = [name for name in strings if schema[name] == pl.String]
    if strings:
        stats = frame.select(
            expr
            for name in strings
            for expr in (
                pl.col(name).str.len_chars().mean().alias(f"length:{name}"),
                pl.col(name).drop_nulls().n_unique().alias(f"distinct:{name}"),
                pl.col(name).count().alias(f"count:{name}"),
            )
        ).row(0, named=True)
        for name in strings:
            count = stats[f"count:{name}"]
            long = count > 0 and stats[f"length:{name}"] > TEXT_MEAN_LENGTH
            if long and stats[f"distinct:{name}"] / count > TEXT_DISTINCT_RATIO:
                roles[name] = "text"
    return roles


def _dtype_role(name: str, dtype: pl.DataType) -> ColumnRole:
    if dtype.is_integer() or dtype.is_float() or isinstance(dtype, pl.Decimal):
        return "numeric"
    if dtype == pl.Boolean:
        return "boolean"
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        return "datetime"
    if dtype == pl.String or isinstance(dtype, pl.Categorical | pl.Enum):
        return "categorical"
    raise InvalidInputError(
        f"column {name!r}: unsupported type {dtype}; features must be numbers, booleans, "
        "dates, datetimes or text"
    )


def preprocessor_for(
    family_preprocessing: Literal["trees", "linear"], roles: Mapping[str, ColumnRole]
) -> Preprocessor:
    """Trees: ordinal codes, missing values kept as NaN. Linear: one-hot, imputed, scaled."""
    if family_preprocessing == "trees":
        return Preprocessor(roles, encoding="ordinal", scale=False, impute=False)
    if family_preprocessing == "linear":
        return Preprocessor(roles, encoding="onehot", scale=True, impute=True)
    raise InvalidInputError(f"unknown preprocessing {family_preprocessing!r}: trees or linear")


class Preprocessor:
    """Turns raw feature columns into a float32 matrix; fitted state in `to_dict()`.

    Numbers, booleans and datetimes (as epoch seconds) give one feature each; missing values
    are NaN unless `impute` (median; mode for booleans). `scale` standardises numbers and
    datetimes. Categoricals keep their `max_categories` most frequent values: an ordinal code,
    or one 0/1 feature per value; other values count as missing. Text becomes an embedding.
    """

    def __init__(
        self,
        roles: Mapping[str, ColumnRole],
        *,
        encoding: Encoding,
        scale: bool,
        impute: bool,
        max_categories: int = 50,
        text_model: str = DEFAULT_TEXT_MODEL,
    ) -> None:
        bad = [f"{name}={role!r}" for name, role in roles.items() if role not in ROLES]
        if bad:
            raise InvalidInputError(f"unknown column role(s) {', '.join(bad)}; use {ROLES}")
        if encoding not in get_args(Encoding):
            raise InvalidInputError(f"unknown encoding {encoding!r}: ordinal or onehot")
        if max_categories < 1:
            raise InvalidInputError(f"max_categories must be at least 1, not {max_categories}")
        if "text" in roles.values():
            embedding_dim(text_model)
        self.roles: dict[str, ColumnRole] = dict(roles)
        self.encoding: Encoding = encoding
        self.scale = scale
        self.impute = impute
        self.max_categories = max_categories
        self.text_model = text_model
        self.columns_: list[_Column] | None = None
        self._slices: list[tuple[int, int]] = []

    def fit(self, frame: pl.DataFrame) -> Preprocessor:
        self._check_frame(frame)
        self._set_columns([self._fit_column(frame.get_column(name)) for name in self.roles])
        return self

    def transform(self, frame: pl.DataFrame) -> np.ndarray:
        """The features of `frame`'s rows, float32 of shape (rows, len(feature_names))."""
        columns = self._fitted()
        self._check_frame(frame)
        out = np.empty((frame.height, self._slices[-1][1] if columns else 0), dtype=np.float32)
        for column, (start, stop) in zip(columns, self._slices, strict=True):
            column.write(frame.get_column(column.name), out[:, start:stop])
        return out

    @property
    def feature_names(self) -> list[str]:
        return [name for column in self._fitted() for name in column.names()]

    @property
    def categorical_feature_indices(self) -> list[int]:
        """Where the ordinal-coded categoricals are in the output (for LightGBM)."""
        columns = zip(self._fitted(), self._slices, strict=True)
        return [start for c, (start, _) in columns if isinstance(c, _Categorical) and not c.onehot]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "encoding": self.encoding,
            "scale": self.scale,
            "impute": self.impute,
            "max_categories": self.max_categories,
            "text_model": self.text_model,
            "columns": [column.to_dict() for column in self._fitted()],
        }

    @classmethod
    def from_dict(cls, state: Mapping[str, Any]) -> Preprocessor:
        try:
            if state["version"] != STATE_VERSION:
                raise InvalidInputError(f"unknown preprocessor state version {state['version']}")
            columns = [_column_from_dict(column) for column in state["columns"]]
            preprocessor = cls(
                {column.name: column.role for column in columns},
                encoding=state["encoding"],
                scale=bool(state["scale"]),
                impute=bool(state["impute"]),
                max_categories=int(state["max_categories"]),
                text_model=str(state["text_model"]),
            )
        except (KeyError, TypeError, ValueError, pl.exceptions.PolarsError) as exc:
            raise InvalidInputError(f"not a fitted preprocessor state: {exc!r}") from None
        preprocessor._set_columns(columns)
        return preprocessor

    def _fit_column(self, series: pl.Series) -> _Column:
        name, role = series.name, self.roles[series.name]
        if role == "categorical":
            onehot = self.encoding == "onehot"
            return _Categorical.fit(series, self.max_categories, onehot=onehot, impute=self.impute)
        if role == "text":
            _strings(series)
            return _Text(name, self.text_model, embedding_dim(self.text_model))
        return _Scalar.fit(series, role, impute=self.impute, scale=self.scale)

    def _set_columns(self, columns: list[_Column]) -> None:
        self.columns_ = columns
        self._slices, start = [], 0
        for column in columns:
            self._slices.append((start, start + column.width))
            start += column.width

    def _fitted(self) -> list[_Column]:
        if self.columns_ is None:
            raise InvalidInputError("the preprocessor is not fitted: call fit(frame) first")
        return self.columns_

    def _check_frame(self, frame: pl.DataFrame) -> None:
        if not isinstance(frame, pl.DataFrame):
            raise InvalidInputError(f"expected a Polars DataFrame, not {type(frame).__name__}")
        present = set(frame.columns)
        missing = [name for name in self.roles if name not in present]
        if missing:
            raise InvalidInputError(f"missing feature column(s): {', '.join(missing)}")


@dataclass(frozen=True)
class _Scalar:
    """A numeric, boolean or datetime column: one feature, (value - center) / scale."""

    name: str
    role: ColumnRole
    fill: float | None
    center: float = 0.0
    scale: float = 1.0
    width = 1

    @classmethod
    def fit(cls, series: pl.Series, role: ColumnRole, *, impute: bool, scale: bool) -> _Scalar:
        values = _floats(series, role)
        fill = None
        if impute:
            fill = _mode01(values) if role == "boolean" else _median(values)
            values = np.where(np.isnan(values), fill, values)
        if not scale or role == "boolean":
            return cls(series.name, role, fill)
        finite = values[np.isfinite(values)]
        center = float(finite.mean()) if finite.size else 0.0
        spread = float(finite.std()) if finite.size else 0.0
        center = center if math.isfinite(center) else 0.0
        spread = spread if math.isfinite(spread) and spread > 0 else 1.0
        return cls(series.name, role, fill, center, spread)

    def names(self) -> list[str]:
        return [self.name]

    def write(self, series: pl.Series, out: np.ndarray) -> None:
        values = _floats(series, self.role)
        if self.fill is not None:
            values = np.where(np.isnan(values), self.fill, values)
        if self.center != 0.0 or self.scale != 1.0:
            values = (values - self.center) / self.scale
        out[:, 0] = values

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "fill": self.fill,
            "center": self.center,
            "scale": self.scale,
        }


@dataclass(frozen=True)
class _Categorical:
    """Kept values, most frequent first; `fill` is the ordinal code given to other values."""

    name: str
    categories: tuple[str, ...]
    onehot: bool
    fill: float | None
    role: ColumnRole = field(default="categorical", init=False)
    _codes: dict[str, int] = field(init=False, repr=False, compare=False)
    _enum: pl.Enum = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Lookup structures derived from the categories, built once for every transform.
        object.__setattr__(self, "_codes", {value: i for i, value in enumerate(self.categories)})
        object.__setattr__(self, "_enum", pl.Enum(self.categories))

    @classmethod
    def fit(
        cls, series: pl.Series, max_categories: int, *, onehot: bool, impute: bool
    ) -> _Categorical:
        counts = _strings(series).rename("value").drop_nulls().value_counts(name="count")
        top = counts.sort(["count", "value"], descending=[True, False]).head(max_categories)
        fill = 0.0 if impute and not onehot else None
        return cls(series.name, tuple(top.get_column("value").to_list()), onehot, fill)

    @property
    def width(self) -> int:
        return len(self.categories) if self.onehot else 1

    def names(self) -> list[str]:
        if self.onehot:
            return [f"{self.name}={value}" for value in self.categories]
        return [self.name]

    def codes(self, series: pl.Series) -> np.ndarray:
        """Each row's category index, -1 for a missing or unknown value."""
        strings = _strings(series)
        if not self.categories:
            return np.full(len(strings), -1, dtype=np.int64)
        if len(strings) <= _LOOKUP_ROWS:
            lookup = self._codes
            values = strings.to_list()
            return np.fromiter((lookup.get(v, -1) for v in values), np.int64, len(values))
        codes = strings.cast(self._enum, strict=False).to_physical().cast(pl.Int64)
        return codes.fill_null(-1).to_numpy()

    def write(self, series: pl.Series, out: np.ndarray) -> None:
        codes = self.codes(series)
        if self.onehot:
            out[...] = 0.0
            rows = np.flatnonzero(codes >= 0)
            out[rows, codes[rows]] = 1.0
            return
        values = codes.astype(np.float64)
        values[codes < 0] = np.nan if self.fill is None else self.fill
        out[:, 0] = values

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "role": self.role,
            "categories": list(self.categories),
            "onehot": self.onehot,
            "fill": self.fill,
        }


@dataclass(frozen=True)
class _Text:
    """A text column embedded by `model`; a missing text is embedded as the empty string."""

    name: str
    model: str
    dim: int
    role: ColumnRole = field(default="text", init=False)

    @property
    def width(self) -> int:
        return self.dim

    def names(self) -> list[str]:
        return [f"{self.name}[{i}]" for i in range(self.dim)]

    def write(self, series: pl.Series, out: np.ndarray) -> None:
        out[...] = embed_texts(_strings(series).fill_null("").to_list(), model=self.model)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "model": self.model, "dim": self.dim}


_Column = _Scalar | _Categorical | _Text


def _column_from_dict(state: Mapping[str, Any]) -> _Column:
    name, role = str(state["name"]), state["role"]
    fill = None if state.get("fill") is None else float(state["fill"])
    if role == "categorical":
        categories = tuple(str(value) for value in state["categories"])
        return _Categorical(name, categories, bool(state["onehot"]), fill)
    if role == "text":
        model, dim = str(state["model"]), int(state["dim"])
        if dim != embedding_dim(model):
            raise InvalidInputError(f"column {name!r}: {model} gives {embedding_dim(model)} dims")
        return _Text(name, model, dim)
    if role not in ROLES:
        raise InvalidInputError(f"column {name!r}: unknown role {role!r}")
    center, spread = float(state["center"]), float(state["scale"])
    return _Scalar(name, cast(ColumnRole, role), fill, center, spread)


def _strings(series: pl.Series) -> pl.Series:
    if series.dtype == pl.String:
        return series
    try:
        return series.cast(pl.String, strict=True)
    except pl.exceptions.PolarsError:
        raise _wrong_type(series, "categorical") from None


def _floats(series: pl.Series, role: ColumnRole) -> np.ndarray:
    """The column as float64, NaN where missing; datetimes as epoch seconds."""
    try:
        if role == "datetime":
            return _epoch_seconds(series)
        if role == "boolean" and series.dtype != pl.Boolean:
            series = series.cast(pl.Boolean, strict=True)
        if series.dtype != pl.Float64:
            series = series.cast(pl.Float64, strict=True)
    except pl.exceptions.PolarsError:
        raise _wrong_type(series, role) from None
    return series.to_numpy()


def _epoch_seconds(series: pl.Series) -> np.ndarray:
    dtype = series.dtype
    if dtype == pl.Null:
        return np.full(len(series), np.nan)
    if dtype == pl.String:
        series = series.str.to_datetime(time_unit="us", strict=True)
    elif not (dtype == pl.Date or isinstance(dtype, pl.Datetime)):
        raise _wrong_type(series, "datetime")
    stamps = series.to_numpy().astype("datetime64[us]")
    seconds = stamps.astype(np.int64) / 1e6
    seconds[np.isnat(stamps)] = np.nan
    return seconds


def _wrong_type(series: pl.Series, role: ColumnRole) -> InvalidInputError:
    return InvalidInputError(f"column {series.name!r}: cannot read {series.dtype} values as {role}")


def _median(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if finite.size else 0.0


def _mode01(values: np.ndarray) -> float:
    return 1.0 if np.count_nonzero(values == 1.0) > np.count_nonzero(values == 0.0) else 0.0
