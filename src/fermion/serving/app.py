"""The ASGI application: one Starlette app serving many models over several protocols.

`ServerState` holds what the handlers share (the models, the key guard, metrics, the access
log, the inference threads); `create_app` wires it to the routes of each protocol. The app
is live as soon as it starts and ready once every model has loaded and answered a warm-up
call; models load in the background so that probes answer meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from fermion.errors import first_line
from fermion.serving.access_log import AccessLog
from fermion.serving.batching import InferencePool
from fermion.serving.http import error_response, json_response
from fermion.serving.metrics import ServerMetrics
from fermion.serving.model_set import ModelSet, ServedRef
from fermion.serving.options import ServeOptions

if TYPE_CHECKING:
    from fermion.serving.auth import KeyGuard
    from fermion.workspace import Workspace

log = logging.getLogger("fermion.serving")


@dataclass(slots=True)
class Exchange:
    """What a handler learnt about its request, for the metrics and the access log."""

    protocol: str
    model: str = ""
    version: str = ""
    key: str = ""
    rows: int = 0


Handler = Callable[[Request, "ServerState", Exchange], Awaitable[Response]]


class ServerState:
    def __init__(
        self,
        workspace: Workspace,
        refs: Sequence[ServedRef],
        options: ServeOptions,
        *,
        guard: KeyGuard | None,
        log_stream: IO[str] | None = None,
    ) -> None:
        self.workspace = workspace
        self.options = options
        self.guard = guard
        self.metrics = ServerMetrics()
        self.executor = InferencePool(options.threads)
        self.models = ModelSet(workspace.models, refs, options, self.executor, self.metrics)
        self.models.on_swap = settle_heap
        self._ready_marks = _ReadyMarks.for_workers(options.workers)
        self._log_stream = log_stream
        self.access_log: AccessLog | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.loaded = asyncio.Event()
        self.on_ready: Callable[[ServerState], None] | None = None

    async def start(self) -> None:
        if self.options.access_log:
            self.access_log = AccessLog(self._log_stream)
        if self.guard is not None:  # it read the keys when it was made
            self._tasks.append(asyncio.create_task(self._refresh_keys()))
        self._tasks.append(asyncio.create_task(self._load_then_watch()))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.executor.shutdown(wait=True)
        if self.access_log is not None:
            self.access_log.close()

    async def _load_then_watch(self) -> None:
        await self.models.load_all()
        # At start-up the garbage is a thousand-odd objects left by the imports: not worth a
        # collection over the 300,000 alive (0.1-0.17 s before the first answer).
        settle_heap(collect=False)
        if self._ready_marks is not None:
            self._ready_marks.mark()
        self.loaded.set()
        if self.on_ready is not None:
            self.on_ready(self)
        await self.models.watch()

    @property
    def ready(self) -> bool:
        """Every model loaded, in every worker process of the server: a probe reaches any one
        of them, and a worker still loading answers 503."""
        if not self.models.ready:
            return False
        return self._ready_marks is None or self._ready_marks.all_ready()

    async def _refresh_keys(self) -> None:
        assert self.guard is not None
        while True:
            await asyncio.sleep(self.options.key_refresh_s)
            try:
                await asyncio.to_thread(self.guard.refresh)
            except Exception as exc:  # the database away: keep the keys known so far
                log.warning("could not refresh API keys: %s", first_line(exc))

    def authorize(self, request: Request, scope: str, exchange: Exchange) -> None:
        """Raise unless the request's key grants `scope`; the key's name goes in the log."""
        if self.guard is not None:
            from fermion.serving.http import credential

            self.authorize_key(credential(request), scope, exchange)

    def authorize_key(self, key: str | None, scope: str, exchange: Exchange) -> None:
        """`authorize` for the key a client sent (a header's value, or None)."""
        if self.guard is not None:
            exchange.key = self.guard.check(key, scope)

    def endpoint(self, protocol: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """`handler` with errors turned into JSON answers, counted and logged."""

        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            exchange = Exchange(protocol)
            self.metrics.request_started()
            try:
                response = await handler(request, self, exchange)
            except Exception as exc:
                response = error_response(exc)
            self.finished(request.scope, exchange, response.status_code, started)
            return response

        return endpoint

    def finished(self, scope: Scope, exchange: Exchange, status: int, started: float) -> None:
        """Count an answered request and log it; `started` is its `time.perf_counter()`."""
        seconds = time.perf_counter() - started
        self.metrics.request_finished(
            exchange.model, exchange.version, exchange.protocol, status, seconds
        )
        if self.access_log is not None:
            client = scope.get("client")
            self.access_log.record(
                scope["method"],
                scope["path"],
                status,
                seconds,
                exchange.model,
                exchange.version,
                exchange.key,
                exchange.rows,
                client[0] if client else "",
            )


def settle_heap(*, collect: bool = True) -> None:
    """Move what is alive now (the models, the libraries) out of the garbage collector's
    sight. A loaded model is hundreds of thousands of objects that never become garbage; left
    in view, each full collection walks them all and stalls every request for 0.1-0.4 s."""
    import gc

    if collect:
        gc.unfreeze()  # what an earlier freeze kept, such as a swapped-out version, is looked at
        gc.collect()
    gc.freeze()


async def healthz(request: Request) -> Response:
    return json_response({"status": "live"})


def _readyz(state: ServerState) -> Callable[[Request], Awaitable[Response]]:
    async def readyz(request: Request) -> Response:
        if state.ready:
            return json_response({"status": "ready"})
        return json_response({"status": "loading"}, 503)

    return readyz


def _metrics(state: ServerState) -> Callable[[Request], Awaitable[Response]]:
    async def metrics(request: Request) -> Response:
        body, content_type = state.metrics.exposition()
        return Response(body, media_type=content_type)

    return metrics


def create_app(
    workspace: Workspace,
    refs: Sequence[ServedRef],
    options: ServeOptions,
    *,
    guard: KeyGuard | None,
    log_stream: IO[str] | None = None,
) -> Starlette:
    """The server's ASGI app. Without `guard`, every request is let in (`--no-auth`)."""
    from fermion.serving import kserve_v2, openai_api, rest

    state = ServerState(workspace, refs, options, guard=guard, log_stream=log_stream)
    routes: list[BaseRoute] = [
        *rest.routes(state),  # first: the router tries routes in turn, and predict is most calls
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", _readyz(state), methods=["GET"]),
        Route("/metrics", _metrics(state), methods=["GET"]),
        *openai_api.routes(state),
        *kserve_v2.routes(state),
    ]
    if options.docs:
        from fermion.serving import openapi

        routes += openapi.routes(state)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await state.start()
        try:
            yield
        finally:
            await state.stop()

    app = _App(state, routes=routes, lifespan=lifespan, exception_handlers=_fallbacks())
    app.state.fermion = state
    return app


class _App(Starlette):
    """Starlette behind `rest.PredictFirst`, which answers predict calls before Starlette's
    middleware stack (about 2 us a call) and hands it everything else."""

    def __init__(self, state: ServerState, **kwargs: Any) -> None:
        from fermion.serving.rest import PredictFirst

        super().__init__(**kwargs)
        self._entry = PredictFirst(super().__call__, state)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._entry(scope, receive, send)


def _fallbacks() -> dict[Any, Any]:
    """JSON for what the router itself refuses (an unknown path, a wrong method)."""
    from starlette.exceptions import HTTPException

    async def http_exception(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        body = {"error": {"code": code, "message": str(exc.detail)}}
        return json_response(body, exc.status_code, dict(exc.headers or {}))

    async def internal(request: Request, exc: Exception) -> Response:
        return error_response(exc)

    return {HTTPException: http_exception, Exception: internal}


class _ReadyMarks:
    """With several worker processes, each leaves a file named after its pid in the folder
    they share (Prometheus' multiprocess folder) once its models have loaded; the server is
    ready when as many live workers have."""

    def __init__(self, folder: Path, workers: int) -> None:
        self._folder = folder
        self._workers = workers

    @classmethod
    def for_workers(cls, workers: int) -> _ReadyMarks | None:
        folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        return cls(Path(folder), workers) if workers > 1 and folder else None

    def mark(self) -> None:
        (self._folder / f"ready-{os.getpid()}").touch()

    def all_ready(self) -> bool:
        live = [mark for mark in self._folder.glob("ready-*") if _alive(mark.name[6:])]
        return len(live) >= self._workers


def _alive(pid: str) -> bool:
    """Whether a process with this pid runs (a worker that died and was replaced left its mark)."""
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True
