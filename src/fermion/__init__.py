"""Fermion: from raw data to a monitored model behind an authenticated API."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fermion.errors import (
    ConflictError,
    FermionError,
    IntegrityError,
    InvalidInputError,
    MissingDependencyError,
    NotFoundError,
    StorageError,
)

if TYPE_CHECKING:
    from fermion.data.catalog import DatasetCatalog
    from fermion.optimize.optimizer import OptimizeResult
    from fermion.registry.registry import ModelRegistry
    from fermion.tracking import Run, Tracker
    from fermion.training.custom import CustomFit
    from fermion.training.evaluation import EvaluationReport
    from fermion.training.trainer import TrainResult
    from fermion.tuning.tuner import TuneResult
    from fermion.workspace import Workspace

__version__ = "0.1.0"

__all__ = [
    "Client",
    "ConflictError",
    "FermionError",
    "IntegrityError",
    "InvalidInputError",
    "MissingDependencyError",
    "NotFoundError",
    "StorageError",
    "Workspace",
    "current_workspace",
    "datasets",
    "evaluate",
    "models",
    "optimize",
    "runs",
    "serve",
    "start_run",
    "train",
    "tune",
]


def current_workspace() -> Workspace:
    """The workspace found from the current directory or FERMION_HOME, opened once per root."""
    from fermion.workspace import current_workspace as current

    return current()


def start_run(
    name: str | None = None,
    *,
    experiment: str | None = None,
    tags: dict[str, Any] | None = None,
    nested: bool = True,
) -> Run:
    """Start a tracked run in the current workspace; use it as `with fermion.start_run() as run:`.

    Inside another run's `with` block the new run is its child, unless `nested=False`.
    """
    return current_workspace().runs.start(name, experiment=experiment, tags=tags, nested=nested)


def train(
    data: str,
    target: str,
    model: str | CustomFit = "lightgbm",
    params: dict[str, Any] | None = None,
    **options: Any,
) -> TrainResult:
    """Train on a dataset version, track the run, evaluate it and register the model.

    `model` is a built-in family name ("lightgbm", "xgboost", "logistic", "linear",
    "random_forest", "hist_gb", "torch_mlp") or your own function `fit(data, run) -> model`.
    Options are those of `fermion.training.trainer.train` (alias, name, task, exclude, ...).
    """
    from fermion.training.trainer import train as run_training

    return run_training(current_workspace(), data, target, model, params, **options)


def tune(
    data: str, target: str, model: str = "lightgbm", *, trials: int = 40, **options: Any
) -> TuneResult:
    """Tune a model family's hyperparameters with cross-validation (Optuna underneath), then
    retrain the best on train+valid, evaluate on test and register it.

    Options are those of `fermion.tuning.tuner.tune` (timeout, metric, jobs, sampler, pruner,
    space, study, new, folds, patience, alias, name, ...). Running it again resumes the study.
    """
    from fermion.tuning.tuner import tune as run_tuning

    return run_tuning(current_workspace(), data, target, model, trials=trials, **options)


def evaluate(model: str, data: str, **options: Any) -> EvaluationReport:
    """Evaluate a registered model (`credit@production`) on a dataset version (`credit:3`)."""
    from fermion.training.evaluation import evaluate_registered

    return evaluate_registered(current_workspace(), model, data, **options)


def optimize(model: str, **options: Any) -> OptimizeResult:
    """Export a registered model (`credit@production`) to ONNX, quantize (and optionally
    prune) it, measure every variant against it on its validation rows, and register those
    whose metric drops at most `max_drop`.

    Options are the fields of `fermion.optimize.optimizer.OptimizeOptions`: quantize
    (auto, dynamic, static, fp16, none), prune, prune_mode, fine_tune, max_drop, metric,
    alias, auto, opset, data, texts, threads, seconds, register.
    """
    from dataclasses import fields

    from fermion.optimize.optimizer import OptimizeOptions
    from fermion.optimize.optimizer import optimize as run_optimize

    known = {f.name for f in fields(OptimizeOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise InvalidInputError(
            f"unknown optimize option {unknown[0]!r}; expected one of: {', '.join(sorted(known))}"
        )
    return run_optimize(current_workspace(), model, OptimizeOptions(**options))


def serve(*refs: str, backend: str = "uvicorn", replicas: int = 1, **options: Any) -> None:
    """Serve registered models (`"credit@production"`, ...) over HTTP until SIGTERM or Ctrl-C.

    Options are the fields of `fermion.serving.options.ServeOptions`: host, port, workers,
    auth, max_body_bytes, request_timeout_s, access_log, batch (a `BatchOptions`), ...
    `backend="ray"` runs `replicas` copies of the same server as a Ray Serve application.
    """
    from dataclasses import fields

    from fermion.serving.options import ServeOptions

    known = {f.name for f in fields(ServeOptions)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise InvalidInputError(
            f"unknown serve option {unknown[0]!r}; expected one of: {', '.join(sorted(known))}"
        )
    settings = ServeOptions(**options)
    if backend == "ray":
        from fermion.serving.ray_backend import serve_on_ray

        serve_on_ray(refs, workspace=current_workspace(), options=settings, replicas=replicas)
        return
    if backend != "uvicorn":
        raise InvalidInputError(f"backend must be uvicorn or ray, not {backend!r}")
    if replicas != 1:
        raise InvalidInputError("replicas is for backend='ray'; uvicorn runs workers")
    from fermion.serving.server import serve as run_server

    run_server(refs, workspace=current_workspace(), options=settings)


def __getattr__(name: str) -> Any:
    # Keeps `import fermion` light: the workspace and its stores load on first use.
    if name == "Workspace":
        from fermion.workspace import Workspace

        return Workspace
    if name == "Client":
        from fermion.serving.client import Client

        return Client
    if name == "datasets":
        catalog: DatasetCatalog = current_workspace().datasets
        return catalog
    if name == "models":
        registry: ModelRegistry = current_workspace().models
        return registry
    if name == "runs":
        tracker: Tracker = current_workspace().runs
        return tracker
    raise AttributeError(f"module 'fermion' has no attribute {name!r}")
