"""Loaded models: raw rows in any common shape, the signature checked, the stored files verified."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import pytest

from fermion.errors import IntegrityError, InvalidInputError
from fermion.registry.model import Model
from fermion.training.trainer import train
from fermion.workspace import Workspace

ROWS = [
    {"age": 23, "income": 1800.0, "city": "paris"},
    {"age": 41, "income": 3100.5, "city": "lyon"},
    {"age": 66, "income": 4200.0, "city": "nice"},
    {"age": 35, "income": None, "city": "paris"},
]


@pytest.fixture(scope="module")
def bundle(
    tmp_path_factory: pytest.TempPathFactory, credit_csv: Any
) -> tuple[Path, dict[str, Any]]:
    """A LightGBM model trained once per module: its `model/` files and manifest."""
    root = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("FERMION_")]:
            patch.delenv(key)
        with Workspace.init(root) as ws:
            ws.datasets.add(credit_csv(root / "credit.csv", seed=1), name="credit")
            params = {"num_boost_round": 20}
            version = train(ws, "credit", "status", "lightgbm", params).model
            assert version is not None
            folder = ws.models.load(version).folder
            assert folder is not None
            shutil.copytree(folder / "model", root / "bundle" / "model")
            return root / "bundle", ws.models.manifest(version)


@pytest.fixture
def model(workspace: Workspace, bundle: tuple[Path, dict[str, Any]]) -> Model:
    version = workspace.models.register("credit", *bundle)
    workspace.models.set_alias("credit", "production", version.version)
    return workspace.models.load("credit@production")


def test_every_row_shape_gives_the_same_predictions(model: Model) -> None:
    expected = model.predict(ROWS)
    assert expected.shape == (4,)
    assert set(expected.tolist()) <= {"bad", "good"}
    np.testing.assert_array_equal(model.predict(pd.DataFrame(ROWS)), expected)
    np.testing.assert_array_equal(model.predict(pl.DataFrame(ROWS)), expected)
    np.testing.assert_array_equal(model.predict(pd.DataFrame(ROWS).iloc[1]), expected[1:2])
    for row, label in zip(ROWS, expected, strict=True):
        assert model.predict(row).tolist() == [label]

    proba = model.predict_proba(pl.DataFrame(ROWS))
    assert proba.shape == (4, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    np.testing.assert_allclose(model.predict_proba(ROWS[0]), proba[:1])
    assert [model.classes[i] for i in proba.argmax(axis=1)] == expected.tolist()


def test_predict_frame_has_a_prediction_and_a_column_per_class(model: Model) -> None:
    frame = model.predict_frame(ROWS)
    assert frame.columns == ["prediction", "proba_bad", "proba_good"]
    assert frame.get_column("prediction").to_list() == model.predict(ROWS).tolist()


def test_strings_that_read_as_numbers_and_extra_columns_are_accepted(model: Model) -> None:
    loose = [
        {"id": i, "note": "x", "city": r["city"], "age": str(r["age"]), "income": r["income"]}
        for i, r in enumerate(ROWS)
    ]
    np.testing.assert_array_equal(model.predict(loose), model.predict(ROWS))
    assert model.predict([]).tolist() == []


def test_a_missing_column_is_named(model: Model) -> None:
    with pytest.raises(InvalidInputError, match="missing input column: income"):
        model.predict({"age": 30, "city": "paris"})
    with pytest.raises(InvalidInputError, match="missing input columns: age, city"):
        model.predict(pd.DataFrame({"income": [1.0]}))


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ({"age": "abc", "income": 1.0, "city": "paris"}, "column 'age' must be integer; got 'abc'"),
        ([ROWS[0], {**ROWS[1], "income": "n/a"}], "column 'income' must be float; got 'n/a'"),
        (pd.DataFrame({**pd.DataFrame(ROWS), "age": ["30", "abc", 2, 1]}), "column 'age'"),
        (pl.DataFrame({**pl.DataFrame(ROWS).to_dict(), "income": ["1", "2", "x", "4"]}), "'x'"),
        ({"age": 30.7, "income": 1.0, "city": "paris"}, "column 'age' must be integer; got 30.7"),
    ],
)
def test_a_value_of_the_wrong_type_names_its_column(model: Model, rows: Any, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        model.predict(rows)


def test_rows_of_an_unknown_shape_are_refused(model: Model) -> None:
    with pytest.raises(InvalidInputError, match="pass a dict, a list of dicts"):
        model.predict("age=30")
    with pytest.raises(InvalidInputError, match="rows must be dicts"):
        model.predict([[30, 1.0, "paris"]])


def test_a_tampered_blob_is_refused_on_load(
    workspace: Workspace, bundle: tuple[Path, dict[str, Any]]
) -> None:
    version = workspace.models.register("credit", *bundle)
    digest = workspace.models.manifest(version)["files"]["model/model.txt"]
    blob = workspace.storage.artifacts.local_path(digest)
    blob.chmod(0o644)
    blob.write_text(blob.read_text().replace("num_leaves=", "num_leaves=9", 1))
    with pytest.raises(IntegrityError, match="corrupted"):
        workspace.models.load("credit")
    assert not list((workspace.root / "models").glob("*"))  # nothing half-copied is reused


def test_a_tampered_manifest_is_refused(
    workspace: Workspace, bundle: tuple[Path, dict[str, Any]]
) -> None:
    version = workspace.models.register("credit", *bundle)
    blob = workspace.storage.artifacts.local_path(version.content_hash)
    blob.chmod(0o644)
    blob.write_bytes(blob.read_bytes().replace(b'"lightgbm"', b'"python"'))
    with pytest.raises(IntegrityError):
        workspace.models.load("credit")
