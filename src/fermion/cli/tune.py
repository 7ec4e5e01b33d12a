"""`fermion tune`: automatic hyperparameter search from the command line."""

from __future__ import annotations

import re
import time
from typing import Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table

from fermion.cli.output import console, fmt, print_json
from fermion.cli.train import HEADLINE, metrics_table
from fermion.errors import InvalidInputError
from fermion.workspace import Workspace

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smh]?)\s*$")


def parse_duration(text: str) -> float:
    """`90`, `90s`, `10m`, `1.5h` as seconds."""
    match = _DURATION.match(text)
    if match is None:
        raise InvalidInputError(f"cannot read duration {text!r}: use e.g. 90s, 10m or 1h")
    value = float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]
    if value <= 0:
        raise InvalidInputError(f"--timeout must be positive, not {text!r}")
    return value


class LiveTuning:
    """Trials done, pruned and failed, the best value so far and the time left, on stderr."""

    def __init__(self, metric_hint: str, timeout: float | None) -> None:
        self._err = Console(stderr=True)
        self._live = Live(console=self._err, transient=True, auto_refresh=False)
        self._enabled = self._err.is_terminal
        self._started = time.monotonic()
        self._timeout = timeout
        self._stage = ""
        self._metric = metric_hint

    def __enter__(self) -> LiveTuning:
        if self._enabled:
            self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._enabled:
            self._live.stop()

    def stage(self, description: str) -> None:
        self._stage = description
        self._refresh(None)

    def trials(self, done: int, total: int, pruned: int, failed: int, best: float | None) -> None:
        elapsed = time.monotonic() - self._started
        left = (elapsed / done) * (total - done) if done else None
        if self._timeout is not None:
            left = min(left or self._timeout, max(0.0, self._timeout - elapsed))
        row = (done, total, pruned, failed, best, elapsed, left)
        self._refresh(row)

    def _refresh(self, row: tuple[Any, ...] | None) -> None:
        if not self._enabled:
            return
        table = Table(title=self._stage, title_justify="left")
        for name in ("trials", "pruned", "failed", f"best {self._metric}", "elapsed", "left"):
            table.add_column(name, justify="right")
        if row is not None:
            done, total, pruned, failed, best, elapsed, left = row
            table.add_row(
                f"{done}/{total}",
                str(pruned),
                str(failed),
                fmt(best),
                f"{elapsed:.0f}s",
                "-" if left is None else f"~{left:.0f}s",
            )
        self._live.update(table, refresh=True)


def tune(
    data: str = typer.Option(..., "--data", "-d", help="Dataset version, e.g. credit:2."),
    target: str = typer.Option(..., "--target", "-t", help="The column to predict."),
    model: str = typer.Option("lightgbm", "--model", "-m", help="Model family."),
    trials: int = typer.Option(40, "--trials", "-n", help="Trials in the study, in all."),
    timeout: str = typer.Option(None, "--timeout", help="Stop after this long, e.g. 10m."),
    metric: str = typer.Option(
        None,
        "--metric",
        help="Metric to optimise (default per task); more objectives after commas, e.g. "
        "roc_auc,size_kb or roc_auc,latency_ms, make a multi-objective study.",
    ),
    jobs: int = typer.Option(1, "--jobs", "-j", help="Worker processes (or Ray tasks)."),
    backend: str = typer.Option(
        "local",
        "--backend",
        help="local (worker processes) or ray (Ray tasks; a local Ray "
        "instance unless RAY_ADDRESS names a cluster).",
    ),
    sampler: str = typer.Option(
        None,
        "--sampler",
        help="tpe, random, cmaes, grid or nsga2 (default tpe; nsga2 with several objectives).",
    ),
    pruner: str = typer.Option(
        None,
        "--pruner",
        help="paired, median, hyperband or none (default paired; none with several objectives).",
    ),
    space: str = typer.Option(None, "--space", help="YAML file overriding the search space."),
    study: str = typer.Option(None, "--study", help="Study name (default: data-target-model)."),
    new: bool = typer.Option(False, "--new", help="Start the study over."),
    folds: int = typer.Option(5, "--folds", help="Cross-validation folds."),
    patience: int = typer.Option(None, "--patience", help="Stop after N trials without gain."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    name: str = typer.Option(None, "--name", help="Registered model name (default: dataset)."),
    alias: str = typer.Option(None, "--alias", help="Point this alias at the new version."),
    experiment: str = typer.Option(None, "--experiment", help="Experiment (default: dataset)."),
    no_register: bool = typer.Option(False, "--no-register", help="Track only; register none."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Tune a model family's hyperparameters, then retrain, evaluate and register the best."""
    from fermion.tuning.tuner import tune as run_tuning

    seconds = parse_duration(timeout) if timeout else None
    hint = metric.split(",")[0] if metric else "score"
    with Workspace.open() as ws, LiveTuning(hint, seconds) as live:
        result = run_tuning(
            ws,
            data,
            target,
            model,
            trials=trials,
            timeout=seconds,
            metric=metric,
            jobs=jobs,
            backend=backend,
            sampler=sampler,
            pruner=pruner,
            space=space,
            study=study,
            new=new,
            folds=folds,
            patience=patience,
            seed=seed,
            name=name,
            alias=alias,
            experiment=experiment,
            register=not no_register,
            progress=live,
        )
    if as_json:
        print_json(result)
        return
    out = console()
    report = result.report
    counts = report["trials"]
    out.print(
        f"study [bold]{result.study}[/]: {counts['complete']} complete, {counts['pruned']} "
        f"pruned, {counts['fail']} failed; "
        f"run {result.run_id}"
    )
    out.print(
        f"best {report['metric']} (cross-validated): {fmt(result.best_value)} "
        f"± {fmt(report['noise_band'])} (standard error over folds), "
        f"trial {report['best']['trial']} ({report['best']['family']})"
    )
    out.print(report["advice"])
    if "pareto_front" in report:
        out.print(report["choice"])
        out.print(pareto_table(report))
    params = Table(title="best params", title_justify="left")
    params.add_column("param")
    params.add_column("value", justify="right")
    for key, value in sorted(result.best_params.items()):
        params.add_row(key, fmt(value))
    out.print(params)
    final = result.final
    if final is not None:
        if final.model is not None:
            aliases = f", alias {', '.join(final.model.aliases)}" if final.model.aliases else ""
            out.print(f"registered [bold]{final.model.ref}[/]{aliases}")
        if final.task in HEADLINE:
            out.print(metrics_table(final.task, final.metrics, f"{final.evaluated_on} metrics"))
    out.print("plots (run artifacts): " + ", ".join(result.plots))


def pareto_table(report: dict[str, Any]) -> Table:
    """The Pareto front's trials with their objective values; the registered one starred."""
    names = [report["metric"], *report["objectives"]]
    table = Table(title="Pareto front", title_justify="left")
    table.add_column("trial", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    for entry in report["pareto_front"]:
        star = " *" if entry["trial"] == report["best"]["trial"] else ""
        table.add_row(f"{entry['trial']}{star}", *(fmt(entry["values"][n]) for n in names))
    return table
