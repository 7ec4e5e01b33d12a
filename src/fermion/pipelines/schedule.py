"""Schedules: pipelines run on a cron expression by a long-running scheduler.

A schedule keeps the slot its last run was for (`last_run_at`, else its creation time). A
slot is due once it has passed; when several have passed (the scheduler was down), the
pipeline runs once, for the latest, and the others count as missed. A run first claims its
slot in the store (a compare-and-set on `last_run_at`), so two schedulers never run one
slot twice. A cron expression is read in its schedule's time zone (UTC unless one is given),
so "0 3 * * *" in Europe/Paris stays at 03:00 there across daylight saving; slots are
returned and stored in UTC. Nothing here prints: the caller hears of each run through
`on_start` and `on_finish`.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from fermion.entities import ScheduleRecord
from fermion.errors import FermionError, InvalidInputError

if TYPE_CHECKING:
    from fermion.workspace import Workspace

# Missed slots are counted one by one, about 50 us each: an every-minute schedule down for a
# week stops the count here.
MAX_COUNTED = 10_000


def utcnow() -> datetime:
    return datetime.now(UTC)


def zone(name: str) -> tzinfo:
    """The IANA time zone `name` ("Europe/Paris", "UTC"), else `InvalidInputError`."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise InvalidInputError(
            f"unknown time zone {name!r}: use an IANA name such as 'Europe/Paris' or 'UTC'"
        ) from exc


class _Slots:
    """A cron expression's slots around `start`, read in `timezone`, given in UTC."""

    def __init__(self, cron: str, start: datetime, timezone: str = "UTC") -> None:
        from croniter import croniter

        self._slots = croniter(cron, start.astimezone(zone(timezone)))

    def next(self) -> datetime:
        found: datetime = self._slots.get_next(datetime)
        # fold=0: a slot in the hour a clock goes back over is its first occurrence
        return found.replace(fold=0).astimezone(UTC)

    def prev(self) -> datetime:
        found: datetime = self._slots.get_prev(datetime)
        return found.replace(fold=0).astimezone(UTC)


def check_cron(cron: str, timezone: str = "UTC") -> str:
    """`cron` itself (trimmed) when croniter reads it, else `InvalidInputError` naming it (or
    naming `timezone`, when that is no IANA zone)."""
    text = cron.strip()
    try:
        _Slots(text, utcnow(), timezone).next()  # also refuses a date that never comes
    except (ValueError, KeyError) as exc:
        raise InvalidInputError(
            f"not a cron expression: {cron!r} ({exc}); e.g. '0 3 * * *' is 03:00 daily"
        ) from exc
    return text


def next_slot(cron: str, after: datetime, timezone: str = "UTC") -> datetime:
    """The first slot strictly after `after`."""
    return _Slots(cron, after, timezone).next()


def latest_slot(cron: str, now: datetime, timezone: str = "UTC") -> datetime:
    """The last slot at or before `now`."""
    before = _Slots(cron, now, timezone).prev()  # strictly before `now`
    on = next_slot(cron, before, timezone)
    return on if on <= now else before


@dataclass(frozen=True)
class Due:
    """The slot to run for now, and the earlier due slots that will get no run of their own
    (`missed`, the first of them `first_missed`; counting stops at `MAX_COUNTED`)."""

    slot: datetime
    missed: int = 0
    first_missed: datetime | None = None


def due(cron: str, since: datetime, now: datetime, timezone: str = "UTC") -> Due | None:
    """What is due at `now` for a schedule whose last slot (or creation) was `since`."""
    slot = latest_slot(cron, now, timezone)
    if slot <= since:
        return None
    slots = _Slots(cron, since, timezone)
    first = slots.next()
    missed, at = 0, first
    while at < slot and missed < MAX_COUNTED:
        missed += 1
        at = slots.next()
    return Due(slot, missed, first if missed else None)


@dataclass(frozen=True)
class ScheduledRun:
    """One run the scheduler made: `run_id` is the pipeline's tracking run (None when the
    pipeline could not start, e.g. its file is gone; `error` then says why)."""

    schedule: str
    pipeline: str
    slot: datetime
    ok: bool
    run_id: int | None
    missed: int = 0
    error: str | None = None


def add_schedule(
    ws: Workspace,
    pipeline: str,
    project_file: Path,
    cron: str,
    *,
    name: str | None = None,
    timezone: str = "UTC",
    now: datetime | None = None,
) -> ScheduleRecord:
    """Schedule `pipeline` of `project_file` on `cron` read in `timezone` (an IANA name),
    named `name` (default: the pipeline's name). The file is read now, so a missing file or
    pipeline is an error here, not at 3 am. Slots are counted from `now` (default: the
    current time)."""
    from fermion.pipelines.spec import load_project
    from fermion.pipelines.spec import pipeline as find_pipeline

    timezone = timezone.strip()
    cron = check_cron(cron, timezone)
    path = project_file.expanduser().resolve()
    if not path.is_file():
        raise InvalidInputError(f"no pipeline file at {path}")
    spec = find_pipeline(load_project(path), pipeline)
    record = ScheduleRecord(
        name=name or spec.name,
        pipeline=spec.name,
        project_file=str(path),
        cron=cron,
        created_at=now or utcnow(),
        timezone=timezone,
    )
    return ws.storage.schedules.add_schedule(record)


def list_schedules(ws: Workspace) -> list[ScheduleRecord]:
    return ws.storage.schedules.list_schedules()


def remove_schedule(ws: Workspace, name: str) -> None:
    ws.storage.schedules.remove_schedule(name)


class StopFlag:
    """Set from a signal handler: a plain attribute, since a lock taken there could be held
    already by the very thread the handler interrupted."""

    def __init__(self) -> None:
        self.requested = False

    def set(self) -> None:
        self.requested = True


@contextlib.contextmanager
def stop_on_signals(stop: StopFlag) -> Iterator[None]:
    """The first SIGINT or SIGTERM sets `stop`; the handlers in place before come back at
    once, so a second signal acts as it would have (Ctrl-C interrupts the pipeline running).
    Outside the main thread, where Python allows no handlers, nothing is installed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()
        restore()

    for sig in previous:
        signal.signal(sig, handle)
    try:
        yield
    finally:
        restore()


def run_due(
    ws: Workspace,
    *,
    now: Callable[[], datetime] = utcnow,
    stop: StopFlag | None = None,
    on_start: Callable[[ScheduleRecord, Due], None] | None = None,
    on_finish: Callable[[ScheduledRun], None] | None = None,
) -> list[ScheduledRun]:
    """Run every schedule due at `now()`, one at a time, each once, in name order; a
    schedule another scheduler claimed first is skipped. Stops between runs once `stop`
    is set."""
    store = ws.storage.schedules
    runs: list[ScheduledRun] = []
    for record in store.list_schedules():
        if stop is not None and stop.requested:
            break
        pending = due(record.cron, record.since, now(), record.timezone)
        if pending is None or not store.claim(
            record.name, record.last_run_at, pending.slot, pending.missed
        ):
            continue
        if on_start is not None:
            on_start(record, pending)
        try:
            done = _run(ws, record, pending)
        except BaseException:  # a second Ctrl-C: the run is abandoned, say so
            store.finish(record.name, pending.slot, None, "interrupted")
            raise
        store.finish(record.name, pending.slot, done.run_id, "ok" if done.ok else "failed")
        if on_finish is not None:
            on_finish(done)
        runs.append(done)
    return runs


def _run(ws: Workspace, record: ScheduleRecord, pending: Due) -> ScheduledRun:
    from fermion.pipelines.runner import run_pipeline
    from fermion.pipelines.spec import load_project

    def outcome(ok: bool, run_id: int | None, error: str | None) -> ScheduledRun:
        return ScheduledRun(
            record.name, record.pipeline, pending.slot, ok, run_id, pending.missed, error
        )

    try:
        project = load_project(Path(record.project_file))
        with contextlib.chdir(project.root):  # where `fermion run` would have been typed
            result = run_pipeline(ws, project, record.pipeline)
    except FermionError as exc:
        return outcome(False, None, str(exc).strip().splitlines()[0] if str(exc) else None)
    except Exception as exc:  # a scheduler outlives a pipeline that crashes
        return outcome(False, None, f"unexpected {type(exc).__name__}: {exc}")
    failed = result.failed
    error = f"step {failed[0].name} failed: {failed[0].error}" if failed else None
    return outcome(result.ok, result.run_id, error)


def seconds_to_next(records: Sequence[ScheduleRecord], now: datetime) -> float | None:
    """Seconds from `now` to the next slot of any schedule; None when there is none."""
    slots = [next_slot(r.cron, max(r.since, now), r.timezone) for r in records]
    return max(0.0, (min(slots) - now).total_seconds()) if slots else None


def run_scheduler(
    ws: Workspace,
    stop: StopFlag,
    *,
    poll: float = 30.0,
    now: Callable[[], datetime] = utcnow,
    on_start: Callable[[ScheduleRecord, Due], None] | None = None,
    on_finish: Callable[[ScheduledRun], None] | None = None,
) -> None:
    """Run due schedules until `stop` is set: after each pass, sleep until the next slot,
    or `poll` seconds at most (so new and removed schedules are seen). A pipeline in flight
    when `stop` is set finishes first; a wait is abandoned within a fraction of a second."""
    while not stop.requested:
        run_due(ws, now=now, stop=stop, on_start=on_start, on_finish=on_finish)
        wait = seconds_to_next(ws.storage.schedules.list_schedules(), now())
        deadline = time.monotonic() + (poll if wait is None else min(poll, wait + 0.01))
        while not stop.requested and (left := deadline - time.monotonic()) > 0:
            time.sleep(min(0.2, left))
