"""Rich renderings of runs: the list table, one run in full, runs side by side."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from fermion.cli.output import fmt
from fermion.entities import RunArtifact, RunRecord, RunStatus

if TYPE_CHECKING:
    from fermion.tracking.tracker import RunComparison

MAX_METRIC_COLUMNS = 8
MAX_PARAM_COLUMNS = 6
_MAX_TEXT = 24  # a longer cell or header in the list ends in an ellipsis
ERROR_LINES = 12  # the end of a traceback is where the cause is
BEST = " ★"

_STATUS_STYLE = {
    RunStatus.RUNNING: "blue",
    RunStatus.FINISHED: "green",
    RunStatus.FAILED: "red",
    RunStatus.KILLED: "yellow",
}


@dataclass(frozen=True)
class RunInput:
    """A dataset version a run read, as `name:version` (or `#id` once the version is gone)."""

    dataset: str
    dataset_version_id: int
    context: str


_STEP_STATE = "fermion.state"  # a pipeline step's run: cached, done or failed
_STEP_STYLES = {"cached": "[green]", "done": "[bold green]", "failed": "[bold red]"}


def _state(run: RunRecord) -> str:
    """A pipeline step's state (cached, done, failed), else the run's status."""
    return run.tags.get(_STEP_STATE) or run.status.value


def status_text(status: RunStatus) -> str:
    return f"[{_STATUS_STYLE[status]}]{status.value}[/]"


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def size_text(size: int) -> str:
    if size < 1000:
        return f"{size:,} B"
    scaled, unit = size / 1000, "KB"
    for bigger in ("MB", "GB", "TB"):
        if scaled < 1000:
            break
        scaled, unit = scaled / 1000, bigger
    return f"{scaled:.1f} {unit}"


def greater_is_better(metric: str) -> bool | None:
    """Whether a higher value of `metric` is better; None when the name does not say.

    Training's own table decides where it knows the name (also behind a `valid_` prefix or
    as the last part of `valid.roc_auc`); otherwise a few common words in the name do.
    """
    from fermion.training.metrics import GREATER_IS_BETTER

    name = metric.lower()
    last = name.replace("/", ".").rsplit(".", 1)[-1]
    for candidate in (name, last, last.removeprefix("valid_").removeprefix("test_")):
        if candidate in GREATER_IS_BETTER:
            return bool(GREATER_IS_BETTER[candidate])
    if any(word in name for word in ("loss", "rmse", "mae", "mape", "error")):
        return False
    if any(word in name for word in ("auc", "acc", "f1", "precision", "recall", "r2")):
        return True
    return None


def best_indices(values: Sequence[float | None], greater: bool | None) -> set[int]:
    """Positions holding the best value (all of them on a tie); none when nothing says which."""
    present = [v for v in values if v is not None]
    if greater is None or not present:
        return set()
    best = max(present) if greater else min(present)
    return {i for i, v in enumerate(values) if v == best}


def runs_table(
    runs: Sequence[RunRecord], sort_field: str | None = None, width: int | None = None
) -> Table:
    """id, experiment, name, status, start, duration, parent, then the params and metrics
    present: those most runs have, the sort key's first, as many as fit in `width`."""
    one_experiment = len({run.experiment for run in runs}) == 1
    fixed: dict[str, list[str]] = {
        "id": [str(run.id) for run in runs],
        "experiment": [run.experiment for run in runs],
        "name": [run.name for run in runs],
        "status": [_state(run) for run in runs],
        "started (UTC)": [f"{run.start_time:%Y-%m-%d %H:%M}" for run in runs],
        "duration": [duration_text(run.duration_s) for run in runs],
        "parent": [str(run.parent_id or "") for run in runs],
    }
    if one_experiment:
        del fixed["experiment"]
    if all(run.parent_id is None for run in runs):
        del fixed["parent"]
    used = 1 + sum(_width(header, cells) + 3 for header, cells in fixed.items())
    shown: dict[str, list[str]] = {"params": [], "metrics": []}
    for section, key in _candidates(runs, sort_field):
        extra = _width(key, [fmt(getattr(run, section).get(key)) for run in runs]) + 3
        if width is not None and used + extra > width:
            continue
        shown[section].append(key)
        used += extra
    table = Table(title=f"experiment {runs[0].experiment}" if one_experiment and runs else None)
    fit: dict[str, Any] = {"no_wrap": True, "max_width": _MAX_TEXT, "overflow": "ellipsis"}
    for header in fixed:
        table.add_column(header, **fit)
    for key in shown["params"]:
        table.add_column(key, header_style="bold cyan", **fit)
    for key in shown["metrics"]:
        table.add_column(key, header_style="bold magenta", justify="right", **fit)
    for i, run in enumerate(runs):
        cells = [fixed[header][i] for header in fixed]
        if "status" in fixed:
            state = run.tags.get(_STEP_STATE)
            cells[list(fixed).index("status")] = (
                _STEP_STYLES.get(state, "") + f"{state}[/]" if state else status_text(run.status)
            )
        table.add_row(
            *cells,
            *(fmt(run.params.get(key)) for key in shown["params"]),
            *(fmt(run.metrics.get(key)) for key in shown["metrics"]),
        )
    hidden = [
        f"{count} more {section}"
        for section in ("params", "metrics")
        if (count := len({k for run in runs for k in getattr(run, section)}) - len(shown[section]))
    ]
    if shown["params"] or shown["metrics"] or hidden:
        table.caption = "[cyan]params[/], [magenta]metrics[/] (latest values)" + (
            f"; {' and '.join(hidden)} not shown (--json has every one)" if hidden else ""
        )
    return table


def _width(header: str, cells: Sequence[str]) -> int:
    return min(_MAX_TEXT, max([len(header), *(len(cell) for cell in cells)]))


# What a reader looks for first; other keys follow by how many runs have them.
_HEADLINE_KEYS = (
    "model",
    "data",
    "roc_auc",
    "f1_macro",
    "rmse",
    "accuracy",
    "r2",
    "log_loss",
    "pr_auc",
    "mae",
)


def _rank(key: str) -> int:
    return _HEADLINE_KEYS.index(key) if key in _HEADLINE_KEYS else len(_HEADLINE_KEYS)


def _candidates(runs: Sequence[RunRecord], sort_field: str | None) -> list[tuple[str, str]]:
    """(section, key) in the order columns get room: the sort key, the metrics, the params,
    each by how many runs have it, at most MAX_METRIC_COLUMNS and MAX_PARAM_COLUMNS."""
    sort_section, _, sort_key = (sort_field or "").partition(".")
    ordered: list[tuple[str, str]] = []
    for section, limit in (("metrics", MAX_METRIC_COLUMNS), ("params", MAX_PARAM_COLUMNS)):
        counts = Counter(key for run in runs for key in getattr(run, section))
        first = sort_key if sort_section == section else None
        keys = sorted(counts, key=lambda k: (k != first, _rank(k), -counts[k], k))[:limit]
        ordered.extend((section, key) for key in keys)
    return sorted(ordered, key=lambda item: item != (sort_section, sort_key))


def render_run(
    out: Console,
    run: RunRecord,
    artifacts: Sequence[RunArtifact],
    inputs: Sequence[RunInput],
    children: Sequence[RunRecord],
) -> None:
    out.print(f"[bold]run {run.id}[/]  {run.name}  {status_text(run.status)}")
    about = Table.grid(padding=(0, 2))
    about.add_column(style="dim")
    about.add_column()
    about.add_row("experiment", run.experiment)
    if run.parent_id is not None:
        about.add_row("parent run", str(run.parent_id))
    about.add_row("started", f"{run.start_time:%Y-%m-%d %H:%M:%S} UTC")
    ended = "still running" if run.end_time is None else f"{run.end_time:%Y-%m-%d %H:%M:%S} UTC"
    about.add_row("ended", ended)
    about.add_row("duration", duration_text(run.duration_s))
    for label, value in _environment_rows(run.environment):
        about.add_row(label, value)
    out.print(about)
    _key_values(out, "params", {k: fmt(v) for k, v in run.params.items()})
    _key_values(out, "metrics (latest)", {k: fmt(v) for k, v in run.metrics.items()})
    _key_values(out, "tags", dict(run.tags))
    if artifacts:
        table = Table("path", "size", "sha256", title="artifacts", title_justify="left")
        for artifact in artifacts:
            table.add_row(artifact.path, size_text(artifact.size_bytes), artifact.content_hash[:12])
        out.print(table)
    if inputs:
        table = Table("dataset", "context", title="inputs", title_justify="left")
        for item in inputs:
            table.add_row(item.dataset, item.context)
        out.print(table)
    if run.error:
        lines = run.error.rstrip().splitlines()
        out.print(f"[bold red]error[/] (last {min(len(lines), ERROR_LINES)} lines):")
        out.print("\n".join(lines[-ERROR_LINES:]), style="red", markup=False, highlight=False)
    if children:
        table = runs_table(children, width=out.width)
        table.title, table.title_justify = f"child runs ({len(children)})", "left"
        out.print(table)


def _environment_rows(env: dict[str, Any]) -> list[tuple[str, str]]:
    rows = []
    if env.get("python"):
        rows.append(("python", f"{env['python']} on {env.get('platform', '?')}"))
    if env.get("host"):
        rows.append(("host", str(env["host"])))
    git = env.get("git")
    if isinstance(git, dict) and git.get("commit"):
        state = "uncommitted changes" if git.get("dirty") else "clean"
        rows.append(("git", f"{str(git['commit'])[:12]} ({state})"))
    packages = env.get("packages")
    if isinstance(packages, dict) and packages:
        rows.append(("packages", ", ".join(f"{k} {v}" for k, v in packages.items())))
    if env.get("argv"):
        rows.append(("command", " ".join(str(a) for a in env["argv"])))
    return rows


def _key_values(out: Console, title: str, values: dict[str, str]) -> None:
    if not values:
        return
    table = Table("name", "value", title=title, title_justify="left")
    for key, value in values.items():
        table.add_row(key, value)
    out.print(table)


def render_comparison(out: Console, comparison: RunComparison) -> None:
    headers = [f"{run.id} {run.name}" for run in comparison.runs]
    params = Table("param", *headers, title="params", title_justify="left")
    for key, values in comparison.params.items():
        style = "bold yellow" if key in comparison.differing_params else None
        params.add_row(key, *(fmt(v) for v in values), style=style)
    metrics = Table("metric", *headers, title="metrics (latest)", title_justify="left")
    for key, numbers in comparison.metrics.items():
        differs = key in comparison.differing_metrics
        best = best_indices(numbers, greater_is_better(key)) if differs else set()
        cells = [fmt(v, 6) + (BEST if i in best else "") for i, v in enumerate(numbers)]
        metrics.add_row(key, *cells, style="bold yellow" if differs else None)
    if comparison.params:
        out.print(params)
    if comparison.metrics:
        metrics.caption = f"bold yellow: the runs differ;{BEST} best value"
        out.print(metrics)
    if not comparison.params and not comparison.metrics:
        out.print("these runs logged no params and no metrics")
