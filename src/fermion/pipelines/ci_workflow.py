"""The GitHub Actions workflow `fermion ci init --github` writes: on every push and pull
request, install the project, run its pipeline in CI mode, keep the reports as artifacts."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

GITHUB_WORKFLOW = Path(".github") / "workflows" / "fermion.yml"

_TEMPLATE = """\
# Written by `fermion ci init --github`: runs the pipeline of fermion.yaml on every push and
# pull request; the job fails when a step (a gate included) fails.
name: fermion

"on": [push, pull_request]

jobs:
  pipeline:
    runs-on: ubuntu-latest
    steps:
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
            fermion-junit.xml
            fermion-summary.md
"""


def github_workflow(pipeline: str | None, *, editable_install: bool) -> str:
    """The workflow's text: `pip install -e .` when the project is a package (it has a
    `pyproject.toml`), else `pip install fermion`; then `fermion run [pipeline] --ci`."""
    install = "pip install -e ." if editable_install else "pip install fermion"
    words = ["fermion", "run", *([pipeline] if pipeline else []), "--ci"]
    return _TEMPLATE.format(install=install, command=_yaml_scalar(shlex.join(words)))


def _yaml_scalar(text: str) -> str:
    """`text` as a YAML string: plain when it is only words, else single-quoted."""
    if re.fullmatch(r"[\w.-]+( [\w.-]+)*", text):
        return text
    return "'" + text.replace("'", "''") + "'"
