"""The data step kinds: add, clean, validate and split, each one call into `ws.datasets`."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fermion.errors import InvalidInputError
from fermion.pipelines.kinds_config import (
    StepConfig,
    combined_hash,
    dataset_output,
    input_hash,
    shape_text,
)
from fermion.pipelines.types import DATASET, StepContext, StepOutput

if TYPE_CHECKING:
    from fermion.data.validate import ValidationReport
    from fermion.entities import SplitRecord

SPLIT_PARTS = ("train", "valid", "test")


def run_add(ctx: StepContext) -> StepOutput:
    config = StepConfig(ctx)
    source = config.path("source")
    if source is None:
        raise InvalidInputError(f"step {ctx.spec.name!r} needs source, the file to add")
    dataset = ctx.workspace.datasets.add(
        source,
        name=config.required_text("name"),
        format=config.text("format"),
        delimiter=config.text("delimiter"),
        encoding=config.text("encoding"),
    )
    return dataset_output(dataset, f"{dataset.ref} ({shape_text(dataset)})")


def run_clean(ctx: StepContext) -> StepOutput:
    config = StepConfig(ctx)
    recipe: Any = config.path("recipe")
    if config.has("steps"):
        if recipe is not None:
            raise InvalidInputError(
                f"step {ctx.spec.name!r}: give a recipe file or inline steps, not both"
            )
        recipe = {"steps": ctx.spec.config["steps"]}
    if recipe is None:
        raise InvalidInputError(
            f"step {ctx.spec.name!r} needs a recipe file (recipe) or inline steps (steps)"
        )
    parent = ctx.workspace.datasets.get(ctx.ref(DATASET, DATASET))
    dataset = ctx.workspace.datasets.clean(parent.ref, recipe, name=config.text("name"))
    return dataset_output(dataset, f"{parent.ref} -> {dataset.ref} ({shape_text(dataset)})")


def run_validate(ctx: StepContext) -> StepOutput:
    """Fails (InvalidInputError naming each failed rule) when a rule fails; the report is
    stored with the version either way, as `fermion data validate` stores it."""
    given = ctx.spec.config.get("rules")
    rules: Any
    if isinstance(given, str):
        rules = ctx.path(given)
    elif isinstance(given, list):
        rules = {"rules": given}
    else:
        raise StepConfig(ctx).invalid("rules", "a rules file or a list of rules")
    dataset = ctx.workspace.datasets.get(ctx.ref(DATASET, DATASET))
    report = ctx.workspace.datasets.validate(dataset.ref, rules)
    failed = [result for result in report.results if not result.passed]
    if failed:
        raise InvalidInputError(f"step {ctx.spec.name!r}: {_failures(dataset.ref, report)}")
    return dataset_output(
        dataset,
        f"{dataset.ref} passed {len(report.results)} rule"
        + ("s" if len(report.results) != 1 else ""),
        digest=input_hash(ctx, DATASET, DATASET, dataset.content_hash),
        metrics={"rules_passed": float(len(report.results)), "rules_failed": 0.0},
    )


def _failures(ref: str, report: ValidationReport) -> str:
    failed = [result for result in report.results if not result.passed]
    reasons = "; ".join(
        f"{result.rule} ({result.message})" if result.message else result.rule for result in failed
    )
    return f"{ref} failed {len(failed)} of {len(report.results)} rules: {reasons}"


def run_split(ctx: StepContext) -> StepOutput:
    """The output's hash is the version's content hash combined with the split's, so a new
    split invalidates the steps that train on it although the rows are the same."""
    config = StepConfig(ctx)
    dataset = ctx.workspace.datasets.get(ctx.ref(DATASET, DATASET))
    fractions = {part: config.number(part) for part in SPLIT_PARTS}
    record = ctx.workspace.datasets.split(
        dataset.ref,
        **{part: value for part, value in fractions.items() if value is not None},
        stratify=config.text("stratify"),
        group=config.text("group"),
        seed=config.integer("seed", 0),
    )
    newest = dataset.splits[0]
    if newest.id != record.id:
        # Training and evaluation read a version's newest split; they would not use this one.
        raise InvalidInputError(
            f"step {ctx.spec.name!r}: {dataset.ref} was split this way before, then split "
            f"again ({_params_text(newest)}); training reads the newest split, so it would "
            "not use this one: split with other parameters or add the data as a new version"
        )
    counts = {part: record.counts.get(part, 0) for part in SPLIT_PARTS}
    return dataset_output(
        dataset,
        f"{dataset.ref} split: " + ", ".join(f"{part} {n:,}" for part, n in counts.items()),
        digest=combined_hash(
            input_hash(ctx, DATASET, DATASET, dataset.content_hash), "split", record.content_hash
        ),
        metrics={f"{part}_rows": float(n) for part, n in counts.items()},
    )


def _params_text(split: SplitRecord) -> str:
    return ", ".join(f"{key}={value}" for key, value in split.params.items() if value is not None)
