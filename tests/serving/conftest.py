"""A workspace with a trained classifier registered as `credit` (alias production), once per
module, and a helper that serves it in process."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from fermion.serving.model_set import parse_refs
from fermion.serving.options import ServeOptions
from fermion.workspace import Workspace

ROW = {"age": 41, "income": 3100.5, "city": "lyon"}


@pytest.fixture(scope="module")
def served_workspace(
    tmp_path_factory: pytest.TempPathFactory, credit_csv: Any
) -> Iterator[Workspace]:
    from fermion.training.trainer import train

    root = tmp_path_factory.mktemp("serving")
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("FERMION_")]:
            patch.delenv(key)
        with Workspace.init(root) as ws:
            ws.datasets.add(credit_csv(root / "credit.csv", seed=0), name="credit")
            version = train(ws, "credit", "status", "logistic").model
            assert version is not None
            ws.models.set_alias("credit", "production", version.version)
            yield ws


@pytest.fixture(scope="session")
def row() -> dict[str, Any]:
    """A valid input row of the `credit` model."""
    return dict(ROW)


@pytest.fixture
def held_loading(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Model loading waits (up to 10 s) until the returned event is set."""
    from fermion.serving import model_set

    release = threading.Event()
    real = model_set.load_served

    def held(*args: Any, **kwargs: Any) -> Any:
        release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(model_set, "load_served", held)
    return release


@pytest.fixture(scope="session")
def serve() -> Any:
    """`serve(ws, refs, options=None, *, guard=None, wait_ready=True)`: see `serving`."""
    return serving


@contextmanager
def serving(
    ws: Workspace,
    refs: list[str],
    options: ServeOptions | None = None,
    *,
    guard: Any = None,
    wait_ready: bool = True,
) -> Iterator[tuple[Any, io.StringIO]]:
    """A TestClient on the app (lifespan run), ready unless told not to wait; the access log
    goes to the StringIO returned with it."""
    from starlette.testclient import TestClient

    from fermion.serving.app import create_app

    log = io.StringIO()
    app = create_app(
        ws, parse_refs(refs), options or ServeOptions(auth=False), guard=guard, log_stream=log
    )
    with TestClient(app) as client:
        if wait_ready:
            deadline = time.monotonic() + 30
            while client.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, "the models did not load"
                time.sleep(0.02)
        yield client, log


def state_of(client: Any) -> Any:
    return client.app.state.fermion


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_server_process(root: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """`fermion serve ARGS` as a real process on a free 127.0.0.1 port, once /readyz is 200;
    returns the process and its base URL. The caller stops it."""
    import httpx

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FERMION_")}
    env["HF_HUB_OFFLINE"] = "1"
    command = [sys.executable, "-m", "fermion", "serve", *args, "--port", str(port)]
    process = subprocess.Popen(
        command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _, err = process.communicate()
            raise AssertionError(f"the server exited: {err}")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    process.kill()
    process.communicate()
    raise AssertionError("the server never became ready")


@pytest.fixture(scope="session")
def start_server() -> Any:
    """`start_server(root, *args) -> (process, url)`: see `start_server_process`."""
    return start_server_process


def sigterm_during(process: subprocess.Popen[str], url: str, body: dict[str, Any]) -> Any:
    """SIGTERM to `process` while a predict request with `body` is in flight (sent 0.3 s
    before); the answer it got."""
    import httpx

    result: dict[str, Any] = {}

    def call() -> None:
        result["answer"] = httpx.post(f"{url}/v1/models/credit/predict", json=body, timeout=60)

    caller = threading.Thread(target=call)
    caller.start()
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    caller.join(60)
    return result["answer"]


@pytest.fixture(scope="session")
def sigterm_in_flight() -> Any:
    """`sigterm_in_flight(process, url, body) -> answer`: see `sigterm_during`."""
    return sigterm_during
