"""The metadata store's seams: one small abstract class per domain.

Every implementation runs the contract tests in `tests/storage/test_contract.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fermion.entities import (
    AliasEvent,
    ApiKeyRecord,
    ColumnSchema,
    DatasetSummary,
    DatasetVersion,
    Experiment,
    LineageEdge,
    MetricPoint,
    ModelSummary,
    ModelVersion,
    Profile,
    RunArtifact,
    RunRecord,
    RunStatus,
    ScheduleRecord,
    Signature,
    SplitRecord,
    ValidationRecord,
)


@dataclass(frozen=True)
class NewVersion:
    """What a caller provides to record a dataset version; the store numbers it."""

    name: str
    content_hash: str
    num_rows: int
    num_columns: int
    size_bytes: int
    schema: tuple[ColumnSchema, ...]
    profile: Profile
    operation: str
    source: dict[str, Any]
    parent_id: int | None = None
    derivation_key: str | None = None


class DatasetStore(ABC):
    """Named datasets and their immutable, numbered versions.

    Contract: versions of a name are numbered 1, 2, ... in order of creation, also under
    concurrent writers; `(name, content_hash)` is unique, and recording it twice returns the
    first version; unknown names and versions raise `NotFoundError`.
    """

    @abstractmethod
    def add_version(self, new: NewVersion) -> tuple[DatasetVersion, bool]:
        """Record `new`, or return the existing version with its content; the bool is True
        when a version was created."""

    @abstractmethod
    def get_version(self, name: str, version: int | None = None) -> DatasetVersion:
        """A given version, or the latest when `version` is None."""

    @abstractmethod
    def get_version_by_id(self, version_id: int) -> DatasetVersion: ...

    @abstractmethod
    def find_version(
        self, name: str, *, content_hash: str | None = None, derivation_key: str | None = None
    ) -> DatasetVersion | None:
        """The version of `name` with this content or made by this derivation, if any."""

    @abstractmethod
    def list_datasets(self) -> list[DatasetSummary]: ...

    @abstractmethod
    def list_versions(self, name: str) -> list[DatasetVersion]: ...

    @abstractmethod
    def delete_version(self, version_id: int) -> None:
        """Delete a version with its splits and validations; the dataset goes with its last
        version."""

    @abstractmethod
    def content_in_use(self, content_hash: str) -> bool:
        """Whether any version or split still refers to this blob."""

    @abstractmethod
    def add_split(
        self,
        version_id: int,
        *,
        params: dict[str, Any],
        params_hash: str,
        content_hash: str,
        counts: dict[str, int],
    ) -> tuple[SplitRecord, bool]:
        """Record a split, or return the one with the same `params_hash`."""

    @abstractmethod
    def list_splits(self, version_id: int) -> list[SplitRecord]:
        """Splits of a version, the newest first."""

    @abstractmethod
    def add_validation(
        self, version_id: int, *, rules_hash: str, passed: bool, report: dict[str, Any]
    ) -> ValidationRecord: ...

    @abstractmethod
    def list_validations(self, version_id: int) -> list[ValidationRecord]:
        """Validation results of a version, the newest first."""


class LineageStore(ABC):
    """Edges `parent -> child` between any two stored objects, named by kind and id."""

    @abstractmethod
    def add_edge(
        self, parent: tuple[str, int], child: tuple[str, int], relation: str
    ) -> LineageEdge: ...

    @abstractmethod
    def children(self, kind: str, object_id: int) -> list[LineageEdge]: ...

    @abstractmethod
    def parents(self, kind: str, object_id: int) -> list[LineageEdge]: ...

    @abstractmethod
    def forget(self, kind: str, object_id: int) -> None:
        """Remove every edge that touches this object."""


@dataclass(frozen=True)
class NewModelVersion:
    """What a caller provides to register a model version; the store numbers it."""

    name: str
    content_hash: str
    flavor: str
    signature: Signature
    run_id: int | None = None
    metrics: dict[str, float] | None = None
    origin: str = "trained"
    description: str = ""


class RunStore(ABC):
    """Experiments and their runs: params, tags, metric points and artifacts.

    Contract: experiments are created on first use by name; a param, once logged, keeps its
    value (logging a different value raises `ConflictError`); metric points are appended in
    batches and a run's latest value per key is the one with the highest step (the latest
    timestamp breaks ties); unknown runs raise `NotFoundError`.
    """

    @abstractmethod
    def experiment(self, name: str) -> Experiment:
        """The experiment of that name, created if it does not exist."""

    @abstractmethod
    def list_experiments(self) -> list[Experiment]: ...

    @abstractmethod
    def create_run(
        self,
        experiment: str,
        name: str,
        *,
        parent_id: int | None = None,
        environment: dict[str, Any] | None = None,
    ) -> RunRecord: ...

    @abstractmethod
    def end_run(self, run_id: int, status: RunStatus, error: str | None = None) -> None: ...

    @abstractmethod
    def log_params(self, run_id: int, params: dict[str, Any]) -> None: ...

    @abstractmethod
    def set_tags(self, run_id: int, tags: dict[str, str]) -> None: ...

    @abstractmethod
    def log_metrics(self, run_id: int, points: list[MetricPoint]) -> None:
        """Append points in one transaction and update the run's latest values."""

    @abstractmethod
    def add_artifact(self, run_id: int, artifact: RunArtifact) -> None:
        """Record a logged file; logging the same path again replaces it."""

    @abstractmethod
    def list_artifacts(self, run_id: int) -> list[RunArtifact]: ...

    @abstractmethod
    def get_run(self, run_id: int) -> RunRecord: ...

    @abstractmethod
    def list_runs(
        self, experiment: str | None = None, *, parent_id: int | None = None
    ) -> list[RunRecord]:
        """Runs, the newest first, with params, tags and latest metrics filled in."""

    @abstractmethod
    def find_runs(
        self, tag: str, value: str, *, status: RunStatus | None = None
    ) -> list[RunRecord]:
        """Runs whose tag `tag` has exactly `value` (and the status, when given), the
        newest first: how a pipeline finds the step run its cache key names."""

    @abstractmethod
    def metric_history(self, run_id: int, key: str) -> list[MetricPoint]:
        """Every point of one metric, in step then timestamp order."""


class ModelStore(ABC):
    """Registered models, their immutable numbered versions, and aliases.

    Contract: versions of a name are numbered 1, 2, ... also under concurrent writers; an
    alias points at one version of its model and moves atomically, each move recorded as an
    `AliasEvent`; unknown names, versions and aliases raise `NotFoundError`.
    """

    @abstractmethod
    def add_version(self, new: NewModelVersion) -> ModelVersion: ...

    @abstractmethod
    def get_version(self, name: str, version: int | None = None) -> ModelVersion:
        """A given version, or the latest when `version` is None."""

    @abstractmethod
    def get_by_alias(self, name: str, alias: str) -> ModelVersion: ...

    @abstractmethod
    def list_models(self) -> list[ModelSummary]: ...

    @abstractmethod
    def list_versions(self, name: str) -> list[ModelVersion]: ...

    @abstractmethod
    def set_alias(self, name: str, alias: str, version: int, actor: str) -> AliasEvent: ...

    @abstractmethod
    def remove_alias(self, name: str, alias: str, actor: str) -> AliasEvent: ...

    @abstractmethod
    def alias_history(self, name: str) -> list[AliasEvent]:
        """Every alias move of a model, the oldest first."""


class KeyStore(ABC):
    """API keys of the inference server: a public id and a salted hash each, never the secret.

    Contract: names and key ids are unique (adding either again raises `ConflictError`, also
    for a revoked key); a key is never deleted: revoking sets `revoked_at` once, and revoking
    it again returns it unchanged; unknown names raise `NotFoundError`; times come back
    timezone-aware (UTC).
    """

    @abstractmethod
    def add_key(self, record: ApiKeyRecord) -> ApiKeyRecord:
        """Store `record` as given (the caller chose its id, salt, hash and times)."""

    @abstractmethod
    def get_key(self, name: str) -> ApiKeyRecord: ...

    @abstractmethod
    def list_keys(self) -> list[ApiKeyRecord]:
        """Every key, revoked and expired ones included, in name order."""

    @abstractmethod
    def revoke_key(self, name: str) -> ApiKeyRecord:
        """Mark the key revoked now (or keep its first revocation time)."""


class ScheduleStore(ABC):
    """Pipeline schedules, and the slot each one last ran for.

    Contract: names are unique (adding one again raises `ConflictError`); unknown names raise
    `NotFoundError`; times come back timezone-aware (UTC). `claim` is a compare-and-set on
    `last_run_at`: of two schedulers claiming the same slot from the same previous value,
    exactly one gets True.
    """

    @abstractmethod
    def add_schedule(self, record: ScheduleRecord) -> ScheduleRecord:
        """Store `record` as given (its last run fields as well, for imports and tests)."""

    @abstractmethod
    def get_schedule(self, name: str) -> ScheduleRecord: ...

    @abstractmethod
    def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule, in name order."""

    @abstractmethod
    def remove_schedule(self, name: str) -> None: ...

    @abstractmethod
    def claim(self, name: str, previous: datetime | None, slot: datetime, missed: int = 0) -> bool:
        """Take `slot` for a run if the schedule's `last_run_at` is still `previous`: set it
        to `slot`, the status to `running`, add `missed` to its count. False when another
        scheduler moved it first (or the schedule is gone)."""

    @abstractmethod
    def finish(self, name: str, slot: datetime, run_id: int | None, status: str) -> None:
        """Record the outcome of the run for `slot`; ignored once a later slot is claimed."""
