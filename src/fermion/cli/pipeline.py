"""`fermion run`: a pipeline of `fermion.yaml`, with a live view of its steps."""

from __future__ import annotations

import functools
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from fermion.cli.output import console, print_json

if TYPE_CHECKING:
    from rich.live import Live
    from rich.table import Table

    from fermion.pipelines.runner import PipelineResult, StepState
    from fermion.workspace import Workspace

_SUMMARY_FILE = "fermion-summary.md"
_JUNIT_FILE = "fermion-junit.xml"
_STYLES = {
    "pending": "dim",
    "running": "bold cyan",
    "cached": "green",
    "done": "bold green",
    "failed": "bold red",
    "skipped": "yellow",
}


def run(
    pipeline: str = typer.Argument(None, help="The pipeline to run (default: the file's first)."),
    only: list[str] = typer.Option(
        [], "--only", help="Run just this step (repeatable); what it needs comes from its last run."
    ),
    start: str = typer.Option(
        None, "--from", help="Run this step and everything downstream of it."
    ),
    force: list[str] = typer.Option(
        [], "--force", help="Run this step even when its cache key matches (repeatable)."
    ),
    jobs: int = typer.Option(2, "--jobs", "-j", help="Steps run at once, at most."),
    file: Path = typer.Option(
        None, "--file", "-f", help="The pipeline file (default: fermion.yaml here or above)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    ci: bool = typer.Option(
        False,
        "--ci",
        help="CI mode: a line per finished step, then Markdown and JUnit reports "
        "(and the Markdown appended to $GITHUB_STEP_SUMMARY when set).",
    ),
    summary: Path = typer.Option(
        None, "--summary", help="With --ci: the Markdown report [default: fermion-summary.md]."
    ),
    junit: Path = typer.Option(
        None, "--junit", help="With --ci: the JUnit XML report [default: fermion-junit.xml]."
    ),
) -> None:
    """Run a pipeline of fermion.yaml, reusing every step that has not changed.

    Steps run in dependency order, independent ones side by side; a step whose inputs, config
    and code are unchanged is reused (cached). Exit 1 when a step fails."""
    from fermion.errors import InvalidInputError
    from fermion.pipelines.runner import run_pipeline
    from fermion.pipelines.spec import find_project, load_project

    if not ci and (summary is not None or junit is not None):
        raise InvalidInputError("--summary and --junit go with --ci")
    if ci and as_json:
        raise InvalidInputError("--ci and --json print differently: choose one")
    project = load_project(file if file is not None else find_project(Path.cwd()))
    with _workspace(project.root) as ws:
        run_steps = functools.partial(
            run_pipeline, ws, project, pipeline, only=only, start=start, force=force, jobs=jobs
        )
        if ci:
            result = run_steps(on_change=_FinishedLines().update)
        elif as_json:
            result = run_steps()
        else:
            view = _LiveView()
            with view.live():
                result = run_steps(on_change=view.update)
    if ci:
        _write_ci_reports(result, summary or Path(_SUMMARY_FILE), junit or Path(_JUNIT_FILE))
    elif as_json:
        print_json(_as_dict(result))
    else:
        _print_outcome(result)
    if not result.ok:
        raise typer.Exit(1)


def _workspace(root: Path) -> Workspace:
    """The workspace every command would use here; without one, a new one beside the
    pipeline file (a pipeline needs nothing set up first)."""
    from fermion.errors import NotFoundError
    from fermion.workspace import Workspace

    try:
        return Workspace.open()
    except NotFoundError:
        return Workspace.init(root)


class _FinishedLines:
    """CI mode's progress: one plain line per step as it finishes (a log has no live view)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def update(self, state: StepState) -> None:
        if state.state not in ("done", "cached", "failed", "skipped"):
            return
        detail = state.error or (state.output.summary if state.output else "")
        seconds = f" {state.seconds:.1f} s" if state.state != "skipped" else ""
        with self._lock:
            typer.echo(f"{state.state:<7} {state.name} ({state.kind}){seconds}  {detail}".rstrip())


def _write_ci_reports(result: PipelineResult, summary: Path, junit: Path) -> None:
    """The Markdown report to `summary` (and appended to $GITHUB_STEP_SUMMARY when set), the
    JUnit XML to `junit`, then the Markdown on stdout."""
    import os

    from fermion.errors import InvalidInputError
    from fermion.pipelines.ci import junit_xml, markdown_summary

    markdown = markdown_summary(result)
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    target = summary
    try:
        summary.write_text(markdown, encoding="utf-8")
        target = junit
        junit.write_text(junit_xml(result), encoding="utf-8")
        if step_summary:
            target = Path(step_summary)
            with target.open("a", encoding="utf-8") as out:
                out.write(markdown + "\n")
    except OSError as exc:
        raise InvalidInputError(f"cannot write {target}: {exc.strerror or exc}") from exc
    typer.echo("")
    typer.echo(markdown, nl=False)


class _LiveView:
    """A table of the steps, redrawn on every change (Rich's Live, from any thread)."""

    def __init__(self) -> None:
        self.states: dict[str, StepState] = {}
        self._lock = threading.Lock()
        self._live: Live | None = None

    def live(self) -> Live:
        from rich.live import Live

        live = Live(self._table(), console=console(), refresh_per_second=8, transient=False)
        self._live = live
        return live

    def update(self, state: StepState) -> None:
        with self._lock:
            self.states[state.name] = state
            if self._live is not None:
                self._live.update(self._table())

    def _table(self) -> Table:
        from rich.table import Table

        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        for column in ("step", "kind", "state", "time", ""):
            table.add_column(column, justify="right" if column == "time" else "left")
        for state in self.states.values():
            detail = state.error or (state.output.summary if state.output else "")
            seconds = (
                f"{state.seconds:.1f} s" if state.state in ("done", "cached", "failed") else ""
            )
            style = _STYLES[state.state]
            table.add_row(state.name, state.kind, f"[{style}]{state.state}[/]", seconds, detail)
        return table


def _print_outcome(result: PipelineResult) -> None:
    out = console()
    if not out.is_terminal:
        out.line()  # Live's last frame ends without one where it cannot redraw
    counts: dict[str, int] = {}
    for state in result.steps.values():
        counts[state.state] = counts.get(state.state, 0) + 1
    parts = ", ".join(f"{n} {state}" for state, n in counts.items())
    verdict = "[bold green]ok[/]" if result.ok else "[bold red]failed[/]"
    out.print(
        f"pipeline {result.pipeline}: {verdict} ({parts}) in {result.seconds:.1f} s, "
        f"run {result.run_id}"
    )
    for state in result.failed:
        out.print(f"[bold red]{state.name}[/] failed: {state.error}")


def _as_dict(result: PipelineResult) -> dict[str, object]:
    return {
        "pipeline": result.pipeline,
        "run_id": result.run_id,
        "ok": result.ok,
        "seconds": round(result.seconds, 3),
        "steps": {
            name: {
                "kind": state.kind,
                "state": state.state,
                "seconds": round(state.seconds, 3),
                "error": state.error,
                "run_id": state.run_id,
                **(state.output.to_dict() if state.output else {}),
            }
            for name, state in result.steps.items()
        },
    }
