from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from fermion.data.clean import (
    STEP_TYPES,
    Cast,
    ClipOutliers,
    DropColumns,
    DropDuplicates,
    DropMissing,
    DropOutliers,
    FillMissing,
    Filter,
    Lowercase,
    Recipe,
    Rename,
    Replace,
    Trim,
    apply_recipe,
)
from fermion.errors import InvalidInputError

FULL_RECIPE = """
steps:
  - replace: {columns: [Income, Assets], values: {99999999: null}}
  - drop_duplicates: {}
  - fill_missing: {columns: [Income], strategy: median}
  - drop_missing: {columns: [Home]}
  - cast: {columns: {Age: float, Records: categorical}}
  - rename: {Status: status}
  - drop_columns: [rownames]
  - filter: "Age >= 18 and Amount > 0"
  - clip_outliers: {columns: [Income], method: iqr, factor: 1.5}
  - drop_outliers: {columns: [Price], method: zscore, threshold: 4}
  - trim: {columns: [Home]}
  - lowercase: {columns: [Home]}
"""


def credit() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "rownames": [1, 2, 3, 4, 4, 5],
            "Status": ["good", "bad", "good", "bad", "bad", "good"],
            "Income": [100, 99999999, None, 50, 50, 80],
            "Assets": [1, 2, 99999999, 4, 4, 6],
            "Home": [" Owner", "rent ", "Rent", None, None, "PARENTS"],
            "Age": [20, 30, 17, 40, 40, 50],
            "Records": [1, 2, 1, 2, 2, 1],
            "Amount": [1, 1, 1, 1, 1, 0],
            "Price": [1.0, 2.0, 3.0, 4.0, 4.0, 5.0],
        }
    )


def run(df: pl.DataFrame, *steps: Any) -> pl.DataFrame:
    result = apply_recipe(df.lazy(), Recipe(list(steps)))
    assert isinstance(result, pl.LazyFrame)
    return result.collect()


def write(tmp_path: Path, text: str, name: str = "clean.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# -- each step's effect ----------------------------------------------------------------------


def test_replace_turns_sentinels_into_nulls() -> None:
    out = run(credit(), Replace(["Income", "Assets"], {99999999: None}))
    assert out["Income"].to_list() == [100, None, None, 50, 50, 80]
    assert out["Assets"].to_list() == [1, 2, None, 4, 4, 6]


def test_replace_text_and_pairs_form() -> None:
    df = pl.DataFrame({"Home": ["NA", "rent", "NA"]})
    out = run(df, Replace.from_args({"columns": ["Home"], "values": [["NA", "unknown"]]}))
    assert out["Home"].to_list() == ["unknown", "rent", "unknown"]


def test_drop_duplicates_keeps_first_in_order() -> None:
    out = run(credit(), DropDuplicates())
    assert out["rownames"].to_list() == [1, 2, 3, 4, 5]
    by_status = run(credit(), DropDuplicates(subset=["Status"]))
    assert by_status["rownames"].to_list() == [1, 2]


@pytest.mark.parametrize(
    ("strategy", "value", "expected"),
    [("mean", None, 4.0), ("median", None, 3.0), ("mode", None, 2), ("constant", 0, 0)],
)
def test_fill_missing(strategy: str, value: Any, expected: float) -> None:
    df = pl.DataFrame({"x": [2, 2, None, 9, 1, 4, 6]})  # mean 4, median 3, mode 2
    out = run(df, FillMissing(["x"], strategy=strategy, value=value))
    assert out["x"][2] == expected
    assert out["x"].null_count() == 0


def test_fill_missing_mode_breaks_ties_with_the_smallest_value() -> None:
    df = pl.DataFrame({"Home": ["rent", None, "owner", "rent", "owner"]})
    out = run(df, FillMissing(["Home"], strategy="mode"))
    assert out["Home"].to_list() == ["rent", "owner", "owner", "rent", "owner"]


def test_drop_missing_on_columns_or_any() -> None:
    df = pl.DataFrame({"a": [1, None, 3, 4], "b": ["x", "y", None, "z"]})
    assert run(df, DropMissing(["a"]))["a"].to_list() == [1, 3, 4]
    assert run(df, DropMissing())["a"].to_list() == [1, 4]


def test_cast_to_each_type() -> None:
    df = pl.DataFrame(
        {
            "i": [" 1", "2", " "],
            "f": ["1.5", " 2", None],
            "b": ["Yes", "no", "T"],
            "s": [1, 2, 3],
            "c": [1, 2, 1],
            "d": ["2020-01-01", "2021-02-03 10:00:00", "2021-02-03T10:00:00.5"],
            "n": [1.0, float("nan"), -3.0],
            "o": [1, 0, None],
        }
    )
    types = {"i": "integer", "f": "float", "b": "boolean", "s": "string", "c": "categorical"}
    out = run(df, Cast({**types, "d": "datetime", "n": "integer", "o": "boolean"}))
    assert out["i"].to_list() == [1, 2, None]  # blank text is missing, not lost
    assert out["f"].to_list() == [1.5, 2.0, None]
    assert out["b"].to_list() == [True, False, True]
    assert out["s"].to_list() == ["1", "2", "3"]
    assert out.schema["c"] == pl.Categorical()
    assert out["c"].cast(pl.String).to_list() == ["1", "2", "1"]
    assert out["d"].to_list() == [
        datetime(2020, 1, 1),
        datetime(2021, 2, 3, 10),
        datetime(2021, 2, 3, 10, 0, 0, 500000),
    ]
    assert out["n"].to_list() == [1, None, -3]  # NaN is missing
    assert out["o"].to_list() == [True, False, None]


def test_cast_text_to_datetime_with_a_format(tmp_path: Path) -> None:
    text = 'steps: [{cast: {columns: {d: datetime}, format: "%d/%m/%Y"}}]'
    recipe = Recipe.from_yaml(write(tmp_path, text))
    assert recipe.to_dict()["steps"][0] == {
        "cast": {"columns": {"d": "datetime"}, "format": "%d/%m/%Y"}
    }
    out = run(pl.DataFrame({"d": ["03/02/2021", None]}), *recipe.steps)
    assert out["d"].to_list() == [datetime(2021, 2, 3), None]
    # Without a format, recipes keep the canonical form (and fingerprint) they had before.
    assert Cast({"d": "datetime"}).to_args() == {"columns": {"d": "datetime"}}


@pytest.mark.parametrize(
    ("values", "cast", "message"),
    [
        (["1", "x", "y"], Cast({"v": "integer"}), r"2 values of 'v' would be lost casting to "
         r"integer, e.g. 'x'; replace or drop them first"),
        (["1", "1.5"], Cast({"v": "integer"}), r"1 value of 'v' .* e\.g\. '1\.5'"),
        (["1.5", "?"], Cast({"v": "float"}), r"1 value of 'v' .* float, e\.g\. '\?'"),
        (["yes", "maybe"], Cast({"v": "boolean"}), r"e\.g\. 'maybe'"),
        ([1.0, 1.7], Cast({"v": "integer"}), r": fractional or out of range, e\.g\. 1\.7"),
        ([0, 2], Cast({"v": "boolean"}), r"1 value of 'v' would be lost .* e\.g\. 2;"),
        (["2020-01-01", "01/02/2020"], Cast({"v": "datetime"}),
         r"not dates in ISO 8601 \(give format: \.\.\.\), e\.g\. '01/02/2020'"),
        (["01/02/2020", "2020-01-01"], Cast({"v": "datetime"}, format="%d/%m/%Y"),
         r"not dates in format '%d/%m/%Y', e\.g\. '2020-01-01'"),
    ],
)  # fmt: skip
def test_cast_refuses_to_lose_values(values: list[Any], cast: Cast, message: str) -> None:
    with pytest.raises(InvalidInputError, match=r"^recipe step 1 \(cast\): .*" + message):
        run(pl.DataFrame({"v": values}), cast)


def test_cast_checks_the_values_the_earlier_steps_leave() -> None:
    df = pl.DataFrame({"v": ["1", "n/a", "3"]})
    out = run(df, Replace(["v"], {"n/a": None}), Cast({"v": "integer"}))
    assert out["v"].to_list() == [1, None, 3]
    assert run(df, Filter("v <> 'n/a'"), Cast({"v": "integer"}))["v"].to_list() == [1, 3]


@pytest.mark.parametrize(
    ("df", "cast", "message"),
    [
        (pl.DataFrame({"v": [1]}), Cast({"v": "datetime"}),
         r"cannot cast integer column 'v' to datetime: its values are not dates"),
        (pl.DataFrame({"v": [1.5]}), Cast({"v": "datetime"}), r"float column 'v' to datetime"),
        (pl.DataFrame({"v": [True]}), Cast({"v": "datetime"}), r"boolean column 'v' to datetime"),
        (pl.DataFrame({"v": [datetime(2020, 1, 1)]}), Cast({"v": "integer"}),
         r"cannot cast datetime column 'v' to integer; cast it to string"),
        (pl.DataFrame({"v": ["x"], "w": [datetime(2020, 1, 1)]}),
         Cast({"v": "datetime", "w": "datetime"}, format="%Y"),
         r"format applies to text columns; 'w' is datetime"),
    ],
)  # fmt: skip
def test_cast_refuses_conversions_without_meaning(
    df: pl.DataFrame, cast: Cast, message: str
) -> None:
    with pytest.raises(InvalidInputError, match=r"^recipe step 1 \(cast\): .*" + message):
        run(df, cast)


def test_float_replacement_or_fill_turns_an_integer_column_into_floats() -> None:
    df = pl.DataFrame({"n": [1, 2, 3, None]})
    out = run(df, Replace(["n"], {1: 1.5, 2: 8}))
    assert out["n"].to_list() == [1.5, 8.0, 3.0, None]
    assert out.schema["n"] == pl.Float64
    filled = run(df, FillMissing(["n"], value=0.5))
    assert filled["n"].to_list() == [1.0, 2.0, 3.0, 0.5]
    assert run(df, Replace(["n"], {1: 5}), FillMissing(["n"], value=0)).schema["n"] == pl.Int64
    with pytest.raises(InvalidInputError, match=r"step 1 \(replace\): value 1\.5 cannot occur"):
        run(df, Replace(["n"], {1.5: 2}))


def test_a_recipe_may_drop_every_row_but_not_every_column(tmp_path: Path) -> None:
    empty = run(
        credit(),
        Filter("Age > 1000"),
        FillMissing(["Income"], strategy="mean"),
        ClipOutliers(["Price"]),
        DropOutliers(["Assets"], method="zscore"),
        Cast({"Status": "boolean", "Age": "float"}),
    )
    assert empty.height == 0
    assert empty.schema["Age"] == pl.Float64
    empty.write_parquet(tmp_path / "empty.parquet")
    with pytest.raises(InvalidInputError, match=r"^recipe step 2 \(drop_columns\): it would "
                       r"drop every column"):  # fmt: skip
        run(pl.DataFrame({"a": [1], "b": [2]}), DropColumns(["a"]), DropColumns(["b"]))


def test_text_steps_refuse_nested_columns() -> None:
    df = pl.DataFrame({"s": [{"a": 1}], "l": [["x"]], "t": [" A"]})
    out = run(df, Trim(), Lowercase())  # by default: the text columns only
    assert out["t"].to_list() == ["a"]
    assert out["l"].to_list() == [["x"]]
    for step, dtype in ((Lowercase(["s"]), r"Struct\(\{'a': Int64\}\)"), (Trim(["l"]), r"List")):
        with pytest.raises(InvalidInputError, match=r"^recipe step 1 .*'(s|l)' is " + dtype):
            run(df, step)


def test_rename_drop_columns_and_filter_chain() -> None:
    out = run(
        credit(),
        Rename({"Status": "status"}),
        DropColumns(["rownames"]),
        Filter("Age >= 18 and Amount > 0 and status = 'bad'"),
    )
    assert "rownames" not in out.columns
    assert out["status"].to_list() == ["bad", "bad", "bad"]
    assert out["Age"].to_list() == [30, 40, 40]


def test_filter_drops_rows_where_the_expression_is_null() -> None:
    df = pl.DataFrame({"Age": [10, None, 30]})
    assert run(df, Filter("Age > 5"))["Age"].to_list() == [10, 30]


def test_clip_outliers_iqr_keeps_integer_columns_integer() -> None:
    df = pl.DataFrame({"x": [1, 2, 3, 4, 100, None], "y": [1.0, 2.0, 3.0, 4.0, 100.0, None]})
    out = run(df, ClipOutliers(["x", "y"]))  # q1 2, q3 4, iqr 2: bounds [-1, 7]
    assert out["x"].to_list() == [1, 2, 3, 4, 7, None]
    assert out["y"].to_list() == [1.0, 2.0, 3.0, 4.0, 7.0, None]
    assert out.schema["x"] == pl.Int64


def test_clip_outliers_zscore() -> None:
    df = pl.DataFrame({"x": [0.0, 0.0, 0.0, 0.0, 10.0]})  # mean 2, std sqrt(20)
    out = run(df, ClipOutliers(["x"], method="zscore", threshold=1))
    assert out["x"][4] == pytest.approx(2 + 20**0.5)
    assert out["x"][:4].to_list() == [0.0] * 4


def test_drop_outliers_zscore_keeps_nulls() -> None:
    df = pl.DataFrame({"x": [1, 2, 3, 4, 100, None]})  # mean 22, std 43.6
    out = run(df, DropOutliers(["x"], method="zscore", threshold=1.5))
    assert out["x"].to_list() == [1, 2, 3, 4, None]
    iqr = run(df, DropOutliers(["x"], method="iqr", factor=1.5))
    assert iqr["x"].to_list() == [1, 2, 3, 4, None]


def test_trim_and_lowercase_default_to_text_columns() -> None:
    df = pl.DataFrame({"a": [" X ", "y "], "n": [1, 2]}).with_columns(
        c=pl.Series([" P", "Q "], dtype=pl.Categorical)
    )
    out = run(
        df.with_columns(e=pl.Series(["A", "B"], dtype=pl.Enum(["A", "B"]))), Trim(), Lowercase()
    )
    assert out["a"].to_list() == ["x", "y"]
    assert out["e"].cast(pl.String).to_list() == ["a", "b"]
    assert out["c"].cast(pl.String).to_list() == ["p", "q"]
    assert out.schema["c"] == pl.Categorical()
    assert out["n"].to_list() == [1, 2]


def test_full_yaml_recipe(tmp_path: Path) -> None:
    out = apply_recipe(credit().lazy(), Recipe.from_yaml(write(tmp_path, FULL_RECIPE))).collect()
    assert out.columns == [
        "status",
        "Income",
        "Assets",
        "Home",
        "Age",
        "Records",
        "Amount",
        "Price",
    ]
    # The sentinel rows got the median of [100, 50, 80]; row 3 (Age 17), 4 (no Home), 5 (a
    # duplicate) and 6 (Amount 0) are gone.
    assert out["status"].to_list() == ["good", "bad"]
    assert out["Income"].to_list() == [100.0, 80.0]
    assert out["Home"].to_list() == ["owner", "rent"]
    assert out.schema["Age"] == pl.Float64


# -- recipes: forms, round trips, fingerprints --------------------------------------------------


def test_yaml_dict_and_python_forms_are_equal(tmp_path: Path) -> None:
    text = (
        "steps:\n  - drop_duplicates: {}\n  - fill_missing: {columns: [Income], strategy: median}\n"
    )
    from_yaml = Recipe.from_yaml(write(tmp_path, text))
    from_list = Recipe.from_dict(
        [{"drop_duplicates": None}, {"fill_missing": {"strategy": "median", "columns": ["Income"]}}]
    )
    in_python = Recipe([DropDuplicates(), FillMissing(columns=["Income"], strategy="median")])
    assert from_yaml == from_list == in_python
    assert len({from_yaml.fingerprint(), from_list.fingerprint(), in_python.fingerprint()}) == 1


def test_fingerprint_ignores_key_order_and_layout(tmp_path: Path) -> None:
    block = """
steps:
  - clip_outliers:
      method: iqr
      columns: [Income]
      factor: 1.50
  - cast:
      columns: {Records: categorical, Age: float}
"""
    flow = (
        "{steps: [{clip_outliers: {columns: [Income], factor: 1.5, method: iqr}},"
        " {cast: {columns: {Age: float, Records: categorical}}}]}"
    )
    one, two = Recipe.from_yaml(write(tmp_path, block)), Recipe.from_yaml(write(tmp_path, flow))
    assert one.fingerprint() == two.fingerprint()
    assert len(one.fingerprint()) == 64
    other = Recipe([ClipOutliers(["Income"], factor=2)])
    assert other.fingerprint() != one.fingerprint()


def test_to_dict_round_trips_through_json_and_yaml(tmp_path: Path) -> None:
    recipe = Recipe.from_yaml(write(tmp_path, FULL_RECIPE))
    canonical = recipe.to_dict()
    assert canonical["steps"][0] == {
        "replace": {"columns": ["Income", "Assets"], "values": [[99999999, None]]}
    }
    assert canonical["steps"][1] == {"drop_duplicates": {"subset": None}}
    assert Recipe.from_dict(json.loads(json.dumps(canonical))) == recipe
    assert Recipe.from_yaml(write(tmp_path, recipe.to_yaml(), "again.yaml")) == recipe
    assert {next(iter(step)) for step in canonical["steps"]} == {t.name for t in STEP_TYPES}


def test_later_steps_see_renamed_and_cast_columns() -> None:
    df = pl.DataFrame({"Status": [" A", "b"], "n": ["1", "2"]})
    out = run(df, Rename({"Status": "s"}), Trim(["s"]), Cast({"n": "integer"}), Filter("n > 1"))
    assert out.to_dict(as_series=False) == {"s": ["b"], "n": [2]}


# -- errors ------------------------------------------------------------------------------------


def test_malformed_yaml_names_file_and_position(tmp_path: Path) -> None:
    path = write(tmp_path, "steps:\n  - drop_duplicates: {}\n  - fill_missing: {columns: [a\n")
    with pytest.raises(InvalidInputError, match=r"clean\.yaml.*not valid YAML at line \d+, column"):
        Recipe.from_yaml(path)


def test_missing_recipe_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match=r"recipe file .*nope\.yaml' does not exist"):
        Recipe.from_yaml(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("steps:\n  - fill: {}\n", r"step 1 \(fill\): unknown step 'fill'; known steps: cast, "),
        ("steps: 3\n", r"needs a list of steps"),
        ("recipe: []\n", r"unknown recipe key 'recipe'"),
        ("steps:\n  - {trim: {}, lowercase: {}}\n", r"step 1 must be a mapping with one step"),
        (
            "steps:\n  - drop_duplicates: {}\n  - fill_missing: {columns: [a], strat: mean}\n",
            r"step 2 \(fill_missing\): unknown argument 'strat'; expected one of columns, "
            "strategy, value",
        ),
        ("steps: [{fill_missing: {strategy: mean}}]", r"missing argument 'columns'"),
        ("steps: [{fill_missing: {columns: [a], strategy: avg}}]", r"unknown strategy 'avg'"),
        ("steps: [{fill_missing: {columns: [a]}}]", r"strategy constant needs a value"),
        ("steps: [{fill_missing: {columns: a, strategy: mean}}]", r"list of column names"),
        ("steps: [{cast: {columns: {Age: int}}}]", r"cannot cast 'Age' to 'int'; types are"),
        ("steps: [{cast: {columns: {Age: float}, format: '%Y'}}]", r"format applies only to"),
        ("steps: [{cast: {columns: {A: datetime}, format: 'Y-m-d'}}]", r"format must be strftime"),
        ("steps: [{rename: [a, b]}]", r"mapping of old name to new name"),
        ("steps: [{clip_outliers: {columns: [a], threshold: 3}}]", r"threshold does not apply"),
        ("steps: [{drop_outliers: {columns: [a], method: mad}}]", r"unknown method 'mad'"),
        ("steps: [{clip_outliers: {columns: [a], factor: -1}}]", r"factor must be positive"),
        ("steps: [{replace: {columns: [a], values: {2020-01-01: 1}}}]", r"quote dates"),
        ("steps: [{replace: {columns: [a], values: {}}}]", r"at least one replacement"),
        ("steps: [{filter: 'Age >>= 18'}]", r"filter expression 'Age >>= 18' does not parse"),
        ("steps: [{filter: ''}]", r"expected an expression"),
    ],
)
def test_bad_recipes_name_the_file_and_step(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=r"recipe file '.*clean\.yaml': .*" + message):
        Recipe.from_yaml(write(tmp_path, text))


@pytest.mark.parametrize(
    ("step", "message"),
    [
        (FillMissing(["Incme"], "median"), r"\(fill_missing\): column 'Incme' does not"),
        (Filter("Nope > 1"), r"\(filter 'Nope > 1'\): column 'Nope' does not exist"),
        (Filter("Age + 1"), r"\(filter 'Age \+ 1'\) cannot run: .*Boolean"),
        (FillMissing(["Home"], "mean"), r"\(fill_missing\): strategy mean needs a numeric column"),
        (ClipOutliers(["Status"]), r"clip_outliers needs a numeric column; 'Status'"),
        (Trim(["Age"]), r"\(trim\): column 'Age' is integer, not text"),
        (Rename({"Age": "Home"}), r"renaming 'Age' to 'Home' would duplicate 'Home'"),
        (Replace(["Age"], {"NA": None}), r"value 'NA' does not fit integer column 'Age'"),
        (FillMissing(["Home"], value=0), r"value 0 does not fit string column 'Home'"),
        (FillMissing(["Kind"], value="Q"), r"value 'Q' is not a category of enum column 'Kind'"),
        (Cast({"Tags": "integer"}), r"\(cast\): cannot cast List\(String\) column 'Tags'"),
        (DropColumns(["rownames", "Age"]), r"\(drop_columns\): column 'rownames'"),
    ],
)
def test_recipe_is_checked_against_the_schema(step: Any, message: str) -> None:
    lf = credit().lazy().with_columns(Tags=pl.lit(["x"]), Kind=pl.lit("A", pl.Enum(["A", "B"])))
    recipe = Recipe([DropColumns(["rownames"]), step])
    with pytest.raises(InvalidInputError, match=r"^recipe step 2 .*" + message):
        apply_recipe(lf, recipe)


def test_python_steps_check_their_arguments() -> None:
    with pytest.raises(InvalidInputError, match="does not parse"):
        Filter("Age >")
    with pytest.raises(InvalidInputError, match="two columns would get the same name"):
        Rename({"a": "x", "b": "x"})
    with pytest.raises(InvalidInputError, match="step 2 is not a cleaning step"):
        Recipe([Trim(), "lowercase"])  # type: ignore[list-item]
