from __future__ import annotations

import json
from datetime import datetime

import pytest

from fermion.data.diff import diff_versions
from fermion.entities import (
    ColumnProfile,
    ColumnSchema,
    DatasetVersion,
    LogicalType,
    Profile,
)

INT, FLOAT, STR = LogicalType.INTEGER, LogicalType.FLOAT, LogicalType.STRING


def version(
    number: int,
    rows: int,
    schema: list[ColumnSchema],
    profiles: list[ColumnProfile],
    content_hash: str = "a" * 64,
) -> DatasetVersion:
    return DatasetVersion(
        id=number,
        name="credit",
        version=number,
        content_hash=content_hash,
        num_rows=rows,
        num_columns=len(schema),
        size_bytes=1000,
        schema=tuple(schema),
        profile=Profile(rows, len(schema), tuple(profiles)),
        operation="ingest",
        parent_id=None,
        source={},
        created_at=datetime(2024, 1, number),
    )


def old_version() -> DatasetVersion:
    return version(
        1,
        100,
        [
            ColumnSchema("Age", INT, False, "Int64"),
            ColumnSchema("Income", INT, True, "Int64"),
            ColumnSchema("Home", STR, True, "String"),
            ColumnSchema("rownames", INT, False, "Int64"),
        ],
        [
            ColumnProfile("Age", INT, 100, 0, 50, 18, 70, mean=40.0, std=10.0),
            ColumnProfile("Income", INT, 100, 10, 80, 0, 99999999, mean=200.0, std=50.0),
            ColumnProfile("Home", STR, 100, 5, 4, "other", "rent"),
            ColumnProfile("rownames", INT, 100, 0, 100, 1, 100, mean=50.5, std=29.0),
        ],
    )


def new_version() -> DatasetVersion:
    return version(
        2,
        90,
        [
            ColumnSchema("Age", INT, False, "Int64"),
            ColumnSchema("Income", FLOAT, False, "Float64"),
            ColumnSchema("Home", STR, True, "String"),
            ColumnSchema("Job", STR, True, "String"),
        ],
        [
            ColumnProfile("Age", INT, 90, 0, 50, 18, 70, mean=40.0, std=10.0),
            ColumnProfile("Income", FLOAT, 90, 0, 75, 0.0, 900.0, mean=150.0, std=50.0),
            ColumnProfile("Home", STR, 90, 5, 4, "owner", "rent"),
            ColumnProfile("Job", STR, 90, 0, 3, "fixed", "partime"),
        ],
        content_hash="b" * 64,
    )


def test_schema_changes() -> None:
    diff = diff_versions(old_version(), new_version())
    assert (diff.old, diff.new) == ("credit:1", "credit:2")
    assert [c.name for c in diff.added] == ["Job"]
    assert [c.name for c in diff.removed] == ["rownames"]
    assert [c.to_dict() for c in diff.type_changes] == [
        {
            "column": "Income",
            "old_type": "integer",
            "new_type": "float",
            "old_dtype": "Int64",
            "new_dtype": "Float64",
        }
    ]
    assert [(c.column, c.old, c.new) for c in diff.nullability_changes] == [("Income", True, False)]


def test_row_count_and_statistic_shifts() -> None:
    diff = diff_versions(old_version(), new_version())
    assert (diff.old_rows, diff.new_rows, diff.row_change) == (100, 90, -10)
    assert diff.row_change_relative == pytest.approx(-0.1)
    shifts = {(s.column, s.statistic): s for s in diff.stat_shifts}
    assert set(shifts) == {
        ("Income", "missing"),
        ("Income", "distinct"),
        ("Income", "mean"),
        ("Income", "max"),
        ("Home", "min"),
    }
    mean = shifts["Income", "mean"]
    assert (mean.old, mean.new, mean.absolute) == (200.0, 150.0, -50.0)
    assert mean.relative == pytest.approx(-0.25)
    missing = shifts["Income", "missing"]
    assert (missing.absolute, missing.relative) == (-10.0, -1.0)
    text = shifts["Home", "min"]
    assert (text.old, text.new, text.absolute, text.relative) == ("other", "owner", None, None)


def test_relative_change_from_zero_is_none() -> None:
    old, new = old_version(), new_version()
    shift = next(s for s in diff_versions(new, old).stat_shifts if s.statistic == "missing")
    assert (shift.column, shift.old, shift.new, shift.absolute, shift.relative) == (
        "Income", 0, 10, 10.0, None,
    )  # fmt: skip
    assert diff_versions(old, new).has_changes


def test_identical_versions_have_no_changes() -> None:
    diff = diff_versions(old_version(), old_version())
    assert not diff.has_changes
    assert not diff.content_changed
    assert diff.to_dict()["stat_shifts"] == []


def test_same_statistics_but_other_bytes() -> None:
    old = old_version()
    moved = version(2, 100, list(old.schema), list(old.profile.columns), "c" * 64)
    diff = diff_versions(old, moved)
    assert not diff.has_changes
    assert diff.content_changed


def test_to_dict_is_json() -> None:
    data = json.loads(json.dumps(diff_versions(old_version(), new_version()).to_dict()))
    assert data["has_changes"] is True
    assert data["content_changed"] is True
    assert data["rows"] == {"old": 100, "new": 90, "absolute": -10, "relative": -0.1}
    assert data["added"] == [{"name": "Job", "type": "string", "nullable": True, "dtype": "String"}]
    assert data["removed"][0]["name"] == "rownames"
    assert {"column": "Income", "old": True, "new": False} in data["nullability_changes"]
    assert len(data["stat_shifts"]) == 5
