"""`fermion serve --backend ray`: the server's app as Ray Serve replicas, deployed by a real
`fermion serve` process onto a local Ray instance with 2 CPUs started here; SIGTERM lets the
request in flight finish, then shuts Serve down."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fermion.errors import MissingDependencyError
from fermion.workspace import Workspace

PREDICT = "/v1/models/credit/predict"


@pytest.fixture
def ray_address(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A local Ray instance with 2 CPUs; $RAY_ADDRESS names it to the processes started here."""
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.serve")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="ERROR",
        configure_logging=False,
    )
    address = ray.get_runtime_context().gcs_address
    monkeypatch.setenv("RAY_ADDRESS", address)
    yield address
    ray.shutdown()


@pytest.mark.slow
def test_replicas_answer_like_the_model_then_sigterm_drains_and_stops_serve(
    ray_address: str,
    start_server: Any,
    sigterm_in_flight: Any,
    served_workspace: Workspace,
    row: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ray import serve
    from typer.testing import CliRunner

    from fermion.cli.main import app

    args = ["credit@production", "--no-auth", "--backend", "ray", "--replicas", "2"]
    process, url = start_server(served_workspace.root, *args)
    try:
        told = _lines_until(process, "ready;", timeout_s=60)
        assert "serving credit (credit:1) at " in "".join(told)
        status = serve.status().applications["fermion"]
        assert status.status == "RUNNING"
        assert dict(status.deployments["fermion"].replica_states) == {"RUNNING": 2}

        assert httpx.get(f"{url}/readyz", timeout=10).json() == {"status": "ready"}
        rows = [row, {**row, "income": 900.0, "age": 19}]
        answer = httpx.post(f"{url}{PREDICT}", json={"rows": rows}, timeout=30)
        assert answer.status_code == 200, answer.text
        local = served_workspace.models.load("credit@production")
        assert answer.json()["version"] == 1
        assert answer.json()["predictions"] == local.predict(rows).tolist()

        bad = httpx.post(f"{url}{PREDICT}", json={"rows": [{**row, "age": "old"}]}, timeout=30)
        assert bad.status_code == 422
        assert bad.json()["error"]["field"] == "rows[0].age"

        monkeypatch.chdir(served_workspace.root)
        again = CliRunner().invoke(app, ["serve", *args])  # a second server on the cluster
        assert again.exit_code == 2, again.output
        assert "already runs an application named 'fermion'" in again.output
        assert httpx.get(f"{url}/readyz", timeout=10).status_code == 200  # left as it was

        big = {"rows": [row] * 100_000}  # 5 MB, long enough to be in flight when SIGTERM comes
        answer = sigterm_in_flight(process, url, big)
        assert answer.status_code == 200
        assert len(answer.json()["predictions"]) == 100_000
        assert process.wait(60) == 0
    finally:
        if process.poll() is None:
            process.kill()
        _, err = process.communicate()
    assert "Traceback" not in "".join(told) + err
    with pytest.raises(httpx.ConnectError):  # Serve, proxy included, was shut down
        httpx.get(f"{url}/healthz", timeout=5)


def test_a_replica_starts_only_once_its_models_have_loaded(served_workspace: Workspace) -> None:
    from starlette.testclient import TestClient

    from fermion.serving.model_set import parse_refs
    from fermion.serving.options import ServeOptions
    from fermion.serving.ray_backend import replica_app, replica_report
    from fermion.serving.server import serve_spec

    options = ServeOptions(auth=False, access_log=False)
    spec = serve_spec(served_workspace, parse_refs(["credit@production"]), options)
    app = replica_app(spec)

    with TestClient(app) as client:  # the lifespan start-up has returned: Ray routes here now
        assert client.get("/readyz").status_code == 200
        models = replica_report(app).models
        assert [(s.name, s.version.ref) for s in models.served()] == [("credit", "credit:1")]


def test_workers_and_replicas_belong_to_their_own_backend(
    served_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from fermion.cli.main import app

    runner = CliRunner()
    monkeypatch.chdir(served_workspace.root)
    cases = [
        (["--workers", "2", "--backend", "ray"], "with --backend ray, use --replicas"),
        (["--replicas", "2"], "--replicas is for --backend ray"),
        (["--replicas", "0", "--backend", "ray"], "replicas must be at least 1"),
        (["--backend", "kubernetes"], "--backend must be uvicorn or ray"),
    ]
    for args, words in cases:
        result = runner.invoke(app, ["serve", "credit", "--no-auth", *args])
        assert result.exit_code == 2, result.output
        assert words in result.output
        assert len(result.output.strip().splitlines()) == 1


def test_ray_missing_is_one_clear_error(
    served_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fermion.serving.ray_backend import serve_on_ray

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError

    with pytest.raises(MissingDependencyError, match=r"pip install 'fermion\[ray\]'"):
        serve_on_ray(["credit@production"], workspace=served_workspace)


def _lines_until(process: Any, start: str, *, timeout_s: float) -> list[str]:
    """The process's stderr lines up to the first that starts with `start` (the server's
    own notes; its /readyz answers 200 as soon as the replicas are ready, a moment before)."""
    lines: list[str] = []

    def read() -> None:
        for line in process.stderr:
            lines.append(line)
            if line.startswith(start):
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout_s)
    return lines
