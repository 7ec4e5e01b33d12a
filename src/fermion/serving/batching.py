"""Adaptive batching: requests that arrive together become one model call.

The batcher never makes a lone request wait: when no call of the model is running, a request
goes at once. While calls run, new requests queue; a free slot takes everything queued (up to
`max_batch_size` rows), waiting at most `max_wait_ms` for more only when another call is
already running (then the machine is busy anyway, and a fuller batch costs less per row).
Under load the batch size therefore grows by itself with the arrival rate.

Model calls run in a thread pool, off the event loop; `slots` bounds how many run at once. A
call's thread hands its answers back with one `call_soon_threadsafe`: no task, no concurrent
future per call. `InferencePool` is the server's pool: bare threads on one queue, which make
that hop about twice as fast as a `ThreadPoolExecutor`'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, Future
from typing import Any, Generic, Protocol, TypeVar

from fermion.serving.inputs import Columns
from fermion.serving.options import BatchOptions

log = logging.getLogger("fermion.serving")


class BatchResult(Protocol):
    """A model call's answer for a batch, row-aligned, that can be cut back into requests."""

    def slice(self, start: int, stop: int) -> Any: ...


R = TypeVar("R", bound=BatchResult)


class _Item:
    __slots__ = ("columns", "future", "rows")

    def __init__(self, columns: Columns, rows: int, future: asyncio.Future[Any]) -> None:
        self.columns = columns
        self.rows = rows
        self.future = future


class InferencePool(Executor):
    """`threads` daemon threads taking jobs from one queue. `post(fn, *args)` runs `fn` with
    no future (the job reports back itself, and must not raise); `submit` is the `Executor`
    one. A worker waits for its next job straight after one ends, so the event loop it
    answered gets the GIL at once."""

    def __init__(self, threads: int, name: str = "inference") -> None:
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}_{i}", daemon=True)
            for i in range(max(1, threads))
        ]
        for thread in self._threads:
            thread.start()

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        if self._closed:
            raise RuntimeError("cannot run a call after the pool shut down")
        self._jobs.put((fn, args, None))

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self._closed:
            raise RuntimeError("cannot run a call after the pool shut down")
        future: Future[Any] = Future()
        self._jobs.put((lambda: fn(*args, **kwargs), (), future))
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        if not self._closed:
            self._closed = True
            for _ in self._threads:
                self._jobs.put(None)
        if wait:
            for thread in self._threads:
                thread.join()

    def _work(self) -> None:
        get = self._jobs.get
        while (job := get()) is not None:
            fn, args, future = job
            del job  # hold nothing of a finished job while waiting for the next
            if future is None:
                try:
                    fn(*args)
                except BaseException:
                    log.exception("an inference job failed")
            elif future.set_running_or_notify_cancel():
                try:
                    result = fn(*args)
                except BaseException as exc:
                    future.set_exception(exc)
                else:
                    future.set_result(result)
                    del result
            del fn, args, future


class Batcher(Generic[R]):
    def __init__(
        self,
        call: Callable[[Columns, int], R],
        options: BatchOptions,
        executor: Executor,
        *,
        slots: int,
        join: Callable[[Sequence[Any]], Any],
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._call = call
        self._join = join
        self._max_rows = options.max_batch_size if options.enabled else 1
        self._merge = options.enabled
        self._wait_s = options.max_wait_ms / 1000 if options.enabled else 0.0
        # Any executor runs the calls; the returned future of `submit` goes unused.
        self._post: Callable[..., Any] = (
            executor.post if isinstance(executor, InferencePool) else executor.submit
        )
        self._slots = max(1, slots)
        self._on_batch = on_batch
        self._queue: deque[_Item] = deque()
        self._queued_rows = 0
        self._in_flight = 0
        self._timer: asyncio.TimerHandle | None = None

    async def submit(self, columns: Columns, rows: int) -> Any:
        """The model's answer for these rows; a request over the batch size goes in parts."""
        if self._merge and rows > self._max_rows:
            parts = [
                self.submit(_cut(columns, start, stop), stop - start)
                for start, stop in _ranges(rows, self._max_rows)
            ]
            return self._join(await asyncio.gather(*parts))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._queue.append(_Item(columns, rows, future))
        self._queued_rows += rows
        if self._in_flight < self._slots:  # else the next call to finish takes the queue
            if self._in_flight == 0 or self._queued_rows >= self._max_rows or self._wait_s == 0:
                self._dispatch(loop)
            elif self._timer is None:
                self._timer = loop.call_later(self._wait_s, self._dispatch, loop)
        return await future

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._queue and self._in_flight < self._slots:
            batch = [self._queue.popleft()]
            rows = batch[0].rows
            while self._merge and self._queue and rows + self._queue[0].rows <= self._max_rows:
                batch.append(self._queue.popleft())
                rows += batch[-1].rows
            self._queued_rows -= rows
            self._in_flight += 1
            try:
                self._post(self._run, loop, batch, rows)
            except Exception as exc:  # the pool shut down
                self._finished(batch, [(False, exc)] * len(batch))

    def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Item], rows: int) -> None:
        """In a pool thread: the batch's call, then its answers handed to the loop."""
        try:
            outcomes = self._outcomes(batch, rows)
        except BaseException as exc:  # whatever happens, the loop hears back
            outcomes = [(False, exc)] * len(batch)
        # RuntimeError: the loop closed meanwhile, and nobody waits for these answers
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._finished, batch, outcomes)

    def _outcomes(self, batch: list[_Item], rows: int) -> list[tuple[bool, Any]]:
        """(True, answer) or (False, exception) for each item of the batch."""
        columns = batch[0].columns if len(batch) == 1 else _merge([i.columns for i in batch])
        if self._on_batch is not None:
            self._on_batch(rows)
        try:
            result = self._call(columns, rows)
        except Exception as exc:
            if len(batch) == 1:
                return [(False, exc)]
            # One bad request must not fail the others it was merged with.
            return [self._alone(item) for item in batch]
        outcomes = []
        offset = 0
        for item in batch:
            outcomes.append((True, result.slice(offset, offset + item.rows)))
            offset += item.rows
        return outcomes

    def _alone(self, item: _Item) -> tuple[bool, Any]:
        try:
            return True, self._call(item.columns, item.rows).slice(0, item.rows)
        except Exception as exc:
            return False, exc

    def _finished(self, batch: list[_Item], outcomes: list[tuple[bool, Any]]) -> None:
        """On the loop: each request gets its answer, and a free slot takes the queue."""
        for item, (ok, value) in zip(batch, outcomes, strict=True):
            future = item.future
            if future.done():  # the request timed out or its client went away
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        self._in_flight -= 1
        if self._queue:
            self._dispatch(asyncio.get_running_loop())


def _merge(parts: list[Columns]) -> Columns:
    return {name: [v for part in parts for v in part[name]] for name in parts[0]}


def _cut(columns: Columns, start: int, stop: int) -> Columns:
    return {name: values[start:stop] for name, values in columns.items()}


def _ranges(rows: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, rows)) for start in range(0, rows, size)]
