"""Fermion: from raw data to a monitored model behind an authenticated API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fermion.errors import (
    ConflictError,
    FermionError,
    IntegrityError,
    InvalidInputError,
    MissingDependencyError,
    NotFoundError,
    StorageError,
)

if TYPE_CHECKING:
    from fermion.data.catalog import DatasetCatalog
    from fermion.tracking import Run, Tracker
    from fermion.workspace import Workspace

__version__ = "0.1.0"

__all__ = [
    "ConflictError",
    "FermionError",
    "IntegrityError",
    "InvalidInputError",
    "MissingDependencyError",
    "NotFoundError",
    "StorageError",
    "Workspace",
    "current_workspace",
    "datasets",
    "runs",
    "start_run",
]


def current_workspace() -> Workspace:
    """The workspace found from the current directory or FERMION_HOME, opened once per root."""
    from fermion.workspace import current_workspace as current

    return current()


def start_run(
    name: str | None = None,
    *,
    experiment: str | None = None,
    tags: dict[str, Any] | None = None,
    nested: bool = True,
) -> Run:
    """Start a tracked run in the current workspace; use it as `with fermion.start_run() as run:`.

    Inside another run's `with` block the new run is its child, unless `nested=False`.
    """
    return current_workspace().runs.start(name, experiment=experiment, tags=tags, nested=nested)


def __getattr__(name: str) -> Any:
    # Keeps `import fermion` light: the workspace and its stores load on first use.
    if name == "Workspace":
        from fermion.workspace import Workspace

        return Workspace
    if name == "datasets":
        catalog: DatasetCatalog = current_workspace().datasets
        return catalog
    if name == "runs":
        tracker: Tracker = current_workspace().runs
        return tracker
    raise AttributeError(f"module 'fermion' has no attribute {name!r}")
