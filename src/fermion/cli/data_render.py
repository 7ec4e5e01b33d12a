"""Rich renderings of diff and validation reports."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from fermion.cli.output import fmt


def render_validation(out: Console, ref: str, report: dict[str, Any]) -> None:
    results = report.get("results", [])
    failed = [r for r in results if not r.get("passed")]
    verdict = "[green]passed[/]" if report.get("passed") else "[red]failed[/]"
    out.print(
        f"validation of [bold]{ref}[/]: {verdict} "
        f"({len(results) - len(failed)}/{len(results)} rules hold)"
    )
    for result in failed:
        out.print(f"[red]✗[/] {result.get('rule')}: {fmt(result.get('failed'))} rows fail")
        for example in result.get("examples", [])[:5]:
            out.print(f"    {example}")


def render_diff(out: Console, old: str, new: str, diff: dict[str, Any]) -> None:
    out.print(f"[bold]{old}[/] -> [bold]{new}[/]")
    for key, value in diff.items():
        if isinstance(value, list) and value and isinstance(value[0], dict):
            table = Table(*value[0].keys(), title=key)
            for row in value:
                table.add_row(*(fmt(v) for v in row.values()))
            out.print(table)
        elif value not in (None, [], {}):
            out.print(f"{key}: {fmt(value) if not isinstance(value, list | dict) else value}")
