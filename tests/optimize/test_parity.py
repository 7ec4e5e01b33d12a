"""Parity of a variant's outputs with the original's: differences, labels, cosines."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fermion.errors import InvalidInputError
from fermion.optimize.parity import Parity, check_parity


def test_classifiers_are_compared_on_probabilities_and_labels() -> None:
    reference = np.array([[0.9, 0.1], [0.4, 0.6], [0.51, 0.49], [0.2, 0.8]])
    candidate = np.array([[0.89, 0.11], [0.4, 0.6], [0.49, 0.51], [0.2, 0.8]], dtype=np.float32)
    parity = check_parity(reference, candidate, "binary")
    assert parity.rows == 4
    assert parity.max_abs_diff == pytest.approx(0.02, abs=1e-6)
    assert parity.label_agreement == 0.75  # the third row's label flipped
    assert parity.mean_cosine is None and parity.min_cosine is None


def test_binary_probabilities_of_the_positive_class_are_accepted() -> None:
    two_columns = np.array([[0.7, 0.3], [0.1, 0.9]])
    parity = check_parity(two_columns, np.array([0.3, 0.9]), "binary")
    assert parity.max_abs_diff < 1e-15 and parity.label_agreement == 1.0


def test_regression_values_are_compared_flat() -> None:
    parity = check_parity(np.array([1.0, 2.0, 3.0]), np.array([[1.0], [2.5], [3.0]]), "regression")
    assert parity == Parity(rows=3, max_abs_diff=0.5)
    assert parity.label_agreement is None


def test_embeddings_are_compared_by_cosine_row_by_row() -> None:
    reference = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    candidate = np.array([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0]])
    parity = check_parity(reference, candidate, "embedding")
    assert parity.min_cosine == pytest.approx(math.sqrt(0.5))
    assert parity.mean_cosine == pytest.approx((math.sqrt(0.5) + 1.0 + 1.0) / 3)
    assert parity.max_abs_diff == 1.0
    assert check_parity(reference[:1], np.zeros((1, 2)), "embedding").min_cosine == 0.0


def test_a_nan_on_one_side_only_is_an_infinite_difference() -> None:
    values = np.array([1.0, np.nan])
    assert check_parity(values, values, "regression").max_abs_diff == 0.0
    assert check_parity(values, np.array([1.0, 2.0]), "regression").max_abs_diff == math.inf
    nan_proba = np.array([[np.nan, np.nan]])
    assert check_parity(np.array([[0.2, 0.8]]), nan_proba, "multiclass").label_agreement == 0.0


def test_no_rows_compare_equal() -> None:
    parity = check_parity(np.empty((0, 3)), np.empty((0, 3)), "multiclass")
    assert (parity.rows, parity.max_abs_diff, parity.label_agreement) == (0, 0.0, 1.0)


def test_passes_checks_only_the_bounds_that_apply() -> None:
    parity = Parity(rows=10, max_abs_diff=1e-3, label_agreement=0.99)
    assert parity.passes(max_abs_diff=1e-2, min_label_agreement=0.99)
    assert not parity.passes(max_abs_diff=1e-4)
    assert not parity.passes(min_label_agreement=1.0)
    assert parity.passes(min_cosine=0.999)  # not an embedding model: no cosine to bound
    embedding = Parity(rows=2, max_abs_diff=0.01, mean_cosine=0.9995, min_cosine=0.999)
    assert embedding.passes(min_cosine=0.999) and not embedding.passes(min_cosine=0.9999)
    assert not Parity(rows=1, max_abs_diff=math.inf).passes(max_abs_diff=1e9)


def test_to_dict_holds_every_measure() -> None:
    parity = Parity(rows=2, max_abs_diff=0.5, label_agreement=1.0)
    assert parity.to_dict() == {
        "rows": 2,
        "max_abs_diff": 0.5,
        "label_agreement": 1.0,
        "mean_cosine": None,
        "min_cosine": None,
    }


def test_mismatched_shapes_and_unknown_tasks_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="shape"):
        check_parity(np.zeros((3, 2)), np.zeros((2, 2)), "binary")
    with pytest.raises(InvalidInputError, match="unknown task 'ranking'"):
        check_parity(np.zeros(3), np.zeros(3), "ranking")
    with pytest.raises(InvalidInputError, match="must be a matrix"):
        check_parity(np.zeros(3), np.zeros(3), "embedding")
