"""The step kinds a pipeline may use, each a thin call into Fermion's Python API, and what a
step's cache key takes from outside its config: its files' contents and its code."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fermion.errors import InvalidInputError
from fermion.pipelines.kinds_data import run_add, run_clean, run_split, run_validate
from fermion.pipelines.kinds_deploy import DEPLOY_KEYS, run_deploy
from fermion.pipelines.kinds_gate import check_gate_config, run_gate
from fermion.pipelines.kinds_models import (
    check_train_config,
    run_evaluate,
    run_promote,
    run_train,
    run_tune,
)
from fermion.pipelines.kinds_optimize import run_optimize
from fermion.pipelines.kinds_python import module_hash, run_python
from fermion.pipelines.types import DATASET, MODEL, StepContext, StepOutput, StepSpec


@dataclass(frozen=True)
class StepKind:
    """A step kind: what its config may hold, and the function that runs it.

    `input_keys`: config keys whose value is a dataset or model ref, or the name of a step
    of the pipeline giving one ({"dataset": "dataset"}), required unless also in `optional`;
    `required` and `optional`: the other config keys; `file_keys`: config keys naming files
    whose content is part of the step's cache key (a cleaning recipe, a rules file, a source
    CSV); `cacheable`: False for steps whose effect must happen on every run (moving an
    alias, writing deployment files).
    """

    name: str
    run: Callable[[StepContext], StepOutput]
    input_keys: Mapping[str, str] = field(default_factory=dict)
    required: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()
    file_keys: tuple[str, ...] = ()
    cacheable: bool = True
    description: str = ""
    # Checks the step's config when the file loads (a gate's rules parse), so a mistake is
    # an error before anything runs; raises InvalidInputError naming the problem.
    # Called with the step's name, its config and the kind of every step of its pipeline.
    check: Callable[[str, Mapping[str, Any], Mapping[str, str]], None] | None = None

    @property
    def keys(self) -> frozenset[str]:
        """Every config key the kind accepts."""
        return frozenset(self.input_keys) | frozenset(self.required) | frozenset(self.optional)


_DATASET_IN = {DATASET: DATASET}
_MODEL_IN = {MODEL: MODEL}
_TRAIN_KEYS = ("task", "text", "name", "alias", "experiment", "seed")
_TUNE_KEYS = ("trials", "timeout", "metric", "jobs", "backend", "sampler", "pruner", "space",
              "study", "new", "folds", "patience")  # fmt: skip
_OPTIMIZE_KEYS = ("quantize", "prune", "prune_mode", "fine_tune", "max_drop", "metric", "alias",
                  "auto", "opset", "texts", "threads", "seconds", "no_register",
                  "require_variant")  # fmt: skip

KINDS: dict[str, StepKind] = {
    kind.name: kind
    for kind in (
        StepKind(
            "data.add",
            run_add,
            required=("source", "name"),
            optional=("format", "delimiter", "encoding"),
            file_keys=("source",),
            description="Add a CSV/TSV, Parquet or JSON Lines file as a dataset version; "
            "identical content gives the version that already holds it.",
        ),
        StepKind(
            "data.clean",
            run_clean,
            input_keys=_DATASET_IN,
            optional=("recipe", "steps", "name"),
            file_keys=("recipe",),
            description="Apply a cleaning recipe (a YAML file, or its steps inline) to a "
            "dataset version; the result is a new version, of `name` if given.",
        ),
        StepKind(
            "data.validate",
            run_validate,
            input_keys=_DATASET_IN,
            required=("rules",),
            file_keys=("rules",),
            description="Check a dataset version against rules (a YAML file, or a list "
            "inline); a failed rule fails the step, naming every rule that failed.",
        ),
        StepKind(
            "data.split",
            run_split,
            input_keys=_DATASET_IN,
            optional=("train", "valid", "test", "stratify", "group", "seed"),
            description="Split a dataset version into train/valid/test for the steps after "
            "it; its hash is the version's and the split's together.",
        ),
        StepKind(
            "train",
            run_train,
            input_keys=_DATASET_IN,
            required=("target",),
            optional=(
                "family",
                "function",
                "inputs",
                "preprocessing",
                "params",
                "exclude",
                *_TRAIN_KEYS,
            ),
            check=check_train_config,
            description="Train a model family, or the project's own training function, on a "
            "dataset version and register the model; metrics: the registered test metrics, "
            "and the validation ones as valid_<name>.",
        ),
        StepKind(
            "tune",
            run_tune,
            input_keys=_DATASET_IN,
            required=("target",),
            optional=("family", *_TUNE_KEYS, *_TRAIN_KEYS),
            file_keys=("space",),
            description="Tune a model family (or `auto`) with cross-validation and register "
            "the best retrained model; the study starts over unless `new: false`.",
        ),
        StepKind(
            "evaluate",
            run_evaluate,
            input_keys=_DATASET_IN | _MODEL_IN,
            optional=(DATASET, "part", "trusted", "seed"),
            description="Evaluate a registered model on a dataset version (default: the test "
            "part of the data it was trained on); the model passes on unchanged.",
        ),
        StepKind(
            "optimize",
            run_optimize,
            input_keys=_MODEL_IN | _DATASET_IN,
            optional=(DATASET, *_OPTIMIZE_KEYS),
            file_keys=("texts",),
            description="Export a model to ONNX variants, measure and gate them, register "
            "those that pass; gives the fastest registered variant, or the source model when "
            "none passed (a failure only with `require_variant: true`).",
        ),
        StepKind(
            "gate",
            run_gate,
            input_keys=_DATASET_IN | _MODEL_IN,
            required=("rules",),
            optional=(DATASET, "part", "trusted"),
            cacheable=False,
            check=check_gate_config,
            description="Judge rules on a model (`roc_auc >= 0.80`, `roc_auc >= "
            "production.roc_auc`, `validation passed`, `optimized within drop`); a failed rule "
            "fails the step, so what follows (a promote) is skipped. Never cached: an alias "
            "may have moved.",
        ),
        StepKind(
            "deploy",
            run_deploy,
            input_keys=_MODEL_IN,
            required=("target",),
            optional=DEPLOY_KEYS,
            cacheable=False,
            description="Write the Docker or Kubernetes files serving the model (as `fermion "
            "deploy`), into deploy/<name> beside the pipeline file; rewritten on every run.",
        ),
        StepKind(
            "promote",
            run_promote,
            input_keys=_MODEL_IN,
            required=("alias",),
            cacheable=False,
            description="Point an alias at the model, on every run (the move is recorded "
            "with actor 'fermion run').",
        ),
        StepKind(
            "python",
            run_python,
            input_keys=_DATASET_IN | _MODEL_IN,
            required=("function",),
            optional=(DATASET, MODEL, "args"),
            description="Call `package.module:function` from the project folder as "
            "function(context=ctx, **args); it returns a StepOutput, metrics or None.",
        ),
    )
}


def file_hashes(kind: StepKind, config: Mapping[str, Any], root: Path) -> dict[str, str]:
    """sha256 of the content of each file a step's config names, by config key. Keys left
    out, and values given inline rather than as a path (a list of rules), have none."""
    hashes: dict[str, str] = {}
    for key in kind.file_keys:
        value = config.get(key)
        if not isinstance(value, str):
            continue
        path = Path(value).expanduser()
        path = path if path.is_absolute() else root / path
        if not path.is_file():
            raise InvalidInputError(f"{key}: no file at {path}")
        digest = hashlib.sha256()
        with path.open("rb") as file:
            for chunk in iter(lambda: file.read(1 << 20), b""):
                digest.update(chunk)
        hashes[key] = digest.hexdigest()
    return hashes


def code_hash(spec: StepSpec, root: Path) -> str:
    """What a step's result depends on besides its config, inputs and files: for a `python`
    step the sha256 of its module's source, for the built-in kinds Fermion's version (and,
    for a `train` step with its own `function`, that function's module's source too)."""
    if spec.kind == "python":
        return module_hash(spec, root)
    from fermion import __version__

    if spec.kind == "train" and "function" in spec.config:
        return f"fermion {__version__}, {module_hash(spec, root)}"
    return f"fermion {__version__}"
