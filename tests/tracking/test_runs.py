"""Runs as training code uses them: params, buffered metrics, artifacts, status, nesting."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from fermion.entities import RunStatus
from fermion.errors import ConflictError, InvalidInputError, NotFoundError
from fermion.tracking import active_run
from fermion.workspace import Workspace


def test_a_run_records_everything_and_finishes(workspace: Workspace, tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    with workspace.runs.start("baseline", experiment="credit") as run:
        assert active_run() is run
        run.log_params({"model": "lightgbm", "num_leaves": 31})
        for step in range(5):
            run.log_metric("loss", 1.0 / (step + 1))
        run.log_metrics({"auc": 0.8, "f1": 0.7})
        run.set_tag("owner", "ana")
        run.log_artifact(tmp_path / "notes.txt", "docs/notes.txt")
    assert active_run() is None
    record = workspace.runs.get(run.id)
    assert record.status is RunStatus.FINISHED and record.end_time is not None
    assert record.experiment == "credit" and record.name == "baseline"
    assert record.params == {"model": "lightgbm", "num_leaves": 31}
    assert record.metrics == {"auc": 0.8, "f1": 0.7, "loss": 0.2}
    assert [p.step for p in workspace.runs.history(run.id, "loss")] == [0, 1, 2, 3, 4]
    assert record.tags == {"owner": "ana"}
    assert run.artifact_path("docs/notes.txt").read_text() == "hello"
    env = record.environment
    assert env["python"] and env["host"] and "numpy" in env["packages"]


def test_a_crash_marks_the_run_failed_with_its_traceback_and_keeps_metrics(
    workspace: Workspace,
) -> None:
    with pytest.raises(ValueError, match="boom"), workspace.runs.start("crash") as run:
        for step in range(1000):
            run.log_metric("loss", float(step))
        raise ValueError("boom")
    record = workspace.runs.get(run.id)
    assert record.status is RunStatus.FAILED
    assert record.error is not None and "ValueError: boom" in record.error
    assert len(workspace.runs.history(run.id, "loss")) == 1000


def test_ctrl_c_marks_the_run_killed(workspace: Workspace) -> None:
    with pytest.raises(KeyboardInterrupt), workspace.runs.start("interrupted") as run:
        raise KeyboardInterrupt
    assert workspace.runs.get(run.id).status is RunStatus.KILLED


def test_nested_runs_are_children_in_the_same_experiment(workspace: Workspace) -> None:
    with workspace.runs.start("study", experiment="tuning") as parent:
        with workspace.runs.start("trial-0") as child:
            child.log_metric("auc", 0.7)
        other = parent.start_child("trial-1")
        other.end()
    children = workspace.runs.list(parent_id=parent.id)
    assert {r.name for r in children} == {"trial-0", "trial-1"}
    assert {r.experiment for r in children} == {"tuning"}
    alone = workspace.runs.start("alone", nested=False)
    alone.end()
    assert workspace.runs.get(alone.id).parent_id is None


def test_no_metric_is_lost_when_many_threads_log(workspace: Workspace) -> None:
    run = workspace.runs.start("threads")

    def log(worker: int) -> None:
        for step in range(2000):
            run.log_metric(f"w{worker}", float(step), step=step)

    threads = [threading.Thread(target=log, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.end()
    for worker in range(4):
        assert len(workspace.runs.history(run.id, f"w{worker}")) == 2000
    assert workspace.runs.get(run.id).metrics["w0"] == 1999.0


def test_bad_values_are_refused(workspace: Workspace, tmp_path: Path) -> None:
    with workspace.runs.start() as run:
        with pytest.raises(InvalidInputError, match="finite"):
            run.log_metric("loss", float("nan"))
        with pytest.raises(NotFoundError, match="no file"):
            run.log_artifact(tmp_path / "missing.txt")
        (tmp_path / "a.txt").write_text("a")
        with pytest.raises(InvalidInputError, match="relative path"):
            run.log_artifact(tmp_path / "a.txt", "../escape.txt")
        run.log_param("depth", 3)
        with pytest.raises(ConflictError, match="depth"):
            run.log_param("depth", 4)
    with pytest.raises(ConflictError, match="already ended"), run:
        pass


def test_a_run_started_without_with_is_ended_on_close(workspace_dir: Path) -> None:
    ws = Workspace.init(workspace_dir)
    run = ws.runs.start("forgotten")
    run.log_metric("x", 1.0)
    ws.close()
    with Workspace.open(workspace_dir) as again:
        record = again.runs.get(run.id)
    assert record.status is RunStatus.FINISHED and record.metrics == {"x": 1.0}


def test_inputs_record_the_dataset_versions_read(workspace: Workspace, tmp_path: Path) -> None:
    csv = tmp_path / "d.csv"
    csv.write_text("a,b\n1,2\n3,4\n")
    dataset = workspace.datasets.add(csv, name="d")
    with workspace.runs.start() as run:
        run.log_input(dataset, "train")
    assert workspace.runs.inputs(run.id) == [(dataset.record.id, "train")]


def test_a_script_that_crashes_without_with_leaves_its_run_failed(workspace_dir: Path) -> None:
    import subprocess
    import sys

    Workspace.init(workspace_dir).close()
    script = (
        "import fermion\n"
        "run = fermion.start_run('script')\n"
        "run.log_metric('loss', 0.5)\n"
        "raise RuntimeError('out of memory')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=workspace_dir, capture_output=True, text=True
    )
    assert done.returncode == 1
    with Workspace.open(workspace_dir) as ws:
        [record] = ws.runs.list()
    assert record.status is RunStatus.FAILED
    assert record.error is not None and "out of memory" in record.error
    assert record.metrics == {"loss": 0.5}
