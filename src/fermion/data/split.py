"""Deterministic train/valid/test assignment of a frame's rows: plain, stratified or grouped."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from fermion.data.spec_file import check_keys, check_number, fingerprint
from fermion.errors import InvalidInputError

PARTS = ("train", "valid", "test")

_Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class SplitSpec:
    """How to split: fractions summing to 1, at most one of `stratify` and `group`, a seed.

    `stratify` keeps each class's proportions in every part; `group` keeps all rows with the
    same value in one part (the fractions then hold for rows only approximately).
    """

    train: float = 0.7
    valid: float = 0.15
    test: float = 0.15
    stratify: str | None = None
    group: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for part in PARTS:
            value = check_number(getattr(self, part), f"the {part} fraction")
            if not 0 <= value <= 1:
                raise InvalidInputError(f"the {part} fraction must be in [0, 1], not {value:g}")
            object.__setattr__(self, part, value)
        total = self.train + self.valid + self.test
        if not math.isclose(total, 1.0, rel_tol=0, abs_tol=1e-6):
            raise InvalidInputError(
                f"train, valid and test fractions must sum to 1, not {total:g} "
                f"({self.train:g} + {self.valid:g} + {self.test:g})"
            )
        for name in ("stratify", "group"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or not value):
                raise InvalidInputError(f"{name} must be a column name, not {value!r}")
        if self.stratify is not None and self.group is not None:
            raise InvalidInputError("choose stratify or group, not both")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise InvalidInputError(f"seed must be a non-negative whole number, not {self.seed!r}")

    @property
    def fractions(self) -> tuple[float, float, float]:
        return (self.train, self.valid, self.test)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SplitSpec:
        if not isinstance(data, dict):
            raise InvalidInputError(f"a split spec must be a mapping, not {data!r}")
        check_keys(data, (*PARTS, "stratify", "group", "seed"), "split spec")
        return cls(**data)

    def fingerprint(self) -> str:
        """sha256 (hex) of the canonical JSON form."""
        return fingerprint(self.to_dict())


def _allocate(sizes: _Ints, fractions: tuple[float, float, float]) -> _Ints:
    """Rows per part for each class (a `(classes, 3)` array), by largest remainder, so each
    class's counts sum to its size; ties favour train, then valid."""
    exact = sizes[:, None] * np.asarray(fractions)[None, :]
    base = np.floor(exact + 1e-9).astype(np.int64)  # 1e-9: 10 * 0.7 must floor to 7, not 6
    base = np.minimum(base, sizes[:, None])
    short = sizes - base.sum(axis=1)
    order = np.argsort(-(exact - base), axis=1, kind="stable")
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.arange(3)[None, :].repeat(len(sizes), axis=0), axis=1)
    result: _Ints = base + (rank < short[:, None])
    return result


def _codes(df: pl.DataFrame, column: str) -> _Ints:
    """Dense codes 0..k-1 of a column's values (null is a value of its own), in value order."""
    series = df.get_column(column)
    if isinstance(series.dtype, pl.Categorical | pl.Enum):
        series = series.cast(pl.String)  # physical codes depend on the process, text does not
    try:
        ranks = series.rank("dense").fill_null(0)
    except pl.exceptions.PolarsError:
        raise InvalidInputError(
            f"cannot split on column {column!r} of type {series.dtype}"
        ) from None
    codes: _Ints = ranks.to_numpy().astype(np.int64)
    return codes - codes.min() if len(codes) else codes


def _by_rows(codes: _Ints, spec: SplitSpec, rng: np.random.Generator) -> _Ints:
    """Shuffle within each class, then cut every class by the fractions."""
    n = len(codes)
    sizes = np.bincount(codes).astype(np.int64)
    counts = _allocate(sizes, spec.fractions)
    order = np.argsort(codes + rng.random(n))  # class first, random within a class
    sorted_codes = codes[order]
    position = np.arange(n) - (np.cumsum(sizes) - sizes)[sorted_codes]
    first_cut = counts[:, 0][sorted_codes]
    second_cut = first_cut + counts[:, 1][sorted_codes]
    parts = np.empty(n, dtype=np.int64)
    parts[order] = (position >= first_cut).astype(np.int64) + (position >= second_cut)
    return parts


def _by_groups(codes: _Ints, spec: SplitSpec, rng: np.random.Generator) -> _Ints:
    """Shuffle the groups, then give each the part its middle row falls in by row fraction."""
    sizes = np.bincount(codes).astype(np.int64)
    shuffled = rng.permutation(len(sizes))
    ends = np.cumsum(sizes[shuffled])
    middles = (ends - sizes[shuffled] / 2) / len(codes)
    group_part = np.empty(len(sizes), dtype=np.int64)
    group_part[shuffled] = np.searchsorted([spec.train, spec.train + spec.valid], middles, "right")
    parts: _Ints = group_part[codes]
    return parts


def assign_parts(df: pl.DataFrame, spec: SplitSpec) -> pl.Series:
    """The part ("train", "valid" or "test") of each row of `df`, as a String Series "part".

    The same rows in the same order with the same spec give the same parts. Stratified, each
    class is cut separately (rounding per class, so tiny classes lean to train); grouped,
    whole groups go to one part. A part with a positive fraction that would get no rows raises.
    """
    for name in (spec.stratify, spec.group):
        if name is not None and name not in df.columns:
            raise InvalidInputError(f"cannot split on {name!r}: no such column")
    if df.height == 0:
        raise InvalidInputError("cannot split an empty frame")
    rng = np.random.default_rng(spec.seed)
    if spec.group is not None:
        parts = _by_groups(_codes(df, spec.group), spec, rng)
        unit = f"{df.get_column(spec.group).n_unique()} groups of {spec.group!r}"
    elif spec.stratify is not None:
        parts = _by_rows(_codes(df, spec.stratify), spec, rng)
        unit = f"{df.height} rows stratified by {spec.stratify!r}"
    else:
        parts = _by_rows(np.zeros(df.height, dtype=np.int64), spec, rng)
        unit = f"{df.height} rows"
    counts = np.bincount(parts, minlength=3)
    for index, part in enumerate(PARTS):
        if spec.fractions[index] > 0 and counts[index] == 0:
            raise InvalidInputError(
                f"the {part} part would be empty: {unit} cannot be split "
                f"{spec.train:g}/{spec.valid:g}/{spec.test:g}; use more data or a {part} "
                "fraction of 0"
            )
    labels = pl.Series("part", parts, dtype=pl.Int64)
    return labels.replace_strict([0, 1, 2], list(PARTS), return_dtype=pl.String)
