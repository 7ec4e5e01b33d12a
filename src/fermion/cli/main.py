"""Entry point of the `fermion` command."""

from __future__ import annotations

from pathlib import Path

import typer

from fermion.cli import data, deploy, keys, models, runs, serve, train, tune
from fermion.cli.app import new_app
from fermion.cli.output import console

app = new_app("Fermion: from raw data to a monitored model behind an authenticated API.")
app.add_typer(data.app, name="data")
app.add_typer(runs.app, name="runs")
app.add_typer(models.app, name="models")
app.add_typer(keys.app, name="keys")
app.command("train")(train.train)
app.command("evaluate")(train.evaluate)
app.command("tune")(tune.tune)
app.command("deploy")(deploy.deploy)
app.command("serve")(serve.serve)


def _show_version(value: bool) -> None:
    if value:
        from fermion import __version__

        console().print(f"fermion {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Show the version."
    ),
) -> None:
    """Fermion: from raw data to a monitored model behind an authenticated API."""


@app.command("init")
def init(
    directory: Path = typer.Argument(
        None, help="Where to create .fermion/ (default: $FERMION_HOME, else the current folder)."
    ),
) -> None:
    """Create a workspace (.fermion/ with fermion.toml and an embedded SQLite store)."""
    import os

    from fermion.workspace import Workspace

    home = os.environ.get("FERMION_HOME")
    if directory is None and home:
        ws = Workspace.init_at(Path(home).expanduser().resolve())
    else:
        ws = Workspace.init(directory)
    with ws:
        console().print(f"workspace ready at {ws.root}")
