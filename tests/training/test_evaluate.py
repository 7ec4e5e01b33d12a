"""Evaluating a registered model on another dataset version, from Python and from the CLI."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from fermion.cli.main import app
from fermion.entities import RunStatus
from fermion.errors import InvalidInputError
from fermion.training.evaluation import evaluate_registered
from fermion.training.trainer import train
from fermion.workspace import Workspace

MakeFrame = Callable[..., pl.DataFrame]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, make_frame: MakeFrame) -> Iterator[Path]:
    """One SQLite workspace holding `credit:1` and the model `credit@prod` trained on it;
    each test adds the versions it evaluates on under names of its own."""
    root = tmp_path_factory.mktemp("evaluate")
    with pytest.MonkeyPatch.context() as mp:
        for key in [k for k in os.environ if k.startswith("FERMION_")]:
            mp.delenv(key)
        make_frame(n=600).write_csv(root / "credit.csv")
        with Workspace.init(root) as ws:
            ws.datasets.add(root / "credit.csv", name="credit")
            train(ws, "credit", "status", "lightgbm", {"num_boost_round": 30}, alias="prod")
        yield root


@pytest.fixture
def ws(project: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    monkeypatch.chdir(project)
    with Workspace.open() as workspace:
        yield workspace


def _add(ws: Workspace, frame: pl.DataFrame, name: str) -> str:
    path = ws.root.parent / f"{name}.csv"
    frame.write_csv(path)
    return ws.datasets.add(path, name=name).ref


def _changed(make_frame: MakeFrame) -> pl.DataFrame:
    """The training table with a tenth of its labels flipped and some incomes changed."""
    frame = make_frame(n=600)
    flip = (pl.int_range(pl.len()) % 10) == 0
    return frame.with_columns(
        status=pl.when(flip).then(pl.lit("bad")).otherwise(pl.col("status")),
        income=pl.when(flip).then(pl.col("income") * 2).otherwise(pl.col("income")),
    )


def test_evaluate_on_a_changed_version(ws: Workspace, make_frame: MakeFrame) -> None:
    ref = _add(ws, _changed(make_frame), "credit_changed")
    report = evaluate_registered(ws, "credit@prod", ref)

    assert report.model == "credit:1" and report.data == ref and report.rows == 600
    metrics = report.evaluation.metrics
    rows = ws.datasets.get(ref).to_polars()
    predicted = ws.models.load("credit@prod").predict(rows)
    expected = float(np.mean(predicted == rows.get_column("status").to_numpy()))
    assert metrics["accuracy"] == pytest.approx(expected)
    assert {"roc_auc", "log_loss", "f1_macro"} <= set(metrics)

    run = ws.runs.get(report.run_id)
    assert run.status == RunStatus.FINISHED
    assert run.experiment == "evaluate-credit"
    assert run.params == {"model": "credit:1", "data": ref, "part": "all"}
    assert run.metrics == pytest.approx(metrics)
    assert ws.runs.inputs(report.run_id) == [(ws.datasets.get(ref).record.id, "evaluate")]
    artifacts = {a.path for a in ws.runs.list_artifacts(report.run_id)}
    assert {"plots/roc.png", "plots/confusion_matrix.png"} <= artifacts


def test_the_test_part_reproduces_the_training_metrics(ws: Workspace) -> None:
    report = evaluate_registered(ws, "credit:1", "credit:1", part="test", plots=False)
    trained = ws.models.get("credit:1").metrics
    assert report.evaluation.metrics == pytest.approx(trained)
    assert report.rows == ws.datasets.get("credit:1").splits[0].counts["test"]
    with pytest.raises(InvalidInputError, match="part must be all, train, valid or test"):
        evaluate_registered(ws, "credit:1", "credit:1", part="holdout")


# -- the CLI -------------------------------------------------------------------------------------


def _fails(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_cli_evaluates_a_cleaned_version(ws: Workspace) -> None:
    recipe = {"steps": [{"fill_missing": {"columns": ["income"], "strategy": "median"}}]}
    cleaned = ws.datasets.clean("credit:1", recipe, name="credit_clean").ref
    runner = CliRunner()
    before = len(ws.runs.list("evaluate-credit"))

    shown = runner.invoke(app, ["evaluate", "credit@prod", "--data", cleaned])
    assert shown.exit_code == 0, shown.output
    assert f"evaluated credit:1 on {cleaned}" in shown.stdout
    assert "roc_auc" in shown.stdout and "600 rows" in shown.stdout

    result = runner.invoke(app, ["evaluate", "credit@prod", "--data", cleaned, "--json"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["model"] == "credit:1" and payload["data"] == cleaned
    assert payload["rows"] == 600
    assert 0.5 < payload["metrics"]["roc_auc"] <= 1.0
    assert ws.runs.get(payload["run_id"]).metrics == pytest.approx(payload["metrics"])
    assert len(ws.runs.list("evaluate-credit")) == before + 2


def test_cli_refuses_a_version_missing_a_feature(ws: Workspace, make_frame: MakeFrame) -> None:
    ref = _add(ws, make_frame(n=100).drop("city"), "credit_no_city")
    before = len(ws.runs.list("evaluate-credit"))
    message = _fails("evaluate", "credit@prod", "--data", ref)
    assert "missing input column" in message and "city" in message
    assert len(ws.runs.list("evaluate-credit")) == before


def test_cli_refuses_text_in_a_numeric_column(ws: Workspace, make_frame: MakeFrame) -> None:
    frame = make_frame(n=100).with_columns(age=pl.col("age").cast(pl.String) + " years")
    ref = _add(ws, frame, "credit_text_age")
    assert ws.datasets.get(ref).schema[0].type in ("string", "categorical")
    message = _fails("evaluate", "credit@prod", "--data", ref)
    assert "'age'" in message and "years" in message
