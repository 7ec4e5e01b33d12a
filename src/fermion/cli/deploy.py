"""`fermion deploy`: the files that run a model server on Docker or Kubernetes."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import typer
from rich.markup import escape

from fermion.cli.output import console, print_json
from fermion.workspace import Workspace


def deploy(
    refs: list[str] = typer.Argument(
        ..., help="Models to serve from one server: credit, credit:3 or credit@production."
    ),
    target: str = typer.Option(..., "--target", help="docker or kubernetes."),
    out: Path = typer.Option(None, "--out", help="Folder to write (default deploy/<name>)."),
    name: str = typer.Option(
        None, "--name", help="Image and Kubernetes name (default: the first model's name)."
    ),
    port: int = typer.Option(8080, "--port", help="The port the server listens on."),
    workers: int = typer.Option(1, "--workers", help="Server processes per container."),
    replicas: int = typer.Option(2, "--replicas", help="Pods to start with (kubernetes)."),
    image: str = typer.Option(None, "--image", help="REPO:TAG (default <name>:<fermion version>)."),
    min_replicas: int = typer.Option(
        None, "--min-replicas", help="Autoscaler minimum (default --replicas)."
    ),
    max_replicas: int = typer.Option(
        None, "--max-replicas", help="Autoscaler maximum (default 3 x the minimum)."
    ),
    cpu_target: int = typer.Option(
        70, "--cpu-target", help="Autoscaler target: percent of the CPU request."
    ),
    cpu: str = typer.Option("1", "--cpu", help="CPU request and limit per pod, e.g. 500m or 2."),
    memory: str = typer.Option("2Gi", "--memory", help="Memory request and limit per pod."),
    wheel: Path = typer.Option(
        None, "--wheel", help="A local Fermion wheel to install instead of the package index."
    ),
    extra: list[str] = typer.Option(
        [], "--extra", help="Another fermion[...] extra to install (repeat)."
    ),
    allow_local: bool = typer.Option(
        False, "--allow-local", help="Kubernetes with local stores: mount the workspace folder."
    ),
    force: bool = typer.Option(False, "--force", help="Rewrite the files of an existing folder."),
    as_json: bool = typer.Option(False, "--json", help="Print machine-readable JSON."),
) -> None:
    """Write a Dockerfile, or Kubernetes objects, that serve models from the team's stores."""
    from fermion.serving.deploy import (
        Target,
        hide_password,
        local_stores,
        loopback_stores,
        write_deployment,
    )

    with Workspace.open() as ws:
        written = write_deployment(
            ws,
            refs,
            target=cast(Target, target),
            out=out,
            name=name,
            port=port,
            workers=workers,
            replicas=replicas,
            image=image,
            min_replicas=min_replicas,
            max_replicas=max_replicas,
            cpu_target=cpu_target,
            cpu=cpu,
            memory=memory,
            wheel=wheel,
            extras=extra,
            allow_local=allow_local,
            force=force,
        )
        local = local_stores(ws.settings)
        loopback = loopback_stores(ws.settings)
        root = ws.root
    folder = written[0].parent
    if as_json:
        print_json({"target": target, "folder": folder, "files": written})
        return
    out_console = console()
    names = ", ".join(path.name for path in written)
    out_console.print(f"wrote {escape(_shown(folder))} for {target}: {escape(names)}")
    if local:
        out_console.print(
            f"note: the {escape(' and '.join(local))} are on local disk: the containers must "
            f"mount the workspace folder {escape(str(root))} (see README.md)"
        )
    for url in loopback:
        out_console.print(
            f"note: {escape(hide_password(url))} names this machine; inside a container it "
            "means the container itself: set a host the containers reach"
        )
    out_console.print(f"next: {escape(_shown(folder / 'README.md'))}")


def _shown(path: Path) -> str:
    """`path` relative to the current folder when it is inside it: shorter to read."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
