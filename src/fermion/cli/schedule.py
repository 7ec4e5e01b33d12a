"""`fermion schedule ...` and `fermion scheduler`: pipelines run on a cron expression."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape
from rich.table import Table

from fermion.cli.app import new_app
from fermion.cli.output import console, print_json
from fermion.entities import ScheduleRecord

if TYPE_CHECKING:
    from fermion.pipelines.schedule import Due, ScheduledRun
    from fermion.workspace import Workspace

app = new_app("Schedule pipelines on a cron expression; `fermion scheduler` runs them.")

JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")


def _workspace(root: Path | None = None) -> Workspace:
    """The workspace of the current folder; for `add` without one, a new one beside the
    pipeline file, as `fermion run` makes."""
    from fermion.errors import NotFoundError
    from fermion.workspace import Workspace

    try:
        return Workspace.open()
    except NotFoundError:
        if root is None:
            raise
        return Workspace.init(root)


def _when(value: datetime | None, timezone: str = "UTC") -> str:
    """`value` on the clock of `timezone`, which it names ("2026-12-01 03:00 CET")."""
    from fermion.pipelines.schedule import zone

    return "-" if value is None else f"{value.astimezone(zone(timezone)):%Y-%m-%d %H:%M %Z}"


def _label(schedule: str, pipeline: str) -> str:
    return schedule if schedule == pipeline else f"{schedule} ({pipeline})"


@app.command("add")
def add(
    pipeline: str = typer.Argument(..., help="The pipeline to run, as `fermion run` names it."),
    cron: str = typer.Option(..., "--cron", help="When: '0 3 * * *' is 03:00 daily."),
    timezone: str = typer.Option(
        "UTC", "--tz", help="The IANA time zone the cron expression is read in (Europe/Paris)."
    ),
    file: Path = typer.Option(
        None, "--file", "-f", help="The pipeline file (default: fermion.yaml here or above)."
    ),
    name: str = typer.Option(None, "--name", help="The schedule's name (default: the pipeline)."),
    as_json: bool = JsonOption,
) -> None:
    """Schedule a pipeline; its file's absolute path is kept, so the scheduler runs it in
    that project's folder wherever the scheduler was started."""
    from fermion.pipelines.schedule import add_schedule, next_slot
    from fermion.pipelines.spec import find_project

    path = (file if file is not None else find_project(Path.cwd())).expanduser().resolve()
    with _workspace(path.parent) as ws:
        record = add_schedule(ws, pipeline, path, cron, name=name, timezone=timezone)
    if as_json:
        print_json(record)
        return
    console().print(
        f"scheduled {escape(_label(record.name, record.pipeline))} on {escape(record.cron)}"
        f" ({escape(record.timezone)}), next run"
        f" {_when(next_slot(record.cron, record.since, record.timezone), record.timezone)};"
        " `fermion scheduler` runs it",
        soft_wrap=True,
    )


def schedules_table(records: Sequence[ScheduleRecord]) -> Table:
    from fermion.pipelines.schedule import next_slot

    table = Table(
        "name", "pipeline", "cron", "zone", "next", "last slot", "status", "run", "missed"
    )
    for r in records:
        table.add_row(
            escape(r.name),
            escape(r.pipeline),
            escape(r.cron),
            escape(r.timezone),
            _when(next_slot(r.cron, r.since, r.timezone), r.timezone),
            _when(r.last_run_at, r.timezone),
            r.last_status or "-",
            "-" if r.last_run_id is None else str(r.last_run_id),
            str(r.missed),
        )
    return table


@app.command("list")
def list_(as_json: bool = JsonOption) -> None:
    """List schedules: cron, next slot, the last run's slot, status and run id, and how many
    slots were missed (passed while no scheduler ran; each catch-up runs once)."""
    from fermion.pipelines.schedule import list_schedules

    with _workspace() as ws:
        records = list_schedules(ws)
    if as_json:
        print_json(records)
        return
    console().print(
        schedules_table(records)
        if records
        else "no schedules yet: fermion schedule add PIPELINE --cron '0 3 * * *'"
    )


@app.command("remove")
def remove(name: str = typer.Argument(..., help="The schedule's name.")) -> None:
    """Remove a schedule; a run already started finishes."""
    from fermion.pipelines.schedule import remove_schedule

    with _workspace() as ws:
        remove_schedule(ws, name)
    console().print(f"removed schedule {escape(name)}")


def _stamp() -> str:
    from fermion.pipelines.schedule import utcnow

    return f"{utcnow():%Y-%m-%d %H:%M:%S} UTC"


def _on_start(record: ScheduleRecord, due: Due) -> None:
    if due.missed and due.first_missed is not None:
        runs = "run" if due.missed == 1 else "runs"
        typer.echo(
            f"{_stamp()} {record.name}: {due.missed} {runs} missed since "
            f"{_when(due.first_missed, record.timezone)}, running once now"
        )


def _on_finish(run: ScheduledRun) -> None:
    outcome = "ok" if run.ok else "failed"
    where = "no run" if run.run_id is None else f"run {run.run_id}"
    detail = f": {run.error}" if run.error else ""
    typer.echo(f"{_stamp()} {_label(run.schedule, run.pipeline)}: {outcome}, {where}{detail}")


def scheduler(
    once: bool = typer.Option(False, "--once", help="Run what is due now, then exit."),
    poll: float = typer.Option(
        30.0, "--poll", help="Look for new or changed schedules this often, in seconds."
    ),
) -> None:
    """Run scheduled pipelines when due, one at a time, a line for each run.

    Slots missed while no scheduler ran are caught up with one run. SIGTERM or Ctrl-C stops
    it (exit 0): a wait is abandoned, a pipeline running finishes first; a second Ctrl-C
    abandons it. With --once, exit 1 when a run failed."""
    from fermion.errors import InvalidInputError
    from fermion.pipelines.schedule import (
        StopFlag,
        list_schedules,
        run_due,
        run_scheduler,
        stop_on_signals,
    )

    if poll <= 0:
        raise InvalidInputError(f"--poll must be a positive number of seconds, not {poll}")
    stop = StopFlag()
    with _workspace() as ws, stop_on_signals(stop):
        if once:
            runs = run_due(ws, stop=stop, on_start=_on_start, on_finish=_on_finish)
            if not runs:
                typer.echo("nothing due")
            if not all(run.ok for run in runs):
                raise typer.Exit(1)
            return
        count = len(list_schedules(ws))
        typer.echo(
            f"scheduler started: {count} schedule{'' if count == 1 else 's'}, polling every"
            f" {poll:g} s; SIGTERM or Ctrl-C stops it"
        )
        run_scheduler(ws, stop, poll=poll, on_start=_on_start, on_finish=_on_finish)
    typer.echo("scheduler stopped")
