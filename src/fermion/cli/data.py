"""`fermion data ...`: datasets from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from fermion.cli.app import new_app
from fermion.cli.data_render import render_counts, render_diff, render_profile, render_validation
from fermion.cli.output import console, print_json, working
from fermion.data.dataset import Dataset
from fermion.workspace import Workspace

app = new_app("Ingest, inspect, clean, validate and split datasets.")

JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")


def _workspace() -> Workspace:
    return Workspace.open()


@app.command("add")
def add(
    path: str = typer.Argument(None, help="CSV/TSV, Parquet or JSON Lines file."),
    name: str = typer.Option(..., "--name", "-n", help="Dataset name."),
    format: str = typer.Option(None, "--format", help="csv, tsv, parquet or jsonl."),
    delimiter: str = typer.Option(None, "--delimiter", help="CSV delimiter (sniffed if unset)."),
    encoding: str = typer.Option(None, "--encoding", help="Text encoding (sniffed if unset)."),
    sql: str = typer.Option(None, "--sql", help="A SQL query to ingest instead of a file."),
    url: str = typer.Option(None, "--url", help="SQLAlchemy URL the query runs against."),
    as_json: bool = JsonOption,
) -> None:
    """Add a file or a SQL query's result as a new dataset version."""
    with _workspace() as ws:
        with working(f"ingesting {path or 'the query'}"):
            dataset = ws.datasets.add(
                path,
                name=name,
                format=format,
                delimiter=delimiter,
                encoding=encoding,
                sql=sql,
                url=url,
            )
        if as_json:
            print_json({"created": dataset.created, **_version_json(dataset)})
            return
        verb = "added" if dataset.created else "unchanged, already stored as"
        console().print(
            f"{verb} [bold]{dataset.ref}[/]: {dataset.num_rows:,} rows, "
            f"{dataset.num_columns} columns"
        )


def _version_json(dataset: Dataset) -> dict[str, Any]:
    return {"ref": dataset.ref, "record": dataset.record}


@app.command("show")
def show(
    ref: str = typer.Argument(..., help="credit or credit:3"), as_json: bool = JsonOption
) -> None:
    """Show a version's schema, profile, lineage, splits and validation."""
    with _workspace() as ws:
        dataset = ws.datasets.get(ref)
        record = dataset.record
        if as_json:
            print_json(
                {
                    **_version_json(dataset),
                    "splits": dataset.splits,
                    "validations": dataset.validations,
                }
            )
            return
        out = console()
        out.print(
            f"[bold]{dataset.ref}[/]  {record.num_rows:,} rows, {record.num_columns} "
            f"columns  {record.size_bytes / 1e6:.2f} MB  sha256 {record.content_hash[:12]}"
        )
        out.print(
            f"made by {record.operation} from {_source_text(record.source)}, "
            f"{record.created_at:%Y-%m-%d %H:%M:%S} UTC"
        )
        render_profile(out, record)
        for split in dataset.splits[:1]:
            out.print(f"split: {render_counts(split.counts)}  ({_params_text(split.params)})")
        for validation in dataset.validations[:1]:
            verdict = "[green]passed[/]" if validation.passed else "[red]failed[/]"
            out.print(f"last validation: {verdict} ({validation.created_at:%Y-%m-%d %H:%M})")


def _source_text(source: dict[str, Any]) -> str:
    if "parent" in source:
        return f"{source['parent']} (recipe {str(source.get('recipe_fingerprint', ''))[:12]})"
    if source.get("format") == "sql":
        return f"SQL query on {source.get('url')}"
    return f"{Path(str(source.get('path'))).name} ({source.get('format')})"


def _params_text(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in params.items() if v is not None)


@app.command("list")
def list_(as_json: bool = JsonOption) -> None:
    """List datasets with their latest version."""
    with _workspace() as ws:
        summaries = ws.datasets.list()
        if as_json:
            print_json(summaries)
            return
        table = Table("name", "latest", "versions", "rows", "columns", "updated (UTC)")
        for s in summaries:
            table.add_row(
                s.name,
                f"{s.name}:{s.latest_version}",
                str(s.num_versions),
                f"{s.num_rows:,}",
                str(s.num_columns),
                f"{s.updated_at:%Y-%m-%d %H:%M}",
            )
        console().print(table if summaries else "no datasets yet: fermion data add FILE --name N")


@app.command("versions")
def versions(name: str, as_json: bool = JsonOption) -> None:
    """List the versions of a dataset."""
    with _workspace() as ws:
        records = ws.datasets.versions(name)
        if as_json:
            print_json(records)
            return
        table = Table("version", "operation", "from", "rows", "columns", "sha256", "created (UTC)")
        for r in records:
            table.add_row(
                r.ref,
                r.operation,
                _source_text(r.source),
                f"{r.num_rows:,}",
                str(r.num_columns),
                r.content_hash[:12],
                f"{r.created_at:%Y-%m-%d %H:%M}",
            )
        console().print(table)


@app.command("diff")
def diff(old: str, new: str, as_json: bool = JsonOption) -> None:
    """Compare two versions: schema changes, row counts, statistic shifts."""
    with _workspace() as ws:
        result = ws.datasets.diff(old, new)
        if as_json:
            print_json(result)
            return
        render_diff(console(), result)


@app.command("export")
def export(ref: str, path: Path) -> None:
    """Write a version to a .csv, .parquet or .jsonl file."""
    with _workspace() as ws:
        written = ws.datasets.export(ref, path)
        console().print(f"wrote {ws.datasets.get(ref).ref} to {written}")


@app.command("rm")
def remove(
    ref: str = typer.Argument(..., help="credit:2 for one version, credit for all of them."),
    force: bool = typer.Option(False, "--force", help="Remove even if others were made from it."),
) -> None:
    """Remove a version, or a dataset with all its versions."""
    with _workspace() as ws:
        removed = ws.datasets.remove(ref, force=force)
        console().print("removed " + ", ".join(v.ref for v in removed))


@app.command("clean")
def clean(
    ref: str,
    recipe: Path = typer.Option(..., "--recipe", "-r", help="Cleaning recipe (YAML)."),
    name: str = typer.Option(None, "--name", help="Store the result under another name."),
    as_json: bool = JsonOption,
) -> None:
    """Apply a cleaning recipe; the result is a new version with lineage."""
    with _workspace() as ws:
        parent = ws.datasets.get(ref)
        with working(f"cleaning {parent.ref}"):
            dataset = ws.datasets.clean(parent.ref, recipe, name=name)
        if as_json:
            print_json({"parent": parent.ref, **_version_json(dataset)})
            return
        console().print(
            f"{parent.ref} ({parent.num_rows:,} rows) -> [bold]{dataset.ref}[/] "
            f"({dataset.num_rows:,} rows, {dataset.num_columns} columns)"
        )


@app.command("validate")
def validate(
    ref: str,
    rules: Path = typer.Option(..., "--rules", help="Validation rules (YAML)."),
    as_json: bool = JsonOption,
) -> None:
    """Check a version against rules; exit code 1 when a rule fails."""
    with _workspace() as ws:
        dataset = ws.datasets.get(ref)
        with working(f"validating {dataset.ref}"):
            report = ws.datasets.validate(dataset.ref, rules)
        if as_json:
            print_json({"ref": dataset.ref, **report.to_dict()})
        else:
            render_validation(console(), dataset.ref, report.to_dict())
    if not report.passed:
        raise typer.Exit(1)


@app.command("split")
def split(
    ref: str,
    train: float = typer.Option(0.7, "--train"),
    valid: float = typer.Option(0.15, "--valid"),
    test: float = typer.Option(0.15, "--test"),
    stratify: str = typer.Option(None, "--stratify", help="Keep this column's class balance."),
    group: str = typer.Option(None, "--group", help="Keep each group's rows in one part."),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = JsonOption,
) -> None:
    """Split a version into train/valid/test, deterministically, and record it."""
    with _workspace() as ws:
        dataset = ws.datasets.get(ref)
        record = ws.datasets.split(
            dataset.ref,
            train=train,
            valid=valid,
            test=test,
            stratify=stratify,
            group=group,
            seed=seed,
        )
        if as_json:
            print_json({"ref": dataset.ref, "split": record})
            return
        console().print(f"split {dataset.ref}: {render_counts(record.counts)}")
