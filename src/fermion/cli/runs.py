"""`fermion runs ...`: tracked runs from the command line."""

from __future__ import annotations

from typing import Any

import typer

from fermion.cli.app import new_app
from fermion.cli.output import console, print_json
from fermion.cli.runs_render import (
    RunInput,
    best_indices,
    greater_is_better,
    render_comparison,
    render_run,
    runs_table,
)
from fermion.errors import InvalidInputError, NotFoundError
from fermion.workspace import Workspace

app = new_app("List, inspect and compare tracked runs.")

JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")


def _workspace() -> Workspace:
    return Workspace.open()


def _run_id(text: str) -> int:
    try:
        value = int(text.removeprefix("#"))
    except ValueError:
        raise InvalidInputError(f"a run id is a number, got {text!r}") from None
    if value < 1:
        raise InvalidInputError(f"a run id is a positive number, got {text!r}")
    return value


@app.command("list")
def list_(
    experiment: str = typer.Option(None, "--experiment", "-e", help="Only this experiment."),
    sort: str = typer.Option(
        None,
        "--sort",
        help="FIELD [asc|desc]: metrics.roc_auc (highest first), 'metrics.rmse asc'.",
    ),
    filter: str = typer.Option(
        None,
        "--filter",
        help="Conditions joined by 'and': \"params.model = 'lightgbm' and metrics.roc_auc > 0.8\".",
    ),
    limit: int = typer.Option(None, "--limit", min=1, help="At most N runs."),
    as_json: bool = JsonOption,
) -> None:
    """List runs, newest first unless sorted; the table shows their params and metrics."""
    from fermion.tracking.query import parse_sort

    sort_field = parse_sort(sort)[0] if sort else None
    with _workspace() as ws:
        runs = ws.runs.list(experiment, filter=filter, sort=sort, limit=limit)
        if as_json:
            print_json(runs)
            return
        if not runs:
            console().print("no runs match" if experiment or filter else "no runs yet")
            return
        out = console()
        out.print(runs_table(runs, sort_field, out.width))


@app.command("show")
def show(
    run_id: str = typer.Argument(..., help="The run's id."), as_json: bool = JsonOption
) -> None:
    """Show a run: attributes, environment, params, metrics, tags, artifacts, inputs, children."""
    with _workspace() as ws:
        run = ws.runs.get(_run_id(run_id))
        artifacts = ws.runs.list_artifacts(run.id)
        inputs = _inputs(ws, run.id)
        children = ws.runs.list(parent_id=run.id)
        if as_json:
            print_json({"run": run, "artifacts": artifacts, "inputs": inputs, "children": children})
            return
        render_run(console(), run, artifacts, inputs, children)


def _inputs(ws: Workspace, run_id: int) -> list[RunInput]:
    found = []
    for version_id, context in ws.runs.inputs(run_id):
        try:
            dataset = ws.datasets.get_by_id(version_id).ref
        except NotFoundError:
            dataset = f"#{version_id} (removed)"
        found.append(RunInput(dataset, version_id, context))
    return found


@app.command("compare")
def compare(
    run_ids: list[str] = typer.Argument(..., help="Two or more run ids."),
    as_json: bool = JsonOption,
) -> None:
    """Params and metrics of runs side by side; differing rows in bold, best metrics starred."""
    with _workspace() as ws:
        comparison = ws.runs.compare([_run_id(text) for text in run_ids])
        if not as_json:
            render_comparison(console(), comparison)
            return
        ids = [run.id for run in comparison.runs]
        best: dict[str, Any] = {}
        for key, values in comparison.metrics.items():
            positions = best_indices(values, greater_is_better(key))
            if positions:
                best[key] = [ids[i] for i in sorted(positions)]
        print_json(
            {
                "runs": comparison.runs,
                "params": comparison.params,
                "metrics": comparison.metrics,
                "differing_params": sorted(comparison.differing_params),
                "differing_metrics": sorted(comparison.differing_metrics),
                "best": best,
            }
        )
