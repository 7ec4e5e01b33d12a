"""Column encoders of the preprocessor: each turns one raw column into its feature columns.

Each is a frozen record of fitted state with `to_dict` (plain JSON) and a vectorised
`transform`; `encoder_from_dict` rebuilds one from its JSON.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

import numpy as np

from fermion.errors import InvalidInputError
from fermion.training.text import embed_texts, embedding_dim

if TYPE_CHECKING:
    import polars as pl  # imported where a Series is read: `write_values` never needs it

ColumnRole = Literal["numeric", "boolean", "categorical", "datetime", "text"]
ROLES: tuple[str, ...] = get_args(ColumnRole)
# Up to this many rows a dict lookup is faster than a cast to a Polars Enum (~40 us a call).
_LOOKUP_ROWS = 256


@dataclass(frozen=True)
class ScalarEncoder:
    """A numeric, boolean or datetime column: one feature, (value - center) / scale."""

    name: str
    role: ColumnRole
    fill: float | None
    center: float = 0.0
    scale: float = 1.0
    width = 1

    @classmethod
    def fit(
        cls, series: pl.Series, role: ColumnRole, *, impute: bool, scale: bool
    ) -> ScalarEncoder:
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
        self._write_floats(_floats(series, self.role), out)

    def write_values(self, values: Sequence[Any], out: np.ndarray) -> None:
        """`write` for a list of JSON values already of the column's type (None: missing);
        not for datetimes, which need Polars' parsing."""
        if self.role == "datetime":
            raise InvalidInputError(f"column {self.name!r}: datetimes are read from a frame")
        nan = math.nan
        self._write_floats(
            np.array([nan if v is None else float(v) for v in values], dtype=np.float64), out
        )

    def _write_floats(self, values: np.ndarray, out: np.ndarray) -> None:
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
class CategoricalEncoder:
    """Kept values, most frequent first; `fill` is the ordinal code given to other values."""

    name: str
    categories: tuple[str, ...]
    onehot: bool
    fill: float | None
    role: ColumnRole = field(default="categorical", init=False)
    _codes: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The lookup of every transform, built once; the Enum waits for a long column.
        codes = {value: i for i, value in enumerate(self.categories)}
        if len(codes) != len(self.categories):  # what building the Enum refuses
            raise ValueError(f"column {self.name!r}: the categories must be unique")
        object.__setattr__(self, "_codes", codes)

    @functools.cached_property
    def _enum(self) -> pl.Enum:
        """The categories as a Polars Enum, for columns too long for a dict lookup."""
        import polars as pl

        return pl.Enum(self.categories)

    @classmethod
    def fit(
        cls, series: pl.Series, max_categories: int, *, onehot: bool, impute: bool
    ) -> CategoricalEncoder:
        counts = as_strings(series).rename("value").drop_nulls().value_counts(name="count")
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
        strings = as_strings(series)
        if not self.categories:
            return np.full(len(strings), -1, dtype=np.int64)
        if len(strings) <= _LOOKUP_ROWS:
            lookup = self._codes
            values = strings.to_list()
            return np.fromiter((lookup.get(v, -1) for v in values), np.int64, len(values))
        import polars as pl

        codes = strings.cast(self._enum, strict=False).to_physical().cast(pl.Int64)
        return codes.fill_null(-1).to_numpy()

    def write(self, series: pl.Series, out: np.ndarray) -> None:
        self._write_codes(self.codes(series), out)

    def write_values(self, values: Sequence[Any], out: np.ndarray) -> None:
        """`write` for a list of JSON values (None: missing), read as Polars reads them."""
        lookup = self._codes
        codes = np.fromiter(
            (-1 if v is None else lookup.get(_as_text(v), -1) for v in values),
            np.int64,
            len(values),
        )
        self._write_codes(codes, out)

    def _write_codes(self, codes: np.ndarray, out: np.ndarray) -> None:
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
class TextEncoder:
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
        out[...] = embed_texts(as_strings(series).fill_null("").to_list(), model=self.model)

    def write_values(self, values: Sequence[Any], out: np.ndarray) -> None:
        texts = ["" if v is None else _as_text(v) for v in values]
        out[...] = embed_texts(texts, model=self.model)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "model": self.model, "dim": self.dim}


ColumnEncoder = ScalarEncoder | CategoricalEncoder | TextEncoder


def encoder_from_dict(state: Mapping[str, Any]) -> ColumnEncoder:
    name, role = str(state["name"]), state["role"]
    fill = None if state.get("fill") is None else float(state["fill"])
    if role == "categorical":
        categories = tuple(str(value) for value in state["categories"])
        return CategoricalEncoder(name, categories, bool(state["onehot"]), fill)
    if role == "text":
        model, dim = str(state["model"]), int(state["dim"])
        if dim != embedding_dim(model):
            raise InvalidInputError(f"column {name!r}: {model} gives {embedding_dim(model)} dims")
        return TextEncoder(name, model, dim)
    if role not in ROLES:
        raise InvalidInputError(f"column {name!r}: unknown role {role!r}")
    center, spread = float(state["center"]), float(state["scale"])
    return ScalarEncoder(name, cast(ColumnRole, role), fill, center, spread)


def _as_text(value: Any) -> str:
    """A JSON value as Polars casts it to text (booleans as true/false)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def as_strings(series: pl.Series) -> pl.Series:
    import polars as pl

    if series.dtype == pl.String:
        return series
    try:
        return series.cast(pl.String, strict=True)
    except pl.exceptions.PolarsError:
        raise _wrong_type(series, "categorical") from None


def _floats(series: pl.Series, role: ColumnRole) -> np.ndarray:
    """The column as float64, NaN where missing; datetimes as epoch seconds."""
    import polars as pl

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
    import polars as pl

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
