"""`--backend ray`: the same Fermion app, served as a Ray Serve application for scale-out.

Each replica builds the app from the spec that uvicorn's worker processes get
(`server.app_from_spec`), so both backends answer with the same routes, keys, batching, hot
swap and metrics. Ray Serve's HTTP proxy takes the connections on the host and port asked
for and passes each request's ASGI messages to a replica, so statuses, headers and streamed
bodies reach the client as the app sent them. Ray Serve runs the app's lifespan inside each
replica; its start-up here also waits for the models, so Ray routes requests only to replicas
that have loaded them.

Without $RAY_ADDRESS a local Ray instance is started and stopped at the end; with it, the
replicas run on that cluster, whose nodes must open the same workspace (a team workspace:
PostgreSQL metadata and S3 artifacts, its folder at the same path).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from fermion.errors import FermionError, InvalidInputError, MissingDependencyError, first_line
from fermion.serving.model_set import ServedRef, parse_refs
from fermion.serving.options import ServeOptions
from fermion.serving.server import GRACE_S, app_from_spec, check_port, check_refs, serve_spec
from fermion.settings import ENV_PREFIX

if TYPE_CHECKING:
    from starlette.applications import Starlette

    from fermion.entities.model import ModelVersion
    from fermion.workspace import Workspace

APP_NAME = "fermion"
# The app merges concurrent requests into batches itself; Ray Serve's default of 5 requests
# in flight per replica would keep batches small and queue the rest in the proxy.
MAX_ONGOING_REQUESTS = 1000
CONSTRUCTOR_RETRIES = 2  # a replica that cannot open the workspace fails the start quickly
WAIT_S = 60.0


def serve_on_ray(
    refs: Sequence[str],
    *,
    workspace: Workspace | None = None,
    options: ServeOptions | None = None,
    replicas: int = 1,
    replica_cpus: float = 1.0,
    on_ready: Callable[[Any], None] | None = None,
) -> None:
    """Serve registered models as a Ray Serve application until SIGTERM or Ctrl-C.

    `replicas` copies of the app run, each reserving `replica_cpus` CPUs, behind Ray Serve's
    proxy on `options.host:options.port`. `on_ready` gets an object whose `models` tells
    what one replica serves, as `ServerState.models` does, once every replica is ready.
    Ray Serve is shut down at the end if this call started it (otherwise only this
    application is deleted), and so is a Ray instance this call started.
    """
    from fermion.tuning.ray_workers import require_ray, start_ray
    from fermion.workspace import current_workspace

    options = options or ServeOptions()
    if options.workers != 1:
        raise InvalidInputError(
            "--workers is for the uvicorn backend; with --backend ray, use --replicas"
        )
    if replicas < 1:
        raise InvalidInputError(f"replicas must be at least 1, got {replicas}")
    if replica_cpus <= 0:
        raise InvalidInputError(f"CPUs per replica must be more than 0, got {replica_cpus}")
    workspace = workspace or current_workspace()
    served = parse_refs(refs)
    check_refs(workspace, served)
    ray, serve = _import_ray_serve()
    require_ray()
    if not os.environ.get("RAY_ADDRESS"):  # the proxy binds on this machine
        check_port(options.host, options.port)
    # Each replica's share of a key's rate is rate/replicas; its inference threads default
    # to the CPUs it reserves rather than to every core of its node.
    replica_options = replace(
        options,
        workers=replicas,
        inference_threads=options.inference_threads or max(1, math.ceil(replica_cpus)),
    )
    spec = serve_spec(workspace, served, replica_options)

    ray_started_here = not ray.is_initialized()
    if ray_started_here:
        start_ray(ray, loggers=("ray", "ray.serve"))
    try:
        with _signals_interrupt():
            serve_started_here = _check_serve(serve)
            try:
                handle = _deploy(serve, spec, options, replicas, replica_cpus)
                if on_ready is not None:
                    on_ready(handle.report.remote().result())
                while True:  # until a signal interrupts the sleep
                    time.sleep(WAIT_S)
            except KeyboardInterrupt:
                pass
            finally:
                with _signals_ignored():
                    _stop(serve, serve_started_here)
    finally:
        if ray_started_here:
            with _signals_ignored():
                ray.shutdown()


@dataclass(frozen=True)
class ServedVersion:
    """A served name and the version a replica answers with."""

    name: str
    version: ModelVersion


@dataclass(frozen=True)
class ReplicaModels:
    """What one replica serves, with the reading methods of `ServerState.models`."""

    refs: list[ServedRef]
    versions: list[ServedVersion]
    errors: dict[str, str]

    def served(self) -> list[ServedVersion]:
        return list(self.versions)

    def error(self, name: str) -> str:
        return self.errors.get(name, "loading")


@dataclass(frozen=True)
class ReplicaReport:
    """What `on_ready` gets: the `models` of one replica, as a state object has them."""

    models: ReplicaModels


def replica_app(spec: Mapping[str, Any]) -> Starlette:
    """One replica's app, whose lifespan start-up returns once its models have loaded (or
    failed to), so Ray Serve marks the replica ready only then."""
    app = app_from_spec(spec)
    state = app.state.fermion
    serve_lifespan = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(started: Starlette) -> AsyncIterator[None]:
        async with serve_lifespan(started):
            await state.loaded.wait()
            yield

    app.router.lifespan_context = lifespan
    return app


def replica_report(app: Starlette) -> ReplicaReport:
    models = app.state.fermion.models
    versions = [ServedVersion(s.name, s.version) for s in models.served()]
    errors = {r.name: models.error(r.name) for r in models.refs}
    return ReplicaReport(ReplicaModels(list(models.refs), versions, errors))


def _check_serve(serve: Any) -> bool:
    """Whether Serve is not running yet (so this call starts it); refuses a cluster where a
    Fermion application already runs, which deploying again would replace."""
    status = serve.status()
    if APP_NAME in status.applications:
        raise InvalidInputError(
            f"Ray Serve already runs an application named {APP_NAME!r} on this cluster: "
            "stop that server first (one Fermion server per Ray cluster)"
        )
    return not status.proxies


def _deploy(
    serve: Any, spec: dict[str, Any], options: ServeOptions, replicas: int, cpus: float
) -> Any:
    """Start Serve's proxy on the address asked for, run the app, and wait until every
    replica is ready; returns the application's handle."""
    actor_options: dict[str, Any] = {"num_cpus": cpus}
    env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
    if env:  # the replicas read the same settings overrides as this process
        actor_options["runtime_env"] = {"env_vars": env}
    try:
        serve.start(http_options={"host": options.host, "port": options.port})
        deployment = serve.deployment(
            _replica_class(serve),
            name=APP_NAME,
            num_replicas=replicas,
            ray_actor_options=actor_options,
            max_ongoing_requests=MAX_ONGOING_REQUESTS,
            graceful_shutdown_timeout_s=GRACE_S,
            max_constructor_retry_count=CONSTRUCTOR_RETRIES,
            # each replica writes Fermion's own JSON access log; Serve's would repeat it
            logging_config={"enable_access_log": False},
        )
        return serve.run(deployment.bind(spec), name=APP_NAME, route_prefix="/")
    except Exception as exc:
        why = _replica_error(serve) or first_line(exc)
        raise FermionError(f"the Ray Serve application did not start: {why}") from exc


def _replica_error(serve: Any) -> str:
    """The exception a replica failed with (Serve keeps its traceback), as `Type: message`."""
    try:
        application = serve.status().applications.get(APP_NAME)
    except Exception:
        return ""
    if application is None:
        return ""
    lines = [
        line.strip()
        for deployment in application.deployments.values()
        for line in (deployment.message or "").splitlines()
        if line.strip()
    ]
    if not lines or ": " not in lines[-1]:
        return ""
    kind, _, message = lines[-1].partition(": ")
    return f"{kind.rpartition('.')[2]}: {message}"


def _replica_class(serve: Any) -> type:
    """The deployment's class, made here because `serve.ingress` needs Ray imported."""

    class FermionReplica:
        def __init__(self, spec: dict[str, Any]) -> None:
            self._spec = spec
            self._app: Starlette | None = None

        def __serve_build_asgi_app__(self) -> Starlette:
            self._app = replica_app(self._spec)
            return self._app

        def report(self) -> ReplicaReport:
            assert self._app is not None
            return replica_report(self._app)

    return serve.ingress()(FermionReplica)  # type: ignore[no-any-return]


def _stop(serve: Any, serve_started_here: bool) -> None:
    """Delete the application, which drains its replicas while the proxies still pass their
    answers on (`serve.shutdown` alone stops the proxies first); then shut Serve down if
    this call started it."""
    try:
        serve.delete(APP_NAME)
        if serve_started_here:
            serve.shutdown()
    except Exception as exc:
        logging.getLogger("fermion.serving").warning(
            "could not stop the Ray Serve application: %s", first_line(exc)
        )


def _import_ray_serve() -> tuple[Any, Any]:
    try:
        import ray
        from ray import serve
    except ImportError as exc:
        raise MissingDependencyError(
            "--backend ray needs Ray Serve: pip install 'fermion[ray]'"
        ) from exc
    return ray, serve


@contextlib.contextmanager
def _signals_interrupt() -> Iterator[None]:
    """SIGTERM interrupts like Ctrl-C (Ray's driver would otherwise exit with status 15)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """A second Ctrl-C or SIGTERM does not cut the shutdown short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
