"""The model step kinds: train, tune, evaluate and promote, each one call into Fermion's API."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from fermion.errors import InvalidInputError
from fermion.pipelines.decisions import ACTOR, record_promotion
from fermion.pipelines.kinds_config import (
    StepConfig,
    headline,
    input_hash,
    input_ref,
    model_output,
)
from fermion.pipelines.types import DATASET, MODEL, StepContext, StepOutput

if TYPE_CHECKING:
    from fermion.entities import ModelVersion

TASKS = ("binary", "multiclass", "regression")


class _Stages:
    """Training and tuning progress as lines for the live view: stages only, no rounds."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say

    def stage(self, description: str) -> None:
        self._say(description)

    def step(self, step: int, total: int, metrics: dict[str, float]) -> None:
        return None

    def trials(self, done: int, total: int, pruned: int, failed: int, best: float | None) -> None:
        return None


def _task(config: StepConfig) -> Any:
    task = config.text("task")
    if task is not None and task not in TASKS:
        raise config.invalid("task", "binary, multiclass or regression")
    return task


def _registered(ctx: StepContext, version: ModelVersion | None) -> ModelVersion:
    if version is None:  # only with register=False, which these kinds never pass
        raise InvalidInputError(f"step {ctx.spec.name!r} registered no model")
    return version


INPUTS = ("matrix", "frame", "pandas")
PREPROCESSING = ("linear", "trees")


def check_train_config(step: str, config: Mapping[str, Any], kinds: Mapping[str, str]) -> None:
    """A train step names a built-in `family` or its own `function`, not both; `inputs` and
    `preprocessing` say what a function receives, and mean nothing to a family."""
    from fermion.pipelines.kinds_python import function_ref
    from fermion.pipelines.types import StepSpec

    if "function" not in config:
        for key in ("inputs", "preprocessing"):
            if key in config:
                raise InvalidInputError(
                    f"step {step!r}: {key} is for a training function; add function: "
                    "module:fit, or drop it"
                )
        return
    if "family" in config:
        raise InvalidInputError(
            f"step {step!r}: give family (a built-in model) or function (your own), not both"
        )
    function_ref(StepSpec(name=step, kind="train", config=dict(config)))
    for key, allowed in (("inputs", INPUTS), ("preprocessing", PREPROCESSING)):
        if key in config and config[key] not in allowed:
            raise InvalidInputError(
                f"step {step!r}: {key} must be {' or '.join(allowed)}, not {config[key]!r}"
            )


def run_train(ctx: StepContext) -> StepOutput:
    """Metrics: the registered version's (test part, or valid when there is none) under their
    own names, and the validation part's as `valid_<name>`. With `function: module:fit` the
    project's own training function trains the model (see `fermion.train`)."""
    from fermion.pipelines.kinds_python import project_function
    from fermion.training.trainer import custom_label

    config = StepConfig(ctx)
    if "function" in ctx.spec.config:
        with project_function(ctx) as function:
            result = _train(ctx, config, function)
        family = custom_label(function)
    else:
        family = config.text("family", "lightgbm")
        result = _train(ctx, config, family)
    version = _registered(ctx, result.model)
    metrics = dict(version.metrics) | {f"valid_{k}": v for k, v in result.valid_metrics.items()}
    score = headline(version.metrics, result.task)
    return model_output(
        version,
        f"{version.ref} ({family}" + (f", {result.evaluated_on} {score})" if score else ")"),
        metrics,
    )


def _train(ctx: StepContext, config: StepConfig, model: Any) -> Any:
    from fermion.training.trainer import train

    custom = callable(model)  # inputs and preprocessing were checked when the file loaded
    inputs: Any = config.text("inputs", "matrix") if custom else "matrix"
    preprocessing: Any = config.text("preprocessing", "linear") if custom else "linear"
    return train(
        ctx.workspace,
        ctx.ref(DATASET, DATASET),
        config.required_text("target"),
        model,
        config.mapping("params"),
        inputs=inputs,
        preprocessing=preprocessing,
        task=_task(config),
        exclude=config.names("exclude"),
        text_columns=config.names("text"),
        name=config.text("name"),
        alias=config.text("alias"),
        experiment=config.text("experiment"),
        seed=config.integer("seed", 0),
        progress=_Stages(ctx.say),
    )


def run_tune(ctx: StepContext) -> StepOutput:
    """Unlike `fermion tune`, a study starts over unless `new: false`: the step's inputs decide
    what it finds, not trials left from an earlier run. The default study name carries the
    step's name, so starting over never deletes a study made outside the pipeline."""
    from fermion.entities import DatasetRef
    from fermion.tuning.tuner import tune

    config = StepConfig(ctx)
    data = ctx.ref(DATASET, DATASET)
    target = config.required_text("target")
    family = config.text("family", "lightgbm")
    space = config.path("space")
    study = config.text("study", f"{DatasetRef.parse(data).name}-{target}-{family}-{ctx.spec.name}")
    result = tune(
        ctx.workspace,
        data,
        target,
        family,
        trials=config.integer("trials", 40),
        timeout=config.seconds("timeout"),
        metric=config.text("metric"),
        jobs=config.integer("jobs", 1),
        backend=config.text("backend", "local"),
        sampler=config.text("sampler"),
        pruner=config.text("pruner"),
        space=None if space is None else str(space),
        study=study,
        new=config.flag("new", True),
        folds=config.integer("folds", 5),
        patience=config.integer("patience"),
        seed=config.integer("seed", 0),
        task=_task(config),
        text_columns=config.names("text"),
        name=config.text("name"),
        alias=config.text("alias"),
        experiment=config.text("experiment"),
        progress=_Stages(ctx.say),
    )
    version = _registered(ctx, result.final.model if result.final else None)
    metric = str(result.report["metric"])
    trials = result.report.get("trials", {})
    metrics = dict(version.metrics) | {
        f"cv_{metric}": float(result.best_value),
        "trials_complete": float(trials.get("complete", 0)),
    }
    return model_output(
        version,
        f"{version.ref} ({result.report['best']['family']}, cv {metric} "
        f"{result.best_value:.4g}, study {result.study})",
        metrics,
    )


def run_evaluate(ctx: StepContext) -> StepOutput:
    """Without `dataset`, the model's own training data, on its split's test part (`fermion
    evaluate` has no default: it needs --data, and scores every row of it unless --part)."""
    from fermion.training.evaluation import evaluate_registered

    config = StepConfig(ctx)
    version = ctx.workspace.models.get(ctx.ref(MODEL, MODEL))
    data = input_ref(ctx, DATASET, DATASET)
    part = config.text("part", "all" if data is not None else "test")
    if data is None:
        data = ctx.workspace.models.manifest(version).get("data")
        if not data:
            raise InvalidInputError(
                f"step {ctx.spec.name!r}: {version.ref} records no training data (imported?); "
                "name the dataset to evaluate on"
            )
    report = evaluate_registered(
        ctx.workspace,
        version.ref,
        str(data),
        part=part,
        trusted=config.flag("trusted"),
        seed=config.integer("seed", 0),
    )
    metrics = report.evaluation.metrics
    score = headline(metrics, report.evaluation.task)
    return StepOutput(
        refs={MODEL: version.ref},
        hashes={MODEL: input_hash(ctx, MODEL, MODEL, version.content_hash)},
        metrics=dict(metrics),
        summary=f"{version.ref} on {report.data} ({part}, {report.rows:,} rows)"
        + (f": {score}" if score else ""),
    )


def run_promote(ctx: StepContext) -> StepOutput:
    """The move is recorded with actor `fermion run`, and the decision (the checks of the
    gates it needs, who ran the pipeline) on the step's run: see `decisions`."""
    config = StepConfig(ctx)
    alias = config.required_text("alias")
    version = ctx.workspace.models.get(ctx.ref(MODEL, MODEL))
    event = ctx.workspace.models.set_alias(version.name, alias, version.version, actor=ACTOR)
    if event.old_version is None:
        moved = "new alias"
    elif event.old_version == version.version:
        moved = "already there"
    else:
        moved = f"was version {event.old_version}"
    record_promotion(ctx, version, alias)
    return model_output(version, f"{version.name}@{alias} -> {version.ref} ({moved})")
