"""A structured JSON access log, written off the request path.

A request only puts a tuple on a queue (about a microsecond); a daemon thread wakes every
50 ms, turns the queued records into JSON lines and writes them in bulk, so a slow terminal
or disk never slows answers down.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from typing import IO, Any

FIELDS = ("ts", "method", "path", "status", "ms", "model", "version", "key", "rows", "client")
_STOP = object()
FLUSH_S = 0.05  # how often queued records are written


class AccessLog:
    def __init__(self, stream: IO[str] | None = None) -> None:
        self._stream = stream
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._write_loop, name="access-log", daemon=True)
        self._thread.start()

    def record(
        self,
        method: str,
        path: str,
        status: int,
        seconds: float,
        model: str,
        version: str,
        key: str,
        rows: int,
        client: str,
    ) -> None:
        self._queue.put(
            (time.time(), method, path, status, seconds, model, version, key, rows, client)
        )

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=5)

    def _write_loop(self) -> None:
        # Wakes on a timer, not on each record: a consumer blocked in get() would be woken
        # (and take the GIL) once per request.
        import orjson

        stream = self._stream or sys.stderr
        stop = False
        while not stop:
            time.sleep(FLUSH_S)
            lines = []
            while True:
                try:
                    record = self._queue.get_nowait()
                except queue.Empty:
                    break
                if record is _STOP:
                    stop = True
                    continue
                ts, method, path, status, seconds, *rest = record
                values = (_iso(ts), method, path, status, round(seconds * 1000, 3), *rest)
                lines.append(orjson.dumps(dict(zip(FIELDS, values, strict=True))).decode())
            if lines:
                try:
                    stream.write("\n".join(lines) + "\n")
                    stream.flush()
                except (OSError, ValueError):  # a closed stream must not kill the thread
                    pass


def _iso(ts: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))
    return f"{seconds}.{int(ts % 1 * 1000):03d}Z"
