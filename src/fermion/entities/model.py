"""Model registry records: models, versions, signatures, aliases and their audit trail."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class ColumnSpec:
    """One input column a model takes: its name, logical type and whether it may be null."""

    name: str
    type: str
    nullable: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "nullable": self.nullable}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnSpec:
        return cls(str(data["name"]), str(data["type"]), bool(data.get("nullable", True)))


@dataclass(frozen=True)
class Signature:
    """What a model takes and gives: input columns, and the output (task, classes or a value).

    Checked on every prediction call: a missing column or a value of the wrong type is refused.
    """

    inputs: tuple[ColumnSpec, ...]
    task: str
    classes: tuple[str, ...] = ()
    target: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "inputs": [c.to_dict() for c in self.inputs],
            "task": self.task,
            "classes": list(self.classes),
            "target": self.target,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Signature:
        return cls(
            inputs=tuple(ColumnSpec.from_dict(c) for c in data["inputs"]),
            task=str(data["task"]),
            classes=tuple(str(c) for c in data.get("classes", [])),
            target=str(data.get("target", "")),
        )

    @property
    def input_names(self) -> list[str]:
        return [c.name for c in self.inputs]


@dataclass(frozen=True)
class ModelVersion:
    """A registered, immutable model version; `content_hash` names its manifest blob."""

    id: int
    name: str
    version: int
    content_hash: str
    flavor: str
    signature: Signature
    run_id: int | None
    metrics: dict[str, float]
    origin: str
    created_at: datetime
    aliases: tuple[str, ...] = ()
    description: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"


@dataclass(frozen=True)
class ModelSummary:
    name: str
    latest_version: int
    num_versions: int
    aliases: dict[str, int] = field(default_factory=dict)
    created_at: datetime | None = None


@dataclass(frozen=True)
class AliasEvent:
    """An alias moved (or removed, `new_version` None) by `actor` at `at`."""

    name: str
    alias: str
    old_version: int | None
    new_version: int | None
    actor: str
    at: datetime
