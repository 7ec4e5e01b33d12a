"""Running a pipeline: its steps in dependency order, independent ones side by side, each
cached by its key, a failure stopping only what depends on it.

A pipeline run is a tracking run in the experiment `pipelines` (tags `fermion.pipeline`);
each step is a child run tagged with its state, cache key and output, and whatever the step
logs itself (a training run, say) becomes that step run's child. Nothing here draws: the
caller gets a `StepState` snapshot on every change (`on_change`) and renders it.
"""

from __future__ import annotations

import contextvars
import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from fermion.entities import RunStatus
from fermion.errors import FermionError, InvalidInputError
from fermion.pipelines import cache
from fermion.pipelines.types import (
    Check,
    ChecksFailedError,
    PipelineSpec,
    ProjectSpec,
    StepContext,
    StepOutput,
)

if TYPE_CHECKING:
    from fermion.pipelines.kinds import StepKind
    from fermion.tracking import Run
    from fermion.workspace import Workspace

EXPERIMENT = "pipelines"
State = Literal["pending", "running", "cached", "done", "failed", "skipped"]
FINAL: frozenset[str] = frozenset({"cached", "done", "failed", "skipped"})


@dataclass(frozen=True)
class StepState:
    """Where one step stands: `error` for a failed step, `reason` for a skipped one."""

    name: str
    kind: str
    state: State = "pending"
    seconds: float = 0.0
    output: StepOutput | None = None
    error: str | None = None
    run_id: int | None = None
    checks: tuple[Check, ...] = ()


@dataclass
class PipelineResult:
    """A finished pipeline run: every selected step's final state, in run order."""

    pipeline: str
    run_id: int
    steps: dict[str, StepState] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(step.state in ("cached", "done") for step in self.steps.values())

    @property
    def failed(self) -> list[StepState]:
        return [step for step in self.steps.values() if step.state == "failed"]


def run_pipeline(
    ws: Workspace,
    project: ProjectSpec,
    name: str | None = None,
    *,
    only: Sequence[str] = (),
    start: str | None = None,
    force: Sequence[str] = (),
    jobs: int = 2,
    on_change: Callable[[StepState], None] | None = None,
) -> PipelineResult:
    """Run pipeline `name` (the file's first when None) of `project` in workspace `ws`.

    `only` runs just those steps (what they need comes from its last finished run), `start`
    runs that step and everything downstream of it, `force` runs those steps even when their
    cache key matches. Up to `jobs` steps run at once.
    """
    from fermion.pipelines.kinds import KINDS
    from fermion.pipelines.spec import pipeline as find_pipeline
    from fermion.pipelines.spec import select

    spec = find_pipeline(project, name)
    order = select(spec, only=only, start=start)
    unknown = sorted(set(force) - set(spec.steps))
    if unknown:
        raise InvalidInputError(
            f"--force names no step of pipeline {spec.name!r}: {', '.join(unknown)}"
        )
    outputs = _outside_outputs(ws, spec, order)
    notify = on_change or (lambda state: None)
    states = {step: StepState(step, spec.steps[step].kind) for step in order}
    for state in states.values():
        notify(state)
    started = time.perf_counter()
    parent = ws.runs.start(
        spec.name,
        experiment=EXPERIMENT,
        nested=False,
        tags={"fermion.pipeline": spec.name, "fermion.kind": "pipeline"},
        environment={},
    )
    result = PipelineResult(spec.name, parent.id)
    runner = _StepRunner(ws, project, spec, KINDS, parent, frozenset(force))

    def update(state: StepState) -> None:
        states[state.name] = state
        notify(state)

    pending = list(order)
    running: dict[Future[StepState], str] = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="fermion-step") as pool:
        while pending or running:
            for step in list(pending):
                needs = spec.steps[step].needs
                blocked = [
                    n for n in needs if n in states and states[n].state in ("failed", "skipped")
                ]
                if blocked:
                    pending.remove(step)
                    update(
                        replace(states[step], state="skipped", error=f"{blocked[0]} did not finish")
                    )
                elif all(n in outputs for n in needs) and len(running) < max(1, jobs):
                    pending.remove(step)
                    update(replace(states[step], state="running"))
                    context = contextvars.copy_context()
                    future = pool.submit(context.run, runner.run, step, outputs)
                    running[future] = step
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                running.pop(future)
                state = future.result()
                if state.output is not None:
                    outputs[state.name] = state.output
                update(state)
    result.steps = {step: states[step] for step in order}
    result.seconds = time.perf_counter() - started
    parent.end(RunStatus.FINISHED if result.ok else RunStatus.FAILED, _summary(result))
    return result


def _outside_outputs(
    ws: Workspace, spec: PipelineSpec, order: Sequence[str]
) -> dict[str, StepOutput]:
    """Outputs of the steps the selected ones need but that are not selected: their last."""
    outputs: dict[str, StepOutput] = {}
    chosen = set(order)
    for step in order:
        for need in spec.steps[step].needs:
            if need in chosen or need in outputs:
                continue
            found = cache.latest_output(ws, spec.name, need)
            if found is None:
                raise InvalidInputError(
                    f"step {step!r} needs {need!r}, which has never finished in pipeline "
                    f"{spec.name!r}: run it first (fermion run {spec.name} --only {need})"
                )
            outputs[need] = found
    return outputs


def _summary(result: PipelineResult) -> str | None:
    if result.ok:
        return None
    failed = result.failed
    return f"step {failed[0].name} failed: {failed[0].error}" if failed else "steps were skipped"


class _StepRunner:
    def __init__(
        self,
        ws: Workspace,
        project: ProjectSpec,
        spec: PipelineSpec,
        kinds: Mapping[str, StepKind],
        parent: Run,
        force: frozenset[str],
    ) -> None:
        self.ws, self.project, self.spec, self.kinds = ws, project, spec, kinds
        self.parent, self.force = parent, force

    def run(self, step: str, outputs: Mapping[str, StepOutput]) -> StepState:
        """One step, cached or run, as a child run of the pipeline's; never raises."""
        spec = self.spec.steps[step]
        started = time.perf_counter()
        state = StepState(step, spec.kind)
        tags = {
            cache.STEP_TAG: f"{self.spec.name}/{step}",
            "fermion.kind": spec.kind,
        }
        run = self.ws.runs.start(step, parent=self.parent, nested=False, tags=tags, environment={})
        try:
            with run:  # what the step logs (a training run, say) becomes this run's child
                output, final = self._cached_or_run(step, outputs, run)
                run.set_tags({**cache.output_tags(output), cache.STATE_TAG: final})
                if output.metrics:
                    run.log_metrics(dict(output.metrics))
        except Exception as exc:
            message = str(exc) if isinstance(exc, FermionError) else f"{type(exc).__name__}: {exc}"
            checks = exc.checks if isinstance(exc, ChecksFailedError) else ()
            tags = {cache.STATE_TAG: "failed"}
            if checks:
                tags[cache.CHECKS_TAG] = json.dumps([c.to_dict() for c in checks])
            self.ws.runs.store.set_tags(run.id, tags)
            seconds = time.perf_counter() - started
            return replace(
                state, state="failed", error=message, seconds=seconds, run_id=run.id, checks=checks
            )
        seconds = time.perf_counter() - started
        return replace(
            state,
            state=final,
            output=output,
            seconds=seconds,
            run_id=run.id,
            checks=output.checks,
        )

    def _cached_or_run(
        self, step: str, outputs: Mapping[str, StepOutput], run: Run
    ) -> tuple[StepOutput, State]:
        spec = self.spec.steps[step]
        kind = self.kinds[spec.kind]
        upstream = {need: outputs[need] for need in spec.needs}
        key = cache.cache_key(spec, kind, self.project.root, upstream)
        run.set_tags({cache.CACHE_TAG: key})
        if kind.cacheable and step not in self.force:
            found = cache.cached_output(self.ws, key)
            if found is not None:
                return found, "cached"
        context = StepContext(
            workspace=self.ws,
            root=self.project.root,
            spec=spec,
            inputs={k: upstream[s] for k, s in spec.inputs.items()},
            needed=upstream,
            say=lambda line: None,
        )
        return kind.run(context), "done"
