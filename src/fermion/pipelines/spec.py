"""The pipeline file, `fermion.yaml`: finding it, loading and checking all of it before any step
runs, and the order its steps run in."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fermion.errors import InvalidInputError
from fermion.pipelines.kinds import StepKind
from fermion.pipelines.spec_yaml import Document, KeyPath, read_document
from fermion.pipelines.types import PipelineSpec, ProjectSpec, StepSpec

PROJECT_FILE = "fermion.yaml"
DEFAULT_PIPELINE = "default"
_TOP_KEYS = ("pipelines", "steps")
_PIPELINE_KEYS = ("steps",)


def find_project(start: Path) -> Path:
    """The `fermion.yaml` in the folder `start` or in the nearest folder above it."""
    folder = start.resolve()
    for candidate in (folder, *folder.parents):
        if (candidate / PROJECT_FILE).is_file():
            return candidate / PROJECT_FILE
    raise InvalidInputError(f"no {PROJECT_FILE} in {folder} or any folder above it")


def load_project(path: Path, kinds: Mapping[str, StepKind] | None = None) -> ProjectSpec:
    """Read the pipeline file at `path` and check all of it against `kinds` (by default every
    kind Fermion ships), raising `InvalidInputError` at the first problem, located by line.

    A config key that is one of the kind's `input_keys` and names a step of the same
    pipeline makes that step an input and a dependency; any other value is a literal ref.
    An input key is required unless the kind also lists it in `optional`.
    """
    if kinds is None:
        from fermion.pipelines.kinds import KINDS

        kinds = KINDS
    document = read_document(path)
    pipelines: dict[str, PipelineSpec] = {}
    for name, at, steps in _declared_pipelines(document):
        spec = _pipeline(document, name, at, steps, kinds)
        _, waiting = _groups(spec)
        if waiting:
            cycle = _cycle(spec, waiting)
            first = spec.steps[cycle[0]]
            raise InvalidInputError(f"{path}:{first.line}:{first.column}: {_cycle_message(cycle)}")
        pipelines[name] = spec
    return ProjectSpec(path=path, pipelines=pipelines)


def pipeline(project: ProjectSpec, name: str | None = None) -> PipelineSpec:
    """The pipeline called `name`, or the file's first one when `name` is None."""
    if name is None:
        return next(iter(project.pipelines.values()))
    if name not in project.pipelines:
        raise InvalidInputError(
            f"{project.path}: no pipeline {name!r} (it has: {', '.join(project.pipelines)})"
        )
    return project.pipelines[name]


def layers(pipeline: PipelineSpec) -> list[list[str]]:
    """The steps in groups that may each run in parallel: a group's steps need only steps of
    earlier groups. Within a group, steps keep the order the file declares them in."""
    for spec in pipeline.steps.values():
        unknown = [need for need in spec.needs if need not in pipeline.steps]
        if unknown:
            raise InvalidInputError(f"step {spec.name!r} needs unknown step {unknown[0]!r}")
    groups, waiting = _groups(pipeline)
    if waiting:
        raise InvalidInputError(
            f"pipeline {pipeline.name!r}: {_cycle_message(_cycle(pipeline, waiting))}"
        )
    return groups


def select(
    pipeline: PipelineSpec, *, only: Sequence[str] = (), start: str | None = None
) -> list[str]:
    """The steps to run, in an order that respects their dependencies: all of them; or with
    `only`, just those (what they need is taken as already run); or with `start`, that step
    and every step downstream of it."""
    if only and start is not None:
        raise InvalidInputError("choose either the steps to run or the step to start from")
    asked = [*only, *([start] if start is not None else [])]
    unknown = [name for name in asked if name not in pipeline.steps]
    if unknown:
        raise InvalidInputError(
            f"pipeline {pipeline.name!r} has no step {unknown[0]!r} "
            f"(it has: {', '.join(pipeline.steps)})"
        )
    order = [name for group in layers(pipeline) for name in group]
    if only:
        return [name for name in order if name in only]
    if start is not None:
        chosen = {start}
        # `order` puts every step after what it needs, so one pass reaches all dependants.
        for name in order:
            if chosen.intersection(pipeline.steps[name].needs):
                chosen.add(name)
        return [name for name in order if name in chosen]
    return order


def _declared_pipelines(document: Document) -> list[tuple[str, KeyPath, Any]]:
    """(name, key path, raw steps) of each pipeline the file declares, in file order."""
    data, where = document.data, document.where
    if data is None:
        raise InvalidInputError(f"{document.path}: the file is empty")
    if not isinstance(data, dict):
        raise InvalidInputError(
            f"{document.path}: must be a mapping with `pipelines:` or `steps:`, "
            f"not {_kind_of(data)}"
        )
    for key in data:
        if key not in _TOP_KEYS:
            raise InvalidInputError(
                f"{where(key)}: unknown top-level key {key!r} (expected `pipelines:` or `steps:`)"
            )
    if len(data) > 1:
        raise InvalidInputError(f"{where('steps')}: give either `pipelines:` or `steps:`, not both")
    if not data:
        raise InvalidInputError(f"{document.path}: the file declares no steps")
    if "steps" in data:
        return [(DEFAULT_PIPELINE, (), data["steps"])]
    declared = data["pipelines"]
    if not isinstance(declared, dict) or not declared:
        raise InvalidInputError(
            f"{where('pipelines')}: `pipelines:` must map pipeline names to pipelines"
        )
    found: list[tuple[str, KeyPath, Any]] = []
    for name, body in declared.items():
        at: KeyPath = ("pipelines", name)
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"{where(*at)}: a pipeline name must be text, not {name!r}")
        if not isinstance(body, dict):
            raise InvalidInputError(
                f"{where(*at)}: pipeline {name!r} must be a mapping with `steps:`, "
                f"not {_kind_of(body)}"
            )
        for key in body:
            if key not in _PIPELINE_KEYS:
                raise InvalidInputError(
                    f"{where(*at, key)}: pipeline {name!r} has unknown key {key!r} "
                    "(expected `steps:`)"
                )
        found.append((name, at, body.get("steps")))
    return found


def _pipeline(
    document: Document, name: str, at: KeyPath, steps: Any, kinds: Mapping[str, StepKind]
) -> PipelineSpec:
    at = (*at, "steps")
    where = document.where
    if not isinstance(steps, dict) or not steps:
        raise InvalidInputError(f"{where(*at)}: pipeline {name!r} has no steps")
    for step, body in steps.items():
        if not isinstance(step, str) or not step:
            raise InvalidInputError(f"{where(*at, step)}: a step name must be text, not {step!r}")
        if not isinstance(body, dict):
            raise InvalidInputError(
                f"{where(*at, step)}: step {step!r} must be a mapping with a `kind:`, "
                f"not {_kind_of(body)}"
            )
    specs = [_step(document, (*at, step), step, body, steps, kinds) for step, body in steps.items()]
    return PipelineSpec(name=name, steps={spec.name: spec for spec in specs})


def _step(
    document: Document,
    at: KeyPath,
    name: str,
    body: dict[Any, Any],
    steps: Mapping[str, Any],
    kinds: Mapping[str, StepKind],
) -> StepSpec:
    where = document.where
    if "kind" not in body:
        raise InvalidInputError(f"{where(*at)}: step {name!r} has no `kind:`")
    kind_name = body["kind"]
    if not isinstance(kind_name, str) or kind_name not in kinds:
        raise InvalidInputError(
            f"{where(*at, 'kind')}: step {name!r} has unknown kind {kind_name!r} "
            f"(known: {', '.join(sorted(kinds))})"
        )
    kind = kinds[kind_name]
    config = {key: value for key, value in body.items() if key not in ("kind", "needs")}
    for key in config:
        if key not in kind.keys:
            accepted = ", ".join([*sorted(kind.keys), "needs"])
            raise InvalidInputError(
                f"{where(*at, key)}: step {name!r}: {kind_name} does not accept {key!r} "
                f"(it accepts: {accepted})"
            )
    required = [*kind.required, *(key for key in kind.input_keys if key not in kind.optional)]
    missing = [key for key in required if key not in config]
    if missing:
        raise InvalidInputError(f"{where(*at)}: step {name!r}: {kind_name} needs `{missing[0]}:`")
    if kind.check is not None:
        try:
            kind.check(name, config, _kinds_of(steps))
        except InvalidInputError as exc:
            raise InvalidInputError(f"{where(*at)}: {exc}") from exc
    inputs = {
        key: value
        for key, value in config.items()
        if key in kind.input_keys and isinstance(value, str) and value in steps
    }
    needed = set(inputs.values())
    for need in _explicit_needs(document, at, name, body.get("needs")):
        if need not in steps:
            raise InvalidInputError(
                f"{where(*at, 'needs')}: step {name!r} needs unknown step {need!r} "
                f"(the pipeline has: {', '.join(steps)})"
            )
        needed.add(need)
    if name in needed:
        key = next((key for key, value in inputs.items() if value == name), "needs")
        raise InvalidInputError(f"{where(*at, key)}: step {name!r} needs itself")
    position = document.positions.get(at, (0, 0))
    return StepSpec(
        name=name,
        kind=kind_name,
        config=config,
        needs=tuple(step for step in steps if step in needed),
        inputs=inputs,
        line=position[0],
        column=position[1],
    )


def _explicit_needs(document: Document, at: KeyPath, name: str, needs: Any) -> list[str]:
    if needs is None:
        return []
    listed = [needs] if isinstance(needs, str) else needs
    if not isinstance(listed, list) or not all(isinstance(need, str) for need in listed):
        raise InvalidInputError(
            f"{document.where(*at, 'needs')}: step {name!r}: `needs:` must be a step name "
            f"or a list of step names, not {needs!r}"
        )
    return listed


def _groups(pipeline: PipelineSpec) -> tuple[list[list[str]], list[str]]:
    """The groups of `layers`, and the steps left over because they wait on a cycle."""
    groups: list[list[str]] = []
    done: set[str] = set()
    waiting = list(pipeline.steps)
    while waiting:
        ready = [name for name in waiting if done.issuperset(pipeline.steps[name].needs)]
        if not ready:
            break
        groups.append(ready)
        done.update(ready)
        waiting = [name for name in waiting if name not in done]
    return groups, waiting


def _cycle(pipeline: PipelineSpec, waiting: Sequence[str]) -> list[str]:
    """One cycle among the `waiting` steps, in the order they feed each other, starting and
    ending with its first-declared step."""
    # Every waiting step needs another waiting step, so following needs must come back round.
    trail = [waiting[0]]
    while trail.count(trail[-1]) < 2:
        trail.append(next(n for n in pipeline.steps[trail[-1]].needs if n in waiting))
    loop = trail[trail.index(trail[-1]) : -1][::-1]
    first = min(loop, key=list(pipeline.steps).index)
    loop = loop[loop.index(first) :] + loop[: loop.index(first)]
    return [*loop, first]


def _cycle_message(cycle: Sequence[str]) -> str:
    return f"steps in a cycle: {' -> '.join(cycle)} (each needs the one before it)"


def _kind_of(value: Any) -> str:
    if value is None:
        return "empty"
    if isinstance(value, list | dict | str):
        return {list: "a list", dict: "a mapping", str: "text"}[type(value)]
    return repr(value)


def _kinds_of(steps: Mapping[str, Any]) -> dict[str, str]:
    """Each step's declared kind, for a kind's config check (bodies not yet checked)."""
    return {
        name: body["kind"]
        for name, body in steps.items()
        if isinstance(body, dict) and isinstance(body.get("kind"), str)
    }
