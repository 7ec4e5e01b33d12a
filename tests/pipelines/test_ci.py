"""CI mode: the Markdown and JUnit reports of a pipeline run, `fermion run --ci` as a CI job
runs it (files, $GITHUB_STEP_SUMMARY, exit codes), and `fermion ci init --github`."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from fermion.cli.main import app
from fermion.pipelines.ci import junit_xml, markdown_summary
from fermion.pipelines.runner import PipelineResult, StepState
from fermion.pipelines.types import Check, StepOutput

RULES = "rules:\n  - {column: age, range: {min: 18, max: 100}}\n"  # as the fixture writes
FAILING_RULES = "rules:\n  - {column: age, range: {min: 99}}\n"


def gated_result() -> PipelineResult:
    """A run whose gate failed one of its two rules, so that promote was skipped."""
    gate_checks = (
        Check("roc_auc >= 0.80", passed=True, value=0.8312, expected=">= 0.80"),
        Check(
            "latency_ms < 5 & size <= 10",
            passed=False,
            value=7.25,
            expected="< 5",
            detail="p95 <latency> was 7.25 ms",
        ),
    )
    return PipelineResult(
        "credit",
        run_id=12,
        seconds=4.5,
        steps={
            "ingest": StepState(
                "ingest", "data.add", "cached", 0.25, StepOutput(summary="credit:1, 300 rows")
            ),
            "train": StepState("train", "train", "done", 3.0, StepOutput(summary="credit:2")),
            "gate": StepState(
                "gate", "gate", "failed", 1.0, error="1 of 2 rules failed", checks=gate_checks
            ),
            "promote": StepState("promote", "promote", "skipped", error="gate did not finish"),
        },
    )


def test_the_markdown_summary_gives_the_verdict_each_step_and_each_check() -> None:
    text = markdown_summary(gated_result())
    lines = text.splitlines()
    assert lines[0].startswith("## ") and "`credit`" in lines[0] and "failed" in lines[0]
    assert "4 steps in 4.5 s" in text
    steps_part, checks_part = text.split("### Checks")
    rows = {line.split("|")[1].strip(): line for line in steps_part.splitlines() if "| " in line}
    assert "cached" in rows["ingest"] and "0.2 s" in rows["ingest"]
    assert "credit:1, 300 rows" in rows["ingest"]
    assert "failed" in rows["gate"] and "1 of 2 rules failed" in rows["gate"]
    assert "skipped" in rows["promote"] and "gate did not finish" in rows["promote"]
    checks = [line for line in checks_part.splitlines() if line.startswith("| gate | ")]
    assert len(checks) == 2
    assert "roc_auc >= 0.80" in checks[0] and "0.8312" in checks[0] and "pass" in checks[0]
    assert "7.25" in checks[1] and "< 5" in checks[1] and "fail" in checks[1]
    # a tag-like text would vanish on GitHub; every table row keeps its column count
    assert "&lt;latency>" in checks[1]
    assert {line.count(" | ") for line in checks} == {5}


def test_a_passing_run_says_passed_and_has_no_checks_table() -> None:
    result = PipelineResult(
        "credit", 3, {"ingest": StepState("ingest", "data.add", "done", 1.0)}, seconds=1.0
    )
    text = markdown_summary(result)
    assert "passed" in text.splitlines()[0]
    assert "Checks" not in text


def test_a_pipe_or_newline_in_an_error_stays_in_its_cell() -> None:
    result = PipelineResult(
        "p",
        1,
        {"a": StepState("a", "python", "failed", 0.1, error="bad | value\nsecond line")},
    )
    row = next(line for line in markdown_summary(result).splitlines() if line.startswith("| a "))
    assert r"bad \| value second line" in row


def test_junit_has_a_case_per_check_and_per_step_without_checks() -> None:
    text = junit_xml(gated_result())
    root = ET.fromstring(text)
    suites = root.findall("testsuite") if root.tag == "testsuites" else [root]
    assert len(suites) == 1
    suite = suites[0]
    assert suite.get("name") == "fermion pipeline credit"
    cases = suite.findall("testcase")
    assert [(c.get("classname"), c.get("name")) for c in cases] == [
        ("pipeline.ingest", "ingest"),
        ("pipeline.train", "train"),
        ("pipeline.gate", "roc_auc >= 0.80"),
        ("pipeline.gate", "latency_ms < 5 & size <= 10"),  # escaped, then parsed back
        ("pipeline.promote", "promote"),
    ]
    assert suite.get("tests") == "5"
    assert suite.get("failures") == "1"
    assert suite.get("skipped") == "1"
    assert float(suite.get("time", "")) == pytest.approx(4.5)
    failure = cases[3].find("failure")
    assert failure is not None
    assert "7.25" in failure.get("message", "") and "< 5" in failure.get("message", "")
    assert "p95 <latency> was 7.25 ms" in (failure.text or "")
    assert cases[2].find("failure") is None
    assert cases[4].find("skipped") is not None
    assert "&lt;" in text and "&amp;" in text  # the rule texts were escaped, not dropped


def test_junit_fails_a_failed_step_whose_checks_all_held_and_drops_control_characters() -> None:
    result = PipelineResult(
        "p",
        1,
        {
            "gate": StepState(
                "gate",
                "gate",
                "failed",
                0.5,
                error="\x1b[31mmodel credit:9 not found\x1b[0m",
                checks=(Check("rows >= 10", passed=True, value=300.0, expected=">= 10"),),
            )
        },
    )
    suite = ET.fromstring(junit_xml(result)).find("testsuite")
    assert suite is not None
    assert suite.get("tests") == "2" and suite.get("failures") == "1"
    failure = suite.findall("testcase")[1].find("failure")
    assert failure is not None and "model credit:9 not found" in failure.get("message", "")


# `fermion run --ci` and `fermion ci init`, as a CI job and a user run them


def fermion(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_run_ci_writes_both_reports_and_appends_to_the_step_summary(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    step_summary = tmp_path / "step-summary.md"
    step_summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    result = fermion("run", "--ci")
    assert result.exit_code == 0, result.output
    for step in ("ingest", "validate", "split", "train", "promote"):
        assert f"done    {step} (" in result.output  # a plain line as each finished
    summary = (project / "fermion-summary.md").read_text()
    assert "fermion pipeline `credit`: passed" in summary
    assert summary in result.output  # the Markdown on stdout too
    assert step_summary.read_text().startswith("earlier step\n" + summary)
    suite = ET.parse(project / "fermion-junit.xml").getroot().find("testsuite")
    assert suite is not None
    assert suite.get("tests") == "5" and suite.get("failures") == "0"
    assert "\x1b" not in result.output  # no live view, no colour codes


def test_run_ci_exits_1_with_a_junit_failure_when_a_step_fails(project: Path) -> None:
    (project / "rules.yaml").write_text(FAILING_RULES)
    unwritable = fermion("run", "--ci", "--summary", "out/s.md", "--junit", "report.xml")
    # no folder out/: a report that cannot be written is an error the user fixes (exit 2)
    assert unwritable.exit_code == 2 and "out/s.md" in unwritable.output

    (project / "out").mkdir()
    result = fermion("run", "--ci", "--summary", "out/s.md", "--junit", "report.xml")
    assert result.exit_code == 1, result.output
    assert "failed  validate (data.validate)" in result.output
    assert "skipped split" in result.output
    assert "failed" in (project / "out" / "s.md").read_text().splitlines()[0]
    assert not (project / "fermion-summary.md").exists()
    suite = ET.parse(project / "report.xml").getroot().find("testsuite")
    assert suite is not None
    cases = {case.get("name"): case for case in suite.findall("testcase")}
    failure = cases["validate"].find("failure")
    assert failure is not None and "age" in failure.get("message", "")
    assert cases["train"].find("skipped") is not None
    assert suite.get("failures") == "1" and suite.get("skipped") == "3"  # split, train, promote


def test_report_paths_without_ci_are_refused(project: Path) -> None:
    result = fermion("run", "--junit", "x.xml")
    assert result.exit_code == 2 and "--ci" in result.output
    assert not (project / ".fermion").exists()


def test_ci_init_github_writes_a_workflow_once_unless_forced(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (project / "pyproject.toml").write_text("[project]\nname = 'credit'\n")
    (project / "sub").mkdir()
    monkeypatch.chdir(project / "sub")  # fermion.yaml is found here or above, as by `run`
    written = fermion("ci", "init", "--github", "--pipeline", "credit")
    assert written.exit_code == 0, written.output
    workflow_file = project / ".github" / "workflows" / "fermion.yml"
    workflow = yaml.safe_load(workflow_file.read_text())
    assert workflow["on"] == ["push", "pull_request"]
    steps = workflow["jobs"]["pipeline"]["steps"]
    runs = [step.get("run") for step in steps]
    assert "pip install -e ." in runs and "fermion run credit --ci" in runs
    python = next(s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python"))
    assert python["with"]["python-version"] == "3.11"
    upload = next(s for s in steps if str(s.get("uses", "")).startswith("actions/upload-artifact"))
    assert upload["if"] == "always()"
    assert {"fermion-junit.xml", "fermion-summary.md"} <= set(upload["with"]["path"].split())

    workflow_file.write_text("mine\n")
    again = fermion("ci", "init", "--github")
    assert again.exit_code == 2 and "--force" in again.output
    assert workflow_file.read_text() == "mine\n"

    (project / "pyproject.toml").unlink()
    forced = fermion("ci", "init", "--github", "--force")
    assert forced.exit_code == 0, forced.output
    steps = yaml.safe_load(workflow_file.read_text())["jobs"]["pipeline"]["steps"]
    runs = [step.get("run") for step in steps]
    assert "pip install fermion" in runs and "fermion run --ci" in runs


def test_ci_init_writes_at_the_repository_root_for_a_project_in_a_sub_folder(
    project: Path, tmp_path: Path
) -> None:
    (tmp_path / ".git").mkdir()  # the repository is tmp_path; the project is its "project"
    result = fermion("ci", "init", "--github")
    assert result.exit_code == 0, result.output
    assert not (project / ".github").exists()  # GitHub would never read it there
    workflow = yaml.safe_load((tmp_path / ".github" / "workflows" / "fermion.yml").read_text())
    job = workflow["jobs"]["pipeline"]
    assert job["defaults"]["run"]["working-directory"] == "project"
    upload = next(s for s in job["steps"] if str(s.get("uses", "")).startswith("actions/upload"))
    assert set(upload["with"]["path"].split()) == {
        "project/fermion-junit.xml",
        "project/fermion-summary.md",
    }


def test_ci_init_refuses_an_unknown_pipeline(project: Path) -> None:
    result = fermion("ci", "init", "--github", "--pipeline", "nope")
    assert result.exit_code == 2 and "nope" in result.output
    assert not (project / ".github").exists()
