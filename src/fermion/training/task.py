"""What is being predicted: task detection and target encoding."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from fermion.errors import InvalidInputError
from fermion.training.metrics import Task

# An integer target with at most this many distinct values is read as classes.
MAX_INTEGER_CLASSES = 20


def check_target(frame: pl.DataFrame, target: str) -> pl.Series:
    """The target column, refusing a missing column and missing values."""
    if target not in frame.columns:
        raise InvalidInputError(
            f"unknown target column {target!r}; the columns are: {', '.join(frame.columns)}"
        )
    column = frame.get_column(target)
    missing = column.null_count()
    if column.dtype.is_float():
        missing += int(column.is_nan().sum())
    if missing:
        raise InvalidInputError(
            f"the target column {target!r} has {missing:,} missing "
            f"value{'s' if missing != 1 else ''} (null or NaN); "
            "drop or fill them first, e.g. a drop_missing step in a cleaning recipe"
        )
    return column


def detect_task(column: pl.Series) -> Task:
    """Strings, categories and booleans are classes; integers with few distinct values are
    classes; other numbers are a regression target."""
    dtype = column.dtype
    distinct = column.n_unique()
    if dtype == pl.Boolean or dtype == pl.String or dtype.is_(pl.Categorical()):
        return _classification(column.name, distinct)
    if dtype.is_integer() and distinct <= MAX_INTEGER_CLASSES:
        return _classification(column.name, distinct)
    if dtype.is_numeric():
        return "regression"
    raise InvalidInputError(f"the target column {column.name!r} has unsupported type {dtype}")


def _classification(name: str, distinct: int) -> Task:
    if distinct < 2:
        raise InvalidInputError(
            f"the target column {name!r} has a single class; a classifier needs at least two"
        )
    return "binary" if distinct == 2 else "multiclass"


def check_task(column: pl.Series, task: Task) -> Task:
    """A task the user asked for, checked against the target."""
    if task == "regression":
        if not column.dtype.is_numeric():
            raise InvalidInputError(
                f"regression needs a numeric target; {column.name!r} is {column.dtype}"
            )
        return task
    detected = _classification(column.name, column.n_unique())
    if task == "binary" and detected != "binary":
        raise InvalidInputError(
            f"binary classification needs two classes; {column.name!r} has {column.n_unique()}"
        )
    return task


@dataclass(frozen=True)
class TargetEncoding:
    """Classes in code order (sorted), or none for regression."""

    task: Task
    classes: tuple[Any, ...] = ()

    @classmethod
    def fit(cls, column: pl.Series, task: Task) -> TargetEncoding:
        if task == "regression":
            return cls(task)
        return cls(task, tuple(column.unique().sort().to_list()))

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def labels(self) -> list[str]:
        return [str(c) for c in self.classes]

    def encode(self, column: pl.Series) -> npt.NDArray[Any]:
        """Class codes (int64) or float64 values; an unseen class raises."""
        if self.task == "regression":
            return column.cast(pl.Float64).to_numpy()
        lookup = {value: code for code, value in enumerate(self.classes)}
        values = column.to_list()
        unknown = sorted({str(v) for v in values if v not in lookup})
        if unknown:
            raise InvalidInputError(
                f"the target column {column.name!r} holds classes the model was not trained "
                f"on: {', '.join(unknown[:5])}"
            )
        return np.fromiter((lookup[v] for v in values), dtype=np.int64, count=len(values))


def feature_columns(
    columns: Sequence[str], target: str, features: Sequence[str] | None, exclude: Sequence[str]
) -> list[str]:
    if features:
        unknown = [c for c in features if c not in columns]
        if unknown:
            raise InvalidInputError(f"unknown feature column(s): {', '.join(unknown)}")
        chosen = [c for c in features if c != target]
    else:
        unknown = [c for c in exclude if c not in columns]
        if unknown:
            raise InvalidInputError(f"cannot exclude unknown column(s): {', '.join(unknown)}")
        chosen = [c for c in columns if c != target and c not in exclude]
    if not chosen:
        raise InvalidInputError("no feature columns left to train on")
    return chosen
