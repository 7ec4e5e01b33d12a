from __future__ import annotations

import json
from datetime import date, datetime
from pathlib import Path

import polars as pl
import pytest

from fermion.data.validate import (
    Allowed,
    ColumnExists,
    ColumnType,
    NotNull,
    Range,
    Regex,
    RowCount,
    RuleSet,
    Unique,
    ValidationReport,
    validate_frame,
)
from fermion.errors import InvalidInputError

RULES = """
rules:
  - {column: Status, exists: true}
  - {column: Status, allowed: [good, bad]}
  - {column: Age, type: integer}
  - {column: Age, range: {min: 18, max: 100}}
  - {column: Income, not_null: true}
  - {column: rownames, unique: true}
  - {column: Home, regex: "^[a-z]+$"}
  - {rows: {min: 3, max: 1000000}}
"""


def credit() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "rownames": [1, 2, 2, 3, 4],
            "Status": ["good", "bad", "ugly", None, "good"],
            "Age": [17, 30, 101, None, 50],
            "Income": [1.0, None, 2.0, None, 3.0],
            "Home": ["owner", "Rent", None, "x1", "rent"],
            "When": [date(2020, 1, d) for d in range(1, 6)],
        }
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def report_for(df: pl.DataFrame, *rules: object, examples: int = 5) -> ValidationReport:
    return validate_frame(df.lazy(), RuleSet(list(rules)), examples=examples)  # type: ignore[arg-type]


def test_each_rule_counts_its_failures(tmp_path: Path) -> None:
    report = validate_frame(credit().lazy(), RuleSet.from_yaml(write(tmp_path, RULES)))
    assert not report.passed
    assert report.num_rows == 5
    outcome = [(r.rule, r.passed, r.failed) for r in report.results]
    assert outcome == [
        ("column 'Status' exists", True, None),
        ("'Status' is one of ['good', 'bad']", False, 1),
        ("'Age' is integer", True, None),
        ("'Age' in [18, 100]", False, 2),
        ("'Income' has no nulls", False, 2),
        ("'rownames' is unique", False, 2),
        ("'Home' matches '^[a-z]+$'", False, 2),
        ("row count in [3, 1000000]", True, None),
    ]


def test_examples_are_numbered_rows_with_their_values() -> None:
    report = report_for(credit(), Range("Age", min=18, max=100), examples=1)
    (result,) = report.results
    assert result.message == "2 of 5 rows fail"
    assert result.examples == (
        {
            "row": 1,
            "values": {
                "rownames": 1,
                "Status": "good",
                "Age": 17,
                "Income": 1.0,
                "Home": "owner",
                "When": "2020-01-01",
            },
        },
    )
    both = report_for(credit(), Unique("rownames")).results[0]
    assert [example["row"] for example in both.examples] == [2, 3]
    assert report_for(credit(), NotNull("Income"), examples=0).results[0].examples == ()


def test_report_to_dict_is_json() -> None:
    report = report_for(credit(), Regex("Home", "^[a-z]+$"), RowCount(min=10))
    data = json.loads(json.dumps(report.to_dict()))
    assert data["passed"] is False
    assert data["results"][0]["examples"][0]["row"] == 2
    assert data["results"][0]["spec"] == {"column": "Home", "regex": "^[a-z]+$"}
    assert data["results"][1] == {
        "rule": "row count in [10, inf]",
        "spec": {"rows": {"min": 10, "max": None}},
        "passed": False,
        "failed": None,
        "examples": [],
        "message": "5 rows, fewer than 10",
    }


def test_passing_rules() -> None:
    report = report_for(
        credit(),
        ColumnExists("When"),
        ColumnType("When", "datetime"),
        ColumnType("Home", "string"),
        ColumnType("Income", "float"),
        Allowed("Age", [17, 30, 101, 50.0]),
        Range("Income", min=1),
        Unique("Home"),
        RowCount(max=5),
    )
    assert report.passed, [r.message for r in report.results if not r.passed]
    assert all(r.failed in (None, 0) for r in report.results)


def test_type_follows_the_recorded_schema_for_text() -> None:
    df = pl.DataFrame({"Status": ["good", "bad"] * 50, "key": [f"k{i}" for i in range(100)]})
    report = report_for(
        df,
        ColumnType("Status", "categorical"),
        ColumnType("key", "string"),
        ColumnType("key", "categorical"),
    )
    assert [(r.passed, r.message) for r in report.results] == [
        (True, None),
        (True, None),
        (False, "'key' is string, not categorical"),
    ]


def test_allowed_on_categorical_and_boolean_columns() -> None:
    df = pl.DataFrame(
        {"c": pl.Series(["a", "b", "z"], dtype=pl.Categorical), "b": [True, False, None]}
    )
    report = report_for(df, Allowed("c", ["a", "b"]), Allowed("b", [True]))
    assert [r.failed for r in report.results] == [1, 1]


def test_allowed_compares_numbers_as_numbers() -> None:
    df = pl.DataFrame({"a": [1, 2, 3]})
    assert report_for(df, Allowed("a", [1, 2.0, None])).results[0].failed == 1
    text = pl.DataFrame({"s": ["1", "x"]})
    assert report_for(text, Allowed("s", [1])).results[0].failed == 1


@pytest.mark.parametrize(
    ("column", "values", "message"),
    [
        ("a", [1, 2, "3"], "allowed value '3' can never match integer column 'a'"),
        ("a", [1, True], "allowed value True can never match integer column 'a' (quote it if"),
        ("b", [True, "no"], "allowed value 'no' can never match boolean column 'b'"),
        ("s", ["yes", False], "allowed value False can never match string column 's' (quote"),
    ],
)
def test_allowed_values_the_column_cannot_hold_fail_the_rule(
    column: str, values: list[object], message: str
) -> None:
    df = pl.DataFrame({"a": [1, 2], "b": [True, False], "s": ["yes", "no"]})
    (result,) = report_for(df, Allowed(column, values)).results
    assert (result.passed, result.failed) == (False, None)
    assert result.message is not None
    assert result.message.startswith(message)


def test_rules_on_missing_or_wrong_columns_fail_without_raising() -> None:
    report = report_for(
        credit().with_columns(Tags=pl.lit(["x"])),
        ColumnExists("Job"),
        NotNull("Job"),
        ColumnType("Age", "float"),
        Range("Home", min=1),
        Allowed("When", ["2020-01-01"]),
        Regex("Tags", "x"),
        Allowed("Tags", ["x"]),
    )
    assert not report.passed
    assert [(r.passed, r.failed, r.message) for r in report.results] == [
        (False, None, "column 'Job' does not exist"),
        (False, None, "column 'Job' does not exist"),
        (False, None, "'Age' is integer, not float"),
        (False, None, "range needs a numeric column; 'Home' is string"),
        (False, None, "allowed cannot check datetime column 'When'"),
        (False, None, "regex cannot check nested List(String) column 'Tags'"),
        (False, None, "allowed cannot check nested List(String) column 'Tags'"),
    ]


def test_nested_columns_are_not_text() -> None:
    df = pl.DataFrame({"s": [{"a": 1}], "l": [["x"]]})
    report = report_for(
        df, ColumnType("s", "string"), Regex("s", "x"), Allowed("l", ["x"]), Range("l", max=1)
    )
    assert [r.message for r in report.results] == [
        "'s' is Struct({'a': Int64}), not string",
        "regex cannot check nested Struct({'a': Int64}) column 's'",
        "allowed cannot check nested List(String) column 'l'",
        "range needs a numeric column; 'l' is nested List(String)",
    ]


def test_range_on_datetime_columns_takes_iso_dates(tmp_path: Path) -> None:
    text = """
rules:
  - {column: When, range: {min: 2020-01-02, max: "2020-01-04"}}
  - {column: At, range: {min: "2020-01-01T12:00", max: "2020-01-01 13:00:00+01:00"}}
  - {column: Zoned, range: {max: "2020-01-01T11:00:00Z"}}
"""
    at = [datetime(2020, 1, 1, h) for h in (11, 12, 13)]
    df = (
        credit()
        .head(3)
        .with_columns(At=pl.Series(at), Zoned=pl.Series(at).dt.replace_time_zone("Europe/Paris"))
    )
    rules = RuleSet.from_yaml(write(tmp_path, text))
    assert rules.to_dict()["rules"][1]["range"] == {
        "min": "2020-01-01T12:00:00",
        "max": "2020-01-01T13:00:00+01:00",
    }
    assert RuleSet.from_dict(json.loads(json.dumps(rules.to_dict()))) == rules
    report = validate_frame(df.lazy(), rules)
    assert [(r.rule, r.failed) for r in report.results] == [
        ("'When' in [2020-01-02, 2020-01-04]", 1),  # 2020-01-01
        ("'At' in [2020-01-01T12:00:00, 2020-01-01T13:00:00+01:00]", 2),  # 11:00 and 13:00
        ("'Zoned' in [-inf, 2020-01-01T11:00:00+00:00]", 1),  # 13:00 Paris is 12:00 UTC
    ]
    wrong = report_for(credit(), Range("Age", min="2020-01-01"), Range("When", min=1))
    assert [r.message for r in wrong.results] == [
        "range with dates needs a datetime column; 'Age' is integer",
        "range needs a numeric column; 'When' is datetime; give dates as bounds",
    ]


def test_row_count_bounds() -> None:
    assert report_for(credit(), RowCount(min=6)).results[0].message == "5 rows, fewer than 6"
    assert report_for(credit(), RowCount(max=4)).results[0].message == "5 rows, more than 4"
    assert report_for(credit(), RowCount(min=5, max=5)).passed


def test_several_checks_in_one_mapping_become_several_rules() -> None:
    rules = RuleSet.from_dict([{"column": "Age", "type": "integer", "not_null": True}])
    assert rules.rules == (ColumnType("Age", "integer"), NotNull("Age"))


def test_fingerprint_ignores_key_order_and_number_format(tmp_path: Path) -> None:
    one = RuleSet.from_yaml(
        write(tmp_path, "rules:\n  - {column: Age, range: {min: 18, max: 100}}")
    )
    two = RuleSet.from_dict({"rules": [{"range": {"max": 100.0, "min": 18}, "column": "Age"}]})
    assert one == two
    assert one.fingerprint() == two.fingerprint()
    assert RuleSet.from_dict(json.loads(json.dumps(one.to_dict()))) == one
    assert RuleSet([Range("Age", min=19, max=100)]).fingerprint() != one.fingerprint()


def test_missing_file_and_malformed_yaml(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"rules file .*absent\.yaml' does not exist"):
        RuleSet.from_yaml(tmp_path / "absent.yaml")
    path = write(tmp_path, "rules:\n  - {column: Age, range: {min: 18\n")
    with pytest.raises(InvalidInputError, match=r"rules\.yaml' is not valid YAML at line 3"):
        RuleSet.from_yaml(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rules:\n  - {column: Age, rnage: {min: 1}}", r"rule 1: unknown argument 'rnage'"),
        ("checks: []", r"unknown key 'checks'; expected 'rules'"),
        ("rules: {column: Age}", r"expected a list of rules"),
        ("rules: [Age]", r"rule 1: a rule must be a mapping"),
        ("rules: [{not_null: true}]", r"a rule needs a column name"),
        ("rules: [{column: Age}]", r"rule on 'Age' checks nothing"),
        ("rules: [{column: Age, not_null: false}]", r"not_null must be true"),
        ("rules: [{column: Age, type: int}]", r"unknown type 'int'; types are integer"),
        ("rules: [{column: Age, range: {}}]", r"range needs min, max or both"),
        ("rules: [{column: Age, range: {min: 5, max: 1}}]", r"range min 5 is above max 1"),
        ("rules: [{column: Age, range: {min: x}}]", r"range min must be a number"),
        ("rules: [{column: Age, range: {low: 1}}]", r"range: unknown argument 'low'"),
        ("rules: [{column: Age, allowed: good}]", r"allowed must be a list"),
        (
            "rules: [{column: Home, regex: '(['}]",
            r"invalid regex '\(\[': unclosed character class$",
        ),
        ("rules: [{column: A, range: {min: 2020-01-05, max: 2020-01-01}}]", r"min 2020-01-05 is"),
        ("rules: [{column: A, range: {min: 1, max: 2020-01-01}}]", r"both be numbers or both"),
        ("rules: [{column: A, range: {min: '2020-13-01'}}]", r"number or an ISO date"),
        ("rules: [{rows: {min: 1.5}}]", r"rows bounds must be whole numbers"),
        ("rules: [{rows: {min: 1}, column: Age}]", r"rows takes a mapping"),
        ("rules:\n  - {column: A, exists: true}\n  - {rows: {mn: 1}}", r"rule 2: rows: unknown"),
    ],
)
def test_bad_rules_name_the_file_and_problem(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=r"rules file '.*rules\.yaml': .*" + message):
        RuleSet.from_yaml(write(tmp_path, text))


def test_negative_examples_is_rejected() -> None:
    with pytest.raises(InvalidInputError, match="examples must be 0 or more"):
        report_for(credit(), NotNull("Age"), examples=-1)


def test_allowed_integers_compare_exactly() -> None:
    frame = pl.LazyFrame({"id": [1234567890123456789, 1234567890123456788]})
    rules = RuleSet.from_dict({"rules": [{"column": "id", "allowed": [1234567890123456789]}]})
    report = validate_frame(frame, rules)
    assert not report.passed
    assert report.results[0].failed == 1
