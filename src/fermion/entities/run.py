"""Experiment tracking records: experiments, runs, metric points, run artifacts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, NamedTuple


class RunStatus(StrEnum):
    RUNNING = "running"
    FINISHED = "finished"
    FAILED = "failed"
    KILLED = "killed"


@dataclass(frozen=True)
class Experiment:
    id: int
    name: str
    created_at: datetime


class MetricPoint(NamedTuple):
    """One logged value; `timestamp` is milliseconds since the epoch, as MLflow counts them.

    A NamedTuple rather than a dataclass: a training loop makes one per call, so it must be cheap.
    """

    key: str
    value: float
    step: int
    timestamp: int


@dataclass(frozen=True)
class RunArtifact:
    """A file logged by a run: its path inside the run and the blob holding its content."""

    path: str
    content_hash: str
    size_bytes: int


@dataclass(frozen=True)
class RunRecord:
    """A run as stored: `metrics` holds the latest value of each key (highest step)."""

    id: int
    experiment: str
    name: str
    status: RunStatus
    start_time: datetime
    end_time: datetime | None
    parent_id: int | None = None
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def duration_s(self) -> float | None:
        if self.end_time is None:
            return None
        return (self.end_time - self.start_time).total_seconds()
