"""examples/customer-service runs as its README says: the pipeline, then the classifier and
the embedding model served side by side."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "customer-service"
NOT_CACHEABLE = {"gate", "promote"}


def _env() -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    for name in ("FERMION_METADATA_URL", "FERMION_HOME", "FERMION_ARTIFACTS_URL"):
        env.pop(name, None)
    return env


def _fermion(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fermion", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def _run_json(cwd: Path) -> dict[str, Any]:
    result = _fermion("run", "--json", cwd=cwd)
    assert result.returncode == 0, result.stdout + result.stderr
    return dict(json.loads(result.stdout))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        return dict(json.loads(response.read()))


def _wait_ready(base: str, server: subprocess.Popen[str], deadline: float) -> None:
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"the server exited with code {server.returncode} before it was ready")
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.25)
    pytest.fail("the server was not ready within 60 s")


@pytest.mark.slow
def test_customer_service_example_end_to_end(tmp_path: Path) -> None:
    if importlib.util.find_spec("sentence_transformers") is None:  # importing it takes seconds
        pytest.skip("needs fermion[text] (sentence-transformers)")
    project = tmp_path / "customer-service"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".fermion", "__pycache__"))

    first = _run_json(project)
    assert first["ok"] is True
    steps = first["steps"]
    assert set(steps) == {
        "ingest",
        "validate",
        "split",
        "train",
        "evaluate",
        "gate",
        "promote",
        "embed",
    }
    assert {name: step["state"] for name, step in steps.items()} == dict.fromkeys(steps, "done")
    assert steps["ingest"]["metrics"]["rows"] >= 200
    assert steps["validate"]["metrics"]["rules_failed"] == 0
    assert steps["train"]["refs"]["model"] == "intents:1"
    assert steps["embed"]["refs"]["model"] == "minilm:1"
    assert steps["evaluate"]["metrics"]["f1_macro"] >= 0.80
    checks = steps["gate"]["checks"]
    assert checks and all(check["passed"] for check in checks), checks
    assert any(check["name"].startswith("f1_macro >=") for check in checks)
    assert steps["promote"]["summary"] == "intents@production -> intents:1 (new alias)"

    # nothing changed: every step is reused but the gate and the alias move
    second = _run_json(project)
    assert second["ok"] is True
    states = {name: step["state"] for name, step in second["steps"].items()}
    assert states == {name: "done" if name in NOT_CACHEABLE else "cached" for name in states}
    assert second["steps"]["embed"]["refs"]["model"] == "minilm:1"

    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    serve = ["serve", "intents@production", "minilm", "--no-auth", "--no-access-log"]
    server = subprocess.Popen(
        [sys.executable, "-m", "fermion", *serve, "--host", "127.0.0.1", "--port", str(port)],
        cwd=project,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_ready(base, server, time.monotonic() + 60)
        answer = _post(
            f"{base}/v1/models/intents/predict",
            {"rows": [{"message": "I forgot my password and now I can't log in"}]},
        )
        assert answer["model"] == "intents"
        assert answer["predictions"] == ["reset_password"]

        embedded = _post(
            f"{base}/v1/embeddings",
            {"model": "minilm", "input": ["where is my new card?"], "encoding_format": "float"},
        )
        assert embedded["object"] == "list"
        assert embedded["model"] == "minilm"
        vector = embedded["data"][0]["embedding"]
        assert len(vector) == 384
        assert abs(sum(value * value for value in vector) - 1.0) < 1e-3  # unit length

        server.send_signal(signal.SIGTERM)
        output, _ = server.communicate(timeout=30)
        assert server.returncode == 0, output
        assert "Traceback" not in output
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate(timeout=10)
