"""`fermion.serve()`: the app on uvicorn (uvloop, httptools), one process or several.

SIGTERM or Ctrl-C stops accepting connections, lets in-flight requests finish (up to
`GRACE_S`), unloads, and returns. With several workers, uvicorn's supervisor starts them from
`app_from_env`, which reads what to serve from `FERMION_SERVE_SPEC`.
"""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from fermion.errors import InvalidInputError
from fermion.serving.model_set import ServedRef, parse_refs
from fermion.serving.options import ServeOptions

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from fermion.workspace import Workspace

SPEC_ENV = "FERMION_SERVE_SPEC"
GRACE_S = 30


def check_refs(workspace: Workspace, refs: Sequence[ServedRef]) -> None:
    """Fail before starting when a reference names nothing (one line, for the CLI)."""
    for ref in refs:
        workspace.models.get(ref.ref)


def build_app(
    workspace: Workspace,
    refs: Sequence[ServedRef],
    options: ServeOptions,
    *,
    log_stream: IO[str] | None = None,
    on_ready: Callable[[Any], None] | None = None,
) -> Starlette:
    from fermion.serving.app import create_app

    guard = None
    if options.auth:
        from fermion.serving.auth import KeyGuard

        guard = KeyGuard(workspace.keys, divisor=options.workers)
    app = create_app(workspace, refs, options, guard=guard, log_stream=log_stream)
    if on_ready is not None:
        app.state.fermion.on_ready = on_ready
    return app


def app_from_env() -> Starlette:
    """The app of one worker process, from the spec the supervisor left in the environment."""
    return app_from_spec(json.loads(os.environ[SPEC_ENV]))


def serve_spec(
    workspace: Workspace, refs: Sequence[ServedRef], options: ServeOptions
) -> dict[str, Any]:
    """What a worker process needs to build its app, as JSON values (see `app_from_spec`)."""
    return {
        "root": str(workspace.root),
        "refs": [[r.name, r.ref] for r in refs],
        "options": options.to_dict(),
    }


def app_from_spec(spec: Mapping[str, Any]) -> Starlette:
    """The app of one worker: a uvicorn worker process or a Ray Serve replica."""
    from fermion.workspace import Workspace

    workspace = Workspace.open(spec["root"])
    refs = [ServedRef(name, ref) for name, ref in spec["refs"]]
    _configure_logging()
    return build_app(workspace, refs, ServeOptions.from_dict(spec["options"]))


def serve(
    refs: Sequence[str],
    *,
    workspace: Workspace | None = None,
    options: ServeOptions | None = None,
    on_ready: Callable[[Any], None] | None = None,
) -> None:
    """Serve registered models until SIGTERM or Ctrl-C; see `ServeOptions` for the knobs."""
    with _StartingHeap() as heap:
        _serve(refs, workspace, options, on_ready, heap)


def _serve(
    refs: Sequence[str],
    workspace: Workspace | None,
    options: ServeOptions | None,
    on_ready: Callable[[Any], None] | None,
    heap: _StartingHeap,
) -> None:
    from fermion.workspace import current_workspace

    options = options or ServeOptions()
    workspace = workspace or current_workspace()
    served = parse_refs(refs)
    check_refs(workspace, served)
    check_port(options.host, options.port)
    _configure_logging()
    config: dict[str, Any] = {
        "host": options.host,
        "port": options.port,
        "loop": _loop(),
        "http": "httptools",
        "ws": "none",  # no WebSocket routes: skip importing a WebSocket implementation
        "access_log": False,
        "log_level": "warning",
        "lifespan": "on",
        "timeout_graceful_shutdown": GRACE_S,
        "server_header": False,
    }
    import uvicorn

    if options.workers == 1:
        app = build_app(workspace, served, options, on_ready=heap.until_ready(on_ready))
        with _sigterm_ends_normally():
            uvicorn.Server(uvicorn.Config(app, **config)).run()
        return
    heap.started()  # the supervisor loads no model; its workers start from scratch
    metrics_dir = Path(tempfile.mkdtemp(prefix="fermion-metrics-"))
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    os.environ[SPEC_ENV] = json.dumps(serve_spec(workspace, served, options))
    try:
        with _sigterm_ends_normally():
            uvicorn.run(
                "fermion.serving.server:app_from_env",
                factory=True,
                workers=options.workers,
                **config,
            )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


class _StartingHeap:
    """No garbage collections from `__enter__` until the models have loaded (or it exits).

    Start-up is imports and a model load: many objects made, few freed, and each full
    collection walks them all again (about a tenth of the start-up's CPU time). The app
    freezes what is alive once its models have loaded (`settle_heap`), then calls `on_ready`;
    the wrapped `on_ready` turns collections back on."""

    def __enter__(self) -> _StartingHeap:
        self._enabled = gc.isenabled()
        gc.disable()
        return self

    def __exit__(self, *exc: object) -> None:
        self.started()

    def started(self) -> None:
        if self._enabled:
            gc.enable()

    def until_ready(self, on_ready: Callable[[Any], None] | None) -> Callable[[Any], None]:
        def ready(state: Any) -> None:
            self.started()
            if on_ready is not None:
                on_ready(state)

        return ready


@contextlib.contextmanager
def _sigterm_ends_normally() -> Iterator[None]:
    """uvicorn shuts down gracefully on SIGTERM, then raises the signal again for the handler
    it found; with this one installed, that ends the process normally (exit 0)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_port(host: str, port: int) -> None:
    """Refuse a port already taken (or an address not ours) with one line, before starting."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise InvalidInputError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _loop() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def _configure_logging() -> None:
    logger = logging.getLogger("fermion.serving")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
