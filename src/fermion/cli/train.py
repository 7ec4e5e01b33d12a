"""`fermion train` and `fermion evaluate`: models from the command line."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from fermion.cli.output import console, fmt, print_json
from fermion.errors import InvalidInputError
from fermion.workspace import Workspace

JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")
# The metrics worth a glance, in order; the rest are in the run and in --json.
HEADLINE = {
    "binary": ["roc_auc", "pr_auc", "accuracy", "f1_macro", "log_loss"],
    "multiclass": ["f1_macro", "accuracy", "f1_weighted", "roc_auc", "log_loss"],
    "regression": ["rmse", "mae", "r2", "mape"],
}


class RichProgress:
    """Training progress on stderr: a spinner per stage, a bar over boosting rounds/epochs."""

    def __init__(self) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        err = Console(stderr=True)
        self._enabled = err.is_terminal
        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[loss]}"),
            TimeElapsedColumn(),
            console=err,
            transient=True,
            disable=not self._enabled,
        )
        self._task: Any = None

    def __enter__(self) -> RichProgress:
        self._bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bar.stop()

    def stage(self, description: str) -> None:
        if self._task is not None:
            self._bar.update(self._task, visible=False)
        self._task = self._bar.add_task(description, total=None, loss="")

    def step(self, step: int, total: int, metrics: dict[str, float]) -> None:
        loss = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items())
        self._bar.update(self._task, completed=step + 1, total=total, loss=loss)


def parse_params(pairs: list[str]) -> dict[str, str]:
    """`k=v` pairs, each option value holding one or more separated by spaces."""
    params: dict[str, str] = {}
    for chunk in pairs:
        for pair in chunk.split():
            key, sep, value = pair.partition("=")
            if not sep or not key:
                raise InvalidInputError(f"params are KEY=VALUE, got {pair!r}")
            params[key.strip()] = value.strip()
    return params


def train(
    data: str = typer.Option(..., "--data", "-d", help="Dataset version, e.g. credit:2."),
    target: str = typer.Option(..., "--target", "-t", help="The column to predict."),
    model: str = typer.Option("lightgbm", "--model", "-m", help="Model family."),
    params: list[str] = typer.Option(
        [], "--params", "-p", help="Model params as KEY=VALUE (repeat, or space-separated)."
    ),
    task: str = typer.Option(None, "--task", help="binary, multiclass or regression."),
    exclude: list[str] = typer.Option([], "--exclude", help="A column not to train on."),
    text: list[str] = typer.Option([], "--text", help="A column to embed as text."),
    name: str = typer.Option(None, "--name", help="Registered model name (default: dataset)."),
    alias: str = typer.Option(None, "--alias", help="Point this alias at the new version."),
    experiment: str = typer.Option(None, "--experiment", help="Experiment (default: dataset)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    no_register: bool = typer.Option(False, "--no-register", help="Track only; register none."),
    output: Path = typer.Option(None, "--output", "-o", help="Also write plots and card here."),
    as_json: bool = JsonOption,
) -> None:
    """Train a model on a dataset version: tracked, evaluated and registered."""
    from fermion.training.trainer import train as run_training

    if task is not None and task not in HEADLINE:
        raise InvalidInputError(f"task must be binary, multiclass or regression, not {task!r}")
    chosen = parse_params(params)
    with Workspace.open() as ws, RichProgress() as progress:
        result = run_training(
            ws,
            data,
            target,
            model,
            chosen,
            task=task,  # type: ignore[arg-type]
            exclude=exclude,
            text_columns=text,
            name=name,
            alias=alias,
            experiment=experiment,
            seed=seed,
            register=not no_register,
            progress=progress,
        )
        written = _write_outputs(ws, result.run_id, output) if output else []
    if as_json:
        model_ref = result.model.ref if result.model is not None else None
        print_json({"result": result, "model_ref": model_ref, "written": [str(p) for p in written]})
        return
    out = console()
    out.print(
        f"trained [bold]{model}[/] on {data} ({result.task}, target {target}): run {result.run_id}"
    )
    if result.model is not None:
        aliases = f", alias {', '.join(result.model.aliases)}" if result.model.aliases else ""
        out.print(f"registered [bold]{result.model.ref}[/]{aliases}")
    out.print(metrics_table(result.task, result.metrics, f"{result.evaluated_on} metrics"))
    if result.plots:
        where = f"written to {output}" if output else f"run {result.run_id} artifacts"
        out.print(f"plots ({where}): " + ", ".join(Path(p).name for p in result.plots))


def metrics_table(task: str, metrics: dict[str, float], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    names = [m for m in HEADLINE.get(task, []) if m in metrics]
    for name in names:
        table.add_column(name, justify="right")
    table.add_row(*(fmt(metrics[n]) for n in names))
    return table


def _write_outputs(ws: Workspace, run_id: int, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for artifact in ws.runs.list_artifacts(run_id):
        if artifact.path.endswith((".png", ".md")):
            target = folder / Path(artifact.path).name
            shutil.copyfile(ws.runs.artifact_path(run_id, artifact.path), target)
            written.append(target)
    return written


def evaluate(
    model: str = typer.Argument(
        ..., help="Model reference: credit, credit:3 or credit@production."
    ),
    data: str = typer.Option(..., "--data", "-d", help="Dataset version, e.g. credit:3."),
    part: str = typer.Option("all", "--part", help="all, or train/valid/test of its split."),
    trusted: bool = typer.Option(False, "--trusted", help="Allow a pickle-based import."),
    output: Path = typer.Option(None, "--output", "-o", help="Also write the plots here."),
    as_json: bool = JsonOption,
) -> None:
    """Evaluate a registered model on any dataset version with the same columns."""
    from fermion.training.evaluation import evaluate_registered

    with Workspace.open() as ws:
        report = evaluate_registered(ws, model, data, part=part, trusted=trusted)
        written = _write_outputs(ws, report.run_id, output) if output else []
    if as_json:
        print_json(
            {
                "model": report.model,
                "data": report.data,
                "part": report.part,
                "rows": report.rows,
                "run_id": report.run_id,
                "metrics": report.evaluation.metrics,
                "plots": report.plots,
                "written": [str(p) for p in written],
            }
        )
        return
    out = console()
    out.print(
        f"evaluated [bold]{report.model}[/] on {report.data} ({report.part}, "
        f"{report.rows:,} rows): run {report.run_id}"
    )
    metrics = report.evaluation.metrics
    table = Table(show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in sorted(metrics.items()):
        table.add_row(name, fmt(value))
    out.print(table)
