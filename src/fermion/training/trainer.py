"""Train a model on a dataset version: one call tracks, evaluates and registers it."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

from fermion.entities import ModelVersion, SplitRecord
from fermion.errors import InvalidInputError
from fermion.registry.model import Model
from fermion.registry.signature import signature_from_schema
from fermion.training.custom import CustomFit, Inputs
from fermion.training.evaluation import Evaluation, evaluate, importance, save_plots
from fermion.training.metrics import Task
from fermion.training.progress import Progress, Silent
from fermion.training.task import (
    TargetEncoding,
    check_target,
    check_task,
    detect_task,
    feature_columns,
)

if TYPE_CHECKING:
    from fermion.data.dataset import Dataset
    from fermion.tracking import Run
    from fermion.workspace import Workspace


@dataclass(frozen=True)
class TrainResult:
    run_id: int
    model: ModelVersion | None
    task: Task
    metrics: dict[str, float]  # on the test part (or the validation part when there is none)
    valid_metrics: dict[str, float]
    plots: list[str] = field(default_factory=list)
    evaluated_on: str = "test"


@dataclass(frozen=True)
class Prepared:
    """The data of one training job, split and encoded."""

    dataset: Dataset
    split: SplitRecord
    frames: dict[str, pl.DataFrame]
    target: str
    features: list[str]
    task: Task
    encoding: TargetEncoding


def prepare(
    ws: Workspace,
    data: str | Dataset,
    target: str,
    *,
    task: Task | None = None,
    features: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    seed: int = 0,
) -> Prepared:
    """Resolve the dataset, check the target, pick the split (the newest recorded one, or a new
    stratified 70/15/15 split), and encode the target."""
    dataset = ws.datasets.get(data) if isinstance(data, str) else data
    frame_columns = dataset.columns
    if target not in frame_columns:
        raise InvalidInputError(
            f"unknown target column {target!r}; the columns are: {', '.join(frame_columns)}"
        )
    column = check_target(dataset.scan().select(target).collect(), target)
    chosen_task = check_task(column, task) if task else detect_task(column)
    chosen = feature_columns(frame_columns, target, features, exclude)
    splits = dataset.splits
    if splits:
        split = splits[0]
    else:
        stratify = target if chosen_task != "regression" else None
        split = ws.datasets.split(dataset.ref, stratify=stratify, seed=seed)
    frames = dataset.split_frames(split)
    if frames.get("train") is None or frames["train"].height == 0:
        raise InvalidInputError(f"the training split of {dataset.ref} is empty")
    encoding = TargetEncoding.fit(frames["train"].get_column(target), chosen_task)
    if chosen_task != "regression" and encoding.n_classes < 2:
        raise InvalidInputError(
            f"the training split holds a single class of {target!r}; a classifier needs two"
        )
    return Prepared(dataset, split, frames, target, chosen, chosen_task, encoding)


def custom_label(fit: CustomFit) -> str:
    """How runs, manifests and summaries name a model trained by `fit`: custom:<its name>."""
    return f"custom:{getattr(fit, '__name__', 'fit')}"


def train(
    ws: Workspace,
    data: str | Dataset,
    target: str,
    model: str | CustomFit = "lightgbm",
    params: Mapping[str, object] | None = None,
    *,
    inputs: Inputs = "matrix",
    preprocessing: Literal["trees", "linear"] = "linear",
    task: Task | None = None,
    features: Sequence[str] | None = None,
    exclude: Sequence[str] = (),
    text_columns: Sequence[str] = (),
    name: str | None = None,
    experiment: str | None = None,
    run_name: str | None = None,
    alias: str | None = None,
    register: bool = True,
    seed: int = 0,
    progress: Progress | None = None,
) -> TrainResult:
    """Train a model on a dataset version, track the run, evaluate on the validation and test
    parts, save plots and a model card, and register the model.

    `model` names a built-in family (`fermion.training.families.FAMILIES`), or is a custom
    training function `fit(data: TrainingData, run: Run) -> model` (see `training.custom`);
    `inputs` and `preprocessing` say what such a function receives. Any error after the run
    starts marks the run failed and registers nothing.
    """
    from fermion.entities.dataset import check_name
    from fermion.registry.refs import check_alias
    from fermion.training.families import get_family

    report = progress or Silent()
    if callable(model):
        family, label = None, custom_label(model)
    else:
        family = get_family(model)
        label = family.name
    if alias is not None:
        check_alias(alias)
    if name is not None:
        check_name(name)
    dataset = ws.datasets.get(data) if isinstance(data, str) else data
    with ws.runs.start(
        run_name or f"{label.removeprefix('custom:')}-{dataset.name}",
        experiment=experiment or dataset.name,
    ) as run:
        run.log_input(dataset, "train")
        if family is not None:
            family.check_available()
        report.stage(f"Loading {dataset.ref}")
        prepared = prepare(
            ws, dataset, target, task=task, features=features, exclude=exclude, seed=seed
        )
        if family is not None:
            chosen = family.coerce_params(prepared.task, params or {})
            run.log_params(_run_params(prepared, label, seed) | chosen)
            fitted, preprocessor = fit_family(
                family, prepared, chosen, text_columns, seed, run, report
            )
        else:
            assert callable(model)
            chosen = dict(params or {})
            run.log_params(_run_params(prepared, label, seed) | chosen)
            fitted, preprocessor = _fit_custom(
                model, prepared, chosen, inputs, preprocessing, text_columns, seed, run, report
            )
        return evaluate_and_register(
            ws, run, prepared, fitted, preprocessor, label, chosen,
            inputs="matrix" if preprocessor is not None else inputs,
            name=name, alias=alias, register=register, seed=seed, report=report,
        )  # fmt: skip


def _run_params(prepared: Prepared, model: str, seed: int) -> dict[str, Any]:
    return {
        "model": model,
        "task": prepared.task,
        "target": prepared.target,
        "data": prepared.dataset.ref,
        "split_id": prepared.split.id,
        "seed": seed,
        "n_features": len(prepared.features),
    }


def fit_family(
    family: Any,
    prepared: Prepared,
    params: dict[str, object],
    text_columns: Sequence[str],
    seed: int,
    run: Run,
    report: Progress,
) -> tuple[Any, Any]:
    from fermion.training.preprocess import column_roles, preprocessor_for

    train_frame = prepared.frames["train"]
    roles = column_roles(train_frame, prepared.features, text_columns=text_columns)
    if "text" in roles.values():
        report.stage("Embedding text columns")
    preprocessor = preprocessor_for(family.preprocessing, roles).fit(train_frame)
    X = preprocessor.transform(train_frame)
    y = prepared.encoding.encode(train_frame.get_column(prepared.target))
    valid = None
    valid_frame = prepared.frames.get("valid")
    if valid_frame is not None and valid_frame.height:
        valid = (
            preprocessor.transform(valid_frame),
            prepared.encoding.encode(valid_frame.get_column(prepared.target)),
        )

    def on_progress(step: int, total: int, metrics: dict[str, float]) -> None:
        run.log_metrics(metrics, step=step)
        report.step(step, total, metrics)

    report.stage(f"Fitting {family.name}")
    fitted = family.fit(
        X,
        y,
        task=prepared.task,
        n_classes=max(prepared.encoding.n_classes, 1),
        params=params,
        valid=valid,
        categorical_features=preprocessor.categorical_feature_indices,
        seed=seed,
        on_progress=on_progress,
    )
    if fitted.best_step is not None:
        run.log_metric("best_step", fitted.best_step)
    return fitted, preprocessor


def _fit_custom(
    fit: CustomFit,
    prepared: Prepared,
    params: dict[str, object],
    inputs: Inputs,
    preprocessing: Literal["trees", "linear"],
    text_columns: Sequence[str],
    seed: int,
    run: Run,
    report: Progress,
) -> tuple[Any, Any]:
    from fermion.training.custom import build_training_data, wrap_user_model
    from fermion.training.preprocess import column_roles, preprocessor_for

    if inputs not in ("matrix", "frame", "pandas"):
        raise InvalidInputError(f"inputs must be matrix, frame or pandas, not {inputs!r}")
    preprocessor = None
    if inputs == "matrix":
        train_frame = prepared.frames["train"]
        roles = column_roles(train_frame, prepared.features, text_columns=text_columns)
        preprocessor = preprocessor_for(preprocessing, roles).fit(train_frame)
    data = build_training_data(prepared, inputs, preprocessor, params, seed)
    report.stage(f"Fitting {getattr(fit, '__name__', 'custom model')}")
    fitted = wrap_user_model(fit(data, run), data, inputs)
    _check_custom(fitted, data)
    return fitted, preprocessor


def _check_custom(fitted: Any, data: Any) -> None:
    """Call the user's model once on a few training rows, so a broken one fails here, naming
    the problem, rather than in evaluation."""
    sample = data.X_train[:5]
    try:
        fitted.predict(sample)
        if data.task != "regression":
            fitted.predict_proba(sample)
    except InvalidInputError:
        raise
    except Exception as exc:
        raise InvalidInputError(
            f"the custom model failed to predict on training rows: {type(exc).__name__}: {exc}"
        ) from exc


def evaluate_and_register(
    ws: Workspace,
    run: Run,
    prepared: Prepared,
    fitted: Any,
    preprocessor: Any,
    family: str,
    params: dict[str, object],
    *,
    inputs: str,
    name: str | None,
    alias: str | None,
    register: bool,
    seed: int,
    report: Progress,
) -> TrainResult:
    from fermion.registry.flavors import get_flavor

    signature = signature_from_schema(
        prepared.dataset.schema,
        prepared.features,
        task=prepared.task,
        target=prepared.target,
        classes=prepared.encoding.classes,
    )
    manifest: dict[str, Any] = {
        "name": name or prepared.dataset.name,
        "flavor": fitted.flavor,
        "family": family,
        "signature": signature.to_dict(),
        "classes": list(prepared.encoding.classes),
        "preprocessor": preprocessor.to_dict() if preprocessor is not None else None,
        "inputs": inputs,
        "params": params,
        "data": prepared.dataset.ref,
        "split": {"id": prepared.split.id, "counts": prepared.split.counts},
    }
    model = Model(manifest, fitted, preprocessor)
    report.stage("Evaluating")
    valid_eval = _evaluate_part(model, prepared, "valid")
    final_part = "test" if "test" in prepared.frames else "valid"
    final = _evaluate_part(model, prepared, final_part) if final_part != "valid" else valid_eval
    if valid_eval is not None:
        run.log_metrics({f"valid_{k}": v for k, v in valid_eval.metrics.items()})
    metrics = final.metrics if final is not None else {}
    run.log_metrics(metrics)
    scratch = ws.scratch_dir / f"train-{uuid.uuid4().hex}"
    try:
        plots = _plots(model, prepared, final, final_part, scratch / "plots", seed, run)
        if final is not None:
            run.log_dict(final.details | {"metrics": final.metrics}, "evaluation.json")
        version = None
        if register:
            report.stage("Registering")
            bundle = scratch / "bundle"
            manifest["flavor_meta"] = get_flavor(fitted.flavor).save(fitted, bundle / "model")
            manifest["metrics"] = metrics
            version = ws.models.register(
                str(manifest["name"]), bundle, manifest, run_id=run.id, metrics=metrics
            )
            if alias is not None:
                version = _with_alias(ws, version, alias)
            run.set_tag("model_version", version.ref)
            run.log_text(ws.models.card(version), "model_card.md")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return TrainResult(
        run_id=run.id,
        model=version,
        task=prepared.task,
        metrics=metrics,
        valid_metrics=valid_eval.metrics if valid_eval is not None else {},
        plots=plots,
        evaluated_on=final_part,
    )


def _with_alias(ws: Workspace, version: ModelVersion, alias: str) -> ModelVersion:
    ws.models.set_alias(version.name, alias, version.version)
    return ws.models.get(version.ref)


def _evaluate_part(model: Model, prepared: Prepared, part: str) -> Evaluation | None:
    frame = prepared.frames.get(part)
    if frame is None or frame.height == 0:
        return None
    return evaluate(model, frame, prepared.target)


def _plots(
    model: Model,
    prepared: Prepared,
    evaluation: Evaluation | None,
    part: str,
    folder: Path,
    seed: int,
    run: Run,
) -> list[str]:
    if evaluation is None:
        return []
    importances = importance(model, prepared.frames[part], prepared.target, seed=seed)
    run.log_dict(
        [{"feature": i.feature, "mean": i.mean, "std": i.std} for i in importances],
        "feature_importance.json",
    )
    save_plots(evaluation, folder, importances)
    return [a.path for a in run.log_artifacts(folder, "plots")]
