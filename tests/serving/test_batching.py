"""Adaptive batching: lone requests go at once, concurrent ones merge, nothing leaks across."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest

from fermion.serving.batching import Batcher, InferencePool
from fermion.serving.inputs import Columns
from fermion.serving.options import BatchOptions


@dataclass(frozen=True)
class Doubled:
    values: list[Any]

    def slice(self, start: int, stop: int) -> Doubled:
        return Doubled(self.values[start:stop])


def join(parts: Sequence[Doubled]) -> Doubled:
    return Doubled([v for p in parts for v in p.values])


class Model:
    """Doubles `x`; records each call's row count; a call can be held until released."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[int] = []
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, columns: Columns, rows: int) -> Doubled:
        with self.lock:
            self.calls.append(rows)
        if any(v == "boom" for v in columns["x"]):
            raise ValueError("cannot double 'boom'")
        time.sleep(self.delay)
        return Doubled([v * 2 for v in columns["x"]])


@pytest.fixture(params=["inference-pool", "thread-pool"])
def batcher(request: pytest.FixtureRequest) -> Iterator[Any]:
    """`batcher(model, options, slots=1)`, running its calls in the server's pool or in any
    `Executor`."""
    pools: list[Any] = []

    def make(model: Model, options: BatchOptions, slots: int = 1) -> Batcher[Doubled]:
        pool = InferencePool(4) if request.param == "inference-pool" else ThreadPoolExecutor(4)
        pools.append(pool)
        return Batcher(model, options, pool, slots=slots, join=join)

    yield make
    for pool in pools:
        pool.shutdown()


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


def test_a_lone_request_does_not_wait_for_company(batcher: Any) -> None:
    model = Model()
    b = batcher(model, BatchOptions(max_batch_size=64, max_wait_ms=2000))

    async def main() -> float:
        started = time.perf_counter()
        assert (await b.submit({"x": [1, 2]}, 2)).values == [2, 4]
        return time.perf_counter() - started

    assert run(main()) < 0.5  # nowhere near the 2 s window
    assert model.calls == [2]


def test_requests_queued_together_become_one_call_and_split_back(batcher: Any) -> None:
    model = Model(delay=0.05)
    b = batcher(model, BatchOptions(max_batch_size=64, max_wait_ms=1))

    async def main() -> list[Any]:
        return await asyncio.gather(*(b.submit({"x": [i, i + 100]}, 2) for i in range(20)))

    answers = run(main())
    assert [a.values for a in answers] == [[2 * i, 2 * (i + 100)] for i in range(20)]
    # the first went alone (nothing running); the rest queued meanwhile and went together
    assert model.calls[0] == 2
    assert len(model.calls) < 20
    assert max(model.calls) > 2


def test_batches_never_exceed_the_max_rows_and_big_requests_go_in_parts(batcher: Any) -> None:
    model = Model(delay=0.01)
    b = batcher(model, BatchOptions(max_batch_size=8, max_wait_ms=1))

    async def main() -> list[Any]:
        big = b.submit({"x": list(range(20))}, 20)
        small = [b.submit({"x": [i]}, 1) for i in range(30)]
        return await asyncio.gather(big, *small)

    answers = run(main())
    assert answers[0].values == [2 * i for i in range(20)]
    assert [a.values for a in answers[1:]] == [[2 * i] for i in range(30)]
    assert max(model.calls) <= 8
    assert sum(model.calls) == 50


def test_a_bad_request_fails_alone_not_its_batch_mates(batcher: Any) -> None:
    model = Model(delay=0.05)
    b = batcher(model, BatchOptions(max_batch_size=64, max_wait_ms=1))

    async def main() -> list[Any]:
        first = b.submit({"x": [1]}, 1)  # runs alone, holding the slot
        rest = [b.submit({"x": [v]}, 1) for v in (2, "boom", 4)]
        return await asyncio.gather(first, *rest, return_exceptions=True)

    answers = run(main())
    assert answers[0].values == [2]
    assert answers[1].values == [4]
    assert isinstance(answers[2], ValueError)
    assert answers[3].values == [8]


def test_with_batching_off_each_request_is_its_own_call(batcher: Any) -> None:
    model = Model(delay=0.01)
    b = batcher(model, BatchOptions(enabled=False))

    async def main() -> list[Any]:
        return await asyncio.gather(*(b.submit({"x": [i, i]}, 2) for i in range(10)))

    run(main())
    assert model.calls == [2] * 10


def test_slots_bound_the_calls_running_at_once() -> None:
    running = 0
    peak = 0
    guard = threading.Lock()

    def call(columns: Columns, rows: int) -> Doubled:
        nonlocal running, peak
        with guard:
            running += 1
            peak = max(peak, running)
        time.sleep(0.02)
        with guard:
            running -= 1
        return Doubled(columns["x"])

    b = Batcher(call, BatchOptions(max_batch_size=1), ThreadPoolExecutor(8), slots=2, join=join)

    async def main() -> None:
        await asyncio.gather(*(b.submit({"x": [i]}, 1) for i in range(12)))

    run(main())
    assert peak == 2


def test_a_request_that_gave_up_does_not_break_the_batcher(batcher: Any) -> None:
    model = Model(delay=0.05)
    b = batcher(model, BatchOptions(max_batch_size=64, max_wait_ms=1))

    async def main() -> Any:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.01):
                await b.submit({"x": [1]}, 1)
        return await b.submit({"x": [5]}, 1)

    assert run(main()).values == [10]


def test_batch_options_are_checked() -> None:
    from fermion.errors import InvalidInputError

    with pytest.raises(InvalidInputError, match="at least 1"):
        BatchOptions(max_batch_size=0)
    with pytest.raises(InvalidInputError, match="0 ms or more"):
        BatchOptions(max_wait_ms=-1)


def test_the_inference_pool_runs_submitted_calls_and_posted_jobs() -> None:
    pool = InferencePool(2)
    try:
        assert pool.submit(lambda a, b: a + b, 2, b=3).result(timeout=5) == 5
        failed = pool.submit(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            failed.result(timeout=5)
        done = threading.Event()
        pool.post(done.set)
        assert done.wait(5)
        names = pool.submit(lambda: threading.current_thread().name).result(timeout=5)
        assert names.startswith("inference")
    finally:
        pool.shutdown()
    with pytest.raises(RuntimeError, match="shut down"):
        pool.submit(print)


def test_a_batcher_whose_pool_shut_down_fails_its_requests() -> None:
    pool = InferencePool(1)
    b = Batcher(Model(), BatchOptions(), pool, slots=1, join=join)
    pool.shutdown()

    async def main() -> None:
        with pytest.raises(RuntimeError, match="shut down"):
            await b.submit({"x": [1]}, 1)

    run(main())
