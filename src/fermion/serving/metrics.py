"""Prometheus metrics of a server: requests, latency, batch sizes, in-flight, model loads.

Each app has its own registry (tests run several apps in one process). With several worker
processes, `PROMETHEUS_MULTIPROC_DIR` is set by `fermion serve` and `/metrics` sums the
workers' files.
"""

from __future__ import annotations

import os
from typing import Any

LATENCY_BUCKETS = (
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServerMetrics:
    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self._multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self.registry = CollectorRegistry(auto_describe=True)
        own: Any = None if self._multiprocess else self.registry
        self._requests = Counter(
            "fermion_requests",
            "Requests answered, by model, version, protocol and HTTP status.",
            ["model", "version", "protocol", "status"],
            registry=own,
        )
        self._latency = Histogram(
            "fermion_request_seconds",
            "Time from the request's arrival to its answer, by model.",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self._batch_rows = Histogram(
            "fermion_batch_rows",
            "Rows per model call, by model (adaptive batching merges requests).",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=own,
        )
        self._in_flight = Gauge(
            "fermion_in_flight_requests",
            "Requests being answered now.",
            registry=own,
            multiprocess_mode="livesum",
        )
        self._load_seconds = Gauge(
            "fermion_model_load_seconds",
            "Seconds the serving version took to load and warm up.",
            ["model", "version"],
            registry=own,
            multiprocess_mode="max",
        )
        self._swaps = Counter(
            "fermion_model_swaps",
            "Version changes after an alias moved, by outcome (swapped or failed).",
            ["model", "outcome"],
            registry=own,
        )
        # One process: the gauge reads a plain count when scraped (no lock per request);
        # several: each worker's value lives in its metrics file, so it is set as it moves.
        self._in_flight_now = 0
        if not self._multiprocess:
            self._in_flight.set_function(lambda: self._in_flight_now)
        # (model, version, protocol, status) -> its counter and its model's latency histogram
        self._request_children: dict[tuple[str, str, str, int], tuple[Any, Any]] = {}
        self._batch_children: dict[str, Any] = {}

    def request_started(self) -> None:
        self._in_flight_now += 1
        if self._multiprocess:
            self._in_flight.inc()

    def request_finished(
        self, model: str, version: str, protocol: str, status: int, seconds: float
    ) -> None:
        self._in_flight_now -= 1
        if self._multiprocess:
            self._in_flight.dec()
        key = (model, version, protocol, status)
        children = self._request_children.get(key)
        if children is None:
            requests = self._requests.labels(model, version, protocol, str(status))
            latency = self._latency.labels(model) if model else None
            children = self._request_children[key] = (requests, latency)
        children[0].inc()
        if children[1] is not None:
            children[1].observe(seconds)

    def batch(self, model: str, rows: int) -> None:
        child = self._batch_children.get(model)
        if child is None:
            child = self._batch_children[model] = self._batch_rows.labels(model)
        child.observe(rows)

    def loaded(self, model: str, version: str, seconds: float) -> None:
        self._load_seconds.labels(model, version).set(seconds)

    def swapped(self, model: str, outcome: str) -> None:
        self._swaps.labels(model, outcome).inc()

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        if not self._multiprocess:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        from prometheus_client import multiprocess

        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
        return generate_latest(merged), CONTENT_TYPE_LATEST
