"""A small credit project for the `fermion run` tests: data, rules and a five-step pipeline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

CREDIT_PIPELINE = """\
pipelines:
  credit:
    steps:
      ingest:
        kind: data.add
        source: credit.csv
        name: credit
      validate:
        kind: data.validate
        dataset: ingest
        rules: rules.yaml
      split:
        kind: data.split
        dataset: ingest
        needs: [validate]
        seed: 3
      train:
        kind: train
        dataset: split
        target: status
        family: logistic
        name: credit
      promote:
        kind: promote
        model: train
        alias: staging
"""
CREDIT_RULES = "rules:\n  - {column: age, range: {min: 18, max: 100}}\n"


@pytest.fixture
def project(workspace_dir: Path, credit_csv: Any, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project folder (no workspace yet): credit.csv, rules.yaml (passing) and
    fermion.yaml (ingest, validate, split, train, promote to `staging`)."""
    credit_csv(workspace_dir / "credit.csv")
    (workspace_dir / "rules.yaml").write_text(CREDIT_RULES)
    (workspace_dir / "fermion.yaml").write_text(CREDIT_PIPELINE)
    monkeypatch.setenv("COLUMNS", "160")
    return workspace_dir
