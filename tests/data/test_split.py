from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from fermion.data.split import SplitSpec, assign_parts
from fermion.errors import InvalidInputError


def frame(n: int = 1000) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    return pl.DataFrame(
        {
            "id": np.arange(n),
            "Status": rng.choice(["good", "bad"], n, p=[0.72, 0.28]),
            "customer": rng.integers(0, max(n // 10, 1), n),
        }
    )


def counts(parts: pl.Series) -> dict[str, int]:
    return {part: int(n) for part, n in parts.value_counts().iter_rows()}


def test_plain_split_has_exact_counts_and_is_aligned() -> None:
    df = frame()
    parts = assign_parts(df, SplitSpec(0.7, 0.15, 0.15, seed=7))
    assert parts.name == "part"
    assert parts.dtype == pl.String
    assert len(parts) == df.height
    assert counts(parts) == {"train": 700, "valid": 150, "test": 150}


def test_same_seed_same_parts_other_seed_other_parts() -> None:
    df = frame()
    spec = SplitSpec(seed=3)
    assert assign_parts(df, spec).to_list() == assign_parts(df, SplitSpec(seed=3)).to_list()
    assert assign_parts(df, spec).to_list() != assign_parts(df, SplitSpec(seed=4)).to_list()


def test_counts_use_largest_remainders() -> None:
    parts = assign_parts(pl.DataFrame({"x": range(10)}), SplitSpec(0.7, 0.2, 0.1))
    assert counts(parts) == {"train": 7, "valid": 2, "test": 1}
    parts = assign_parts(pl.DataFrame({"x": range(11)}), SplitSpec(0.5, 0.25, 0.25))
    assert counts(parts) == {"train": 5, "valid": 3, "test": 3}


def test_stratified_split_keeps_each_class_proportion() -> None:
    df = frame()
    parts = assign_parts(df, SplitSpec(0.6, 0.2, 0.2, stratify="Status", seed=1))
    table = pl.DataFrame({"Status": df["Status"], "part": parts})
    for status, size in df["Status"].value_counts().iter_rows():
        per_part = counts(table.filter(pl.col("Status") == status)["part"])
        for part, fraction in (("train", 0.6), ("valid", 0.2), ("test", 0.2)):
            assert abs(per_part[part] - size * fraction) <= 1, (status, part)


def test_stratified_split_of_known_classes() -> None:
    df = pl.DataFrame({"y": ["a"] * 10 + ["b"] * 20 + [None] * 10})
    parts = assign_parts(df, SplitSpec(0.5, 0.3, 0.2, stratify="y", seed=9))
    table = pl.DataFrame({"y": df["y"], "part": parts}).group_by("y", "part").len()
    got = {(y, part): n for y, part, n in table.iter_rows()}
    assert got == {
        ("a", "train"): 5, ("a", "valid"): 3, ("a", "test"): 2,
        ("b", "train"): 10, ("b", "valid"): 6, ("b", "test"): 4,
        (None, "train"): 5, (None, "valid"): 3, (None, "test"): 2,
    }  # fmt: skip


def test_stratified_is_independent_of_categorical_encoding() -> None:
    df = frame(200)
    as_category = df.with_columns(pl.col("Status").cast(pl.Categorical))
    spec = SplitSpec(stratify="Status", seed=5)
    assert assign_parts(df, spec).to_list() == assign_parts(as_category, spec).to_list()


def test_grouped_split_keeps_groups_whole() -> None:
    df = frame(5000)
    parts = assign_parts(df, SplitSpec(0.7, 0.15, 0.15, group="customer", seed=2))
    table = pl.DataFrame({"customer": df["customer"], "part": parts})
    assert table.group_by("customer").agg(pl.col("part").n_unique()).get_column("part").max() == 1
    share = {part: n / df.height for part, n in counts(parts).items()}
    assert share["train"] == pytest.approx(0.7, abs=0.05)
    assert share["valid"] == pytest.approx(0.15, abs=0.05)
    assert share["test"] == pytest.approx(0.15, abs=0.05)


def test_zero_fraction_part_stays_empty() -> None:
    parts = assign_parts(frame(100), SplitSpec(0.8, 0.0, 0.2))
    assert counts(parts) == {"train": 80, "test": 20}


def test_large_frame_is_fast_enough() -> None:
    n = 1_000_000
    df = pl.DataFrame({"y": np.random.default_rng(0).integers(0, 5, n)})
    parts = assign_parts(df, SplitSpec(stratify="y"))
    assert counts(parts)["train"] == pytest.approx(700_000, abs=5)


def test_spec_dict_and_fingerprint() -> None:
    spec = SplitSpec(0.7, 0.15, 0.15, stratify="Status", seed=7)
    assert spec.to_dict() == {
        "train": 0.7, "valid": 0.15, "test": 0.15, "stratify": "Status", "group": None, "seed": 7,
    }  # fmt: skip
    assert SplitSpec.from_dict(spec.to_dict()) == spec
    assert SplitSpec(0.7, 0.15, 0.15, stratify="Status", seed=7).fingerprint() == spec.fingerprint()
    assert (
        SplitSpec(train=1, valid=0, test=0).fingerprint() == SplitSpec(1.0, 0.0, 0.0).fingerprint()
    )
    assert SplitSpec(0.7, 0.15, 0.15, stratify="Status", seed=8).fingerprint() != spec.fingerprint()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"train": 0.7, "valid": 0.2, "test": 0.2}, r"must sum to 1, not 1.1"),
        ({"train": 1.2, "valid": -0.2, "test": 0.0}, r"train fraction must be in \[0, 1\]"),
        ({"train": "0.7"}, r"the train fraction must be a number"),
        ({"stratify": "Status", "group": "customer"}, r"choose stratify or group, not both"),
        ({"seed": -1}, r"seed must be a non-negative whole number"),
        ({"stratify": ""}, r"stratify must be a column name"),
    ],
)
def test_bad_specs(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        SplitSpec(**kwargs)  # type: ignore[arg-type]


def test_from_dict_rejects_unknown_keys() -> None:
    with pytest.raises(InvalidInputError, match=r"split spec: unknown argument 'tset'"):
        SplitSpec.from_dict({"tset": 0.1})


@pytest.mark.parametrize(
    ("df", "spec", "message"),
    [
        (frame(), SplitSpec(stratify="Sttus"), r"cannot split on 'Sttus': no such column"),
        (frame(), SplitSpec(group="cust"), r"cannot split on 'cust': no such column"),
        (frame(0), SplitSpec(), r"cannot split an empty frame"),
        (frame(3), SplitSpec(), r"the test part would be empty: 3 rows cannot be split 0.7/"),
        (
            pl.DataFrame({"g": [1, 1, 2, 2]}),
            SplitSpec(0.5, 0.25, 0.25, group="g"),
            r"part would be empty: 2 groups of 'g'",
        ),
        (
            pl.DataFrame({"y": ["a", "b", "c", "d"]}),
            SplitSpec(stratify="y"),
            r"valid part would be empty: 4 rows stratified by 'y'",
        ),
    ],
)
def test_impossible_splits(df: pl.DataFrame, spec: SplitSpec, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        assign_parts(df, spec)
