from __future__ import annotations

import datetime as dt
import json
import math
from decimal import Decimal
from typing import Literal

import numpy as np
import polars as pl
import pytest

from fermion.errors import InvalidInputError
from fermion.training.preprocess import ColumnRole, Preprocessor, column_roles, preprocessor_for

NAN = math.nan


def loans() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "Amount": [100.0, None, 300.0, 1000.0, 200.0],
            "Term": [12, 24, 36, None, 12],
            "Home": ["own", "rent", "own", None, "mortgage"],
            "Married": [True, True, None, False, True],
            "Opened": [dt.datetime(1970, 1, 2), None, dt.datetime(1970, 1, 1), None, None],
            "Ignored": ["x"] * 5,
        }
    )


ROLES: dict[str, ColumnRole] = {
    "Amount": "numeric",
    "Term": "numeric",
    "Home": "categorical",
    "Married": "boolean",
    "Opened": "datetime",
}


def messages(rows: int) -> list[str]:
    return [f"Hello, I would like to ask about my account number {i}, thanks" for i in range(rows)]


def test_roles_follow_dtypes() -> None:
    frame = pl.DataFrame(
        {
            "int": [1, 2],
            "float": [1.5, None],
            "decimal": pl.Series([Decimal("1.25"), Decimal("2.50")], dtype=pl.Decimal(10, 2)),
            "flag": [True, False],
            "day": [dt.date(2024, 1, 1), dt.date(2024, 1, 2)],
            "stamp": [dt.datetime(2024, 1, 1), None],
            "home": ["own", "rent"],
            "cat": pl.Series(["a", "b"], dtype=pl.Categorical),
            "enum": pl.Series(["a", "b"], dtype=pl.Enum(["a", "b"])),
        }
    )
    assert column_roles(frame, frame.columns) == {
        "int": "numeric",
        "float": "numeric",
        "decimal": "numeric",
        "flag": "boolean",
        "day": "datetime",
        "stamp": "datetime",
        "home": "categorical",
        "cat": "categorical",
        "enum": "categorical",
    }


def test_long_distinct_strings_are_text_and_repeated_ones_are_not() -> None:
    repeated = ["This is a long but repeated complaint about the fees"] * 10
    frame = pl.DataFrame({"Message": messages(10), "Canned": repeated, "Code": ["a"] * 10})
    roles = column_roles(frame, ["Message", "Canned", "Code"])
    assert roles == {"Message": "text", "Canned": "categorical", "Code": "categorical"}
    assert column_roles(frame, ["Code"], text_columns=["Code"]) == {"Code": "text"}


@pytest.mark.parametrize(
    "series",
    [
        pl.Series("Tags", [["a"], ["b"]]),
        pl.Series("Blob", [b"a", b"b"]),
        pl.Series("Nothing", [None, None]),
        pl.Series("Nested", [{"a": 1}, {"a": 2}]),
    ],
)
def test_unsupported_dtype_names_the_column(series: pl.Series) -> None:
    frame = pl.DataFrame({"Amount": [1, 2]}).with_columns(series)
    with pytest.raises(InvalidInputError, match=series.name):
        column_roles(frame, frame.columns)


def test_roles_reject_unknown_and_non_text_columns() -> None:
    frame = pl.DataFrame({"Amount": [1, 2]})
    with pytest.raises(InvalidInputError, match="Missing"):
        column_roles(frame, ["Amount", "Missing"])
    with pytest.raises(InvalidInputError, match="Amount"):
        column_roles(frame, ["Amount"], text_columns=["Amount"])


def test_trees_keep_missing_values_and_code_categories_by_frequency() -> None:
    # own is the most frequent; mortgage and rent tie and are ordered by value.
    prep = preprocessor_for("trees", ROLES).fit(loans())
    out = prep.transform(loans())
    assert out.dtype == np.float32
    assert prep.feature_names == ["Amount", "Term", "Home", "Married", "Opened"]
    assert prep.categorical_feature_indices == [2]
    expected = [
        [100, 12, 0, 1, 86400],
        [NAN, 24, 2, 1, NAN],
        [300, 36, 0, NAN, 0],
        [1000, NAN, NAN, 0, NAN],
        [200, 12, 1, 1, NAN],
    ]
    np.testing.assert_array_equal(out, np.array(expected, dtype=np.float32))


def test_linear_imputes_scales_and_one_hot_encodes() -> None:
    prep = preprocessor_for("linear", ROLES).fit(loans())
    out = prep.transform(loans())
    assert prep.feature_names == [
        "Amount",
        "Term",
        "Home=own",
        "Home=mortgage",
        "Home=rent",
        "Married",
        "Opened",
    ]
    assert prep.categorical_feature_indices == []
    amount = np.array([100, 250, 300, 1000, 200])  # the missing one is the median of the others
    np.testing.assert_allclose(out[:, 0], (amount - amount.mean()) / amount.std(), rtol=1e-6)
    assert out[:, 0].mean() == pytest.approx(0, abs=1e-6)
    assert out[:, 1].std() == pytest.approx(1, abs=1e-6)
    homes = [[1, 0, 0], [0, 0, 1], [1, 0, 0], [0, 0, 0], [0, 1, 0]]
    np.testing.assert_array_equal(out[:, 2:5], homes)
    np.testing.assert_array_equal(out[:, 5], [1, 1, 1, 0, 1])  # null -> the mode, True
    assert not np.isnan(out).any()


def test_unknown_categories() -> None:
    fitted = loans()
    fresh = pl.DataFrame({"Home": ["castle", None, "rent"]})
    ordinal = Preprocessor({"Home": "categorical"}, encoding="ordinal", scale=False, impute=False)
    np.testing.assert_array_equal(ordinal.fit(fitted).transform(fresh)[:, 0], [NAN, NAN, 2])
    imputed = Preprocessor({"Home": "categorical"}, encoding="ordinal", scale=False, impute=True)
    np.testing.assert_array_equal(imputed.fit(fitted).transform(fresh)[:, 0], [0, 0, 2])
    onehot = Preprocessor({"Home": "categorical"}, encoding="onehot", scale=False, impute=False)
    np.testing.assert_array_equal(
        onehot.fit(fitted).transform(fresh), [[0, 0, 0], [0, 0, 0], [0, 0, 1]]
    )


def test_max_categories_keeps_the_most_frequent_and_breaks_ties_by_value() -> None:
    frame = pl.DataFrame({"Home": ["b", "c", "a", "c", "d", "b"]})
    prep = Preprocessor({"Home": "categorical"}, encoding="onehot", scale=False, impute=False)
    prep.max_categories = 3
    assert prep.fit(frame).feature_names == ["Home=b", "Home=c", "Home=a"]
    with pytest.raises(InvalidInputError, match="max_categories"):
        Preprocessor({}, encoding="onehot", scale=False, impute=False, max_categories=0)


@pytest.mark.parametrize("family", ["trees", "linear"])
def test_json_round_trip_transforms_identically(family: Literal["trees", "linear"]) -> None:
    prep = preprocessor_for(family, ROLES).fit(loans())
    restored = Preprocessor.from_dict(json.loads(json.dumps(prep.to_dict(), allow_nan=False)))
    np.testing.assert_array_equal(restored.transform(loans()), prep.transform(loans()))
    assert restored.feature_names == prep.feature_names
    assert restored.categorical_feature_indices == prep.categorical_feature_indices


@pytest.mark.parametrize("family", ["trees", "linear"])
def test_json_values_transform_as_their_frame_does(family: Literal["trees", "linear"]) -> None:
    roles = {name: role for name, role in ROLES.items() if role != "datetime"}
    roles["Code"] = "categorical"  # integers read as categories
    training = loans().with_columns(pl.Series("Code", [1, 2, 2, None, 3]))
    prep = preprocessor_for(family, roles).fit(training)
    assert prep.reads_values
    rows = [  # what a server receives: JSON values, some unseen, some missing
        {"Amount": 250, "Term": 24.0, "Home": "own", "Married": False, "Code": 2},
        {"Amount": None, "Term": None, "Home": "castle", "Married": None, "Code": 9},
        {"Amount": 1e6, "Term": 1, "Home": None, "Married": True, "Code": None},
    ]
    columns = {name: [row[name] for row in rows] for name in roles}
    schema = {"Amount": pl.Float64, "Term": pl.Int64, "Home": pl.String, "Married": pl.Boolean}
    frame = pl.DataFrame(columns, schema={**schema, "Code": pl.Int64}, strict=False)
    np.testing.assert_array_equal(prep.transform_values(columns, 3), prep.transform(frame))
    assert not preprocessor_for(family, ROLES).fit(loans()).reads_values  # datetimes need a frame


def test_bad_state_and_unfitted_use_are_errors() -> None:
    with pytest.raises(InvalidInputError, match="not a fitted preprocessor"):
        Preprocessor.from_dict({"version": 1})
    with pytest.raises(InvalidInputError, match="not fitted"):
        preprocessor_for("trees", ROLES).transform(loans())
    with pytest.raises(InvalidInputError, match="role"):
        Preprocessor({"Amount": "money"}, encoding="ordinal", scale=False, impute=False)  # type: ignore[dict-item]


def test_missing_columns_are_named_and_extra_columns_ignored() -> None:
    prep = preprocessor_for("trees", ROLES).fit(loans())
    with pytest.raises(InvalidInputError, match="Home, Opened"):
        prep.transform(loans().drop("Home", "Opened"))
    shuffled = loans().select("Ignored", "Opened", "Home", "Married", "Term", "Amount")
    np.testing.assert_array_equal(prep.transform(shuffled), prep.transform(loans()))


def test_values_of_another_type_are_cast_strictly() -> None:
    prep = preprocessor_for("trees", ROLES).fit(loans())
    row = {"Amount": "150.5", "Term": 12, "Home": "own", "Married": 1, "Opened": "1970-01-02"}
    np.testing.assert_array_equal(prep.transform(pl.DataFrame([row])), [[150.5, 12, 0, 1, 86400]])
    for column, value in [("Amount", "lots"), ("Married", "yes"), ("Opened", 5)]:
        with pytest.raises(InvalidInputError, match=column):
            prep.transform(pl.DataFrame([{**row, column: value}]))


def test_all_null_values_from_json_rows() -> None:
    prep = preprocessor_for("linear", ROLES).fit(loans())
    row = pl.DataFrame([dict.fromkeys(ROLES)])
    assert row.schema["Amount"] == pl.Null
    assert not np.isnan(prep.transform(row)).any()


def test_single_rows_match_a_batch() -> None:
    rng = np.random.default_rng(0)
    frame = pl.DataFrame(
        {
            "Home": rng.choice(["own", "rent", "mortgage", "other"], 600).tolist(),
            "Amount": rng.normal(size=600),
        }
    ).with_columns(pl.when(pl.col("Amount") > 1.5).then(None).otherwise("Home").alias("Home"))
    families: tuple[Literal["trees", "linear"], ...] = ("trees", "linear")
    for family in families:
        prep = preprocessor_for(family, {"Home": "categorical", "Amount": "numeric"})
        batch = prep.fit(frame.head(300)).transform(frame)
        for i in (0, 1, 301, 599):
            one = prep.transform(frame.slice(i, 1))
            assert one.shape == (1, batch.shape[1])
            np.testing.assert_array_equal(one[0], batch[i])


def test_dates_and_time_zones_are_epoch_seconds() -> None:
    frame = pl.DataFrame(
        {
            "Day": [dt.date(1970, 1, 2)],
            "Stamp": pl.Series([dt.datetime(1970, 1, 1, 1)]).dt.replace_time_zone("Europe/Paris"),
        }
    )
    prep = preprocessor_for("trees", {"Day": "datetime", "Stamp": "datetime"}).fit(frame)
    np.testing.assert_array_equal(prep.transform(frame), [[86400, 0]])
