"""What a run ran on: Python, packages, git commit, host. Captured once at run start."""

from __future__ import annotations

import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# Packages whose versions change results; others are noise in a run record.
_PACKAGES = (
    "fermion",
    "numpy",
    "polars",
    "pyarrow",
    "pandas",
    "scikit-learn",
    "lightgbm",
    "xgboost",
    "xgboost-cpu",
    "torch",
    "sentence-transformers",
    "optuna",
    "onnxruntime",
)


def capture_environment(cwd: Path | None = None) -> dict[str, Any]:
    folder = cwd or Path.cwd()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "argv": list(sys.argv),
        "packages": _package_versions(),
        "git": _git_state(folder),
    }


def _package_versions() -> dict[str, str]:
    versions = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _git_state(folder: Path) -> dict[str, Any] | None:
    """The commit and whether tracked files have uncommitted changes; None outside a repo."""
    try:
        commit = _git(folder, "rev-parse", "HEAD")
        if commit is None:
            return None
        changes = _git(folder, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit, "dirty": bool(changes)}


def _git(folder: Path, *args: str) -> str | None:
    done = subprocess.run(
        ["git", *args], cwd=folder, capture_output=True, text=True, timeout=5, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else None
