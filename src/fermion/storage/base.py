"""The metadata store's seams: one small abstract class per domain.

Every implementation runs the contract tests in `tests/storage/test_contract.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from fermion.entities import (
    ColumnSchema,
    DatasetSummary,
    DatasetVersion,
    LineageEdge,
    Profile,
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
