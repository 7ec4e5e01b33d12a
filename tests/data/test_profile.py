"""Schema inference and profiles, checked against numbers worked out by hand."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

from fermion.data import profile
from fermion.data.profile import describe_parquet, profile_parquet
from fermion.data.schema import infer_schema
from fermion.entities import LogicalType, Profile
from fermion.errors import InvalidInputError


@pytest.fixture
def small(tmp_path: Path) -> Path:
    path = tmp_path / "small.parquet"
    pl.DataFrame(
        {
            "n": [1, 2, 3, 4, None],
            "x": [0.5, float("nan"), 2.5, float("inf"), 1.0],
            "flag": [True, False, True, None, True],
            "when": [dt.date(2024, 1, day) for day in (3, 1, 2, 5, 4)],
            "name": ["a", "b", "c", "d", "e"],
        }
    ).write_parquet(path)
    return path


def test_schema_types_and_nullability(small: Path) -> None:
    schema = {column.name: column for column in infer_schema(small)}
    assert {name: column.type for name, column in schema.items()} == {
        "n": LogicalType.INTEGER,
        "x": LogicalType.FLOAT,
        "flag": LogicalType.BOOLEAN,
        "when": LogicalType.DATETIME,
        "name": LogicalType.STRING,
    }
    assert schema["n"].nullable and schema["x"].nullable and schema["flag"].nullable
    assert not schema["when"].nullable and not schema["name"].nullable
    assert schema["n"].dtype == "Int64" and schema["when"].dtype == "Date"


def test_categorical_rule(tmp_path: Path) -> None:
    path = tmp_path / "c.parquet"
    rows = 1000
    pl.DataFrame(
        {
            "city": [f"c{i % 50}" for i in range(rows)],  # 50 <= min(50, 5% of 1000)
            "code": [f"k{i % 51}" for i in range(rows)],  # one too many
            "key": [f"id{i}" for i in range(rows)],
            "tag": pl.Series([["x", "y"][i % 2] for i in range(rows)], dtype=pl.Categorical),
        }
    ).write_parquet(path)
    types = {column.name: column.type for column in infer_schema(path)}
    assert types == {
        "city": LogicalType.CATEGORICAL,
        "code": LogicalType.STRING,
        "key": LogicalType.STRING,
        "tag": LogicalType.CATEGORICAL,
    }


def test_profile_values(small: Path) -> None:
    profile = profile_parquet(small, infer_schema(small))
    assert (profile.num_rows, profile.num_columns) == (5, 5)
    n = profile.column("n")
    assert (n.count, n.missing, n.distinct) == (4, 1, 4)
    assert (n.min, n.max, n.mean) == (1.0, 4.0, 2.5)
    assert n.std == pytest.approx(1.2909944487)
    assert n.quantiles == pytest.approx(
        {"p05": 1.15, "p25": 1.75, "p50": 2.5, "p75": 3.25, "p95": 3.85}
    )
    assert n.top_values == [(1, 1), (2, 1), (3, 1), (4, 1)]
    assert n.histogram is not None
    assert n.histogram["edges"][0] == 1.0 and n.histogram["edges"][-1] == 4.0
    assert len(n.histogram["edges"]) == 21 and sum(n.histogram["counts"]) == 4
    assert n.histogram["counts"][0] == 1 and n.histogram["counts"][-1] == 1

    x = profile.column("x")  # NaN is missing, infinity is a value but not a number to show
    assert (x.count, x.missing, x.min, x.max, x.mean, x.std) == (4, 1, 0.5, None, None, None)
    assert x.histogram is not None and sum(x.histogram["counts"]) == 3
    assert x.histogram["edges"][-1] == 2.5

    flag = profile.column("flag")
    assert flag.top_values == [(True, 3), (False, 1)]
    assert (flag.min, flag.mean, flag.histogram) == (None, None, None)

    when = profile.column("when")
    assert (when.min, when.max) == ("2024-01-01", "2024-01-05")
    assert profile.column("name").max == "e"


def test_high_cardinality_path_agrees(small: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Value counts (few distinct values) and sorting (many) give the same statistics."""
    counted = profile_parquet(small, infer_schema(small))
    monkeypatch.setattr(profile, "LOW_CARDINALITY", 0)
    sorted_ = profile_parquet(small, infer_schema(small))
    for name in ("n", "x"):
        a, b = counted.column(name), sorted_.column(name)
        assert (a.distinct, a.min, a.max, a.mean) == (b.distinct, b.min, b.max, b.mean)
        assert a.quantiles == pytest.approx(b.quantiles)
        assert a.histogram == b.histogram
        assert b.top_values == []  # not listed for high-cardinality columns


def test_top_values_are_ordered_by_count_then_value(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    values = ["b", "a", "c", "a", "b", None, "d"] + [f"z{i:02d}" for i in range(12)]
    pl.DataFrame({"v": values}).write_parquet(path)
    top = profile_parquet(path, infer_schema(path)).column("v").top_values
    assert top[:4] == [("a", 2), ("b", 2), ("c", 1), ("d", 1)]
    assert len(top) == 10


def test_constant_column_histogram(tmp_path: Path) -> None:
    path = tmp_path / "k.parquet"
    pl.DataFrame({"k": [7, 7, 7]}).write_parquet(path)
    column = profile_parquet(path, infer_schema(path)).column("k")
    assert column.histogram is not None
    assert column.histogram["edges"][0] == 6.5 and column.histogram["edges"][-1] == 7.5
    assert column.histogram["counts"][10] == 3
    assert column.top_values == [(7, 3)]
    assert column.std == 0.0


def test_profile_is_json_and_round_trips(small: Path) -> None:
    schema, profile = describe_parquet(small)
    assert schema == infer_schema(small)
    assert profile == profile_parquet(small, schema)
    data = json.loads(json.dumps(profile.to_dict(), allow_nan=False))
    assert Profile.from_dict(data) == profile


def test_all_missing_and_nested_columns(tmp_path: Path) -> None:
    path = tmp_path / "odd.parquet"
    pl.DataFrame(
        {"empty": pl.Series([None, None], dtype=pl.Float64), "tags": [["a"], ["a"]]}
    ).write_parquet(path)
    schema, profile = describe_parquet(path)
    assert [column.type for column in schema] == [LogicalType.FLOAT, LogicalType.STRING]
    empty, tags = profile.columns
    assert (empty.count, empty.missing, empty.mean, empty.histogram) == (0, 2, None, None)
    assert (tags.count, tags.distinct, tags.top_values) == (2, 1, [])
    json.dumps(profile.to_dict(), allow_nan=False)


def test_unreadable_parquet(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    path.write_text("nope")
    with pytest.raises(InvalidInputError, match=r"bad\.parquet"):
        infer_schema(path)
    with pytest.raises(InvalidInputError, match="no such Parquet file"):
        describe_parquet(tmp_path / "missing.parquet")


@pytest.mark.parametrize("low_cardinality", [profile.LOW_CARDINALITY, 0])
def test_histogram_edges_skip_infinities(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, low_cardinality: int
) -> None:
    """Edges span the finite values; infinities count as values but fall in no bin."""
    monkeypatch.setattr(profile, "LOW_CARDINALITY", low_cardinality)
    inf = float("inf")
    path = tmp_path / "inf.parquet"
    pl.DataFrame(
        {
            "x": [-inf, 0.0, 1.0, 2.0, 4.0, inf, None],
            "only": [inf, -inf, inf, None, None, None, None],
            "i": [3, 1, 2, 2, 9, 5, 4],
        }
    ).write_parquet(path)
    _, described = describe_parquet(path)
    x = described.column("x")
    assert (x.count, x.missing, x.min, x.max) == (6, 1, None, None)
    assert x.histogram is not None
    assert (x.histogram["edges"][0], x.histogram["edges"][-1]) == (0.0, 4.0)
    assert x.histogram["counts"][0] == 1 and x.histogram["counts"][5] == 1
    assert x.histogram["counts"][10] == 1 and x.histogram["counts"][19] == 1
    assert sum(x.histogram["counts"]) == 4
    only = described.column("only")
    assert (only.count, only.histogram) == (3, None)
    i = described.column("i")
    assert (i.min, i.max, i.histogram is not None) == (1.0, 9.0, True)
    assert i.histogram is not None and i.histogram["counts"][-1] == 1
    assert sum(i.histogram["counts"]) == 7
    json.dumps(described.to_dict(), allow_nan=False)


@pytest.mark.parametrize(
    "values",
    [[-1e308, 0.0, 1e308], [5e-324, 1e-323], [-1.7e308, 1.7e308, 1.7e308]],
)
def test_extreme_ranges_give_json_safe_histograms(tmp_path: Path, values: list[float]) -> None:
    import math

    path = tmp_path / "extreme.parquet"
    pl.DataFrame({"x": values}).write_parquet(path)
    _, described = describe_parquet(path)
    histogram = described.column("x").histogram
    assert histogram is not None
    assert all(math.isfinite(edge) for edge in histogram["edges"])
    assert sum(histogram["counts"]) == len(values)
    json.dumps(described.to_dict(), allow_nan=False)
