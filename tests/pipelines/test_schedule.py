"""Schedules: due and missed slots at fixed times, `fermion schedule` add/list/remove, and
`fermion scheduler` running due pipelines once per slot, then stopped by SIGTERM."""

from __future__ import annotations

import contextlib
import json
import queue
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fermion.cli.main import app
from fermion.errors import InvalidInputError
from fermion.pipelines.schedule import (
    MAX_COUNTED,
    Due,
    add_schedule,
    due,
    latest_slot,
    next_slot,
    seconds_to_next,
)
from fermion.workspace import Workspace

DAILY = "0 3 * * *"


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


# -- due and missed slots, at fixed times ----------------------------------------------------


def test_nothing_is_due_before_the_first_slot_after_creation() -> None:
    assert due(DAILY, at(27, 2), at(27, 2, 59)) is None
    assert due(DAILY, at(27, 3, 30), at(28, 2, 59)) is None  # made after the day's slot


def test_a_slot_is_due_from_its_minute_on_and_once_run_is_not_due_again() -> None:
    assert due(DAILY, at(27, 2), at(27, 3)) == Due(at(27, 3))
    assert due(DAILY, at(27, 2), at(27, 17)) == Due(at(27, 3))
    assert due(DAILY, at(27, 3), at(27, 3)) is None  # `since` is the slot last run
    assert due(DAILY, at(27, 3), at(28, 2, 59)) is None
    assert due(DAILY, at(27, 3), at(28, 3)) == Due(at(28, 3))


def test_slots_passed_while_down_are_one_due_slot_and_a_missed_count() -> None:
    assert due(DAILY, at(26, 3), at(29, 4)) == Due(at(29, 3), missed=2, first_missed=at(27, 3))
    assert due("*/15 * * * *", at(27, 10), at(27, 11, 1)) == Due(
        at(27, 11), missed=3, first_missed=at(27, 10, 15)
    )


def test_missed_counting_stops_at_its_limit() -> None:
    long_down = due("* * * * *", at(1, 0), at(29, 0))
    assert long_down is not None and long_down.slot == at(29, 0)
    assert long_down.missed == MAX_COUNTED


def test_latest_slot_and_the_wait_for_the_next() -> None:
    assert latest_slot(DAILY, at(27, 3)) == at(27, 3)
    assert latest_slot(DAILY, at(27, 2, 59)) == at(26, 3)
    assert seconds_to_next([], at(27, 2)) is None


def test_a_time_zone_keeps_the_local_hour_across_daylight_saving() -> None:
    paris = "Europe/Paris"  # UTC+2 in summer, UTC+1 from 2026-10-25 03:00 local
    summer = datetime(2026, 10, 23, 12, 0, tzinfo=UTC)
    assert next_slot(DAILY, summer, paris) == datetime(2026, 10, 24, 1, 0, tzinfo=UTC)
    after = next_slot(DAILY, datetime(2026, 10, 24, 12, 0, tzinfo=UTC), paris)
    assert after == datetime(2026, 10, 25, 2, 0, tzinfo=UTC)  # 03:00 local, winter time
    assert due(DAILY, at(26, 12), at(27, 2, 30), paris) == Due(at(27, 2))
    assert due(DAILY, at(26, 12), at(27, 1, 59), paris) is None
    assert latest_slot(DAILY, at(27, 2), paris) == at(27, 2)
    with pytest.raises(InvalidInputError, match="unknown time zone 'Mars/Olympus'"):
        next_slot(DAILY, at(27, 2), "Mars/Olympus")


# -- the command line -----------------------------------------------------------------------

STEPS = """\
import os
import time
from pathlib import Path

HERE = Path(__file__).parent


def count(context):
    (HERE / "cwd.txt").write_text(os.getcwd())
    return {"one": 1.0}


def slow(context):
    (HERE / "started.txt").write_text("")
    time.sleep(2)
    return {"slept": 2.0}


def broken(context):
    raise RuntimeError("no luck")
"""
PIPELINES = """\
pipelines:
  tiny:
    steps:
      count:
        kind: python
        function: tiny_steps:count
  slow:
    steps:
      nap:
        kind: python
        function: tiny_steps:slow
  broken:
    steps:
      fail:
        kind: python
        function: tiny_steps:broken
"""


@pytest.fixture
def project(workspace_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COLUMNS", "200")
    (workspace_dir / "tiny_steps.py").write_text(STEPS)
    (workspace_dir / "fermion.yaml").write_text(PIPELINES)
    Workspace.init(workspace_dir).close()
    return workspace_dir


def fermion(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def listed(name: str) -> dict[str, Any]:
    result = fermion("schedule", "list", "--json")
    assert result.exit_code == 0, result.output
    found: dict[str, Any] = {s["name"]: s for s in json.loads(result.output)}[name]
    return found


def test_schedules_are_added_listed_and_removed(project: Path) -> None:
    added = fermion("schedule", "add", "tiny", "--cron", DAILY)
    assert added.exit_code == 0, added.output
    assert "scheduled tiny on 0 3 * * * (UTC), next run" in added.output
    named = fermion(
        "schedule", "add", "broken", "--cron", "*/5 * * * *", "--name", "often", "--file",
        str(project / "fermion.yaml"),
    )  # fmt: skip
    assert named.exit_code == 0, named.output
    assert "often (broken)" in named.output

    table = fermion("schedule", "list")
    assert table.exit_code == 0
    assert "tiny" in table.output and "often" in table.output and "*/5 * * * *" in table.output
    tiny = listed("tiny")
    assert tiny["pipeline"] == "tiny" and tiny["cron"] == DAILY
    assert tiny["project_file"] == str((project / "fermion.yaml").resolve())
    assert (tiny["last_run_at"], tiny["last_status"], tiny["missed"]) == (None, None, 0)

    again = fermion("schedule", "add", "tiny", "--cron", DAILY)
    assert again.exit_code == 2 and "a schedule named 'tiny' already exists" in again.output
    removed = fermion("schedule", "remove", "tiny")
    assert removed.exit_code == 0 and "removed schedule tiny" in removed.output
    assert [s["name"] for s in json.loads(fermion("schedule", "list", "--json").output)] == [
        "often"
    ]
    gone = fermion("schedule", "remove", "tiny")
    assert gone.exit_code == 2 and "no schedule named 'tiny'" in gone.output


def test_a_schedule_in_a_time_zone_shows_its_local_times(project: Path) -> None:
    added = fermion("schedule", "add", "tiny", "--cron", DAILY, "--tz", "Asia/Tokyo")
    assert added.exit_code == 0, added.output
    assert "scheduled tiny on 0 3 * * * (Asia/Tokyo), next run" in added.output
    assert "03:00 JST" in added.output
    assert listed("tiny")["timezone"] == "Asia/Tokyo"
    table = fermion("schedule", "list")
    assert "Asia/Tokyo" in table.output and "03:00 JST" in table.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("tiny", "--cron", "0 3 * *"), "not a cron expression: '0 3 * *'"),
        (("tiny", "--cron", "61 * * * *"), "not a cron expression: '61 * * * *'"),
        (("nowhere", "--cron", DAILY), "nowhere"),
        (("tiny", "--cron", DAILY, "--tz", "Paris"), "unknown time zone 'Paris'"),
    ],
)
def test_a_bad_cron_or_pipeline_is_one_line_and_exit_2(
    project: Path, args: tuple[str, ...], message: str
) -> None:
    result = fermion("schedule", "add", *args)
    assert result.exit_code == 2
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert json.loads(fermion("schedule", "list", "--json").output) == []


def test_scheduler_once_runs_a_due_pipeline_once_per_slot_and_reports_missed_runs(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    slot = latest_slot(DAILY, now)
    with Workspace.open() as ws:  # made 3 days and an hour before today's slot
        add_schedule(
            ws, "tiny", project / "fermion.yaml", DAILY, now=slot - timedelta(days=3, hours=1)
        )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("FERMION_HOME", str(project / ".fermion"))
    monkeypatch.chdir(elsewhere)

    first = fermion("scheduler", "--once")
    assert first.exit_code == 0, first.output
    first_missed = slot - timedelta(days=3)
    assert f"tiny: 3 runs missed since {first_missed:%Y-%m-%d %H:%M} UTC, running once now" in (
        first.output
    )
    assert first.output.count("tiny: ok, run ") == 1
    assert (project / "cwd.txt").read_text() == str(project)  # run in its project's folder
    shown = listed("tiny")
    assert shown["last_status"] == "ok" and shown["missed"] == 3
    assert datetime.fromisoformat(shown["last_run_at"]) == slot
    assert f"run {shown['last_run_id']}" in first.output

    second = fermion("scheduler", "--once")  # the same slot: nothing to do, nothing missed
    assert second.exit_code == 0, second.output
    assert "nothing due" in second.output and "missed" not in second.output
    assert listed("tiny")["last_run_id"] == shown["last_run_id"]


def test_a_failing_scheduled_pipeline_is_reported_and_not_retried(project: Path) -> None:
    add_due("broken", "* * * * *", timedelta(minutes=1, seconds=1))
    result = fermion("scheduler", "--once")
    assert result.exit_code == 1
    assert "broken: failed, run " in result.output and "no luck" in result.output
    assert listed("broken")["last_status"] == "failed"
    assert "nothing due" in fermion("scheduler", "--once").output


# -- the real process -----------------------------------------------------------------------


class _Scheduler:
    """`fermion scheduler --poll 1` in a process of its own, its output read line by line."""

    def __init__(self, project: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "fermion", "scheduler", "--poll", "1"],
            cwd=project,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.seen):
            left = deadline - time.monotonic()
            assert left > 0, "".join(self.seen)
            with contextlib.suppress(queue.Empty):
                self.seen.append(self.lines.get(timeout=min(left, 0.5)))

    def stop(self) -> int:
        """SIGTERM, then the exit code (killed after 10 s: the test fails, nothing hangs)."""
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=10)
        finally:
            self.close()

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=5)
        assert self.process.stdout is not None
        self.process.stdout.close()
        while not self.lines.empty():
            self.seen.append(self.lines.get())

    @property
    def output(self) -> str:
        return "".join(self.seen)


def add_due(name: str, cron: str, ago: timedelta) -> None:
    """Schedule pipeline `name` as if added `ago` before now."""
    with Workspace.open() as ws:
        add_schedule(ws, name, Path("fermion.yaml"), cron, now=datetime.now(UTC) - ago)


def test_a_waiting_scheduler_stops_on_sigterm_with_exit_0(project: Path) -> None:
    assert fermion("schedule", "add", "tiny", "--cron", DAILY).exit_code == 0
    scheduler = _Scheduler(project)
    try:
        scheduler.wait_for("scheduler started: 1 schedule")
        started = time.monotonic()
        assert scheduler.stop() == 0
        assert time.monotonic() - started < 5
    finally:
        scheduler.close()
    assert "scheduler stopped" in scheduler.output


def test_sigterm_lets_the_running_pipeline_finish_first(project: Path) -> None:
    add_due("slow", "* * * * *", timedelta(minutes=1, seconds=1))
    scheduler = _Scheduler(project)
    try:
        deadline = time.monotonic() + 60
        while not (project / "started.txt").exists():
            assert time.monotonic() < deadline and scheduler.process.poll() is None
            time.sleep(0.05)
        assert scheduler.stop() == 0
    finally:
        scheduler.close()
    assert "slow: ok, run " in scheduler.output and "scheduler stopped" in scheduler.output
    assert listed("slow")["last_status"] == "ok"


def test_a_run_interrupted_by_a_second_ctrl_c_is_recorded_so(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fermion.pipelines import runner
    from fermion.pipelines.schedule import run_due

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt

    add_due("tiny", DAILY, timedelta(days=1, minutes=1))
    monkeypatch.setattr(runner, "run_pipeline", interrupted)
    with Workspace.open() as ws, pytest.raises(KeyboardInterrupt):
        run_due(ws)
    assert listed("tiny")["last_status"] == "interrupted"
    assert "nothing due" in fermion("scheduler", "--once").output
