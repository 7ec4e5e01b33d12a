"""The trial loop: one worker loads the data once, then runs trials until the study is done.

The same function runs in the calling process (`--jobs 1`) and in each spawned worker process
(`--jobs N`); workers share the study through the metadata database, so several machines can
run `fermion tune` against one PostgreSQL URL.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fermion.tuning.objective import CrossValidation, Pruned, Reporter
from fermion.tuning.pruning import TrialReporter, make_pruner
from fermion.tuning.study import (
    RESULT_ATTR,
    SETUP_ATTR,
    close_storage,
    make_sampler,
    open_storage,
    quiet_optuna,
    trial_facts,
)

if TYPE_CHECKING:
    import optuna

    from fermion.workspace import Workspace

# Which process ran a trial: host and process id.
WORKER = f"{socket.gethostname()}:{os.getpid()}"
TrialCallback = Callable[["optuna.Study", "optuna.trial.FrozenTrial"], None]


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs, picklable for a spawned process."""

    root: str
    data: str
    target: str
    family: str
    task: str
    metric: str
    folds: int
    seed: int
    study: str
    sampler: str
    pruner: str
    space: dict[str, Any]
    trials: int
    deadline: float | None
    parent_run: int
    experiment: str
    threads: int
    patience: int | None = None
    text_columns: tuple[str, ...] = field(default_factory=tuple)
    objectives: tuple[str, ...] = ()  # traded off against `metric` (a multi-objective study)


def finished_trials(study: optuna.Study) -> int:
    """Trials that count towards `--trials`: complete, pruned or failed."""
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
    return len(study.get_trials(deepcopy=False, states=states))


def build_objective(
    ws: Workspace, spec: WorkerSpec
) -> Callable[[optuna.Trial], float | tuple[float, ...]]:
    """Encode the folds once and return the objective that fits and scores one trial."""
    import polars as pl

    from fermion.training.families import get_family
    from fermion.training.trainer import prepare
    from fermion.tuning.auto import MultiFamilySpace, is_multi_family
    from fermion.tuning.space import SearchSpace

    prepared = prepare(ws, spec.data, spec.target, task=spec.task)  # type: ignore[arg-type]
    frame = pl.concat([f for part, f in prepared.frames.items() if part != "test"])
    folds: dict[str, CrossValidation] = {}

    def cross_validation(name: str) -> CrossValidation:
        """Each family's folds, encoded the first time a trial needs them."""
        if name not in folds:
            folds[name] = CrossValidation(
                get_family(name),
                frame,
                target=spec.target,
                features=prepared.features,
                task=prepared.task,
                encode_target=prepared.encoding.encode,
                n_classes=prepared.encoding.n_classes,
                metric=spec.metric,
                n_folds=spec.folds,
                seed=spec.seed,
                text_columns=spec.text_columns,
                threads=spec.threads,
                objectives=spec.objectives,
            )
        return folds[name]

    multi = MultiFamilySpace.from_dict(spec.space) if is_multi_family(spec.space) else None
    single = None if multi is not None else SearchSpace.from_dict(spec.space)
    if single is not None:
        cross_validation(spec.family)  # fail here, not in every trial, if the data cannot fold
    hyperband = spec.pruner == "hyperband"

    def reporter(trial: optuna.Trial) -> Reporter:
        """Without a pruner nothing reads intermediate values: do not write them."""
        if spec.pruner == "none":
            return Reporter()
        return TrialReporter(trial, hyperband=hyperband)

    def objective(trial: optuna.Trial) -> float | tuple[float, ...]:
        import optuna

        if multi is not None:
            family_name, sampled = multi.suggest(trial)
        else:
            assert single is not None
            family_name, sampled = spec.family, single.suggest(trial)
        cv = cross_validation(family_name)
        params = cv.family.coerce_params(prepared.task, sampled)
        pruned: Pruned | None = None
        with ws.runs.start(
            f"trial-{trial.number}",
            experiment=spec.experiment,
            parent=spec.parent_run,
            environment={"study_run": spec.parent_run},
        ) as run:
            # Written before the folds, so a trial that fails or dies still names its run; the
            # params include the fixed ones, which Optuna does not keep.
            trial.set_user_attr(
                SETUP_ATTR,
                {"family": family_name, "params": sampled, "run_id": run.id, "worker": WORKER},
            )
            run.log_params({"trial": trial.number, "model": family_name, **sampled})
            try:
                result = cv.evaluate(params, reporter(trial))
            except Pruned as exc:
                pruned = exc
                run.set_tag("state", "pruned")
            except Exception as exc:  # Optuna keeps no error; the study shows it with the trial
                trial.set_user_attr("error", f"{type(exc).__name__}: {exc}")
                raise
            else:
                run.log_metrics(
                    {spec.metric: result.mean, f"{spec.metric}_std": result.std} | result.objectives
                )
                for index, score in enumerate(result.fold_scores):
                    run.log_metric(f"fold_{spec.metric}", score, step=index)
                trial.set_user_attr(
                    RESULT_ATTR,
                    {
                        "fold_scores": result.fold_scores,
                        "rounds": result.rounds,
                        "fit_seconds": result.fit_seconds,
                        "objectives": result.objectives,
                    },
                )
        if pruned is not None:
            raise optuna.TrialPruned(str(pruned))
        if spec.objectives:
            return (result.mean, *(result.objectives[name] for name in spec.objectives))
        return result.mean

    return objective


def run_trials(
    spec: WorkerSpec, callbacks: Sequence[TrialCallback] = (), *, worker: int = 0
) -> None:
    """Run trials of `spec.study` until it holds `spec.trials` finished ones, the deadline
    passes or patience runs out. A trial that raises is recorded as failed; the study goes on."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from fermion.tuning.auto import is_multi_family
    from fermion.tuning.patience import Patience
    from fermion.tuning.space import SearchSpace
    from fermion.workspace import Workspace

    with Workspace.open(Path(spec.root)) as ws, quiet_optuna():
        objective = build_objective(ws, spec)
        space = None if is_multi_family(spec.space) else SearchSpace.from_dict(spec.space)
        storage = open_storage(ws.settings.resolved_metadata_url)
        storage.heartbeat_stale_trial_callback = _EndStaleRun(
            ws, storage.heartbeat_stale_trial_callback
        )
        try:
            study = optuna.load_study(
                study_name=spec.study,
                storage=storage,
                sampler=make_sampler(
                    spec.sampler, spec.seed + worker, space, trials=spec.trials, parallel=worker > 0
                ),
                pruner=make_pruner(spec.pruner, spec.folds),
            )
            # Other workers' running trials count too: a worker whose trial ends stops when
            # those will make up the number (counting finished ones only, two workers ran 41
            # trials for 40).
            counted = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
            every: list[TrialCallback] = [
                MaxTrialsCallback(spec.trials, states=counted),
                *callbacks,
            ]
            if spec.patience:
                every.append(Patience(spec.patience))
            if finished_trials(study) >= spec.trials:
                return
            timeout = None if spec.deadline is None else max(0.0, spec.deadline - time.time())
            if timeout == 0.0:
                return
            study.optimize(objective, timeout=timeout, callbacks=every, catch=(Exception,))
        finally:
            close_storage(storage)


class _EndStaleRun:
    """A dead worker's trial is failed by Optuna and retried; its run is marked failed too."""

    def __init__(self, ws: Workspace, retry: TrialCallback | None) -> None:
        self._ws = ws
        self._retry = retry

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        from fermion.entities import RunStatus

        run_id = trial_facts(trial).get("run_id")
        if isinstance(run_id, int) and self._ws.runs.get(run_id).status == RunStatus.RUNNING:
            self._ws.runs.store.end_run(
                run_id, RunStatus.FAILED, "its tuning worker stopped (no heartbeat)"
            )
        if self._retry is not None:
            self._retry(study, trial)


def run_worker_process(spec: WorkerSpec, worker: int) -> None:
    """The entry point of spawned worker number `worker` (1, 2, ...): its sampler's seed is
    `seed + worker`, so workers propose different params and a run repeats from `--seed`."""
    run_trials(spec, worker=worker)
