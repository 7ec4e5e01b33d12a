"""The `python` step kind: a function of the project's own code, called with the step's context.

`function: steps.features:build` names module `steps.features` (looked up with the project
folder first on `sys.path`) and its function `build`, called as `build(context=ctx, **args)`.
`project_function` finds such a function for other kinds too (a `train` step's own `fit`).
"""

from __future__ import annotations

import hashlib
import importlib
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from numbers import Real
from pathlib import Path
from types import ModuleType

from fermion.errors import InvalidInputError
from fermion.pipelines.kinds_config import StepConfig, input_hash, input_ref
from fermion.pipelines.types import DATASET, MODEL, StepContext, StepOutput, StepSpec

# Steps run side by side in threads; one at a time drops and re-imports a project module.
_importing = threading.Lock()


def function_ref(spec: StepSpec) -> tuple[str, str]:
    """The module and function names of the step's `function`."""
    value = spec.config.get("function")
    module, _, name = value.partition(":") if isinstance(value, str) else ("", "", "")
    if not (name.isidentifier() and all(part.isidentifier() for part in module.split("."))):
        raise InvalidInputError(
            f"step {spec.name!r}: function must be 'package.module:function', not {value!r}"
        )
    return module, name


def project_file(module: str, root: Path) -> Path | None:
    """The source file of `module` in the project folder, if it is there."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_hash(spec: StepSpec, root: Path) -> str:
    """sha256 of the source file of the step's module: read from the project folder without
    importing it, else (an installed module) from where importing it finds it."""
    module, _ = function_ref(spec)
    path = project_file(module, root)
    if path is None:
        found = getattr(_import(module, root, spec.name), "__file__", None)
        if found is None:
            raise InvalidInputError(f"step {spec.name!r}: module {module} has no source file")
        path = Path(found)
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextmanager
def _project_on_path(root: Path) -> Iterator[None]:
    entry = str(root)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        if entry in sys.path:
            sys.path.remove(entry)


def _import(module: str, root: Path, step: str) -> ModuleType:
    """Import `module` with the project folder first on `sys.path`. A project module imported
    before is imported afresh, so an edited file, or another project's module of the same
    name, is never the code that runs."""
    with _importing, _project_on_path(root):
        if project_file(module, root) is not None:
            parts = module.split(".")
            for end in range(len(parts), 0, -1):
                sys.modules.pop(".".join(parts[:end]), None)
        importlib.invalidate_caches()
        try:
            return importlib.import_module(module)
        except ImportError as exc:
            raise InvalidInputError(f"step {step!r}: cannot import {module}: {exc}") from exc


@contextmanager
def project_function(ctx: StepContext) -> Iterator[Callable[..., object]]:
    """The step's `function`, imported afresh, with the project folder first on `sys.path`
    while it is in use (so its own imports at call time find the project's modules too)."""
    module_name, name = function_ref(ctx.spec)
    with _project_on_path(ctx.root):
        module = _import(module_name, ctx.root, ctx.spec.name)
        function = getattr(module, name, None)
        if not callable(function):
            raise InvalidInputError(
                f"step {ctx.spec.name!r}: module {module_name} has no function {name!r}"
            )
        yield function


def run_python(ctx: StepContext) -> StepOutput:
    """The function may return a `StepOutput`, a mapping of metric names to numbers, or None;
    with the last two the step passes its `dataset` and `model` inputs on as its output."""
    module_name, name = function_ref(ctx.spec)
    args = StepConfig(ctx).mapping("args")
    if "context" in args:
        raise InvalidInputError(f"step {ctx.spec.name!r}: args may not hold 'context'")
    with project_function(ctx) as function:
        returned = function(context=ctx, **args)
    if isinstance(returned, StepOutput):
        return returned
    if returned is not None and not isinstance(returned, Mapping):
        raise InvalidInputError(
            f"step {ctx.spec.name!r}: {module_name}:{name} returned a "
            f"{type(returned).__name__}; return None, a StepOutput or a mapping of metric "
            "names to numbers"
        )
    return _passed_on(ctx, _metrics(ctx, returned or {}))


def _metrics(ctx: StepContext, returned: Mapping[object, object]) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for key, value in returned.items():
        if not isinstance(key, str) or isinstance(value, bool) or not isinstance(value, Real):
            raise InvalidInputError(
                f"step {ctx.spec.name!r}: metric {key!r} must be a name with a number, "
                f"not {value!r}"
            )
        metrics[key] = float(value)
    return metrics


def _passed_on(ctx: StepContext, metrics: dict[str, float]) -> StepOutput:
    refs: dict[str, str] = {}
    hashes: dict[str, str] = {}
    ref = input_ref(ctx, DATASET, DATASET)
    if ref is not None:
        dataset = ctx.workspace.datasets.get(ref)
        refs[DATASET] = dataset.ref
        hashes[DATASET] = input_hash(ctx, DATASET, DATASET, dataset.content_hash)
    ref = input_ref(ctx, MODEL, MODEL)
    if ref is not None:
        version = ctx.workspace.models.get(ref)
        refs[MODEL] = version.ref
        hashes[MODEL] = input_hash(ctx, MODEL, MODEL, version.content_hash)
    summary = ", ".join(f"{key} {value:.4g}" for key, value in metrics.items())
    return StepOutput(refs=refs, hashes=hashes, metrics=metrics, summary=summary)
