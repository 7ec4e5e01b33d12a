"""The `gate` step kind on tiny real data: thresholds, comparisons with an alias's model on the
same rows, the rules' grammar; and, through `fermion run`, a failing gate stopping the
promotion and a passing one leaving its decision for `fermion models show`."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fermion.cli.main import app
from fermion.errors import InvalidInputError
from fermion.pipelines.kinds import KINDS
from fermion.pipelines.types import (
    DATASET,
    MODEL,
    ChecksFailedError,
    StepContext,
    StepOutput,
    StepSpec,
)
from fermion.workspace import Workspace


def gate(
    ws: Workspace,
    root: Path,
    rules: list[str],
    model: str = "credit:1",
    needed: Mapping[str, StepOutput] | None = None,
    **config: Any,
) -> StepOutput:
    """Run a gate on `model` (a literal ref) after the steps `needed` gave these outputs."""
    spec = StepSpec("gate", "gate", {MODEL: model, "rules": rules, **config})
    context = StepContext(ws, root, spec, {}, dict(needed or {}), lambda line: None)
    return KINDS["gate"].run(context)


def step(kind: str, config: Mapping[str, Any], ws: Workspace, root: Path, **inputs: Any) -> Any:
    spec = StepSpec(
        "up",
        kind,
        {**config, **{k: f"up_{k}" for k in inputs}},
        inputs={k: f"up_{k}" for k in inputs},
    )
    return KINDS[kind].run(StepContext(ws, root, spec, inputs, {}, lambda line: None))


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory, credit_csv: Any) -> Iterator[Any]:
    """`credit:1` learns from income and age; `credit:2`, from city alone, barely learns."""
    root = tmp_path_factory.mktemp("gate")
    credit_csv(root / "credit.csv", rows=400)
    with Workspace.init(root) as ws:
        data = step("data.add", {"source": "credit.csv", "name": "credit"}, ws, root)
        split = step("data.split", {"stratify": "status", "seed": 1}, ws, root, dataset=data)
        train = {"target": "status", "family": "logistic", "name": "credit"}
        step("train", train, ws, root, dataset=split)
        step("train", {**train, "exclude": ["income", "age"]}, ws, root, dataset=split)
        evaluated = step("evaluate", {}, ws, root, model=model_output("credit:1"))
        yield ws, root, evaluated


def model_output(ref: str) -> StepOutput:
    return StepOutput(refs={MODEL: ref})


def test_the_gate_kind_is_registered_and_never_cached() -> None:
    kind = KINDS["gate"]
    assert not kind.cacheable
    assert {MODEL, DATASET, "rules"} <= kind.keys


def test_thresholds_that_hold_give_the_model_on_with_the_measured_values(models: Any) -> None:
    ws, root, evaluated = models
    auc = evaluated.metrics["roc_auc"]
    output = gate(ws, root, ["roc_auc >= 0.6", "accuracy>0.5"], needed={"evaluate": evaluated})
    assert output.refs == {MODEL: "credit:1"}
    assert output.hashes == {MODEL: ws.models.get("credit:1").content_hash}
    assert output.summary == "credit:1: 2/2 rules hold"
    assert output.metrics == {"roc_auc": auc, "accuracy": evaluated.metrics["accuracy"]}
    first = output.checks[0]
    assert (first.name, first.passed, first.value, first.expected) == (
        "roc_auc >= 0.6",
        True,
        auc,
        ">= 0.6",
    )
    assert first.detail == "from step evaluate"


def test_a_failing_threshold_fails_the_gate_naming_the_rule_and_its_value(models: Any) -> None:
    ws, root, evaluated = models
    auc = evaluated.metrics["roc_auc"]
    with pytest.raises(ChecksFailedError) as failed:
        gate(ws, root, ["roc_auc >= 0.6", "roc_auc > 0.999"], needed={"evaluate": evaluated})
    assert str(failed.value) == f"1 of 2 gate rules failed: roc_auc > 0.999 ({auc:.4g})"
    assert [check.passed for check in failed.value.checks] == [True, False]
    assert failed.value.checks[1].value == auc


def test_without_a_needed_step_a_metric_is_the_versions_registered_one(models: Any) -> None:
    ws, root, _ = models
    registered = ws.models.get("credit:1").metrics["roc_auc"]
    output = gate(ws, root, ["roc_auc >= 0"])
    assert output.checks[0].value == registered
    assert output.checks[0].detail == "registered with credit:1"


def test_an_unknown_metric_fails_listing_those_available(models: Any) -> None:
    ws, root, evaluated = models
    with pytest.raises(ChecksFailedError) as failed:
        gate(ws, root, ["p99_ms <= 20"], needed={"evaluate": evaluated})
    (check,) = failed.value.checks
    assert not check.passed and check.value is None
    assert check.detail.startswith("no metric 'p99_ms' (available: ")
    assert "roc_auc" in check.detail
    assert "p99_ms <= 20 (no metric 'p99_ms'" in str(failed.value)


@pytest.mark.parametrize(
    "rule",
    [
        "roc_auc => 0.8",
        "roc_auc >= high",
        "roc_auc >= production.",
        "roc_auc >= production.roc_auc * 2",
        "roc_auc >= 1.2.3",
        "validation ok",
        ">= 0.8",
    ],
)
def test_a_malformed_rule_is_refused_naming_it(models: Any, rule: str) -> None:
    ws, root, _ = models
    with pytest.raises(InvalidInputError, match="gate rule") as refused:
        gate(ws, root, ["roc_auc >= 0.5", rule])
    assert repr(rule) in str(refused.value)
    assert not isinstance(refused.value, ChecksFailedError)


def test_rules_must_be_a_list_of_text(models: Any) -> None:
    ws, root, _ = models
    with pytest.raises(InvalidInputError, match="rules must be a non-empty list"):
        gate(ws, root, "roc_auc >= 0.5")  # type: ignore[arg-type]


def test_a_first_promotion_passes_a_comparison_with_an_alias(models: Any) -> None:
    ws, root, _ = models
    output = gate(ws, root, ["roc_auc >= nobody.roc_auc + 0.005"])
    assert output.checks[0].passed
    assert output.checks[0].detail == "no nobody model yet"


def test_a_worse_candidate_fails_against_the_alias_scored_on_the_same_rows(models: Any) -> None:
    ws, root, evaluated = models
    ws.models.set_alias("credit", "champion", 1)
    with pytest.raises(ChecksFailedError) as failed:
        gate(ws, root, ["roc_auc >= champion.roc_auc - 0.01"], model="credit:2")
    (check,) = failed.value.checks
    champion = evaluated.metrics["roc_auc"]  # both scored on credit:1's test part
    assert check.expected == f">= {champion - 0.01:.4g}"
    assert check.value is not None and check.value < champion - 0.01
    assert "credit@champion is credit:1" in check.detail and "credit:1 (test)" in check.detail

    better = gate(ws, root, ["roc_auc >= champion.roc_auc + 0.01"], model="credit:1")
    assert better.checks[0].detail == "credit@champion is already credit:1"
    ws.models.set_alias("credit", "champion", 2)
    better = gate(ws, root, ["roc_auc > champion.roc_auc + 0.01"], model="credit:1")
    assert better.checks[0].passed and better.metrics["roc_auc"] == champion
    assert better.metrics["champion_roc_auc"] < champion


def test_validation_passed_needs_a_validation_step(models: Any) -> None:
    ws, root, _ = models
    validated = StepOutput(metrics={"rules_passed": 3.0, "rules_failed": 0.0})
    output = gate(ws, root, ["validation passed"], needed={"validate": validated})
    assert output.checks[0].detail == "validate passed"
    with pytest.raises(ChecksFailedError) as failed:
        gate(ws, root, ["validation passed"])
    assert "needs no data.validate step" in failed.value.checks[0].detail


def test_optimized_within_drop_needs_a_registered_variant(models: Any) -> None:
    ws, root, _ = models
    kept = StepOutput(metrics={"variants_passed": 1.0, "metric_drop": 0.001, "p99_ms": 2.0})
    output = gate(ws, root, ["optimized within drop", "p99_ms <= 20"], needed={"optimize": kept})
    assert [check.passed for check in output.checks] == [True, True]
    none = StepOutput(metrics={"variants_passed": 0.0})
    with pytest.raises(ChecksFailedError, match="optimized within drop"):
        gate(ws, root, ["optimized within drop"], needed={"optimize": none})


# -- through fermion run ---------------------------------------------------------------------

PIPELINE = """\
pipelines:
  credit:
    steps:
      ingest:
        kind: data.add
        source: credit.csv
        name: credit
      split:
        kind: data.split
        dataset: ingest
        stratify: status
        seed: 3
      train:
        kind: train
        dataset: split
        target: status
        family: logistic
        name: credit
      evaluate:
        kind: evaluate
        model: train
      gate:
        kind: gate
        model: train
        needs: [evaluate]
        rules:
          - roc_auc >= {threshold}
          - roc_auc >= production.roc_auc
      promote:
        kind: promote
        model: gate
        alias: production
"""


@pytest.fixture
def project(workspace_dir: Path, credit_csv: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    credit_csv(workspace_dir / "credit.csv")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("USER", "alice")
    monkeypatch.delenv("GITHUB_ACTOR", raising=False)
    return workspace_dir


def fermion(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def test_a_failing_gate_skips_the_promotion_and_exits_1_naming_the_rule(project: Path) -> None:
    (project / "fermion.yaml").write_text(PIPELINE.format(threshold="0.999"))
    result = fermion("run")
    assert result.exit_code == 1, result.output
    assert "gate failed: 1 of 2 gate rules failed: roc_auc >= 0.999 (" in result.output
    answer = json.loads(fermion("run", "--json").output)
    assert answer["steps"]["gate"]["state"] == "failed"
    assert answer["steps"]["promote"]["state"] == "skipped"
    shown = fermion("models", "show", "credit@production")
    assert shown.exit_code != 0  # never promoted


def test_a_passing_gate_promotes_and_models_show_tells_why(project: Path) -> None:
    (project / "fermion.yaml").write_text(PIPELINE.format(threshold="0.6"))
    result = fermion("run")
    assert result.exit_code == 0, result.output
    assert "2/2 rules hold" in result.output
    shown = fermion("models", "show", "credit@production")
    assert shown.exit_code == 0, shown.output
    assert "promoted to production by fermion run (pipeline credit, alice) on " in shown.output
    assert "roc_auc >= 0.6 (0." in shown.output and ") ok; " in shown.output
    assert "roc_auc >= production.roc_auc ok" in shown.output  # first promotion: nothing to beat

    again = fermion("run")  # the candidate is production now: it passes against itself
    assert again.exit_code == 0, again.output
    answer = json.loads(fermion("models", "show", "credit@production", "--json").output)
    (decision,) = answer["decisions"]
    assert decision["model"] == "credit:1" and decision["alias"] == "production"
    assert decision["pipeline"] == "credit"
    assert [c["detail"] for c in decision["checks"]][1] == "credit@production is already credit:1"
    assert all(check["passed"] for check in decision["checks"])

    with Workspace.open(project) as ws:
        ws.models.set_alias("credit", "production", 1)  # by hand now
    by_hand = json.loads(fermion("models", "show", "credit@production", "--json").output)
    assert by_hand["decisions"] == []
