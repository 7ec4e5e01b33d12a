"""The Run handle: what training code logs through, usually as `with ws.runs.start(...) as run`."""

from __future__ import annotations

import json
import math
import time
import traceback
from contextvars import ContextVar, Token
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from fermion.entities import MetricPoint, RunArtifact, RunRecord, RunStatus
from fermion.errors import ConflictError, InvalidInputError, NotFoundError
from fermion.tracking.metric_writer import MetricWriter

if TYPE_CHECKING:
    from fermion.data.dataset import Dataset
    from fermion.tracking.tracker import Tracker

_active: ContextVar[Run | None] = ContextVar("fermion_active_run", default=None)


def active_run() -> Run | None:
    """The run of the innermost `with run:` block in this thread or task, if any."""
    return _active.get()


class Run:
    """One tracked run. Params are set once; metrics are buffered and stored off-thread."""

    def __init__(self, tracker: Tracker, record: RunRecord) -> None:
        self._tracker = tracker
        self._store = tracker.store
        self.id = record.id
        self.name = record.name
        self.experiment = record.experiment
        self.parent_id = record.parent_id
        self._writer = MetricWriter(self._store, record.id)
        self._steps: dict[str, int] = {}
        self._status: RunStatus | None = None
        self._tokens: list[Token[Run | None]] = []

    def __repr__(self) -> str:
        return f"<Run {self.id} {self.name!r} experiment={self.experiment!r}>"

    @property
    def ended(self) -> bool:
        return self._status is not None

    def record(self) -> RunRecord:
        """The run as stored now, with every metric written so far."""
        self._writer.flush()
        return self._store.get_run(self.id)

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: dict[str, Any]) -> None:
        self._store.log_params(self.id, {str(k): _plain(k, v) for k, v in params.items()})

    def set_tag(self, key: str, value: Any) -> None:
        self._store.set_tags(self.id, {key: str(value)})

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._store.set_tags(self.id, {str(k): str(v) for k, v in tags.items()})

    def log_metric(
        self, key: str, value: float, step: int | None = None, timestamp: int | None = None
    ) -> None:
        """Record one value. Without `step`, each key counts its own steps 0, 1, 2, ..."""
        number = float(value)
        if not math.isfinite(number):
            raise InvalidInputError(f"metric {key!r} must be a finite number, got {value!r}")
        if step is None:
            step = self._steps.get(key, 0)
        self._steps[key] = step + 1
        stamp = timestamp if timestamp is not None else time.time_ns() // 1_000_000
        self._writer.add(MetricPoint(key, number, step, stamp))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        stamp = time.time_ns() // 1_000_000
        for key, value in metrics.items():
            self.log_metric(key, value, step, stamp)

    def log_artifact(self, path: Path | str, artifact_path: str | None = None) -> RunArtifact:
        """Store a file in the artifact store under `artifact_path` (default: its name)."""
        source = Path(path)
        if not source.is_file():
            raise NotFoundError(f"no file {source} to log")
        name = _artifact_name(artifact_path or source.name)
        digest = self._tracker.artifacts.put_file(source)
        artifact = RunArtifact(name, digest, source.stat().st_size)
        self._store.add_artifact(self.id, artifact)
        return artifact

    def log_artifacts(self, folder: Path | str, artifact_path: str = "") -> list[RunArtifact]:
        """Store every file under `folder`, keeping the relative layout."""
        root = Path(folder)
        if not root.is_dir():
            raise NotFoundError(f"no folder {root} to log")
        logged = []
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            relative = file.relative_to(root).as_posix()
            target = f"{artifact_path.rstrip('/')}/{relative}" if artifact_path else relative
            logged.append(self.log_artifact(file, target))
        return logged

    def log_text(self, text: str, artifact_path: str) -> RunArtifact:
        scratch = self._tracker.scratch_dir / f"run-{self.id}-{time.time_ns()}"
        scratch.write_text(text, encoding="utf-8")
        try:
            return self.log_artifact(scratch, artifact_path)
        finally:
            scratch.unlink(missing_ok=True)

    def log_dict(self, data: Any, artifact_path: str) -> RunArtifact:
        return self.log_text(json.dumps(data, indent=2, sort_keys=True, default=str), artifact_path)

    def log_input(self, dataset: Dataset, context: str = "train") -> None:
        """Record that this run read a dataset version (lineage: dataset_version -> run)."""
        self._tracker.lineage.add_edge(
            ("dataset_version", dataset.record.id), ("run", self.id), f"input:{context}"[:32]
        )

    def artifact_path(self, path: str) -> Path:
        """A local, checksum-verified copy of a logged artifact."""
        for artifact in self._store.list_artifacts(self.id):
            if artifact.path == path:
                return self._tracker.artifacts.local_path(artifact.content_hash)
        raise NotFoundError(f"run {self.id} has no artifact {path!r}")

    def start_child(self, name: str | None = None, **tags: Any) -> Run:
        """A nested run, e.g. one trial of a tuning study."""
        return self._tracker.start(name, experiment=self.experiment, parent=self, tags=tags)

    def end(self, status: RunStatus = RunStatus.FINISHED, error: str | None = None) -> None:
        """Flush every metric and mark the run ended; a second call does nothing."""
        if self._status is not None:
            return
        self._status = status
        try:
            self._writer.close()
        finally:
            self._store.end_run(self.id, status, error)
            self._tracker.forget(self)

    def __enter__(self) -> Run:
        if self.ended:
            raise ConflictError(f"run {self.id} has already ended")
        self._tokens.append(_active.set(self))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _active.reset(self._tokens.pop())
        if exc is None:
            self.end(RunStatus.FINISHED)
        elif isinstance(exc, KeyboardInterrupt):
            self.end(RunStatus.KILLED, "interrupted (KeyboardInterrupt)")
        else:
            self.end(RunStatus.FAILED, "".join(traceback.format_exception(exc)))


def _plain(key: Any, value: Any) -> Any:
    """A JSON value for a param: numpy scalars become numbers, paths and enums text."""
    if hasattr(value, "item") and callable(value.item):
        value = value.item()
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        return value
    if isinstance(value, list | tuple):
        return [_plain(key, v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(key, v) for k, v in value.items()}
    return str(value)


def _artifact_name(name: str) -> str:
    clean = Path(name.replace("\\", "/")).as_posix()
    if clean.startswith("/") or ".." in clean.split("/") or not clean or clean == ".":
        raise InvalidInputError(f"artifact path {name!r} must be a relative path inside the run")
    return clean
