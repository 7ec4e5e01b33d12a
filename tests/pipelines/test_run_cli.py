"""`fermion run` as a user runs it: a real pipeline on small data, then cached; a failing
step (exit 1); a file that cannot run (exit 2, before anything runs)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fermion.cli.main import app

RULES = "rules:\n  - {column: age, range: {min: 18, max: 100}}\n"  # as the fixture writes


def fermion(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_a_pipeline_runs_then_is_cached_but_for_the_alias(project: Path) -> None:
    first = fermion("run")  # no workspace yet: made beside the file
    assert first.exit_code == 0, first.output
    assert (project / ".fermion").is_dir()
    assert "pipeline credit: ok (5 done)" in first.output
    for step in ("ingest", "validate", "split", "train", "promote"):
        assert step in first.output

    again = fermion("run", "credit", "--json")
    assert again.exit_code == 0, again.output
    answer = json.loads(again.output)
    states = {name: step["state"] for name, step in answer["steps"].items()}
    assert states == {
        "ingest": "cached",
        "validate": "cached",
        "split": "cached",
        "train": "cached",
        "promote": "done",  # moving an alias is never cached
    }
    assert answer["steps"]["train"]["refs"] == {"model": "credit:1"}
    shown_run = fermion("runs", "show", str(answer["run_id"]))  # the pipeline run, its steps
    assert shown_run.exit_code == 0 and "child runs (5)" in shown_run.output
    assert shown_run.output.count("cached") >= 4
    shown = fermion("models", "show", "credit@staging")
    assert shown.exit_code == 0 and "credit:1" in shown.output

    (project / "rules.yaml").write_text(RULES + "  - {rows: {min: 10}}\n")
    changed = json.loads(fermion("run", "--json").output)
    states = {name: step["state"] for name, step in changed["steps"].items()}
    # the rules changed: validate runs again; it passes on the same data, so what waits for
    # it reads nothing new and stays cached
    assert states == {
        "ingest": "cached",
        "validate": "done",
        "split": "cached",
        "train": "cached",
        "promote": "done",
    }


def test_a_failing_step_exits_1_naming_it_and_a_fix_resumes(project: Path) -> None:
    (project / "rules.yaml").write_text("rules:\n  - {column: age, range: {min: 99}}\n")
    failed = fermion("run")
    assert failed.exit_code == 1
    assert "validate failed:" in failed.output and "age" in failed.output
    assert "skipped" in failed.output  # split, train and promote wait for it
    (project / "rules.yaml").write_text(RULES)
    fixed = fermion("run", "--json")
    assert fixed.exit_code == 0, fixed.output
    states = {n: s["state"] for n, s in json.loads(fixed.output)["steps"].items()}
    assert states["ingest"] == "cached" and states["validate"] == "done"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("steps:\n  a:\n    kind: data.add\n   source: x\n", "fermion.yaml:4:"),
        ("steps:\n  a:\n    kind: nope\n", "fermion.yaml:3:5: step 'a' has unknown kind 'nope'"),
        (
            "steps:\n  a:\n    kind: data.split\n    dataset: b\n"
            "  b:\n    kind: data.split\n    dataset: a\n",
            "a -> b -> a",
        ),
    ],
)
def test_a_file_that_cannot_run_exits_2_before_anything_runs(
    project: Path, text: str, message: str
) -> None:
    (project / "fermion.yaml").write_text(text)
    result = fermion("run")
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (project / ".fermion").exists()


def test_a_malformed_gate_rule_exits_2_before_anything_runs(project: Path) -> None:
    text = (project / "fermion.yaml").read_text() + (
        "      gate:\n        kind: gate\n        model: train\n        rules: [roc_auc >= lots]\n"
    )
    (project / "fermion.yaml").write_text(text)
    result = fermion("run")
    assert result.exit_code == 2
    assert "fermion.yaml:" in result.output and "roc_auc >= lots" in result.output
    assert not (project / ".fermion").exists()


def test_a_deploy_step_writes_the_serving_files_on_every_run(project: Path) -> None:
    text = (project / "fermion.yaml").read_text() + (
        "      deploy:\n        kind: deploy\n        model: promote\n"
        "        serve_as: staging\n        target: docker\n"
    )
    (project / "fermion.yaml").write_text(text)
    first = fermion("run", "--json")
    assert first.exit_code == 0, first.output
    step = json.loads(first.output)["steps"]["deploy"]
    assert step["state"] == "done" and "credit@staging" in step["summary"]
    dockerfile = project / "deploy" / "credit" / "Dockerfile"
    assert "credit@staging" in dockerfile.read_text()
    again = json.loads(fermion("run", "--json").output)
    assert again["steps"]["deploy"]["state"] == "done"  # never cached: files are rewritten
    assert again["steps"]["train"]["state"] == "cached"


def test_a_gate_naming_a_metric_nothing_reports_exits_2(project: Path) -> None:
    text = (project / "fermion.yaml").read_text() + (
        "      gate:\n        kind: gate\n        model: train\n"
        "        rules: [roc_acu >= 0.8, valid_roc_auc >= 0.7, p99_ms <= 20]\n"
    )
    (project / "fermion.yaml").write_text(text)
    result = fermion("run")
    assert result.exit_code == 2
    assert "names metric 'roc_acu', which no step or model reports" in result.output
    assert not (project / ".fermion").exists()
