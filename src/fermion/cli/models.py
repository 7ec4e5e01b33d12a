"""`fermion models ...`: the model registry from the command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from fermion.cli.app import new_app
from fermion.cli.models_render import (
    history_table,
    move_text,
    render_version,
    summaries_table,
    versions_table,
)
from fermion.cli.output import console, print_json, working
from fermion.errors import InvalidInputError
from fermion.registry.refs import ModelRef
from fermion.workspace import Workspace

if TYPE_CHECKING:
    from fermion.entities import ModelVersion
    from fermion.pipelines.decisions import Decision

app = new_app("List, inspect, alias, export and import registered models.")

JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON.")


def _workspace() -> Workspace:
    return Workspace.open()


@app.command("list")
def list_(as_json: bool = JsonOption) -> None:
    """List models: latest version, number of versions, aliases."""
    with _workspace() as ws:
        summaries = ws.models.list()
        if as_json:
            print_json(summaries)
            return
        console().print(
            summaries_table(summaries)
            if summaries
            else "no models yet: fermion train --data NAME --target COLUMN"
        )


@app.command("versions")
def versions(
    name: str = typer.Argument(..., help="Model name."), as_json: bool = JsonOption
) -> None:
    """List the versions of a model, oldest first."""
    with _workspace() as ws:
        found = ws.models.versions(name)
        if as_json:
            print_json(found)
            return
        console().print(versions_table(found))


@app.command("show")
def show(
    ref: str = typer.Argument(..., help="credit (latest), credit:3 or credit@production."),
    card: bool = typer.Option(False, "--card", help="Print the Markdown model card."),
    as_json: bool = JsonOption,
) -> None:
    """Show a version: flavor, task, signature, metrics, aliases, origin."""
    with _workspace() as ws:
        version = ws.models.get(ref)
        if card:
            text = ws.models.card(version)
            if as_json:
                print_json({"ref": version.ref, "card": text})
            else:
                sys.stdout.write(text)
            return
        manifest = ws.models.manifest(version)
        decisions = _decisions(ws, version, ref)
        if as_json:
            # the fitted preprocessing state is long and of no use to read
            summary = {k: v for k, v in manifest.items() if k != "preprocessor"}
            print_json(
                {
                    "ref": version.ref,
                    "record": version,
                    "manifest": summary,
                    "decisions": [decision.to_dict() for decision in decisions],
                }
            )
            return
        render_version(console(), version, manifest)
        for decision in decisions:
            console().print(escape(decision.text()))


def _decisions(ws: Workspace, version: ModelVersion, ref: str) -> list[Decision]:
    """The promotion decisions behind the alias `ref` names, or behind each of the version's
    aliases when it names none."""
    from fermion.pipelines.decisions import decision_for

    named = ModelRef.parse(ref).alias
    aliases = [named] if named is not None else list(version.aliases)
    found = (decision_for(ws, version, alias) for alias in aliases)
    return [decision for decision in found if decision is not None]


@app.command("alias")
def alias(
    name: str = typer.Argument(..., help="Model name."),
    alias: str = typer.Argument(..., help="Alias, e.g. production."),
    version: str = typer.Argument(None, help="The version number the alias moves to."),
    remove: bool = typer.Option(False, "--remove", help="Remove the alias instead."),
    as_json: bool = JsonOption,
) -> None:
    """Point an alias at a version (atomically, recorded in the history), or remove it."""
    if remove == (version is not None):
        raise InvalidInputError(
            "give a VERSION to point the alias at, or --remove to remove it (not both)"
        )
    with _workspace() as ws:
        if remove:
            event = ws.models.remove_alias(name, alias)
        else:
            event = ws.models.set_alias(name, alias, _version_number(version))
    if as_json:
        print_json(event)
        return
    console().print(move_text(event))


def _version_number(text: str) -> int:
    digits = text.removeprefix("v")
    if not digits.isdigit() or int(digits) < 1:
        raise InvalidInputError(f"VERSION is a version number such as 3, got {text!r}")
    return int(digits)


@app.command("history")
def history(
    name: str = typer.Argument(..., help="Model name."), as_json: bool = JsonOption
) -> None:
    """The alias audit trail: when, who, which alias, from which version to which."""
    with _workspace() as ws:
        events = ws.models.history(name)
        if as_json:
            print_json(events)
            return
        console().print(history_table(events) if events else f"no alias of {name} was ever set")


@app.command("export")
def export(
    ref: str = typer.Argument(..., help="credit, credit:3 or credit@production."),
    path: Path = typer.Argument(..., help="A .tar or .tar.gz file, or a folder to write into."),
    as_json: bool = JsonOption,
) -> None:
    """Write one version as a portable bundle: manifest, files, model card, SHA256SUMS."""
    with _workspace() as ws:
        version = ws.models.get(ref)
        with working(f"exporting {version.ref}"):
            written = ws.models.export(version.ref, path)
    if as_json:
        print_json({"ref": version.ref, "path": written, "size_bytes": written.stat().st_size})
        return
    size = written.stat().st_size
    where = escape(str(written))
    console().print(f"exported [bold]{version.ref}[/] to {where} ({size / 1e3:,.1f} KB)")


@app.command("import")
def import_(
    path: Path = typer.Argument(..., help="A bundle made by `fermion models export`."),
    name: str = typer.Option(None, "--name", "-n", help="Register it under this name."),
    as_json: bool = JsonOption,
) -> None:
    """Register a bundle as a new version, after checking every path and checksum."""
    from fermion.registry.flavors import get_flavor

    with _workspace() as ws, working(f"importing {escape(str(path))}"):
        version = ws.models.import_bundle(path, name=name)
    needs_trust = get_flavor(version.flavor).pickle_based
    if as_json:
        print_json({"ref": version.ref, "record": version, "needs_trusted": needs_trust})
        return
    out = console()
    out.print(
        f"imported [bold]{version.ref}[/] from {escape(str(path))} "
        f"({version.flavor}, {version.signature.task}, sha256 {version.content_hash[:12]})"
    )
    if needs_trust:
        out.print(
            f"note: the {version.flavor} flavor unpickles code when it loads; "
            "load it with trusted=True (fermion evaluate --trusted) only if you trust its source"
        )


@app.command("add-embedding")
def add_embedding(
    name: str = typer.Argument(..., help="Register it under this name, e.g. minilm."),
    source: Path = typer.Option(
        None,
        "--from",
        help="A local sentence-transformers folder (default: the bundled all-MiniLM-L6-v2).",
    ),
    description: str = typer.Option("", "--description", help="A note kept with the version."),
    as_json: bool = JsonOption,
) -> None:
    """Register a sentence-embedding model, served at POST /v1/embeddings; nothing downloads."""
    from fermion.registry.embedding import register_embedding

    with _workspace() as ws:
        with working(f"registering {escape(name)}"):
            version = register_embedding(ws.models, name, source, description=description)
        meta = ws.models.manifest(version)["flavor_meta"]
    if as_json:
        print_json({"ref": version.ref, "record": version, "flavor_meta": meta})
        return
    console().print(
        f"registered [bold]{version.ref}[/] ({meta['dimension']}-dimensional embeddings, "
        f"up to {meta['max_seq_length']} tokens a text): fermion serve {escape(name)}"
    )
