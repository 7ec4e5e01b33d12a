"""Settings: read from `fermion.toml` in the workspace folder, overridden by FERMION_* variables.

Settings are passed explicitly; nothing reads the environment after `Settings.load`.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from fermion.errors import InvalidInputError, NotFoundError

WORKSPACE_DIR = ".fermion"
SETTINGS_FILE = "fermion.toml"
ENV_PREFIX = "FERMION_"

DEFAULT_TOML = """\
# Fermion workspace settings. Any key can be overridden by FERMION_<KEY> (upper case).
# Relative paths are relative to this folder.

# Metadata store: any SQLAlchemy URL, e.g. postgresql+psycopg://user@host:5432/db
metadata_url = "sqlite:///fermion.db"

# Artifact store: a folder, or any fsspec URL, e.g. s3://bucket/prefix
artifacts_url = "artifacts"
"""


@dataclass(frozen=True)
class Settings:
    """Where a workspace keeps its metadata and artifacts."""

    root: Path  # the workspace folder (`.fermion/` or $FERMION_HOME)
    metadata_url: str = "sqlite:///fermion.db"
    artifacts_url: str = "artifacts"
    # Extra fsspec options for a remote artifact store, e.g. {"endpoint_url": ...} for S3.
    artifacts_endpoint_url: str = ""

    @classmethod
    def load(cls, root: Path, environ: Mapping[str, str] | None = None) -> Settings:
        environ = os.environ if environ is None else environ
        path = root / SETTINGS_FILE
        values: dict[str, Any] = {}
        if path.exists():
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise InvalidInputError(f"{path}: not valid TOML: {exc}") from exc
            known = {f.name for f in fields(cls)} - {"root"}
            unknown = set(data) - known
            if unknown:
                raise InvalidInputError(
                    f"{path}: unknown setting {sorted(unknown)[0]!r} "
                    f"(known: {', '.join(sorted(known))})"
                )
            values = {key: str(value) for key, value in data.items()}
        settings = replace(cls(root=root), **values)
        return settings.with_environment(environ)

    def with_environment(self, environ: Mapping[str, str]) -> Settings:
        overrides: dict[str, Any] = {
            f.name: environ[ENV_PREFIX + f.name.upper()]
            for f in fields(self)
            if f.name != "root" and ENV_PREFIX + f.name.upper() in environ
        }
        return replace(self, **overrides)

    @property
    def resolved_metadata_url(self) -> str:
        """The metadata URL with a relative SQLite path made absolute against `root`."""
        prefix = "sqlite:///"
        url = self.metadata_url
        if url.startswith(prefix) and not url.startswith(prefix + "/"):
            rest = url[len(prefix) :]
            if rest and rest != ":memory:":
                return prefix + str((self.root / rest).resolve())
        return url

    @property
    def resolved_artifacts_url(self) -> str:
        url = self.artifacts_url
        if "://" in url:
            return url
        return str((self.root / url).resolve())


def find_workspace_root(start: Path, environ: Mapping[str, str] | None = None) -> Path:
    """$FERMION_HOME if set, else the nearest `.fermion/` folder at or above `start`."""
    environ = os.environ if environ is None else environ
    home = environ.get(ENV_PREFIX + "HOME")
    if home:
        root = Path(home).expanduser().resolve()
        if not (root / SETTINGS_FILE).exists():
            raise NotFoundError(f"FERMION_HOME={home} is not a workspace: run 'fermion init'")
        return root
    for folder in (start.resolve(), *start.resolve().parents):
        if (folder / WORKSPACE_DIR / SETTINGS_FILE).exists():
            return folder / WORKSPACE_DIR
    raise NotFoundError(
        f"no Fermion workspace in {start.resolve()} or above: run 'fermion init' first"
    )
