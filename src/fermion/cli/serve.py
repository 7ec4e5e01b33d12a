"""`fermion serve`: registered models behind an HTTP API."""

from __future__ import annotations

import gc
from typing import Any

import typer
from rich.console import Console

from fermion.errors import InvalidInputError
from fermion.serving.options import MIB, BatchOptions, ServeOptions


def serve(
    refs: list[str] = typer.Argument(
        ..., help="Models to serve: NAME, NAME:VERSION or NAME@ALIAS; NAME=REF serves REF as NAME."
    ),
    host: str = typer.Option("127.0.0.1", help="Address to listen on."),
    port: int = typer.Option(8080, help="Port to listen on."),
    workers: int = typer.Option(1, help="Server processes, each with every model loaded."),
    backend: str = typer.Option(
        "uvicorn", help="uvicorn (this machine) or ray (Ray Serve replicas: docs/serving-ray.md)."
    ),
    replicas: int = typer.Option(1, help="Ray Serve replicas (--backend ray), one CPU each."),
    no_auth: bool = typer.Option(
        False, "--no-auth", help="Let requests in without an API key (loopback addresses only)."
    ),
    max_batch_size: int = typer.Option(64, help="Most rows merged into one model call."),
    max_wait_ms: float = typer.Option(
        2.0, help="Longest a partly filled batch waits for more rows while another call runs."
    ),
    no_batching: bool = typer.Option(False, "--no-batching", help="One model call per request."),
    threads: int = typer.Option(0, help="Inference threads per process (0: one per core)."),
    max_body_mb: float = typer.Option(10.0, help="Largest request body, in MiB (413 past it)."),
    timeout: float = typer.Option(30.0, help="Seconds a request may take before it times out."),
    no_access_log: bool = typer.Option(
        False, "--no-access-log", help="Do not write the JSON access log to stderr."
    ),
    no_docs: bool = typer.Option(
        False, "--no-docs", help="Hide /openapi.json and /docs (model names and input schemas)."
    ),
) -> None:
    """Serve registered models over REST, the KServe V2 protocol and OpenAI embeddings."""
    collecting = gc.isenabled()
    gc.disable()  # the server's libraries load next: collections there are a tenth of start-up
    try:
        from fermion.serving.server import serve as run_server
        from fermion.workspace import current_workspace

        workspace = current_workspace()
    finally:
        if collecting:
            gc.enable()

    options = ServeOptions(
        host=host,
        port=port,
        workers=workers,
        auth=not no_auth,
        max_body_bytes=max(1, int(max_body_mb * MIB)),
        request_timeout_s=timeout,
        access_log=not no_access_log,
        docs=not no_docs,
        inference_threads=threads,
        batch=BatchOptions(max_batch_size, max_wait_ms, enabled=not no_batching),
    )
    err = Console(stderr=True, highlight=False, soft_wrap=True)
    url = f"http://{host}:{port}"

    def ready(state: Any) -> None:
        if not options.auth:
            err.print(
                "[bold yellow]WARNING: authentication is OFF (--no-auth): anyone who can reach "
                f"{host}:{port} can call these models.[/]"
            )
        for served in state.models.served():
            endpoint = f"{url}/v1/models/{served.name}/predict"
            err.print(f"serving {served.name} ({served.version.ref}) at {endpoint}")
        for ref in state.models.refs:
            if ref.name not in {s.name for s in state.models.served()}:
                err.print(f"[bold red]not serving {ref.name}[/]: {state.models.error(ref.name)}")
        if options.auth:
            err.print(
                'send a key: -H "Authorization: Bearer $FERMION_API_KEY" (fermion keys create)'
            )
        err.print("ready; Ctrl-C or SIGTERM stops the server")

    if backend == "ray":
        from fermion.serving.ray_backend import serve_on_ray

        serve_on_ray(refs, workspace=workspace, options=options, replicas=replicas, on_ready=ready)
        return
    if backend != "uvicorn":
        raise InvalidInputError(f"--backend must be uvicorn or ray, not {backend!r}")
    if replicas != 1:
        raise InvalidInputError("--replicas is for --backend ray; uvicorn runs --workers")
    run_server(refs, workspace=workspace, options=options, on_ready=ready)
