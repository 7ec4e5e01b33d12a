"""`fermion runs ...` as a user runs it: tables, --json, highlighting, one-line errors."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fermion.cli.main import app
from fermion.cli.runs_render import greater_is_better
from fermion.workspace import Workspace

WIDE = {"COLUMNS": "200"}
BOLD_YELLOW = "\x1b[1;33m"


@pytest.fixture
def ws(workspace: Any) -> Workspace:
    assert isinstance(workspace, Workspace)
    return workspace


@pytest.fixture
def runs(ws: Workspace, workspace_dir: Path) -> dict[str, int]:
    """Two finished runs, one failed run and one child run in experiment `credit`, one run in
    `churn`; the first run logged an artifact, a dataset input and a child."""
    (workspace_dir / "credit.csv").write_text("id,age\n1,25\n2,40\n", encoding="utf-8")
    dataset = ws.datasets.add(workspace_dir / "credit.csv", name="credit")
    with ws.runs.start("baseline", experiment="credit") as base:
        base.log_params({"model": "lightgbm", "num_leaves": 31, "learning_rate": 0.05})
        for step in range(3):
            base.log_metric("loss", 1.0 / (step + 1))
        base.log_metrics({"roc_auc": 0.81, "accuracy": 0.75})
        base.set_tag("owner", "ana")
        base.log_text("hello", "notes/readme.txt")
        base.log_input(dataset, "train")
        with base.start_child("trial-0") as child:
            child.log_param("num_leaves", 15)
    with ws.runs.start("tuned", experiment="credit") as tuned:
        tuned.log_params({"model": "lightgbm", "num_leaves": 63, "learning_rate": 0.05})
        tuned.log_metrics({"roc_auc": 0.86, "accuracy": 0.75, "loss": 0.4})
    with pytest.raises(ValueError), ws.runs.start("broken", experiment="credit") as broken:
        broken.log_param("model", "xgboost")
        raise ValueError("boom in feature 'age'")
    with ws.runs.start("other", experiment="churn") as other:
        other.log_metric("rmse", 2.5)
    return {
        "baseline": base.id,
        "child": child.id,
        "tuned": tuned.id,
        "broken": broken.id,
        "other": other.id,
    }


def _ok(*args: str, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def _json(*args: str) -> Any:
    return json.loads(_ok(*args, "--json"))


def _fails(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def _row(text: str, first_cell: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"│ {first_cell} "))


def test_list_shows_every_run_with_params_and_metrics(runs: dict[str, int]) -> None:
    shown = _ok("runs", "list", env=WIDE)
    for name in ("baseline", "trial-0", "tuned", "broken", "other"):
        assert name in shown
    for column in ("experiment", "status", "started (UTC)", "duration", "parent"):
        assert column in shown
    for column in ("model", "num_leaves", "learning_rate", "roc_auc", "accuracy", "loss", "rmse"):
        assert column in shown
    assert "failed" in _row(shown, str(runs["broken"]))
    assert "0.86" in _row(shown, str(runs["tuned"]))
    child = _row(shown, str(runs["child"])).split("│")
    assert str(runs["baseline"]) in [cell.strip() for cell in child]


def test_list_json_filter_sort_limit_and_experiment(runs: dict[str, int]) -> None:
    listed = _json("runs", "list")
    assert [r["id"] for r in listed] == sorted(runs.values(), reverse=True)
    baseline = next(r for r in listed if r["id"] == runs["baseline"])
    assert baseline["params"]["model"] == "lightgbm"
    assert baseline["metrics"] == {"accuracy": 0.75, "loss": 1 / 3, "roc_auc": 0.81}
    assert baseline["status"] == "finished" and baseline["environment"]["python"]

    best = _json("runs", "list", "--sort", "metrics.roc_auc", "--limit", "1")
    assert [r["id"] for r in best] == [runs["tuned"]]
    lowest_loss = _json("runs", "list", "--sort", "metrics.loss asc")
    assert [r["id"] for r in lowest_loss][:2] == [runs["baseline"], runs["tuned"]]
    lightgbm = _json("runs", "list", "--filter", "params.model = 'lightgbm'")
    assert {r["id"] for r in lightgbm} == {runs["baseline"], runs["tuned"]}
    good = _json("runs", "list", "--filter", "metrics.roc_auc > 0.8 and params.num_leaves >= 40")
    assert [r["id"] for r in good] == [runs["tuned"]]
    churn = _json("runs", "list", "--experiment", "churn")
    assert [r["id"] for r in churn] == [runs["other"]]


def test_list_puts_the_sorted_metric_first(runs: dict[str, int]) -> None:
    shown = _ok("runs", "list", "-e", "credit", "--sort", "metrics.roc_auc", env=WIDE)
    header = next(line for line in shown.splitlines() if "roc_auc" in line)
    assert header.index("roc_auc") < header.index("accuracy") < header.index("loss")
    assert "experiment credit" in shown  # one experiment: named once, above the table
    rows = [line for line in shown.splitlines() if line.startswith("│ ")]
    assert rows[0].startswith(f"│ {runs['tuned']} ")


def test_a_narrow_terminal_shows_fewer_columns_and_says_so(runs: dict[str, int]) -> None:
    shown = _ok("runs", "list", "--sort", "metrics.roc_auc", env={"COLUMNS": "90"})
    assert "roc_auc" in shown
    assert "not shown" in shown and "--json" in shown
    assert max(len(line) for line in shown.splitlines()) <= 90


def test_empty_list(ws: Workspace) -> None:
    assert "no runs yet" in _ok("runs", "list")
    assert _json("runs", "list") == []
    assert "no runs match" in _ok("runs", "list", "--experiment", "nope")


def test_show_a_run_in_full(runs: dict[str, int]) -> None:
    shown = _ok("runs", "show", str(runs["baseline"]), env=WIDE)
    assert f"run {runs['baseline']}" in shown and "baseline" in shown and "finished" in shown
    for text in ("experiment", "credit", "python", "packages", "numpy", "host"):
        assert text in shown
    for text in ("learning_rate", "lightgbm", "roc_auc", "0.81", "owner", "ana"):
        assert text in shown
    assert "notes/readme.txt" in shown and "5 B" in shown
    assert "credit:1" in _row(shown, "credit:1") and "train" in _row(shown, "credit:1")
    assert "child runs (1)" in shown and "trial-0" in shown


def test_show_json(runs: dict[str, int]) -> None:
    shown = _json("runs", "show", str(runs["baseline"]))
    assert shown["run"]["id"] == runs["baseline"]
    assert shown["run"]["tags"] == {"owner": "ana"}
    assert shown["artifacts"][0]["path"] == "notes/readme.txt"
    assert shown["artifacts"][0]["size_bytes"] == 5
    assert shown["inputs"] == [
        {
            "dataset": "credit:1",
            "dataset_version_id": shown["inputs"][0]["dataset_version_id"],
            "context": "train",
        }
    ]
    assert [c["id"] for c in shown["children"]] == [runs["child"]]
    assert _json("runs", "show", str(runs["child"]))["run"]["parent_id"] == runs["baseline"]


def test_show_a_failed_run_ends_with_its_error(runs: dict[str, int]) -> None:
    shown = _ok("runs", "show", str(runs["broken"]), env=WIDE)
    assert "failed" in shown
    assert shown.rstrip().splitlines()[-1] == "ValueError: boom in feature 'age'"


def test_show_names_the_git_commit(ws: Workspace, workspace_dir: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], cwd=workspace_dir, check=True)
    subprocess.run(
        [*git, "commit", "-q", "--allow-empty", "-m", "x"], cwd=workspace_dir, check=True
    )
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=workspace_dir, capture_output=True, text=True, check=True
    ).stdout.strip()
    with ws.runs.start("versioned") as run:
        pass
    shown = _ok("runs", "show", str(run.id), env=WIDE)
    assert f"{commit[:12]} (clean)" in shown


def test_compare_side_by_side(runs: dict[str, int]) -> None:
    ids = [str(runs["baseline"]), str(runs["tuned"])]
    shown = _ok("runs", "compare", *ids, env=WIDE)
    assert "baseline" in shown and "tuned" in shown
    assert "31" in _row(shown, "num_leaves") and "63" in _row(shown, "num_leaves")
    assert "0.86 ★" in _row(shown, "roc_auc") and "0.81 ★" not in _row(shown, "roc_auc")
    assert "0.333333 ★" in _row(shown, "loss") and "0.4 ★" not in _row(shown, "loss")
    assert "★" not in _row(shown, "accuracy")  # the same in both runs


def test_compare_highlights_rows_that_differ(runs: dict[str, int]) -> None:
    ids = [str(runs["baseline"]), str(runs["tuned"])]
    shown = _ok("runs", "compare", *ids, env={**WIDE, "FORCE_COLOR": "1", "TERM": "xterm"})
    lines = shown.splitlines()

    def line(key: str) -> str:
        return next(text for text in lines if key in text)

    assert BOLD_YELLOW in line("num_leaves") and BOLD_YELLOW in line("roc_auc")
    assert BOLD_YELLOW not in line("learning_rate") and BOLD_YELLOW not in line("accuracy")


def test_compare_json(runs: dict[str, int]) -> None:
    ids = [runs["baseline"], runs["tuned"], runs["broken"]]
    compared = _json("runs", "compare", *map(str, ids))
    assert [r["id"] for r in compared["runs"]] == ids
    assert compared["params"]["model"] == ["lightgbm", "lightgbm", "xgboost"]
    assert compared["metrics"]["roc_auc"] == [0.81, 0.86, None]
    assert compared["differing_params"] == ["learning_rate", "model", "num_leaves"]
    assert compared["best"]["roc_auc"] == [runs["tuned"]]
    assert compared["best"]["loss"] == [runs["baseline"]]  # lower is better
    assert compared["best"]["accuracy"] == [runs["baseline"], runs["tuned"]]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["runs", "show", "999"], "no run with id 999"),
        (["runs", "show", "abc"], "'abc'"),
        (["runs", "compare", "1", "999"], "no run with id 999"),
        (["runs", "compare", "1"], "at least two"),
        (["runs", "list", "--filter", "params.model ~ 'x'"], "cannot parse filter"),
        (["runs", "list", "--filter", "colour = 'red'"], "unknown run field 'colour'"),
        (["runs", "list", "--sort", "metrics.auc sideways"], "asc or desc"),
        (["runs", "list", "--sort", "nope"], "unknown run field 'nope'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    runs: dict[str, int], args: list[str], expected: str
) -> None:
    args = [str(runs["baseline"]) if a == "1" else a for a in args]
    assert expected in _fails(*args)


@pytest.mark.parametrize(
    ("metric", "greater"),
    [
        ("roc_auc", True),
        ("log_loss", False),
        ("rmse", False),
        ("valid.r2", True),
        ("val_accuracy", True),
        ("train/loss", False),
        ("f1", True),
        ("mean_abs_error", False),
        ("epoch_seconds", None),
    ],
)
def test_which_metric_value_is_best(metric: str, greater: bool | None) -> None:
    assert greater_is_better(metric) is greater
