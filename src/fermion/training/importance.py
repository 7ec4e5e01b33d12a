"""Permutation importance on raw input columns, for any model that scores a frame.

The model's preprocessing is part of the model, so shuffling a raw column measures the whole
pipeline's reliance on it, whatever encoding it receives.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from fermion.errors import InvalidInputError


@dataclass(frozen=True)
class FeatureImportance:
    """Mean and standard deviation over repeats of the score lost when `feature` is shuffled."""

    feature: str
    mean: float
    std: float


def permutation_importance(
    score: Callable[[pl.DataFrame], float],
    frame: pl.DataFrame,
    columns: Sequence[str],
    *,
    n_repeats: int = 3,
    seed: int = 0,
    max_rows: int = 2000,
) -> list[FeatureImportance]:
    """Importance of each column: baseline score minus the score with that column shuffled.

    `score(frame)` must return a value where greater is better. Frames with more than
    `max_rows` rows are subsampled (seeded) first. Each column's shuffles depend only on
    `seed` and its name, so adding or reordering columns does not change its result.
    Returned most important first.
    """
    names = list(columns)
    _check_arguments(frame, names, n_repeats, seed, max_rows)
    rows = frame.height
    if rows > max_rows:
        picked = np.sort(np.random.default_rng(seed).choice(rows, max_rows, replace=False))
        frame = frame[picked]
        rows = max_rows
    baseline = _checked_score(score, frame)
    results = []
    for name in names:
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        values = frame.get_column(name)
        drops = []
        for _ in range(n_repeats):
            shuffled = values.gather(rng.permutation(rows))
            drops.append(baseline - _checked_score(score, frame.with_columns(shuffled)))
        results.append(
            FeatureImportance(feature=name, mean=float(np.mean(drops)), std=float(np.std(drops)))
        )
    return sorted(results, key=lambda item: -item.mean)


def _check_arguments(
    frame: pl.DataFrame, names: list[str], n_repeats: int, seed: int, max_rows: int
) -> None:
    if frame.height == 0:
        raise InvalidInputError("cannot compute permutation importance on an empty frame")
    if not names:
        raise InvalidInputError("no columns given for permutation importance")
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise InvalidInputError(f"columns not in the frame: {', '.join(missing)}")
    if len(set(names)) != len(names):
        raise InvalidInputError("columns for permutation importance must be distinct")
    for label, value, least in (
        ("n_repeats", n_repeats, 1),
        ("seed", seed, 0),
        ("max_rows", max_rows, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise InvalidInputError(f"{label} must be a whole number >= {least}, not {value!r}")


def _checked_score(score: Callable[[pl.DataFrame], float], frame: pl.DataFrame) -> float:
    value = float(score(frame))
    if not math.isfinite(value):
        raise InvalidInputError(f"the score function returned {value}, not a finite number")
    return value
