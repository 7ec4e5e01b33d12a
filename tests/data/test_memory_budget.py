"""The in-memory budget follows the process's cgroup memory limit, v1 or v2."""

from __future__ import annotations

from pathlib import Path

import pytest

from fermion.data.csv_reader import cgroup_memory_limit, memory_budget

GIB = 1 << 30


def _listing(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cgroup"
    path.write_text(text, encoding="utf-8")
    return path


def test_v2_limit(tmp_path: Path) -> None:
    group = tmp_path / "sys" / "jobs" / "ingest"
    group.mkdir(parents=True)
    (group / "memory.max").write_text(f"{GIB}\n", encoding="utf-8")
    listing = _listing(tmp_path, "0::/jobs/ingest\n")
    assert cgroup_memory_limit(listing, tmp_path / "sys") == GIB


def test_v1_limit_and_v1_no_limit(tmp_path: Path) -> None:
    group = tmp_path / "sys" / "memory" / "batch"
    group.mkdir(parents=True)
    limit = group / "memory.limit_in_bytes"
    limit.write_text("838860800\n", encoding="utf-8")
    listing = _listing(tmp_path, "5:cpu:/\n4:memory:/batch\n0::/\n")
    assert cgroup_memory_limit(listing, tmp_path / "sys") == 838860800
    limit.write_text("9223372036854771712\n", encoding="utf-8")  # v1's "no limit"
    assert cgroup_memory_limit(listing, tmp_path / "sys") is None


def test_v2_max_or_nothing_readable_means_no_limit(tmp_path: Path) -> None:
    group = tmp_path / "sys" / "free"
    group.mkdir(parents=True)
    (group / "memory.max").write_text("max\n", encoding="utf-8")
    assert cgroup_memory_limit(_listing(tmp_path, "0::/free\n"), tmp_path / "sys") is None
    assert cgroup_memory_limit(tmp_path / "missing", tmp_path / "sys") is None


def test_budget_is_an_eighth_of_the_cgroup_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fermion.data.csv_reader.cgroup_memory_limit", lambda: 800 * (1 << 20))
    assert memory_budget() == 100 * (1 << 20)
