"""`fermion tune`: search a family's space, then retrain the best params and register them."""

from __future__ import annotations

import multiprocessing
import shutil
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from fermion.errors import FermionError, InvalidInputError
from fermion.training.metrics import GREATER_IS_BETTER, PRIMARY_METRIC, Task
from fermion.tuning.pruning import PRUNERS, make_pruner
from fermion.tuning.study import (
    SAMPLERS,
    StudyKey,
    close_storage,
    make_sampler,
    open_storage,
    open_study,
    quiet_optuna,
)
from fermion.tuning.worker import WorkerSpec, finished_trials, run_trials, run_worker_process

if TYPE_CHECKING:
    import optuna

    from fermion.training.trainer import TrainResult
    from fermion.workspace import Workspace

BACKENDS = ("local", "ray")
REGRESSION_METRICS = frozenset({"rmse", "mae", "r2", "mape", "median_ae"})
BINARY_ONLY = frozenset({"brier"})


class TuneProgress(Protocol):
    def trials(self, done: int, total: int, pruned: int, failed: int, best: float | None) -> None:
        """The study's state after a trial, or at a poll while workers run."""

    def stage(self, description: str) -> None:
        """A new phase began (preparing folds, retraining the best, registering)."""


@dataclass(frozen=True)
class TuneResult:
    study: str
    run_id: int
    best_value: float
    best_params: dict[str, Any]
    report: dict[str, Any]
    final: TrainResult | None
    plots: list[str] = field(default_factory=list)


def check_metric(metric: str, task: Task) -> str:
    """`metric` if it scores `task`'s predictions, else an error listing those that do."""
    known = set(GREATER_IS_BETTER)
    allowed = (
        REGRESSION_METRICS
        if task == "regression"
        else (known - REGRESSION_METRICS - (BINARY_ONLY if task == "multiclass" else set()))
    )
    if metric not in allowed:
        raise InvalidInputError(
            f"metric {metric!r} does not exist for a {task} task; choose one of: "
            + ", ".join(sorted(allowed))
        )
    return metric


def parse_objectives(metric: str | Sequence[str] | None, task: Task) -> tuple[str, ...]:
    """The metric, then any objectives traded off against it (`"roc_auc,size_kb"`).

    The first is always a metric of the task; the others may also be `size_kb` or `latency_ms`.
    """
    from fermion.tuning.objective import MODEL_OBJECTIVES

    names = metric.split(",") if isinstance(metric, str) else list(metric or [])
    names = [name.strip() for name in names if name.strip()] or [PRIMARY_METRIC[task]]
    if names[0] in MODEL_OBJECTIVES:
        raise InvalidInputError(
            f"the first objective must be a metric of the {task} task, not {names[0]!r}; "
            f"e.g. {PRIMARY_METRIC[task]},{names[0]}"
        )
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise InvalidInputError(f"objective {repeated[0]!r} is named twice")
    for name in names:
        if name not in MODEL_OBJECTIVES:
            check_metric(name, task)
    return tuple(names)


def direction_of(objective: str) -> str:
    from fermion.tuning.objective import MODEL_OBJECTIVES

    if objective in MODEL_OBJECTIVES or not GREATER_IS_BETTER[objective]:
        return "minimize"
    return "maximize"


def tune(
    ws: Workspace,
    data: str,
    target: str,
    model: str = "lightgbm",
    *,
    trials: int = 40,
    timeout: float | None = None,
    metric: str | Sequence[str] | None = None,
    jobs: int = 1,
    backend: str = "local",
    sampler: str | None = None,
    pruner: str | None = None,
    space: str | None = None,
    study: str | None = None,
    new: bool = False,
    folds: int = 5,
    patience: int | None = None,
    seed: int = 0,
    task: Task | None = None,
    text_columns: Sequence[str] = (),
    name: str | None = None,
    alias: str | None = None,
    experiment: str | None = None,
    register: bool = True,
    progress: TuneProgress | None = None,
) -> TuneResult:
    """Tune `model` on a dataset version with cross-validation, then retrain the best params
    on train+valid, evaluate on test and register the model.

    The study lives in the metadata database: running the same call again resumes it (a
    different space or objective is refused unless `new`); `jobs` worker processes share it.

    `metric` may name more objectives after the first (`"roc_auc,size_kb"`): the study is then
    multi-objective (NSGA-II by default, no pruning), its report holds the Pareto front, and
    the model registered is the front's smallest or fastest within the noise band of the best
    metric. `sampler` defaults to TPE (NSGA-II with several objectives), `pruner` to paired
    (none with several objectives).

    `backend="ray"` runs the `jobs` workers as Ray tasks (a local Ray instance unless one is
    running or $RAY_ADDRESS names a cluster) instead of local processes.
    """
    from pathlib import Path

    from fermion.training.families import get_family
    from fermion.training.trainer import prepare
    from fermion.tuning.auto import AUTO, MultiFamilySpace, auto_space
    from fermion.tuning.space import SearchSpace, default_space, load_space

    _check_budget(trials, timeout, jobs, folds, patience)
    if backend not in BACKENDS:
        raise InvalidInputError(
            f"unknown backend {backend!r}; choose one of: {', '.join(BACKENDS)}"
        )
    if backend == "ray":
        from fermion.tuning.ray_workers import require_ray

        require_ray()
    if model == AUTO:
        if space:
            raise InvalidInputError("--space applies to one model family, not to --model auto")
        if sampler == "grid":
            raise InvalidInputError("the grid sampler needs one model family, not --model auto")
    else:
        get_family(model).check_available()
    dataset = ws.datasets.get(data)
    prepared = prepare(ws, dataset, target, task=task, seed=seed)  # records a split if none
    objectives = parse_objectives(metric, prepared.task)
    chosen_metric, extra = objectives[0], objectives[1:]
    sampler, pruner = _search_strategy(sampler, pruner, multi_objective=bool(extra))
    search: SearchSpace | MultiFamilySpace
    if model == AUTO:
        search = auto_space(prepared.task)
    elif space:
        search = load_space(Path(space), model, prepared.task)
    else:
        search = default_space(model, prepared.task)
    key = StudyKey(
        model,
        dataset.ref,
        target,
        ",".join(objectives),
        ",".join(direction_of(name) for name in objectives),
        search.fingerprint(),
        folds,
        seed,
    )
    study_name = study or f"{dataset.name}-{target}-{model}"
    storage = open_storage(ws.settings.resolved_metadata_url)
    try:
        with quiet_optuna():
            optuna_study = open_study(
                storage,
                study_name,
                key,
                sampler=make_sampler(
                    sampler,
                    seed,
                    search if isinstance(search, SearchSpace) else None,
                    trials=trials,
                ),
                pruner=make_pruner(pruner, folds),
                new=new,
            )
            if not optuna_study.trials:  # warm start: the untuned model is the first trial
                for defaults in _warm_start(search):
                    optuna_study.enqueue_trial(defaults, skip_if_exists=True)
        with ws.runs.start(
            f"tune-{model}", experiment=experiment or dataset.name, nested=False
        ) as run:
            run.log_input(dataset, "tune")
            run.log_params(
                {
                    "model": model,
                    "data": dataset.ref,
                    "target": target,
                    "task": prepared.task,
                    "metric": ",".join(objectives),
                    "study": study_name,
                    "sampler": sampler,
                    "pruner": pruner,
                    "folds": folds,
                    "trials": trials,
                    "jobs": jobs,
                    "backend": backend,
                    "seed": seed,
                    "space": search.fingerprint()[:16],
                }
            )
            spec = WorkerSpec(
                root=str(ws.root),
                data=dataset.ref,
                target=target,
                family=model,
                task=prepared.task,
                metric=chosen_metric,
                folds=folds,
                seed=seed,
                study=study_name,
                sampler=sampler,
                pruner=pruner,
                space=search.to_dict(),
                trials=trials,
                deadline=None if timeout is None else time.time() + timeout,
                parent_run=run.id,
                experiment=run.experiment,
                threads=2 if jobs == 1 and backend == "local" else 1,
                patience=patience,
                text_columns=tuple(text_columns),
                objectives=extra,
            )
            if progress is not None:
                progress.stage(
                    f"Tuning {model}: {trials} trials, {folds}-fold CV, {jobs} job(s)"
                    + (" on Ray" if backend == "ray" else "")
                )
            worker_errors = _run(spec, jobs, backend, progress)
            if worker_errors:
                run.set_tag("worker_errors", "; ".join(worker_errors))
            return _finish(ws, run, prepared, study_name, objectives, storage,
                           name=name, alias=alias, register=register, seed=seed,
                           progress=progress)  # fmt: skip
    finally:
        close_storage(storage)


def _check_budget(
    trials: int,
    timeout: float | None,
    jobs: int,
    folds: int,
    patience: int | None,
) -> None:
    if trials < 1:
        raise InvalidInputError(f"--trials must be at least 1, not {trials}")
    if timeout is not None and timeout <= 0:
        raise InvalidInputError(f"--timeout must be positive, not {timeout:g} s")
    if jobs < 1:
        raise InvalidInputError(f"--jobs must be at least 1, not {jobs}")
    if folds < 2:
        raise InvalidInputError(f"--folds must be at least 2, not {folds}")
    if patience is not None and patience < 1:
        raise InvalidInputError(f"--patience must be at least 1, not {patience}")


def _search_strategy(
    sampler: str | None, pruner: str | None, *, multi_objective: bool
) -> tuple[str, str]:
    """The sampler and pruner, defaulted by the number of objectives and checked against it."""
    sampler = sampler or ("nsga2" if multi_objective else "tpe")
    pruner = pruner or ("none" if multi_objective else "paired")
    if sampler not in SAMPLERS:
        raise InvalidInputError(
            f"unknown sampler {sampler!r}; choose one of: {', '.join(SAMPLERS)}"
        )
    if pruner not in PRUNERS:
        raise InvalidInputError(f"unknown pruner {pruner!r}; choose one of: {', '.join(PRUNERS)}")
    if multi_objective and sampler == "cmaes":
        raise InvalidInputError("the cmaes sampler tunes one objective; use nsga2, tpe or random")
    if multi_objective and pruner != "none":
        raise InvalidInputError(
            f"the {pruner} pruner needs one objective: Optuna cannot prune a multi-objective "
            "study; use --pruner none"
        )
    return sampler, pruner


def _run(spec: WorkerSpec, jobs: int, backend: str, progress: TuneProgress | None) -> list[str]:
    """Trials in this process and `jobs - 1` spawned worker processes, or in `jobs` Ray tasks.

    This process is worker 1: it starts trials while the others are still importing, and
    already holds the data. Returns one line for each worker that failed (the study's trials
    are complete all the same: the others took over its share)."""
    if backend == "ray":
        from fermion.tuning.ray_workers import run_on_ray

        watcher = _Reporter(spec, progress)
        try:
            return run_on_ray(spec, jobs, watcher.poll)
        finally:
            watcher.close()
    callbacks = [_Reporter(spec, progress)] if progress is not None else []
    if jobs == 1:
        run_trials(spec, callbacks)
        return []
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(target=run_worker_process, args=(spec, number), daemon=True)
        for number in range(2, jobs + 1)
    ]
    for worker in workers:
        worker.start()
    watcher = _Reporter(spec, progress)
    try:
        run_trials(spec, callbacks, worker=1)
        while any(worker.is_alive() for worker in workers):  # each finishes its last trial
            for worker in workers:
                worker.join(timeout=0.5)
            watcher.poll()
    except BaseException:
        for worker in workers:
            worker.terminate()
        raise
    finally:
        watcher.close()
    return [
        f"worker {number} exited with code {w.exitcode}"
        for number, w in enumerate(workers, start=2)
        if w.exitcode not in (0, None)
    ]


class _Reporter:
    """Feeds `TuneProgress` from trial callbacks, or by polling the study."""

    def __init__(self, spec: WorkerSpec, progress: TuneProgress | None) -> None:
        self._spec = spec
        self._progress = progress
        self._study: optuna.Study | None = None
        self._storage: optuna.storages.RDBStorage | None = None

    def __call__(self, study: optuna.Study, trial: Any) -> None:
        self._show(study)

    def close(self) -> None:
        if self._storage is not None:
            close_storage(self._storage)

    def poll(self) -> None:
        if self._progress is None:
            return
        import optuna

        from fermion.workspace import Workspace

        if self._study is None:
            with Workspace.open(self._spec.root) as ws:
                url = ws.settings.resolved_metadata_url
            self._storage = open_storage(url)
            with quiet_optuna():
                self._study = optuna.load_study(study_name=self._spec.study, storage=self._storage)
        self._show(self._study)

    def _show(self, study: optuna.Study) -> None:
        from optuna.trial import TrialState

        if self._progress is None:
            return
        trials = study.get_trials(deepcopy=False)
        complete = [t for t in trials if t.state == TrialState.COMPLETE]
        best = None
        if complete:
            values = [t.values[0] for t in complete if t.values]  # the metric
            maximize = study.directions[0].name == "MAXIMIZE"
            best = max(values) if maximize else min(values)
        self._progress.trials(
            finished_trials(study),
            self._spec.trials,
            sum(t.state == TrialState.PRUNED for t in trials),
            sum(t.state == TrialState.FAIL for t in trials),
            best,
        )


def _warm_start(search: Any) -> list[dict[str, object]]:
    """The untuned defaults as the first trial (one per family for `--model auto`)."""
    from fermion.tuning.auto import MultiFamilySpace

    if isinstance(search, MultiFamilySpace):
        return search.defaults()
    return [search.defaults()]


def _finish(
    ws: Workspace,
    run: Any,
    prepared: Any,
    study_name: str,
    objectives: tuple[str, ...],
    storage: Any,
    *,
    name: str | None,
    alias: str | None,
    register: bool,
    seed: int,
    progress: TuneProgress | None,
) -> TuneResult:
    """Retrain the best params on train+valid, evaluate on test, register; save the report."""
    import optuna
    import polars as pl

    from fermion.training.families import get_family
    from fermion.training.progress import Silent
    from fermion.training.trainer import Prepared, evaluate_and_register, fit_family
    from fermion.tuning.objective import ROUND_PARAMS
    from fermion.tuning.report import history_plot, importance_plot, pareto_plot, study_report

    metric, extra = objectives[0], objectives[1:]
    with quiet_optuna():
        study = optuna.load_study(study_name=study_name, storage=storage)
        report = study_report(study, metric, extra)
    if "best" not in report:
        raise FermionError(f"no trial of study {study_name!r} completed; see its failed runs")
    best = report["best"]
    run.log_metrics({f"cv_{metric}": best["value"], f"cv_{metric}_band": report["noise_band"]})
    if extra:
        run.log_metrics({f"cv_{name}": best["values"][name] for name in extra})
        run.log_metric("pareto_front_size", len(report["pareto_front"]))
    scratch = ws.scratch_dir / f"tune-{uuid.uuid4().hex}"
    try:
        plots = [history_plot(study, metric, scratch / "optimization_history.png")]
        importance = importance_plot(study, scratch / "param_importance.png")
        plots += [importance] if importance is not None else []
        if extra:
            plots.append(
                pareto_plot(study, metric, extra[0], best["trial"], scratch / "pareto_front.png")
            )
        logged = [a.path for a in run.log_artifacts(scratch, "tuning")]
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    run.log_dict(report, "tuning/report.json")
    family = get_family(best["family"])
    params = family.coerce_params(prepared.task, best["full_params"])
    rounds = best.get("rounds")
    if rounds and family.name in ROUND_PARAMS:
        params[ROUND_PARAMS[family.name]] = rounds
    if progress is not None:
        progress.stage("Retraining the best params on train+valid")
    frames = {"train": pl.concat([f for p, f in prepared.frames.items() if p != "test"])}
    if "test" in prepared.frames:
        frames["test"] = prepared.frames["test"]
    final_data = Prepared(
        prepared.dataset,
        prepared.split,
        frames,
        prepared.target,
        prepared.features,
        prepared.task,
        prepared.encoding,
    )
    run.log_params({f"best.{k}": v for k, v in params.items()})
    fitted, preprocessor = fit_family(family, final_data, params, (), seed, run, Silent())
    final = evaluate_and_register(
        ws, run, final_data, fitted, preprocessor, family.name, params,
        inputs="matrix", name=name, alias=alias, register=register, seed=seed, report=Silent(),
    )  # fmt: skip
    return TuneResult(
        study=study_name,
        run_id=run.id,
        best_value=float(best["value"]),
        best_params=params,
        report=report,
        final=final,
        plots=logged,
    )
