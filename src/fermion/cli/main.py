"""Entry point of the `fermion` command."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import typer

from fermion.cli.app import FermionGroup, new_app
from fermion.cli.output import console

# name -> (module, attribute): a Typer app for a group of commands, else a command function.
# Imported only when named, so `fermion serve` never loads what the data or tuning commands
# need (it counts in how fast a server answers its first request).
_COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("fermion.cli.data", "app"),
    "runs": ("fermion.cli.runs", "app"),
    "models": ("fermion.cli.models", "app"),
    "keys": ("fermion.cli.keys", "app"),
    "train": ("fermion.cli.train", "train"),
    "evaluate": ("fermion.cli.train", "evaluate"),
    "tune": ("fermion.cli.tune", "tune"),
    "optimize": ("fermion.cli.optimize", "optimize"),
    "deploy": ("fermion.cli.deploy", "deploy"),
    "serve": ("fermion.cli.serve", "serve"),
    "run": ("fermion.cli.pipeline", "run"),
    "schedule": ("fermion.cli.schedule", "app"),
    "scheduler": ("fermion.cli.schedule", "scheduler"),
    "ci": ("fermion.cli.ci", "app"),
}


class LazyGroup(FermionGroup):
    """The root group: each command's module is imported when the command is looked up."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*_COMMANDS, *super().list_commands(ctx)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in _COMMANDS:
            return super().get_command(ctx, cmd_name)
        module, attribute = _COMMANDS[cmd_name]
        target = getattr(importlib.import_module(module), attribute)
        command: Any
        if isinstance(target, typer.Typer):
            command = typer.main.get_group(target)
        else:
            single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
            single.command(cmd_name)(target)
            command = typer.main.get_command(single)
        command.name = cmd_name
        return command


app = new_app("Fermion: from raw data to a monitored model behind an authenticated API.")
app.info.cls = LazyGroup


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
