"""Rich renderings of the model registry: summaries, versions, one version, alias history."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from fermion.cli.output import fmt
from fermion.entities import AliasEvent, ModelSummary, ModelVersion

# The metric a versions table shows per task, when the version has it.
KEY_METRIC = {"binary": "roc_auc", "multiclass": "f1_macro", "regression": "rmse"}
_TASK_WORDS = {
    "binary": "binary classification",
    "multiclass": "multiclass classification",
    "regression": "regression",
}


def aliases_text(aliases: Mapping[str, int]) -> str:
    return ", ".join(f"{alias} -> {version}" for alias, version in aliases.items()) or "-"


def summaries_table(summaries: Sequence[ModelSummary]) -> Table:
    table = Table("name", "latest", "versions", "aliases", "created (UTC)")
    for s in summaries:
        table.add_row(
            s.name,
            f"{s.name}:{s.latest_version}",
            str(s.num_versions),
            aliases_text(s.aliases),
            f"{s.created_at:%Y-%m-%d %H:%M}" if s.created_at else "-",
        )
    return table


def versions_table(versions: Sequence[ModelVersion]) -> Table:
    """One row per version; the metric column is the task's key metric (`KEY_METRIC`)."""
    names = {KEY_METRIC.get(v.signature.task, "") for v in versions}
    metric = names.pop() if len(names) == 1 else ""
    table = Table("version", "aliases", "flavor", "task", metric or "key metric", "origin")
    table.add_column("created")
    for v in versions:
        table.add_row(
            v.ref,
            ", ".join(v.aliases) or "-",
            v.flavor,
            v.signature.task,
            _key_metric(v, named=not metric),
            v.origin if v.run_id is None else f"run {v.run_id}",
            f"{v.created_at:%Y-%m-%d}",
        )
    return table


def _key_metric(version: ModelVersion, *, named: bool) -> str:
    name = KEY_METRIC.get(version.signature.task)
    if name is None or name not in version.metrics:
        return "-"
    value = fmt(version.metrics[name])
    return f"{name} {value}" if named else value


def render_version(out: Console, version: ModelVersion, manifest: Mapping[str, Any]) -> None:
    """One version: what it is, where it came from, what it takes, how well it did."""
    signature = version.signature
    task = _TASK_WORDS.get(signature.task, signature.task)
    target = f" of {signature.target}" if signature.target else ""
    family = manifest.get("family") or version.flavor
    out.print(
        f"[bold]{version.ref}[/]  {escape(str(family))} model (flavor {version.flavor}), "
        f"{task}{escape(target)}"
    )
    out.print(f"aliases: {', '.join(version.aliases) or 'none'}")
    if signature.classes:
        out.print(f"classes: {escape(', '.join(signature.classes))}")
    source = manifest.get("optimized_from")
    if isinstance(source, dict):
        made = f"optimized from {source.get('name')}:{source.get('version')}"
        made += f" by run {version.run_id}" if version.run_id is not None else ""
    elif version.run_id is not None:
        made = f"trained by run {version.run_id}"
        made += f" on {manifest['data']}" if manifest.get("data") else ""
    else:
        made = version.origin
    out.print(f"origin: {made}")
    out.print(
        f"registered {version.created_at:%Y-%m-%d %H:%M:%S} UTC, sha256 {version.content_hash[:12]}"
    )
    if version.description:
        out.print(escape(version.description))
    inputs = Table("column", "type", "nullable", title="signature", title_justify="left")
    for column in signature.inputs:
        inputs.add_row(escape(column.name), column.type, "yes" if column.nullable else "no")
    out.print(inputs)
    if version.metrics:
        metrics = Table("metric", "value", title="metrics", title_justify="left")
        for name, value in sorted(version.metrics.items()):
            metrics.add_row(name, fmt(value))
        out.print(metrics)


def history_table(events: Sequence[AliasEvent]) -> Table:
    table = Table("when (UTC)", "who", "alias", "from", "to")
    for e in events:
        table.add_row(
            f"{e.at:%Y-%m-%d %H:%M:%S}",
            escape(e.actor),
            e.alias,
            str(e.old_version) if e.old_version is not None else "-",
            str(e.new_version) if e.new_version is not None else "removed",
        )
    return table


def move_text(event: AliasEvent) -> str:
    """`credit@production: 3 -> 4`; `none` for a new alias, `removed` for a removed one."""
    old = "none" if event.old_version is None else str(event.old_version)
    new = "removed" if event.new_version is None else str(event.new_version)
    return f"{event.name}@{event.alias}: {old} -> {new}"
