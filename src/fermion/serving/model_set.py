"""The models a server answers for, loaded in the background and swapped when aliases move.

A served name maps to one `ServedModel` at a time. A watcher re-reads each reference every
`swap_poll_s` seconds; when it names another version (an alias moved, or a new latest), the
new version is loaded and warmed up off the event loop, then swapped in with one dict
assignment. Requests already holding the old version finish on it; one that fails to load or
warm up leaves the old version serving and is reported once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from fermion.entities.dataset import check_name
from fermion.errors import FermionError, InvalidInputError, NotFoundError, first_line
from fermion.registry.refs import ModelRef
from fermion.serving.metrics import ServerMetrics
from fermion.serving.options import ServeOptions
from fermion.serving.served import ServedModel, load_served

log = logging.getLogger("fermion.serving")


class ModelNotReadyError(FermionError):
    """A served model is still loading (or failed to load): the server answers 503."""


@dataclass(frozen=True)
class ServedRef:
    """`credit@production` served as `credit`, or `canary=credit@staging` as `canary`."""

    name: str
    ref: str

    @classmethod
    def parse(cls, text: str) -> ServedRef:
        name, sep, ref = text.partition("=")
        if not sep:
            return cls(ModelRef.parse(text).name, text)
        ModelRef.parse(ref)
        return cls(check_name(name), ref)


def parse_refs(texts: Sequence[str]) -> list[ServedRef]:
    if not texts:
        raise InvalidInputError("name at least one model to serve, e.g. credit@production")
    refs = [ServedRef.parse(text) for text in texts]
    names = [r.name for r in refs]
    for name in names:
        if names.count(name) > 1:
            raise InvalidInputError(
                f"two references are served as {name!r}; name one NAME=REF, "
                f"e.g. {name}-canary={refs[names.index(name)].ref}"
            )
    return refs


class ModelSet:
    def __init__(
        self,
        registry: Any,
        refs: Sequence[ServedRef],
        options: ServeOptions,
        executor: Executor,
        metrics: ServerMetrics,
    ) -> None:
        self._registry = registry
        self.refs = list(refs)
        self._options = options
        self._executor = executor
        self._metrics = metrics
        self._served: dict[str, ServedModel] = {}
        self._errors: dict[str, str] = {}
        self._failed_versions: dict[str, int] = {}  # served name -> version id that failed
        self._names = {r.name for r in self.refs}
        self.on_swap: Callable[[], None] | None = None  # called after each successful swap

    @property
    def ready(self) -> bool:
        return len(self._served) == len(self.refs)

    @property
    def names(self) -> list[str]:
        return [r.name for r in self.refs]

    def get(self, name: str) -> ServedModel:
        served = self._served.get(name)
        if served is not None:
            return served
        if name not in self._names:
            raise NotFoundError(f"model {name!r} is not served here")
        error = self._errors.get(name)
        raise ModelNotReadyError(
            f"model {name!r} failed to load: {error}" if error else f"model {name!r} is loading"
        )

    def error(self, name: str) -> str:
        """Why `name` is not serving, if it failed to load."""
        return self._errors.get(name, "loading")

    def served(self) -> list[ServedModel]:
        return [self._served[r.name] for r in self.refs if r.name in self._served]

    async def load_all(self) -> None:
        """Load every model concurrently; a failure is kept for `get` to report."""
        await asyncio.gather(*(self._load_first(ref) for ref in self.refs))

    async def _load_first(self, ref: ServedRef) -> None:
        try:
            version = await asyncio.to_thread(self._registry.get, ref.ref)
            self._served[ref.name] = await asyncio.to_thread(self._load, ref, version)
        except Exception as exc:  # kept and shown by /v1/models/{name} and the log
            self._errors[ref.name] = first_line(exc)
            log.error("could not load %s: %s", ref.ref, first_line(exc))

    def _load(self, ref: ServedRef, version: Any) -> ServedModel:
        served = load_served(
            self._registry,
            ref.name,
            ref.ref,
            version,
            options=self._options.batching(ref.name),
            executor=self._executor,
            slots=self._options.threads,
            on_batch=lambda rows, name=ref.name: self._metrics.batch(name, rows),
        )
        self._metrics.loaded(ref.name, str(version.version), served.load_seconds)
        return served

    async def watch(self) -> None:
        """Poll the references forever, swapping in versions they move to."""
        while True:
            await asyncio.sleep(self._options.swap_poll_s)
            for ref in self.refs:
                await self.check(ref)

    async def check(self, ref: ServedRef) -> None:
        """Swap `ref` to the version it names now, if that differs and loads and warms up."""
        try:
            version = await asyncio.to_thread(self._registry.get, ref.ref)
        except Exception as exc:  # an alias removed, the database away: keep serving
            log.warning("cannot resolve %s: %s", ref.ref, first_line(exc))
            return
        current = self._served.get(ref.name)
        if current is not None and current.version.id == version.id:
            return
        if self._failed_versions.get(ref.name) == version.id:
            return  # reported once; retried when the reference moves again
        started = time.perf_counter()
        try:
            served = await asyncio.to_thread(self._load, ref, version)
        except Exception as exc:
            self._failed_versions[ref.name] = version.id
            self._metrics.swapped(ref.name, "failed")
            log.error(
                "kept %s serving: version %d of %s failed to load or warm up: %s",
                current.version.ref if current else "nothing",
                version.version,
                ref.name,
                first_line(exc),
            )
            if current is None:
                self._errors[ref.name] = first_line(exc)
            return
        self._served[ref.name] = served  # the swap: new requests see the new version
        self._errors.pop(ref.name, None)
        if self.on_swap is not None:
            self.on_swap()
        self._metrics.swapped(ref.name, "swapped")
        log.warning(
            "%s now serves %s (was %s; loaded in %.2fs)",
            ref.name,
            version.ref,
            current.version.ref if current else "nothing",
            time.perf_counter() - started,
        )
