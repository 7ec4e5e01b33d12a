"""Buffered metric logging: the training thread appends, a writer thread stores in batches."""

from __future__ import annotations

import threading

from fermion.entities import MetricPoint
from fermion.errors import StorageError
from fermion.storage import RunStore

FLUSH_INTERVAL_S = 1.0
BATCH_SIZE = 20_000


class MetricWriter:
    """Collects points in memory and writes them off the caller's thread.

    `add` only appends to a list under a lock. A daemon thread writes whatever is pending every
    `interval` seconds, or sooner once `batch_size` points wait. `flush` writes everything
    pending before it returns; `close` flushes and stops the thread. A failed write keeps its
    points for the next attempt and is raised from the next `flush`/`close`, so nothing is
    dropped silently.
    """

    def __init__(
        self,
        store: RunStore,
        run_id: int,
        *,
        interval: float = FLUSH_INTERVAL_S,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        self._store = store
        self._run_id = run_id
        self._interval = interval
        self._batch_size = batch_size
        self._pending: list[MetricPoint] = []
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()  # keeps batches in order between the two threads
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def add(self, point: MetricPoint) -> None:
        with self._lock:
            self._pending.append(point)
            size = len(self._pending)
        if self._thread is None:
            self._start()
        if size >= self._batch_size:
            self._wake.set()

    def flush(self) -> None:
        self._write_pending()
        if self._error is not None:
            error, self._error = self._error, None
            raise StorageError(f"could not store metrics of run {self._run_id}: {error}")

    def close(self) -> None:
        self._closed.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self.flush()

    def _start(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(
                target=self._loop, name=f"fermion-metrics-{self._run_id}", daemon=True
            )
            self._thread.start()

    def _loop(self) -> None:
        while not self._closed.is_set():
            self._wake.wait(self._interval)
            self._wake.clear()
            try:
                self._write_pending()
                self._error = None
            except Exception as exc:  # kept and raised on the caller's thread at flush
                self._error = exc

    def _write_pending(self) -> None:
        with self._write_lock:
            with self._lock:
                batch, self._pending = self._pending, []
            if not batch:
                return
            try:
                self._store.log_metrics(self._run_id, batch)
            except BaseException:
                with self._lock:
                    self._pending[:0] = batch
                raise
