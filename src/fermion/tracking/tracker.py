"""The tracker (`ws.runs`): start runs, and read, search and compare them."""

from __future__ import annotations

import atexit
import builtins
import threading
import weakref
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fermion.entities import MetricPoint, RunArtifact, RunRecord, RunStatus
from fermion.errors import InvalidInputError, NotFoundError
from fermion.storage import Storage
from fermion.tracking.environment import capture_environment
from fermion.tracking.query import parse_filter, parse_sort, sort_runs
from fermion.tracking.run import Run, active_run

DEFAULT_EXPERIMENT = "default"


@dataclass(frozen=True)
class RunComparison:
    """Runs side by side: every param and metric key, and which of them differ."""

    runs: list[RunRecord]
    params: dict[str, list[Any]]
    metrics: dict[str, list[float | None]]
    differing_params: set[str]
    differing_metrics: set[str]


class Tracker:
    def __init__(self, storage: Storage, scratch_dir: Path) -> None:
        self.store = storage.runs
        self.lineage = storage.lineage
        self.artifacts = storage.artifacts
        self.scratch_dir = scratch_dir
        self._open: weakref.WeakSet[Run] = weakref.WeakSet()
        self._lock = threading.Lock()
        atexit.register(_end_open_runs, weakref.ref(self))

    def start(
        self,
        name: str | None = None,
        *,
        experiment: str | None = None,
        parent: Run | int | None = None,
        nested: bool = True,
        tags: dict[str, Any] | None = None,
        environment: dict[str, Any] | None = None,
    ) -> Run:
        """A new running run. Inside another run's `with` block it becomes that run's child
        (unless `nested=False`) and shares its experiment. `environment` replaces the captured
        one (tuning trials pass a pointer to their study's run, which holds it)."""
        outer = active_run() if nested and parent is None else None
        if outer is not None:
            parent = outer
        parent_id = parent.id if isinstance(parent, Run) else parent
        if experiment is None:
            experiment = outer.experiment if outer is not None else DEFAULT_EXPERIMENT
        if not experiment.strip():
            raise InvalidInputError("an experiment name cannot be empty")
        run_name = name or f"run-{datetime.now(UTC):%Y%m%d-%H%M%S}"
        record = self.store.create_run(
            experiment,
            run_name,
            parent_id=parent_id,
            environment=capture_environment() if environment is None else environment,
        )
        run = Run(self, record)
        if tags:
            run.set_tags(tags)
        with self._lock:
            self._open.add(run)
        return run

    def forget(self, run: Run) -> None:
        with self._lock:
            self._open.discard(run)

    def get(self, run_id: int) -> RunRecord:
        return self.store.get_run(run_id)

    def list(
        self,
        experiment: str | None = None,
        *,
        filter: str | None = None,
        sort: str | None = None,
        parent_id: int | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        conditions = parse_filter(filter) if filter else []
        order = parse_sort(sort) if sort else None
        runs = self.store.list_runs(experiment, parent_id=parent_id)
        runs = [r for r in runs if all(c.matches(r) for c in conditions)]
        if order is not None:
            runs = sort_runs(runs, *order)
        return runs[:limit] if limit is not None else runs

    def history(self, run_id: int, key: str) -> builtins.list[MetricPoint]:
        self.store.get_run(run_id)
        return self.store.metric_history(run_id, key)

    def list_artifacts(self, run_id: int) -> builtins.list[RunArtifact]:
        self.store.get_run(run_id)
        return self.store.list_artifacts(run_id)

    def artifact_path(self, run_id: int, path: str) -> Path:
        """A local, checksum-verified copy of one of the run's artifacts."""
        for artifact in self.list_artifacts(run_id):
            if artifact.path == path:
                return self.artifacts.local_path(artifact.content_hash)
        raise NotFoundError(f"run {run_id} has no artifact {path!r}")

    def inputs(self, run_id: int) -> builtins.list[tuple[int, str]]:
        """(dataset version id, context) of every dataset version the run read."""
        return [
            (edge.parent_id, edge.relation.removeprefix("input:"))
            for edge in self.lineage.parents("run", run_id)
            if edge.parent_kind == "dataset_version"
        ]

    def compare(self, run_ids: builtins.list[int]) -> RunComparison:
        if len(run_ids) < 2:
            raise InvalidInputError("compare needs at least two run ids")
        runs = [self.store.get_run(i) for i in run_ids]
        param_keys = sorted({k for r in runs for k in r.params})
        metric_keys = sorted({k for r in runs for k in r.metrics})
        params = {k: [r.params.get(k) for r in runs] for k in param_keys}
        metrics = {k: [r.metrics.get(k) for r in runs] for k in metric_keys}
        return RunComparison(
            runs=runs,
            params=params,
            metrics=metrics,
            differing_params={k for k, v in params.items() if len({repr(x) for x in v}) > 1},
            differing_metrics={k for k, v in metrics.items() if len(set(v)) > 1},
        )

    def end_open_runs(
        self, status: RunStatus = RunStatus.FINISHED, error: str | None = None
    ) -> None:
        with self._lock:
            runs = list(self._open)
        for run in runs:
            run.end(status, error)


def _end_open_runs(ref: weakref.ref[Tracker]) -> None:
    """At interpreter exit, end runs that were started without `with` and never ended: failed
    if the program died of an uncaught exception, else finished."""
    import sys
    import traceback

    tracker = ref()
    if tracker is None:
        return
    # The interpreter sets sys.last_value when it prints an uncaught exception.
    crash = getattr(sys, "last_value", None)
    if crash is None:
        tracker.end_open_runs()
    else:
        tracker.end_open_runs(RunStatus.FAILED, "".join(traceback.format_exception(crash)))
