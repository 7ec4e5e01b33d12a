"""Adaptive batching: requests that arrive together become one model call.

The batcher never makes a lone request wait: when no call of the model is running, a request
goes at once. While calls run, new requests queue; a free slot takes everything queued (up to
`max_batch_size` rows), waiting at most `max_wait_ms` for more only when another call is
already running (then the machine is busy anyway, and a fuller batch costs less per row).
Under load the batch size therefore grows by itself with the arrival rate.

Model calls run in a thread pool, off the event loop; `slots` bounds how many run at once.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from fermion.serving.inputs import Columns
from fermion.serving.options import BatchOptions


class BatchResult(Protocol):
    """A model call's answer for a batch, row-aligned, that can be cut back into requests."""

    def slice(self, start: int, stop: int) -> Any: ...


R = TypeVar("R", bound=BatchResult)


@dataclass
class _Item:
    columns: Columns
    rows: int
    future: asyncio.Future[Any] = field(repr=False)


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
        self._executor = executor
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
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.append(_Item(columns, rows, future))
        self._queued_rows += rows
        self._arrived()
        return await future

    def _arrived(self) -> None:
        if self._in_flight >= self._slots:
            return  # the next call to finish takes the queue
        if self._in_flight == 0 or self._queued_rows >= self._max_rows or self._wait_s == 0:
            self._dispatch()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._wait_s, self._dispatch)

    def _dispatch(self) -> None:
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
            asyncio.get_running_loop().create_task(self._run(batch, rows))

    async def _run(self, batch: list[_Item], rows: int) -> None:
        loop = asyncio.get_running_loop()
        try:
            columns = batch[0].columns if len(batch) == 1 else _merge([i.columns for i in batch])
            if self._on_batch is not None:
                self._on_batch(rows)
            try:
                result = await loop.run_in_executor(self._executor, self._call, columns, rows)
            except Exception as exc:
                if len(batch) == 1:
                    _fail(batch[0], exc)
                    return
                # One bad request must not fail the others it was merged with.
                for item in batch:
                    try:
                        alone = await loop.run_in_executor(
                            self._executor, self._call, item.columns, item.rows
                        )
                    except Exception as item_exc:
                        _fail(item, item_exc)
                    else:
                        _answer(item, alone.slice(0, item.rows))
                return
            offset = 0
            for item in batch:
                _answer(item, result.slice(offset, offset + item.rows))
                offset += item.rows
        finally:
            self._in_flight -= 1
            if self._queue:
                self._dispatch()


def _answer(item: _Item, value: Any) -> None:
    if not item.future.done():  # the request may have timed out or its client gone
        item.future.set_result(value)


def _fail(item: _Item, exc: BaseException) -> None:
    if not item.future.done():
        item.future.set_exception(exc)


def _merge(parts: list[Columns]) -> Columns:
    return {name: [v for part in parts for v in part[name]] for name in parts[0]}


def _cut(columns: Columns, start: int, stop: int) -> Columns:
    return {name: values[start:stop] for name, values in columns.items()}


def _ranges(rows: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, rows)) for start in range(0, rows, size)]
