"""examples/digits runs as a user runs it: `fermion run` in a copy of the folder."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "digits"
NOT_CACHEABLE = {"gate", "promote"}


def _fermion(folder: Path, *args: str) -> Any:
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
    env.pop("FERMION_METADATA_URL", None)
    env.pop("FERMION_HOME", None)
    result = subprocess.run(
        [sys.executable, "-m", "fermion", *args, "--json"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


@pytest.mark.slow
def test_digits_pipeline_trains_quantizes_gates_and_promotes(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("onnxruntime")
    folder = tmp_path / "digits"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns(".fermion", "__pycache__"))

    first = _fermion(folder, "run")
    steps = first["steps"]
    assert first["ok"], steps
    assert {name: step["state"] for name, step in steps.items()} == dict.fromkeys(steps, "done")

    trained, int8 = steps["train"]["refs"]["model"], steps["int8"]["refs"]["model"]
    assert int8 != trained
    assert steps["evaluate"]["refs"]["model"] == int8
    assert steps["promote"]["summary"].startswith(f"digits@production -> {int8}")
    # the variant is int8, smaller than the network, and within the optimize step's drop
    shown = _fermion(folder, "models", "show", int8)
    assert shown["record"]["flavor"] == "onnx"
    assert "int8" in json.dumps(shown), "the promoted variant is not int8"
    assert steps["int8"]["metrics"]["size_ratio"] < 0.5  # the convolutions are int8 too
    assert steps["int8"]["metrics"]["metric_drop"] <= 0.01
    # accurate in float32 and in int8, on the same test rows
    assert steps["train"]["metrics"]["accuracy"] >= 0.95
    assert steps["evaluate"]["metrics"]["accuracy"] >= 0.95
    assert (
        abs(steps["evaluate"]["metrics"]["accuracy"] - steps["train"]["metrics"]["accuracy"])
        <= 0.02
    )

    second = _fermion(folder, "run")
    assert second["ok"], second["steps"]
    states = {name: step["state"] for name, step in second["steps"].items()}
    assert states == {name: "done" if name in NOT_CACHEABLE else "cached" for name in states}
    assert second["steps"]["int8"]["refs"]["model"] == int8
