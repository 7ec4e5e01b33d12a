"""How closely a variant's outputs follow the original's on the same rows: `check_parity`.

Classifiers are compared on their probabilities and on the labels those pick (the argmax),
regressors on their values, embedding models on the cosine between each pair of vectors.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from fermion.errors import InvalidInputError

TASKS = ("binary", "multiclass", "regression", "embedding")


@dataclass(frozen=True)
class Parity:
    """The comparison of a candidate's outputs with the reference's on `rows` rows.

    `max_abs_diff` is the largest absolute difference of any value (inf where only one side
    is NaN); `label_agreement` the share of rows whose likeliest class is the same
    (classifiers); `mean_cosine` and `min_cosine` the cosine similarity of the two vectors of
    each row (embeddings). A measure that does not apply to the task is None."""

    rows: int
    max_abs_diff: float
    label_agreement: float | None = None
    mean_cosine: float | None = None
    min_cosine: float | None = None

    def passes(
        self,
        *,
        max_abs_diff: float | None = None,
        min_label_agreement: float | None = None,
        min_cosine: float | None = None,
    ) -> bool:
        """Whether every bound given holds; a bound on a measure the task lacks is ignored."""
        checks = (
            (self.max_abs_diff, max_abs_diff, -1.0),  # -1: at most the bound
            (self.label_agreement, min_label_agreement, 1.0),
            (self.min_cosine, min_cosine, 1.0),
        )
        return all(
            value is None or bound is None or sign * (value - bound) >= 0
            for value, bound, sign in checks
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_parity(reference: npt.ArrayLike, candidate: npt.ArrayLike, task: str) -> Parity:
    """Compare `candidate` with `reference`, row for row: class probabilities (n, n_classes)
    for "binary" and "multiclass" (binary may also be the (n,) probabilities of class 1),
    values (n,) for "regression", vectors (n, dimension) for "embedding"."""
    if task not in TASKS:
        raise InvalidInputError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    want, got = _shaped(reference, task), _shaped(candidate, task)
    if want.shape != got.shape:
        raise InvalidInputError(
            f"the candidate's outputs have shape {got.shape}; the reference's {want.shape}"
        )
    rows, diff = len(want), _max_abs_diff(want, got)
    if task in ("binary", "multiclass"):
        agreement = 1.0 if rows == 0 else float(np.mean(_labels(want) == _labels(got)))
        return Parity(rows, diff, label_agreement=agreement)
    if task == "embedding":
        cosines = _cosines(want, got)
        mean, least = (1.0, 1.0) if rows == 0 else (float(cosines.mean()), float(cosines.min()))
        return Parity(rows, diff, mean_cosine=mean, min_cosine=least)
    return Parity(rows, diff)


def _shaped(outputs: npt.ArrayLike, task: str) -> npt.NDArray[np.float64]:
    array = np.asarray(outputs, dtype=np.float64)
    if task == "regression":
        return array.reshape(-1)
    if task == "binary" and array.ndim == 1:
        array = np.column_stack([1.0 - array, array])
    if array.ndim != 2:
        raise InvalidInputError(f"{task} outputs must be a matrix, not of shape {array.shape}")
    return array


def _max_abs_diff(want: npt.NDArray[np.float64], got: npt.NDArray[np.float64]) -> float:
    if want.size == 0:
        return 0.0
    both_nan = np.isnan(want) & np.isnan(got)
    diff = np.where(both_nan, 0.0, np.abs(want - got))
    return float(np.max(np.where(np.isnan(diff), np.inf, diff)))


def _labels(proba: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
    labels: npt.NDArray[np.intp] = np.argmax(np.nan_to_num(proba, nan=-np.inf), axis=1)
    return labels


def _cosines(want: npt.NDArray[np.float64], got: npt.NDArray[np.float64]) -> npt.NDArray[Any]:
    """Each row's cosine similarity: 1 for two zero vectors, 0 for one zero vector."""
    norms = np.linalg.norm(want, axis=1) * np.linalg.norm(got, axis=1)
    dots = np.sum(want * got, axis=1)
    both_zero = (np.linalg.norm(want, axis=1) == 0) & (np.linalg.norm(got, axis=1) == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        cosines = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), 0.0)
    return np.where(both_zero, 1.0, np.nan_to_num(cosines, nan=0.0))
