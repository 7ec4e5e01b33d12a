"""The GitHub Actions workflow `fermion ci init --github` writes: on every push and pull
request, install the project, run its pipeline in CI mode, keep the reports as artifacts.

GitHub reads workflows only from `.github/workflows` at the repository's root, so a project
in a sub-folder of a repository gets its workflow there, running in the project's folder."""

from __future__ import annotations

import re
import shlex
from pathlib import Path, PurePosixPath

GITHUB_WORKFLOW = Path(".github") / "workflows" / "fermion.yml"

_TEMPLATE = """\
# Written by `fermion ci init --github`: runs the pipeline of fermion.yaml on every push and
# pull request; the job fails when a step (a gate included) fails.
name: fermion

"on": [push, pull_request]

jobs:
  pipeline:
    runs-on: ubuntu-latest
{defaults}    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: Install
        run: {install}
      - name: Run the pipeline
        run: {command}
      - name: Keep the reports
        if: always()
        uses: actions/upload-artifact@v4
        with:
          name: fermion-reports
          path: |
            {folder}fermion-junit.xml
            {folder}fermion-summary.md
"""


def github_workflow(
    pipeline: str | None, *, editable_install: bool, folder: PurePosixPath | None = None
) -> str:
    """The workflow's text: `pip install -e .` when the project is a package (it has a
    `pyproject.toml`), else `pip install fermion`; then `fermion run [pipeline] --ci`. With
    `folder` (the project's folder, relative to the repository's root) the commands run there
    and the reports are collected from there."""
    install = "pip install -e ." if editable_install else "pip install fermion"
    words = ["fermion", "run", *([pipeline] if pipeline else []), "--ci"]
    inside = folder is not None and str(folder) not in ("", ".")
    defaults = (
        f"    defaults:\n      run:\n        working-directory: {_yaml_scalar(str(folder))}\n"
        if inside
        else ""
    )
    return _TEMPLATE.format(
        install=install,
        command=_yaml_scalar(shlex.join(words)),
        defaults=defaults,
        folder=f"{folder}/" if inside else "",
    )


def repository_root(folder: Path) -> Path | None:
    """The nearest folder at or above `folder` that holds `.git` (a folder, or a file in a
    worktree or submodule); None outside a repository."""
    for candidate in (folder, *folder.parents):
        if (candidate / ".git").exists():
            return candidate
    return None


def _yaml_scalar(text: str) -> str:
    """`text` as a YAML string: plain when it is only words, else single-quoted."""
    if re.fullmatch(r"[\w.-]+( [\w.-]+)*", text):
        return text
    return "'" + text.replace("'", "''") + "'"
