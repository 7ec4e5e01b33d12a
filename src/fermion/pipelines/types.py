"""What a pipeline is made of: steps as declared in `fermion.yaml`, what a step gives its
dependants, and what a running step may use. Every other pipelines module speaks these."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fermion.errors import InvalidInputError

if TYPE_CHECKING:
    from fermion.workspace import Workspace

DATASET = "dataset"
MODEL = "model"


@dataclass(frozen=True)
class StepSpec:
    """One step as declared: `config` is the step's mapping without `kind` and `needs`.

    `inputs` maps each config key that names another step of the pipeline (such as
    `dataset: clean`) to that step; `needs` are the steps it waits for, those included.
    `line` and `column` (1-based) locate the step in its file, for error messages.
    """

    name: str
    kind: str
    config: Mapping[str, Any]
    needs: tuple[str, ...] = ()
    inputs: Mapping[str, str] = field(default_factory=dict)
    line: int = 0
    column: int = 0


@dataclass(frozen=True)
class PipelineSpec:
    """A named pipeline: its steps in the order the file declares them."""

    name: str
    steps: Mapping[str, StepSpec]


@dataclass(frozen=True)
class ProjectSpec:
    """A whole `fermion.yaml`: its pipelines, the first being the default one."""

    path: Path
    pipelines: Mapping[str, PipelineSpec]

    @property
    def root(self) -> Path:
        """The folder relative paths in the file are read from."""
        return self.path.parent


@dataclass(frozen=True)
class Check:
    """One rule a step judged (a gate's `roc_auc >= 0.80`): what it measured and whether it
    held. CI mode writes one test case per check."""

    name: str
    passed: bool
    value: float | None = None
    expected: str = ""
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "passed": self.passed,
            "value": self.value,
            "expected": self.expected,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Check:
        value = data.get("value")
        return cls(
            name=str(data["name"]),
            passed=bool(data["passed"]),
            value=None if value is None else float(value),
            expected=str(data.get("expected", "")),
            detail=str(data.get("detail", "")),
        )


class ChecksFailedError(InvalidInputError):
    """A step whose checks did not all hold (a gate): the step fails, and the checks, passed
    and failed, travel with the error so that they are recorded and reported."""

    def __init__(self, message: str, checks: Sequence[Check]) -> None:
        super().__init__(message)
        self.checks = tuple(checks)


@dataclass(frozen=True)
class StepOutput:
    """What a finished step hands its dependants.

    `refs`: what it made or chose, by type: {"dataset": "credit:2"}, {"model": "credit:5"}.
    `hashes`: the content hash of each ref's target (a dataset version's or a model version's
    content hash), which is what a dependant's cache key is computed from, so that a step
    whose output is byte-for-byte what it was does not invalidate what follows.
    `metrics`: figures a gate or a report may read; `summary`: one line for the live view.
    """

    refs: Mapping[str, str] = field(default_factory=dict)
    hashes: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    summary: str = ""
    checks: tuple[Check, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "refs": dict(self.refs),
            "hashes": dict(self.hashes),
            "metrics": dict(self.metrics),
            "summary": self.summary,
            "checks": [check.to_dict() for check in self.checks],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> StepOutput:
        return cls(
            refs=dict(data.get("refs", {})),
            hashes=dict(data.get("hashes", {})),
            metrics={k: float(v) for k, v in dict(data.get("metrics", {})).items()},
            summary=str(data.get("summary", "")),
            checks=tuple(Check.from_dict(c) for c in data.get("checks", [])),
        )


@dataclass(frozen=True)
class StepContext:
    """What a running step may use: the workspace, the project folder (relative paths in the
    config are relative to it), the outputs of the steps named in its `inputs` (by config
    key) and of every step it needs (by step name), and a callback for progress lines."""

    workspace: Workspace
    root: Path
    spec: StepSpec
    inputs: Mapping[str, StepOutput]
    needed: Mapping[str, StepOutput]
    say: Callable[[str], None] = print

    def path(self, value: str) -> Path:
        """A config path, relative to the project folder unless absolute."""
        path = Path(value).expanduser()
        return path if path.is_absolute() else self.root / path

    def ref(self, key: str, kind: str) -> str:
        """The config value `key` as a ref of `kind` ("dataset" or "model"): the output of
        the step it names, or the value itself when it names no step (such as "credit:1")."""
        if key in self.inputs:
            found = self.inputs[key].refs.get(kind)
            if found is None:
                raise InvalidInputError(
                    f"step {self.spec.name!r}: {key} names step {self.spec.inputs[key]!r}, "
                    f"which gives no {kind}"
                )
            return found
        if key not in self.spec.config:
            raise InvalidInputError(f"step {self.spec.name!r} has no {key!r}")
        return str(self.spec.config[key])
