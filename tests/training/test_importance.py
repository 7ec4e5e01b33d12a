from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from fermion.errors import InvalidInputError
from fermion.training.importance import FeatureImportance, permutation_importance


def synthetic(n: int = 3000) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    x = rng.normal(size=n)
    w = rng.normal(size=n)
    return pl.DataFrame(
        {
            "x": x,
            "w": w,
            "z": rng.normal(size=n),
            "colour": rng.choice(["red", "blue"], n),
            "y": 3 * x + 0.5 * w,
        }
    )


def neg_mse(frame: pl.DataFrame) -> float:
    predicted = 3 * frame["x"].to_numpy() + 0.5 * frame["w"].to_numpy()
    return -float(np.mean((predicted - frame["y"].to_numpy()) ** 2))


def test_informative_columns_rank_above_noise() -> None:
    result = permutation_importance(neg_mse, synthetic(), ["z", "colour", "w", "x"])
    assert [item.feature for item in result[:2]] == ["x", "w"]
    by_name = {item.feature: item for item in result}
    assert by_name["x"].mean > 10 * by_name["w"].mean > 0
    assert by_name["z"] == FeatureImportance("z", 0.0, 0.0)
    assert by_name["colour"].mean == 0.0
    assert by_name["x"].std > 0


def test_results_are_deterministic_and_independent_of_other_columns() -> None:
    frame = synthetic()
    first = permutation_importance(neg_mse, frame, ["x", "w"], seed=5)
    assert first == permutation_importance(neg_mse, frame, ["x", "w"], seed=5)
    alone = permutation_importance(neg_mse, frame, ["w"], seed=5)
    assert alone[0] == next(item for item in first if item.feature == "w")
    assert first != permutation_importance(neg_mse, frame, ["x", "w"], seed=6)


def test_frame_is_subsampled_and_scored_once_per_repeat_per_column() -> None:
    heights: list[int] = []

    def score(frame: pl.DataFrame) -> float:
        heights.append(frame.height)
        return neg_mse(frame)

    permutation_importance(score, synthetic(), ["x", "z"], n_repeats=4, max_rows=500)
    assert heights == [500] * (1 + 4 * 2)


@pytest.mark.parametrize(
    ("columns", "kwargs", "message"),
    [
        (["x", "missing"], {}, "missing"),
        ([], {}, "no columns"),
        (["x", "x"], {}, "distinct"),
        (["x"], {"n_repeats": 0}, "n_repeats"),
        (["x"], {"max_rows": 0}, "max_rows"),
        (["x"], {"seed": -1}, "seed"),
    ],
)
def test_bad_arguments_are_refused(
    columns: list[str], kwargs: dict[str, int], message: str
) -> None:
    with pytest.raises(InvalidInputError, match=message):
        permutation_importance(neg_mse, synthetic(100), columns, **kwargs)


def test_empty_frame_and_non_finite_scores_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="empty"):
        permutation_importance(neg_mse, synthetic().clear(), ["x"])
    with pytest.raises(InvalidInputError, match="finite"):
        permutation_importance(lambda frame: float("nan"), synthetic(100), ["x"])
