"""Hot swap: moving an alias changes the version a running server answers with, only once
the new version has loaded and answered a warm-up call; a bad version never goes live."""

from __future__ import annotations

import time
from typing import Any

import pytest

from fermion.serving.options import ServeOptions
from fermion.workspace import Workspace

ROW = {"age": 41, "income": 3100.5, "city": "lyon"}  # a valid row of the `credit` model
PREDICT = "/v1/models/credit/predict"
FAST_POLL = ServeOptions(auth=False, swap_poll_s=0.05)


def _train_another(ws: Workspace) -> int:
    from fermion.training.trainer import train

    version = train(ws, "credit", "status", "logistic", params={"C": 0.01}).model
    assert version is not None
    return version.version


def _versions_until(client: Any, wanted: int, seconds: float = 20) -> list[tuple[int, int]]:
    """Answers (status, version) to back-to-back requests until `wanted` answers."""
    seen: list[tuple[int, int]] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answer = client.post(PREDICT, json={"rows": [ROW]})
        seen.append((answer.status_code, answer.json().get("version", -1)))
        if seen[-1] == (200, wanted):
            for _ in range(20):  # and it stays
                answer = client.post(PREDICT, json={"rows": [ROW]})
                seen.append((answer.status_code, answer.json().get("version", -1)))
            return seen
    raise AssertionError(f"version {wanted} never answered: {seen[-5:]}")


def test_moving_the_alias_swaps_without_a_failed_request(
    serve: Any, served_workspace: Workspace
) -> None:
    ws = served_workspace
    new = _train_another(ws)
    with serve(ws, ["credit@production"], FAST_POLL) as (client, _):
        assert client.post(PREDICT, json={"rows": [ROW]}).json()["version"] == 1
        ws.models.set_alias("credit", "production", new)
        seen = _versions_until(client, new)
    assert all(status == 200 for status, _ in seen)
    versions = [v for _, v in seen]
    first_new = versions.index(new)
    assert set(versions[:first_new]) <= {1}
    assert set(versions[first_new:]) == {new}  # once swapped, never back


def test_a_version_that_fails_to_warm_up_never_goes_live(
    serve: Any, served_workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fermion.serving import served as served_module

    ws = served_workspace
    live = ws.models.get("credit@production").version
    broken = _train_another(ws)
    real_warm_up = served_module.ServedModel.warm_up

    def warm_up(self: Any) -> None:
        if self.version.version == broken:
            raise RuntimeError("this version cannot answer")
        real_warm_up(self)

    monkeypatch.setattr(served_module.ServedModel, "warm_up", warm_up)
    with serve(ws, ["credit@production"], FAST_POLL) as (client, _):
        ws.models.set_alias("credit", "production", broken)
        deadline = time.monotonic() + 20
        while 'outcome="failed"' not in client.get("/metrics").text:
            assert time.monotonic() < deadline, "the failed swap was never reported"
            time.sleep(0.05)
        for _ in range(10):
            answer = client.post(PREDICT, json={"rows": [ROW]})
            assert answer.status_code == 200
            assert answer.json()["version"] == live
        ws.models.set_alias("credit", "production", live)


def test_a_pinned_version_is_never_swapped(serve: Any, served_workspace: Workspace) -> None:
    ws = served_workspace
    with serve(ws, ["credit:1"], FAST_POLL) as (client, _):
        _train_another(ws)
        time.sleep(0.3)
        assert client.post(PREDICT, json={"rows": [ROW]}).json()["version"] == 1
