"""Which of a few close variants is faster, measured in alternating rounds.

`measure` times each variant in its own process, one after the other: fair for the report,
but a machine's speed drifts between those processes by more than two int8 variants differ
(an MLP's static and dynamic int8 measured 5.12x and 4.87x fp32 in one run and the other way
round in the next). Choosing the variant an alias goes to takes the close ones again, in one
process, round after round in alternating order, and compares their medians.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

BATCH = 32
# Variants within this fraction of the fastest are taken again. Wide, because int8 kernels'
# speed swings by up to 45% from one process to the next on a shared VM (float32 within 10%):
# a 10% window let a run send the alias to dynamic int8 when static was the faster.
CLOSE = 0.67


def close_to_fastest(speeds: Mapping[str, float]) -> list[str]:
    """The names whose speed is within `CLOSE` of the best one, fastest first."""
    if not speeds:
        return []
    best = max(speeds.values())
    ranked = sorted(speeds, key=lambda name: -speeds[name])
    return [name for name in ranked if speeds[name] >= CLOSE * best]


def head_to_head(
    models: Mapping[str, Any],
    X: npt.NDArray[np.float32],
    *,
    rounds: int = 7,
    seconds: float = 0.25,
) -> dict[str, float]:
    """Median rows/s at batch 32 of each of `models` (fitted models: `predict_proba`, or
    `predict` for a regressor), timed for `seconds` each round, the order alternating."""
    batch = np.ascontiguousarray(np.resize(X, (BATCH, X.shape[1])), dtype=np.float32)
    calls = {name: _call(model) for name, model in models.items()}
    for call in calls.values():
        call(batch)  # warm: sessions built, arenas sized
    rates: dict[str, list[float]] = {name: [] for name in calls}
    order = list(calls)
    for round_index in range(rounds):
        for name in order if round_index % 2 == 0 else reversed(order):
            rates[name].append(_rate(calls[name], batch, seconds))
    return {name: statistics.median(values) for name, values in rates.items()}


def _call(model: Any) -> Any:
    return model.predict if model.task == "regression" else model.predict_proba


def _rate(call: Any, batch: npt.NDArray[np.float32], seconds: float) -> float:
    calls = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        call(batch)
        calls += 1
        now = time.perf_counter()
        if now >= deadline:
            return calls * len(batch) / (now - started)
