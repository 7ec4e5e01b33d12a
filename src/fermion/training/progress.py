"""How training reports progress; the CLI draws it with Rich, the Python API stays quiet."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def stage(self, description: str) -> None:
        """A new phase began (loading data, fitting, evaluating, registering)."""

    def step(self, step: int, total: int, metrics: dict[str, float]) -> None:
        """One boosting round or epoch finished."""


class Silent:
    def stage(self, description: str) -> None:
        return None

    def step(self, step: int, total: int, metrics: dict[str, float]) -> None:
        return None
