"""Choosing between close variants: timed again in alternating rounds, in one process."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from fermion.optimize.head_to_head import close_to_fastest, head_to_head


class Sleepy:
    """A classifier whose every call takes `delay` seconds."""

    task = "binary"

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.calls = 0

    def predict_proba(self, X: Any) -> Any:
        self.calls += 1
        time.sleep(self.delay)
        return np.zeros((len(X), 2))


class Regressor(Sleepy):
    task = "regression"

    def predict(self, X: Any) -> Any:
        self.calls += 1
        return np.zeros(len(X))


def test_the_close_ones_are_those_within_a_third_of_the_fastest() -> None:
    speeds = {"a": 100.0, "b": 90.0, "c": 60.0, "d": 140.0}
    assert close_to_fastest(speeds) == ["d", "a"]
    assert close_to_fastest({"a": 100.0, "b": 95.0, "c": 60.0}) == ["a", "b"]
    assert close_to_fastest({"a": 100.0, "b": 30.0}) == ["a"]
    assert close_to_fastest({}) == []


def test_the_faster_model_wins_each_in_the_same_rounds() -> None:
    fast, slow, plain = Sleepy(0.001), Sleepy(0.003), Regressor(0.0)
    X = np.random.default_rng(0).random((5, 3)).astype(np.float32)  # fewer rows than a batch
    rates = head_to_head({"fast": fast, "slow": slow, "r": plain}, X, rounds=3, seconds=0.03)
    assert set(rates) == {"fast", "slow", "r"}
    assert rates["fast"] > rates["slow"] > 0
    assert fast.calls > slow.calls >= 3 + 1  # every round, plus the warm-up call
    assert plain.calls > 0
