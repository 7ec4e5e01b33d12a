"""`fermion tune` as a user runs it: a study, its output, and one-line errors on bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from fermion.cli.main import app
from fermion.workspace import Workspace

FAST = ["-d", "credit", "-t", "status", "--folds", "3", "--pruner", "none"]
UNREACHABLE = "postgresql+psycopg://127.0.0.1:1/x"


def _table(n: int = 400, seed: int = 0) -> pl.DataFrame:
    """Integer, float (with nulls), categorical and boolean features; a good/bad target."""
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
            "status": np.where(score > 0.3, "good", "bad"),
        }
    )


def _ok(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def _one_line_error(runner: CliRunner, *args: str, env: dict[str, str] | None = None) -> str:
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def _registered(runner: CliRunner) -> list[dict[str, object]]:
    models: list[dict[str, object]] = json.loads(_ok(runner, "models", "list", "--json"))
    return models


def _space(folder: Path, text: str, name: str = "space.yaml") -> str:
    (folder / name).write_text(text, encoding="utf-8")
    return name


@pytest.fixture
def cli(workspace_dir: Path) -> CliRunner:
    runner = CliRunner()
    _ok(runner, "init")
    _table().write_csv(workspace_dir / "credit.csv")
    _ok(runner, "data", "add", "credit.csv", "--name", "credit")
    _space(workspace_dir, "params:\n  num_boost_round: 30\n")
    return runner


BAD_INPUT = {
    "unknown param": (
        ["--space", "bad.yaml"],
        "params:\n  nope: 3\n",
        ["bad.yaml", "unknown param 'nope'", "accepted: num_boost_round"],
    ),
    "empty range": (
        ["--space", "bad.yaml"],
        "params:\n  learning_rate: {type: float, low: 0.3, high: 0.1}\n",
        ["bad.yaml", "param 'learning_rate'", "empty range [0.3, 0.1]"],
    ),
    "metric of another task": (
        ["--metric", "rmse"],
        None,
        ["metric 'rmse' does not exist for a binary task", "roc_auc"],
    ),
    "no trials": (["--trials", "0"], None, ["--trials must be at least 1, not 0"]),
    "model size as the metric": (
        ["--metric", "size_kb,roc_auc"],
        None,
        ["the first objective must be a metric of the binary task, not 'size_kb'"],
    ),
    "objective named twice": (
        ["--metric", "roc_auc,size_kb,roc_auc"],
        None,
        ["objective 'roc_auc' is named twice"],
    ),
    "unknown objective": (
        ["--metric", "roc_auc,speed"],
        None,
        ["metric 'speed' does not exist for a binary task"],
    ),
    "pruning several objectives": (
        ["--metric", "roc_auc,latency_ms", "--pruner", "median"],
        None,
        ["the median pruner needs one objective", "--pruner none"],
    ),
    "unknown backend": (["--backend", "spark"], None, ["unknown backend 'spark'", "ray"]),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_one_line_and_registers_nothing(
    cli: CliRunner, workspace_dir: Path, case: str
) -> None:
    args, space, expected = BAD_INPUT[case]
    if space is not None:
        _space(workspace_dir, space, "bad.yaml")
    message = _one_line_error(cli, "tune", *FAST, "-n", "3", *args)
    for part in expected:
        assert part in message
    assert _registered(cli) == []
    with Workspace.open() as ws:
        assert ws.runs.list() == []


def test_an_unreachable_database_is_one_line(cli: CliRunner) -> None:
    env = {"FERMION_METADATA_URL": UNREACHABLE}
    message = _one_line_error(cli, "tune", *FAST, "-n", "3", env=env)
    assert "cannot open the metadata store" in message
    assert "127.0.0.1" in message
    assert _registered(cli) == []


def test_a_sampler_whose_package_is_missing_is_one_line(
    cli: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "cmaes", None)  # as if it were not installed
    message = _one_line_error(cli, "tune", *FAST, "-n", "3", "--sampler", "cmaes")
    assert "pip install cmaes" in message
    assert _registered(cli) == []
    with Workspace.open() as ws:
        assert ws.runs.list() == []


def test_a_study_reused_with_another_space_is_refused_until_new(
    cli: CliRunner, workspace_dir: Path
) -> None:
    out = _ok(cli, "tune", *FAST, "-n", "3", "--space", "space.yaml", "--alias", "tuned")
    assert "study credit-status-lightgbm: 3 complete, 0 pruned, 0 failed" in out
    assert "best roc_auc (cross-validated):" in out
    assert "registered credit:1, alias tuned" in out
    assert "tuning/optimization_history.png" in out
    assert len(_registered(cli)) == 1

    _space(workspace_dir, "params:\n  num_boost_round: 20\n", "other.yaml")
    message = _one_line_error(cli, "tune", *FAST, "-n", "4", "--space", "other.yaml")
    assert "study 'credit-status-lightgbm' was made for space=" in message
    assert "--new" in message
    models = _registered(cli)
    assert [m["num_versions"] for m in models] == [1]  # nothing more registered

    result = json.loads(
        _ok(cli, "tune", *FAST, "-n", "2", "--space", "other.yaml", "--new", "--json")
    )
    assert result["study"] == "credit-status-lightgbm"
    assert result["report"]["trials"] == {"complete": 2, "pruned": 0, "fail": 0}
    assert result["best_params"]["num_boost_round"] <= 20
    assert result["final"]["model"]["version"] == 2


def test_two_objectives_print_the_pareto_front_and_register_its_choice(cli: CliRunner) -> None:
    out = _ok(cli, "tune", *FAST, "-n", "6", "--space", "space.yaml", "--metric", "roc_auc,size_kb")
    assert "Pareto front" in out
    assert "the best size_kb on the Pareto front among the trials whose roc_auc is" in out
    assert "tuning/pareto_front.png" in out
    assert "registered credit:1" in out
    with Workspace.open() as ws:
        (study_run,) = ws.runs.list(filter="params.sampler = 'nsga2'")
        assert study_run.params["metric"] == "roc_auc,size_kb"
        assert study_run.params["pruner"] == "none"
        assert study_run.metrics["cv_size_kb"] > 0
