"""`fermion train` as a user runs it: output, --json, --output, and one-line errors on bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from fermion.cli.main import app
from fermion.entities import RunStatus
from fermion.workspace import Workspace

PLOTS = ["calibration.png", "confusion_matrix.png", "feature_importance.png", "pr.png", "roc.png"]
FAST = ["-m", "lightgbm", "-p", "num_boost_round=20 num_leaves=7"]


def _table(n: int, seed: int = 0) -> pl.DataFrame:
    """Integer, float (with nulls), categorical, boolean and date features; a good/bad target."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    income = rng.normal(50_000, 15_000, n).round(2)
    city = rng.choice(["paris", "lyon", "nice"], n)
    member = rng.random(n) < 0.5
    score = (age - 50) / 15 + (income - 50_000) / 15_000 + (city == "paris") + rng.normal(0, 0.5, n)
    return pl.DataFrame(
        {
            "age": age,
            "income": [None if i % 9 == 0 else float(v) for i, v in enumerate(income)],
            "city": city,
            "member": member,
            "start": pl.date_range(pl.date(2020, 1, 1), pl.date(2030, 1, 1), eager=True)[:n],
            "status": np.where(score > 0.3, "good", "bad"),
        }
    )


def _ok(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def _add(runner: CliRunner, folder: Path, name: str, frame: pl.DataFrame) -> None:
    frame.write_csv(folder / f"{name}.csv")
    _ok(runner, "data", "add", f"{name}.csv", "--name", name)


@pytest.fixture
def cli(workspace_dir: Path) -> CliRunner:
    runner = CliRunner()
    _ok(runner, "init")
    _add(runner, workspace_dir, "credit", _table(500))
    return runner


def test_train_json_and_output_folder(cli: CliRunner, workspace_dir: Path) -> None:
    args = ["train", "-d", "credit", "-t", "status", *FAST, "--alias", "prod"]
    payload = json.loads(_ok(cli, *args, "--json", "-o", "report"))
    result = payload["result"]
    assert payload["model_ref"] == "credit:1"
    assert result["model"]["name"] == "credit" and result["model"]["aliases"] == ["prod"]
    assert result["task"] == "binary" and 0.5 < result["metrics"]["roc_auc"] <= 1
    assert result["evaluated_on"] == "test"
    report = workspace_dir / "report"
    assert sorted(p.name for p in report.iterdir()) == sorted([*PLOTS, "model_card.md"])
    assert sorted(Path(p).name for p in payload["written"]) == sorted([*PLOTS, "model_card.md"])
    card = (report / "model_card.md").read_text(encoding="utf-8")
    assert "# Model card: credit:1" in card and "num_boost_round" in card
    with Workspace.open() as ws:
        run = ws.runs.get(result["run_id"])
        assert run.status == RunStatus.FINISHED and run.tags["model_version"] == "credit:1"
        assert ws.models.get("credit@prod").run_id == result["run_id"]


def test_no_register_tracks_only_and_prints_a_summary(cli: CliRunner) -> None:
    out = _ok(cli, "train", "-d", "credit", "-t", "status", *FAST, "--no-register")
    assert "trained lightgbm on credit (binary, target status): run 1" in out
    assert "registered" not in out
    assert "test metrics" in out and "roc_auc" in out and "roc.png" in out
    with Workspace.open() as ws:
        assert ws.models.list() == []
        run = ws.runs.get(1)
        assert run.status == RunStatus.FINISHED and "roc_auc" in run.metrics
        assert "model_version" not in run.tags


# -- bad input: one line on stderr, exit 2, the run failed with the error, nothing registered ----


def _constant(folder: Path, runner: CliRunner, mp: pytest.MonkeyPatch) -> list[str]:
    _add(runner, folder, "single", _table(60).with_columns(status=pl.lit("good")))
    return ["-d", "single"]


def _null_target(folder: Path, runner: CliRunner, mp: pytest.MonkeyPatch) -> list[str]:
    frame = _table(60)
    status = frame.get_column("status").to_list()
    status[5] = None
    _add(runner, folder, "holes", frame.with_columns(status=pl.Series(status, dtype=pl.String)))
    return ["-d", "holes"]


def _no_lightgbm(folder: Path, runner: CliRunner, mp: pytest.MonkeyPatch) -> list[str]:
    mp.setitem(sys.modules, "lightgbm", None)
    return []


def _empty_train(folder: Path, runner: CliRunner, mp: pytest.MonkeyPatch) -> list[str]:
    _ok(runner, "data", "split", "credit", "--train", "0", "--valid", "0.5", "--test", "0.5")
    return []


BAD_INPUTS = {
    # name: (setup, extra args, what the one-line error says)
    "unknown target": (None, ["-t", "statu"], "unknown target column 'statu'"),
    "one class": (_constant, [], "single class"),
    "missing library": (_no_lightgbm, [], "pip install 'fermion[lightgbm]'"),
    "param of the wrong type": (None, ["-p", "num_leaves=abc"], "param 'num_leaves' must be"),
    "empty training split": (_empty_train, [], "training split of credit:1 is empty"),
    "null in the target": (_null_target, [], "1 missing value (null or NaN)"),
}


CASES = list(BAD_INPUTS)


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_fails_the_run(
    cli: CliRunner, workspace_dir: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    setup, extra, message = BAD_INPUTS[case]
    args = ["train", "-d", "credit", "-t", "status", "-m", "lightgbm", "--alias", "prod"]
    if setup is not None:
        args += setup(workspace_dir, cli, monkeypatch)
    result = cli.invoke(app, args + extra)

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    with Workspace.open() as ws:
        (run,) = ws.runs.list()
        assert run.status == RunStatus.FAILED
        assert run.error is not None and message in run.error
        assert ws.models.list() == []


def test_errors_before_any_run(cli: CliRunner) -> None:
    for args, message in [
        (["-m", "catboost"], "unknown model family 'catboost'"),
        (["--task", "ranking"], "task must be binary, multiclass or regression"),
        (["-p", "num_leaves"], "params are KEY=VALUE"),
        (["--alias", "9lives"], "invalid alias '9lives'"),
    ]:
        result = cli.invoke(app, ["train", "-d", "credit", "-t", "status", *args])
        assert result.exit_code == 2, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], result.stderr
    missing = cli.invoke(app, ["train", "-d", "ghost", "-t", "status"])
    assert missing.exit_code == 2 and "'ghost'" in missing.stderr
    with Workspace.open() as ws:
        assert ws.runs.list() == [] and ws.models.list() == []
