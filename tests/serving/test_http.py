"""The HTTP edge's pieces that the predict path uses directly: reading a body from an ASGI
channel within its limits, and the request deadline."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from starlette.requests import ClientDisconnect

from fermion.serving.http import Deadline, HTTPError, error_response, header_values, receive_body


def channel(*messages: dict[str, Any], pause: float = 0.0) -> Any:
    """An ASGI receive callable giving `messages` in turn, each after `pause` seconds."""
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        await asyncio.sleep(pause)
        return queue.pop(0)

    return receive


def chunk(body: bytes, more: bool = False) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


def test_a_body_in_parts_is_read_whole() -> None:
    receive = channel(chunk(b'{"a"', more=True), chunk(b"", more=True), chunk(b": 1}"))
    assert asyncio.run(receive_body(receive, None, 100, 1.0)) == b'{"a": 1}'


@pytest.mark.parametrize(
    ("declared", "messages", "status"),
    [
        ("500", [chunk(b"x")], 413),  # refused on the declared length, unread
        (None, [chunk(b"x" * 60, more=True), chunk(b"x" * 60)], 413),
        ("12a", [chunk(b"x")], 400),
    ],
)
def test_bodies_over_the_limit_or_with_a_bad_length_are_refused(
    declared: str | None, messages: list[dict[str, Any]], status: int
) -> None:
    with pytest.raises(HTTPError) as refused:
        asyncio.run(receive_body(channel(*messages), declared, 100, 1.0))
    assert refused.value.status == status


def test_a_body_slower_than_its_timeout_is_408() -> None:
    receive = channel(chunk(b"{", more=True), chunk(b"}"), pause=0.2)
    with pytest.raises(HTTPError) as slow:
        asyncio.run(receive_body(receive, None, 100, 0.05))
    assert slow.value.status == 408


def test_a_client_gone_mid_body_is_a_disconnect_not_a_server_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    receive = channel(chunk(b"{", more=True), {"type": "http.disconnect"})
    with pytest.raises(ClientDisconnect) as gone:
        asyncio.run(receive_body(receive, None, 100, None))
    assert error_response(gone.value).status_code == 499  # counted apart from the 500s
    assert not [r for r in caplog.records if r.levelname == "ERROR"]


def test_the_deadline_raises_timeout_only_when_its_own_time_runs_out() -> None:
    async def late() -> None:
        with Deadline(0.02):
            await asyncio.sleep(1)

    async def in_time() -> str:
        with Deadline(1):
            await asyncio.sleep(0)
        await asyncio.sleep(0.02)  # the timer was cancelled: nothing cancels this
        return "done"

    async def cancelled_from_outside() -> None:
        async def inner() -> None:
            with Deadline(5):
                await asyncio.sleep(1)

        task = asyncio.ensure_future(inner())
        await asyncio.sleep(0.01)
        task.cancel()
        await task

    with pytest.raises(TimeoutError):
        asyncio.run(late())
    assert asyncio.run(in_time()) == "done"
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(cancelled_from_outside())


def test_header_values_find_the_length_and_the_key_as_a_request_would() -> None:
    raw = [
        (b"content-type", b"application/json"),
        (b"x-api-key", b"fmn_b"),
        (b"content-length", b"12"),
        (b"content-length", b"99"),
    ]
    assert header_values(raw) == ("12", "fmn_b")
    assert header_values([*raw, (b"authorization", b"Bearer fmn_a")]) == ("12", "Bearer fmn_a")
    assert header_values([]) == (None, None)


def test_a_multi_worker_server_is_ready_when_every_live_worker_has_loaded(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fermion.serving.app import _ReadyMarks

    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert _ReadyMarks.for_workers(1) is None  # one process: its own models decide
    marks = _ReadyMarks.for_workers(2)
    assert marks is not None and not marks.all_ready()
    marks.mark()  # this process
    assert not marks.all_ready()
    (tmp_path / "ready-999999999").touch()  # a worker that died and was replaced
    assert not marks.all_ready()
    (tmp_path / f"ready-{os.getppid()}").touch()  # a live one
    assert marks.all_ready()
