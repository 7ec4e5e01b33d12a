"""Tuning fixtures: a small mixed-type table, a fast space file, SQLite-only workspaces."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import optuna
import polars as pl
import pytest

from fermion.workspace import Workspace

# Thirty boosting rounds keep every trial fast; the rest of the lightgbm space is the default.
FAST_SPACE = "params:\n  num_boost_round: 30\n"


def table(n: int = 400, seed: int = 0) -> pl.DataFrame:
    """Integer, float (10% null), categorical and boolean features; a binary target `status`
    (good/bad) and a regression target `amount`, both learnable from the features."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    income = rng.normal(50_000, 15_000, n).round(2)
    city = rng.choice(["paris", "lyon", "nice"], n)
    member = rng.random(n) < 0.5
    score = (
        (age - 50) / 15
        + (income - 50_000) / 15_000
        + (city == "paris") * 1.0
        + member * 0.5
        + rng.normal(0, 0.5, n)
    )
    return pl.DataFrame(
        {
            "age": age,
            "income": [None if rng.random() < 0.1 else float(v) for v in income],
            "city": city,
            "member": member,
            "status": np.where(score > 0.3, "good", "bad"),
            "amount": (1000 + 400 * score).round(3),
        }
    )


@pytest.fixture(scope="session")
def make_frame() -> Callable[..., pl.DataFrame]:
    """`make_frame(n=400, seed=0)`: the small table as a Polars frame."""
    return table


@pytest.fixture
def add_credit(tmp_path: Path) -> Callable[..., str]:
    """`add_credit(ws, target="status", n=400, seed=0)`: add the table with one of its two
    targets (the other would give the answer away) as dataset `credit`; returns its ref."""
    counter = iter(range(1_000_000))

    def add(ws: Workspace, target: str = "status", n: int = 400, seed: int = 0) -> str:
        path = tmp_path / f"credit-{next(counter)}.csv"
        other = "amount" if target == "status" else "status"
        table(n, seed).drop(other).write_csv(path)
        return ws.datasets.add(path, name="credit").ref

    return add


@pytest.fixture
def space_file(tmp_path: Path) -> Callable[..., str]:
    """`space_file(text=FAST_SPACE, name="space.yaml")`: write a space file, return its path."""

    def write(text: str = FAST_SPACE, name: str = "space.yaml") -> str:
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        return str(path)

    return write


@pytest.fixture
def sqlite_ws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    """A workspace on its default SQLite store, for the heavier single-backend tests."""
    monkeypatch.delenv("FERMION_METADATA_URL", raising=False)
    with Workspace.init(tmp_path / "sqlite-project") as ws:
        yield ws


@pytest.fixture
def stored_study() -> Iterator[Callable[[Workspace, str], optuna.Study]]:
    """`stored_study(ws, name)`: the study as Optuna stores it in the workspace's database."""
    from fermion.tuning.study import close_storage, open_storage, quiet_optuna

    opened: list[optuna.storages.RDBStorage] = []

    def load(ws: Workspace, name: str) -> optuna.Study:
        opened.append(open_storage(ws.settings.resolved_metadata_url))
        with quiet_optuna():
            return optuna.load_study(study_name=name, storage=opened[-1])

    yield load
    for storage in opened:
        close_storage(storage)
