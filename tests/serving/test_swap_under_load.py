"""A real server under a steady load while its alias moves: no request fails, every answer
names its version, and once the new version answers the old one never does again. Also the
same server with two worker processes."""

from __future__ import annotations

import asyncio
import signal
import time
from typing import Any

import httpx
import pytest

from fermion.workspace import Workspace

pytestmark = pytest.mark.slow
ROW = {"age": 41, "income": 3100.5, "city": "lyon"}  # a valid row of the `credit` model
RATE = 250  # requests per second, paced
CLIENTS = 16


async def steady_load(url: str, seconds: float, during: Any) -> list[tuple[float, int, int]]:
    """(time, status, version) of each request sent at RATE per second for `seconds`, with
    `during()` run (in a thread) a third of the way in."""
    answers: list[tuple[float, int, int]] = []
    started = time.monotonic()
    interval = CLIENTS / RATE

    async def client_loop(http: httpx.AsyncClient, offset: float) -> None:
        due = started + offset
        while due < started + seconds:
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            try:
                answer = await http.post("/v1/models/credit/predict", json={"rows": [ROW]})
                version = answer.json().get("version", -1) if answer.status_code == 200 else -1
                answers.append((time.monotonic() - started, answer.status_code, version))
            except httpx.HTTPError:
                answers.append((time.monotonic() - started, 0, -1))
            due += interval

    async def trigger() -> None:
        await asyncio.sleep(seconds / 3)
        await asyncio.to_thread(during)

    limits = httpx.Limits(max_connections=CLIENTS)
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as http:
        loops = [client_loop(http, i * interval / CLIENTS) for i in range(CLIENTS)]
        await asyncio.gather(trigger(), *loops)
    return answers


def test_no_request_fails_while_the_alias_moves(
    start_server: Any, served_workspace: Workspace
) -> None:
    from fermion.training.trainer import train

    ws = served_workspace
    new = train(ws, "credit", "status", "logistic", params={"C": 0.05}).model
    assert new is not None
    process, url = start_server(ws.root, "credit@production", "--no-auth", "--no-access-log")
    try:
        answers = asyncio.run(
            steady_load(url, 8.0, lambda: ws.models.set_alias("credit", "production", new.version))
        )
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    statuses = {status for _, status, _ in answers}
    assert statuses == {200}, f"failed answers: {[a for a in answers if a[1] != 200][:5]}"
    versions = [version for _, _, version in sorted(answers)]
    assert versions[0] == 1 and versions[-1] == new.version
    first_new = versions.index(new.version)
    # in-flight answers may finish on the old version just after the swap, but not seconds later
    late_old = [t for t, _, v in answers if v == 1 and t > sorted(answers)[first_new][0] + 0.5]
    assert late_old == []
    rate = len(answers) / 8.0
    print(f"{len(answers)} requests, {rate:.0f}/s, swap after {sorted(answers)[first_new][0]:.1f}s")
    assert process.returncode == 0


def test_two_worker_processes_share_the_port_and_sum_their_metrics(
    start_server: Any, served_workspace: Workspace
) -> None:
    process, url = start_server(served_workspace.root, "credit:1", "--no-auth", "--workers", "2")
    try:
        with httpx.Client(base_url=url, timeout=10) as http:
            for _ in range(40):
                answer = http.post("/v1/models/credit/predict", json={"rows": [ROW]})
                assert answer.status_code == 200 and answer.json()["version"] == 1
            metrics = http.get("/metrics").text
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    line = next(
        line
        for line in metrics.splitlines()
        if line.startswith("fermion_requests_total{") and 'status="200"' in line
    )
    assert float(line.rsplit(" ", 1)[1]) == 40
    assert process.returncode == 0
