"""`--backend ray`: the same worker loop as `--jobs N`, run as N Ray tasks of one CPU each.

Workers share the study through the metadata database, as local worker processes do, so Ray
only places them: on this machine (a local Ray instance is started when none is running and
$RAY_ADDRESS names none) or across a cluster, where every node must open the same workspace
(a team workspace: PostgreSQL metadata and S3 artifacts, its folder at the same path).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from fermion.errors import FermionError, InvalidInputError, MissingDependencyError, first_line
from fermion.settings import ENV_PREFIX
from fermion.tuning.worker import WorkerSpec, run_worker_process

if TYPE_CHECKING:
    from types import ModuleType

POLL_S = 0.5
REACH_TIMEOUT_S = 5.0


def run_on_ray(spec: WorkerSpec, jobs: int, poll: Callable[[], None]) -> list[str]:
    """Run `jobs` Ray tasks of the worker loop and wait for them; `poll` runs between checks.
    Returns one line for each task that failed, if some did not.

    A Ray instance started here is shut down at the end; one already running (`ray.init` in
    the caller, or $RAY_ADDRESS) is left as it was. Interrupting cancels the tasks.
    """
    ray = _import_ray()
    started_here = not ray.is_initialized()
    if started_here:
        start_ray(ray)
    try:
        task = ray.remote(num_cpus=1, max_retries=0)(run_worker_process)
        env = {k: v for k, v in os.environ.items() if k.startswith(ENV_PREFIX)}
        if env:  # the workers read the same settings overrides as this process
            task = task.options(runtime_env={"env_vars": env})
        pending = [task.remote(spec, index + 1) for index in range(jobs)]
        refs = list(pending)
        try:
            while pending:
                _, pending = ray.wait(pending, num_returns=len(pending), timeout=POLL_S)
                poll()
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        errors = _errors(ray, refs)
        if len(errors) == len(refs):
            raise FermionError(f"every Ray tuning worker failed: {errors[0]}")
        return errors
    finally:
        if started_here:
            ray.shutdown()


def require_ray() -> None:
    """Fail before any work is done: Ray not installed, or $RAY_ADDRESS naming a cluster that
    does not answer (Ray itself would retry for minutes)."""
    ray = _import_ray()
    address = os.environ.get("RAY_ADDRESS") or ""
    if ray.is_initialized() or address in ("", "auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise InvalidInputError(
            f"RAY_ADDRESS must be host:port or ray://host:port, not {address!r}"
        )
    try:
        socket.create_connection((host, int(port)), timeout=REACH_TIMEOUT_S).close()
    except OSError as exc:
        raise FermionError(f"cannot reach the Ray cluster at {address}: {exc}") from exc


def _import_ray() -> ModuleType:
    try:
        import ray
    except ImportError as exc:
        raise MissingDependencyError("--backend ray needs Ray: pip install 'fermion[ray]'") from exc
    return ray


def start_ray(ray: Any, loggers: tuple[str, ...] = ("ray",)) -> None:
    """Connect to $RAY_ADDRESS, or start a local instance without its dashboard."""
    address = os.environ.get("RAY_ADDRESS") or None
    # Ray logs its start-up notes as warnings (e.g. that a new local instance uses token
    # authentication); a Fermion user sees errors only.
    for name in loggers:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level="ERROR",
            configure_logging=False,
        )
    except Exception as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        raise FermionError(f"cannot start {where}: {first_line(exc)}") from exc


def _errors(ray: Any, refs: list[Any]) -> list[str]:
    """One line for each task that raised (a worker's own trials fail without raising)."""
    errors = []
    for ref in refs:
        try:
            ray.get(ref)
        except Exception as exc:
            cause = getattr(exc, "cause", None) or exc
            errors.append(f"{type(cause).__name__}: {first_line(cause)}")
    return errors
