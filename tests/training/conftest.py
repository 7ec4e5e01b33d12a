"""Training fixtures: small synthetic tables of mixed types, and workspaces to train in."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from fermion.data.dataset import Dataset
from fermion.workspace import Workspace


def table(n: int = 600, seed: int = 0, target: str = "status") -> pl.DataFrame:
    """Integer, float (10% null), categorical, boolean and date features, plus one target:
    `status` (good/bad), `segment` (three classes), `defaulted` (0/1) or `amount` (float)."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    income = rng.normal(50_000, 15_000, n).round(2)
    city = rng.choice(["paris", "lyon", "nice", "lille"], n)
    member = rng.random(n) < 0.5
    days = rng.integers(0, 1000, n)
    score = (
        (age - 50) / 15
        + (income - 50_000) / 15_000
        + (city == "paris") * 1.0
        + member * 0.5
        + rng.normal(0, 0.5, n)
    )
    targets: dict[str, Any] = {
        "status": np.where(score > 0.3, "good", "bad"),
        "segment": np.select([score < -0.5, score < 0.7], ["low", "mid"], "high"),
        "defaulted": (score > 0.3).astype(np.int64),
        "amount": (1000 + 400 * score).round(3),
    }
    return pl.DataFrame(
        {
            "age": age,
            "income": [None if rng.random() < 0.1 else float(v) for v in income],
            "city": city,
            "member": member,
            "start": [dt.date(2020, 1, 1) + dt.timedelta(days=int(d)) for d in days],
            target: targets[target],
        }
    )


@pytest.fixture(scope="session")
def make_frame() -> Callable[..., pl.DataFrame]:
    """`make_frame(n=600, seed=0, target="status")`, for tests that change the rows first."""
    return table


@pytest.fixture
def sqlite_ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A workspace on its default embedded SQLite store, for the heavier single-backend tests."""
    monkeypatch.delenv("FERMION_METADATA_URL", raising=False)
    with Workspace.init(tmp_path / "sqlite-project") as ws:
        yield ws


@pytest.fixture
def ws(workspace: Any) -> Workspace:
    """The shared workspace fixture, on SQLite and on PostgreSQL."""
    assert isinstance(workspace, Workspace)
    return workspace


@pytest.fixture
def add_data(tmp_path: Path) -> Callable[..., Dataset]:
    """`add_data(ws, name, frame=None, **make_frame_kwargs)`: write a CSV, add it as a version."""
    counter = iter(range(1_000_000))

    def add(ws: Workspace, name: str, frame: pl.DataFrame | None = None, **kwargs: Any) -> Dataset:
        data = frame if frame is not None else table(**kwargs)
        path = tmp_path / f"{name}-{next(counter)}.csv"
        data.write_csv(path)
        return ws.datasets.add(path, name=name)

    return add
