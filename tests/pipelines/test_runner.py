"""Running pipelines: order, caching by content, failures, resuming, --only/--from/--force,
parallel steps, the runs recorded, and `fermion run` itself."""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fermion.entities import RunStatus
from fermion.errors import InvalidInputError
from fermion.pipelines import kinds as kinds_module
from fermion.pipelines.kinds import StepKind
from fermion.pipelines.runner import EXPERIMENT, run_pipeline
from fermion.pipelines.spec import load_project
from fermion.pipelines.types import DATASET, Check, ChecksFailedError, StepContext, StepOutput
from fermion.workspace import Workspace

CALLS: Counter[str] = Counter()
BARRIER: dict[str, threading.Barrier] = {}


def _output(value: str) -> StepOutput:
    digest = hashlib.sha256(value.encode()).hexdigest()
    return StepOutput(refs={DATASET: value}, hashes={DATASET: digest}, summary=value)


def make(ctx: StepContext) -> StepOutput:
    CALLS[ctx.spec.name] += 1
    return _output(str(ctx.spec.config["value"]))


def upper(ctx: StepContext) -> StepOutput:
    """The input's value in capitals: the same output for "a" and "A"."""
    CALLS[ctx.spec.name] += 1
    return _output(ctx.ref("dataset", DATASET).upper() + str(ctx.spec.config.get("suffix", "")))


def fail_if(ctx: StepContext) -> StepOutput:
    CALLS[ctx.spec.name] += 1
    if ctx.path(str(ctx.spec.config["unless"])).exists():
        return _output("fixed")
    raise InvalidInputError(f"{ctx.spec.config['unless']} is missing")


def judge(ctx: StepContext) -> StepOutput:
    checks = [Check("x >= 1", True, 2.0, ">= 1"), Check("y <= 0", bool(ctx.spec.config["ok"]), 3.0)]
    if not all(c.passed for c in checks):
        raise ChecksFailedError("1 of 2 checks failed: y <= 0 (3.0)", checks)
    return StepOutput(checks=tuple(checks))


def meet(ctx: StepContext) -> StepOutput:
    """Waits for the other `meet` step: only steps running side by side get through."""
    BARRIER["meet"].wait(timeout=20)
    return _output(ctx.spec.name)


TEST_KINDS = {
    "make": StepKind("make", make, required=("value",)),
    "upper": StepKind("upper", upper, input_keys={"dataset": DATASET}, optional=("suffix",)),
    "fail_if": StepKind("fail_if", fail_if, input_keys={"dataset": DATASET}, required=("unless",)),
    "meet": StepKind("meet", meet),
    "judge": StepKind("judge", judge, required=("ok",)),
}

PIPELINE = """\
pipelines:
  demo:
    steps:
      raw:
        kind: make
        value: {value}
      big:
        kind: upper
        dataset: raw
      bigger:
        kind: upper
        dataset: big
        suffix: "!"
      side:
        kind: make
        value: side
"""


@pytest.fixture(autouse=True)
def _test_kinds(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(kinds_module, "KINDS", TEST_KINDS)
    CALLS.clear()
    yield


def project(folder: Path, text: str) -> Any:
    path = folder / "fermion.yaml"
    path.write_text(text)
    return load_project(path, TEST_KINDS)


def states(result: Any) -> dict[str, str]:
    return {name: step.state for name, step in result.steps.items()}


def test_a_second_run_with_nothing_changed_is_all_cached(workspace: Workspace) -> None:
    spec = project(workspace.root.parent, PIPELINE.format(value="a"))
    first = run_pipeline(workspace, spec)
    assert first.ok
    assert states(first) == dict.fromkeys(["raw", "big", "bigger", "side"], "done")
    assert first.steps["bigger"].output is not None
    assert first.steps["bigger"].output.refs == {DATASET: "A!"}
    again = run_pipeline(workspace, spec)
    assert again.ok and set(states(again).values()) == {"cached"}
    assert again.steps["bigger"].output == first.steps["bigger"].output
    assert Counter(raw=1, big=1, bigger=1, side=1) == CALLS


def test_a_change_reruns_what_depends_on_it_and_stops_where_outputs_are_unchanged(
    workspace: Workspace,
) -> None:
    folder = workspace.root.parent
    run_pipeline(workspace, project(folder, PIPELINE.format(value="a")))
    # "A" upper-cases to what "a" did: raw and big run again, bigger is still cached
    result = run_pipeline(workspace, project(folder, PIPELINE.format(value="A")))
    assert states(result) == {"raw": "done", "big": "done", "bigger": "cached", "side": "cached"}
    result = run_pipeline(workspace, project(folder, PIPELINE.format(value="b")))
    assert states(result) == {"raw": "done", "big": "done", "bigger": "done", "side": "cached"}
    assert result.steps["bigger"].output is not None
    assert result.steps["bigger"].output.refs == {DATASET: "B!"}


def test_a_failure_stops_its_dependants_keeps_the_rest_and_a_rerun_resumes(
    workspace: Workspace,
) -> None:
    folder = workspace.root.parent
    text = PIPELINE.format(value="a") + (
        "      check:\n        kind: fail_if\n        dataset: raw\n        unless: ok.txt\n"
        "      after:\n        kind: upper\n        dataset: check\n"
    )
    spec = project(folder, text)
    result = run_pipeline(workspace, spec)
    assert not result.ok
    assert states(result)["check"] == "failed" and states(result)["after"] == "skipped"
    assert states(result)["bigger"] == "done" and states(result)["side"] == "done"
    assert result.steps["check"].error == "ok.txt is missing"
    assert result.steps["after"].error == "check did not finish"

    (folder / "ok.txt").write_text("fixed")
    result = run_pipeline(workspace, spec)
    assert result.ok
    assert states(result)["check"] == "done" and states(result)["after"] == "done"
    assert states(result)["raw"] == "cached" and states(result)["bigger"] == "cached"


def test_force_only_and_from_choose_what_runs(workspace: Workspace) -> None:
    spec = project(workspace.root.parent, PIPELINE.format(value="a"))
    with pytest.raises(InvalidInputError, match="never finished"):
        run_pipeline(workspace, spec, only=["big"])
    run_pipeline(workspace, spec)
    forced = run_pipeline(workspace, spec, force=["big"])
    assert states(forced) == {"raw": "cached", "big": "done", "bigger": "cached", "side": "cached"}
    only = run_pipeline(workspace, spec, only=["bigger"], force=["bigger"])
    assert states(only) == {"bigger": "done"}
    assert only.steps["bigger"].output is not None
    assert only.steps["bigger"].output.refs == {DATASET: "A!"}  # raw and big from their last run
    downstream = run_pipeline(workspace, spec, start="big")
    assert list(states(downstream)) == ["big", "bigger"]
    with pytest.raises(InvalidInputError, match="nope"):
        run_pipeline(workspace, spec, force=["nope"])


def test_independent_steps_run_side_by_side(workspace: Workspace) -> None:
    BARRIER["meet"] = threading.Barrier(2)
    text = "steps:\n  left:\n    kind: meet\n  right:\n    kind: meet\n"
    result = run_pipeline(workspace, project(workspace.root.parent, text), jobs=2)
    assert result.ok, result.failed


def test_each_run_is_recorded_with_its_steps(workspace: Workspace) -> None:
    spec = project(workspace.root.parent, PIPELINE.format(value="a"))
    seen: list[tuple[str, str]] = []
    result = run_pipeline(workspace, spec, on_change=lambda s: seen.append((s.name, s.state)))
    assert ("raw", "pending") in seen and ("raw", "running") in seen and ("raw", "done") in seen
    pipeline_run = workspace.runs.get(result.run_id)
    assert pipeline_run.experiment == EXPERIMENT and pipeline_run.name == "demo"
    assert pipeline_run.status is RunStatus.FINISHED
    children = workspace.runs.list(parent_id=result.run_id)
    assert sorted(r.name for r in children) == ["big", "bigger", "raw", "side"]
    assert {r.tags["fermion.state"] for r in children} == {"done"}
    again = run_pipeline(workspace, spec)
    assert {r.tags["fermion.state"] for r in workspace.runs.list(parent_id=again.run_id)} == {
        "cached"
    }


def test_checks_are_kept_whether_they_held_or_not(workspace: Workspace) -> None:
    folder = workspace.root.parent
    held = run_pipeline(workspace, project(folder, "steps:\n  g:\n    kind: judge\n    ok: 1\n"))
    assert held.ok and [c.name for c in held.steps["g"].checks] == ["x >= 1", "y <= 0"]
    cached = run_pipeline(workspace, project(folder, "steps:\n  g:\n    kind: judge\n    ok: 1\n"))
    assert (
        cached.steps["g"].state == "cached" and cached.steps["g"].checks == held.steps["g"].checks
    )
    failed = run_pipeline(workspace, project(folder, "steps:\n  g:\n    kind: judge\n    ok: 0\n"))
    step = failed.steps["g"]
    assert step.state == "failed" and step.error == "1 of 2 checks failed: y <= 0 (3.0)"
    assert [(c.name, c.passed) for c in step.checks] == [("x >= 1", True), ("y <= 0", False)]
    assert "y <= 0" in workspace.runs.get(step.run_id or 0).tags["fermion.checks"]
