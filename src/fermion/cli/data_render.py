"""Rich renderings of dataset profiles, diffs and validation reports."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from fermion.cli.output import fmt
from fermion.data.dataset import PARTS
from fermion.entities import DatasetVersion

if TYPE_CHECKING:
    from fermion.data.diff import VersionDiff

# Statistic shifts smaller than this (relative) are left out of the table, not of --json.
NOTABLE_SHIFT = 0.01


def render_profile(out: Console, record: DatasetVersion) -> None:
    table = Table("column", "type", "missing", "distinct", "min", "mean", "max", "top value")
    types = {column.name: column for column in record.schema}
    for column in record.profile.columns:
        schema = types[column.name]
        top = (
            f"{fmt(column.top_values[0][0])} ({column.top_values[0][1]:,})"
            if column.top_values
            else "-"
        )
        table.add_row(
            column.name,
            schema.type.value,
            fmt(column.missing),
            fmt(column.distinct),
            fmt(column.min),
            fmt(column.mean),
            fmt(column.max),
            top,
        )
    out.print(table)


def render_counts(counts: dict[str, int]) -> str:
    ordered = [part for part in PARTS if part in counts] + sorted(set(counts) - set(PARTS))
    return ", ".join(f"{part} {counts[part]:,}" for part in ordered)


def render_validation(out: Console, ref: str, report: dict[str, Any]) -> None:
    results = report.get("results", [])
    failed = [r for r in results if not r.get("passed")]
    verdict = "[green]passed[/]" if report.get("passed") else "[red]failed[/]"
    out.print(
        f"validation of [bold]{ref}[/]: {verdict} "
        f"({len(results) - len(failed)}/{len(results)} rules hold)"
    )
    for result in failed:
        count = result.get("failed")
        detail = f"{count:,} rows fail" if count is not None else result.get("message", "")
        out.print(f"[red]✗[/] {result.get('rule')}: {detail}")
        for example in result.get("examples", [])[:5]:
            out.print(f"    row {example.get('row')}: {example.get('values')}")


def render_diff(out: Console, diff: VersionDiff) -> None:
    change = diff.row_change
    out.print(
        f"[bold]{diff.old}[/] -> [bold]{diff.new}[/]: rows {diff.old_rows:,} -> "
        f"{diff.new_rows:,} ({change:+,})"
    )
    if not diff.has_changes:
        out.print(
            "no schema or statistic changes" + (" (rows differ)" if diff.content_changed else "")
        )
        return
    for column in diff.added:
        out.print(f"[green]+ {column.name}[/] ({column.type.value})")
    for column in diff.removed:
        out.print(f"[red]- {column.name}[/] ({column.type.value})")
    for type_change in diff.type_changes:
        out.print(f"~ {type_change.column}: {type_change.old_type} -> {type_change.new_type}")
    for null_change in diff.nullability_changes:
        state = "nullable" if null_change.new else "no longer nullable"
        out.print(f"~ {null_change.column}: {state}")
    shifts = [
        s
        for s in diff.stat_shifts
        if s.statistic == "missing" or s.relative is None or abs(s.relative) >= NOTABLE_SHIFT
    ]
    if shifts:
        table = Table("column", "statistic", "old", "new", "change", title="statistic shifts")
        for shift in shifts:
            relative = "-" if shift.relative is None else f"{shift.relative:+.1%}"
            table.add_row(shift.column, shift.statistic, fmt(shift.old), fmt(shift.new), relative)
        out.print(table)
