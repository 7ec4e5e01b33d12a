"""The Workspace: settings plus metadata and artifact stores, with the stages hung off it."""

from __future__ import annotations

import threading
from functools import cached_property
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from fermion.errors import ConflictError
from fermion.settings import (
    DEFAULT_TOML,
    SETTINGS_FILE,
    WORKSPACE_DIR,
    Settings,
    find_workspace_root,
)
from fermion.storage import Storage, open_storage

if TYPE_CHECKING:
    from fermion.data.catalog import DatasetCatalog
    from fermion.registry.registry import ModelRegistry
    from fermion.serving.keys import ApiKeys
    from fermion.tracking import Tracker


class Workspace:
    """One Fermion workspace. Open it with `Workspace.open()` or create it with `init`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.storage: Storage = open_storage(settings)

    @classmethod
    def init(cls, directory: Path | str | None = None, *, exist_ok: bool = True) -> Workspace:
        """Create `.fermion/` with default settings in `directory` (default: the cwd)."""
        folder = Path(directory or Path.cwd()).expanduser().resolve()
        return cls.init_at(folder / WORKSPACE_DIR, exist_ok=exist_ok)

    @classmethod
    def init_at(cls, root: Path | str, *, exist_ok: bool = True) -> Workspace:
        """Create a workspace whose folder is `root` itself (what $FERMION_HOME names)."""
        root = Path(root).expanduser().resolve()
        settings_file = root / SETTINGS_FILE
        if settings_file.exists() and not exist_ok:
            raise ConflictError(f"a workspace already exists at {root}")
        root.mkdir(parents=True, exist_ok=True)
        if not settings_file.exists():
            settings_file.write_text(DEFAULT_TOML, encoding="utf-8")
        return cls(Settings.load(root))

    @classmethod
    def open(cls, start: Path | str | None = None) -> Workspace:
        """The nearest `.fermion/` at or above `start`; without `start`, $FERMION_HOME if set,
        else the nearest one at or above the current directory."""
        if start is None:
            root = find_workspace_root(Path.cwd())
        else:
            root = find_workspace_root(Path(start).expanduser(), environ={})
        return cls(Settings.load(root))

    @property
    def root(self) -> Path:
        return self.settings.root

    @cached_property
    def scratch_dir(self) -> Path:
        """Temporary files on the workspace's own filesystem, so finished files move cheaply."""
        path = self.root / "tmp"
        path.mkdir(parents=True, exist_ok=True)
        return path

    @cached_property
    def datasets(self) -> DatasetCatalog:
        from fermion.data.catalog import DatasetCatalog

        return DatasetCatalog(self.storage, self.scratch_dir)

    @cached_property
    def runs(self) -> Tracker:
        from fermion.tracking import Tracker

        return Tracker(self.storage, self.scratch_dir)

    @cached_property
    def models(self) -> ModelRegistry:
        from fermion.registry.registry import ModelRegistry

        return ModelRegistry(self.storage, self.scratch_dir, self.root / "models")

    @cached_property
    def keys(self) -> ApiKeys:
        from fermion.serving.keys import ApiKeys

        return ApiKeys(self.storage.keys)

    def close(self) -> None:
        if "runs" in self.__dict__:
            self.runs.end_open_runs()
        self.storage.close()

    def __enter__(self) -> Workspace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _OpenWorkspaces:
    """Workspaces opened through `fermion.workspace()`, one per root, reused across calls."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_root: dict[Path, Workspace] = {}

    def get(self) -> Workspace:
        root = find_workspace_root(Path.cwd())
        with self._lock:
            if root not in self._by_root:
                self._by_root[root] = Workspace(Settings.load(root))
            return self._by_root[root]


_open_workspaces = _OpenWorkspaces()


def current_workspace() -> Workspace:
    """The workspace for the current directory (or FERMION_HOME), opened once and reused."""
    return _open_workspaces.get()
