"""`fermion serve` as a real process on 127.0.0.1: it answers, and SIGTERM lets the request
in flight finish before the process exits 0."""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest

from fermion.workspace import Workspace

ROW = {"age": 41, "income": 3100.5, "city": "lyon"}  # a valid row of the `credit` model
pytestmark = pytest.mark.slow


def test_sigterm_finishes_the_request_in_flight_then_exits_0(
    start_server: Any, sigterm_in_flight: Any, served_workspace: Workspace
) -> None:
    process, url = start_server(served_workspace.root, "credit@production", "--no-auth")
    try:
        small = httpx.post(f"{url}/v1/models/credit/predict", json={"rows": [ROW]}, timeout=10)
        assert small.status_code == 200 and small.json()["version"] == 1
        big = {"rows": [ROW] * 100_000}  # long enough to be in flight when SIGTERM comes
        answer = sigterm_in_flight(process, url, big)
        assert answer.status_code == 200
        assert len(answer.json()["predictions"]) == 100_000
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
        _, err = process.communicate()
    assert "authentication is OFF" in err
    assert "serving credit (credit:1)" in err
    assert "Traceback" not in err


def test_serve_refuses_bad_input_in_one_line(
    served_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from fermion.cli.main import app

    runner = CliRunner()
    monkeypatch.chdir(served_workspace.root)
    cases = [
        (["serve", "nothing@production", "--no-auth"], "nothing"),
        (["serve", "credit", "--no-auth", "--host", "0.0.0.0"], "loopback"),
        (["serve", "credit", "--workers", "0", "--no-auth"], "workers"),
        (["serve", "credit", "credit@production", "--no-auth"], "two references"),
    ]
    for args, words in cases:
        result = runner.invoke(app, args)
        assert result.exit_code == 2, result.output
        assert words in result.output
        assert len(result.output.strip().splitlines()) == 1
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = runner.invoke(app, ["serve", "credit", "--no-auth", "--port", port])
    assert result.exit_code == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.output


def test_the_python_client_against_a_keyed_server(
    start_server: Any, served_workspace: Workspace
) -> None:
    import fermion
    from fermion.errors import AuthenticationError, InvalidInputError, PermissionDeniedError

    _, key = served_workspace.keys.create("client-test", ["predict:credit"])
    process, url = start_server(served_workspace.root, "credit@production")
    try:
        with fermion.Client(url, api_key=key) as client:
            assert client.ready()
            answer = client.predict("credit", ROW)
            assert answer["version"] == 1 and answer["predictions"][0] in ("bad", "good")
            assert len(client.predict("credit", [ROW, ROW])["predictions"]) == 2
            assert client.model("credit")["classes"] == ["bad", "good"]
            with pytest.raises(InvalidInputError, match=r"rows\[0\]\.age must be an integer"):
                client.predict("credit", {**ROW, "age": "old"})
            with pytest.raises(PermissionDeniedError, match="does not grant 'predict:churn'"):
                client.predict("churn", ROW)
        with (
            fermion.Client(url, api_key="fmn_0_wrong") as stranger,
            pytest.raises(AuthenticationError),
        ):
            stranger.predict("credit", ROW)
    finally:
        process.terminate()
        process.communicate(timeout=30)
