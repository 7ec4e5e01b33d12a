"""Dataset records: versions, their schema and profile, splits and validation results."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from fermion.errors import InvalidInputError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class LogicalType(StrEnum):
    INTEGER = "integer"
    FLOAT = "float"
    BOOLEAN = "boolean"
    CATEGORICAL = "categorical"
    STRING = "string"
    DATETIME = "datetime"


def check_name(name: str) -> str:
    """Return `name` if it is a valid dataset or model name, else raise."""
    if not _NAME.match(name):
        raise InvalidInputError(
            f"invalid name {name!r}: use letters, digits, '_', '.' or '-', starting with a "
            "letter or digit"
        )
    return name


@dataclass(frozen=True)
class DatasetRef:
    """`credit` (the latest version) or `credit:3` (version 3)."""

    name: str
    version: int | None = None

    @classmethod
    def parse(cls, text: str) -> DatasetRef:
        name, sep, version = text.partition(":")
        check_name(name)
        if not sep:
            return cls(name)
        if not version.isdigit() or int(version) < 1:
            raise InvalidInputError(
                f"invalid dataset reference {text!r}: the version after ':' must be a "
                "positive integer, e.g. credit:2"
            )
        return cls(name, int(version))

    def __str__(self) -> str:
        return self.name if self.version is None else f"{self.name}:{self.version}"


@dataclass(frozen=True)
class ColumnSchema:
    name: str
    type: LogicalType
    nullable: bool
    dtype: str  # the physical Arrow/Polars type, e.g. "Int64"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": str(self.type),
            "nullable": self.nullable,
            "dtype": self.dtype,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnSchema:
        return cls(
            data["name"], LogicalType(data["type"]), bool(data["nullable"]), str(data["dtype"])
        )


@dataclass(frozen=True)
class ColumnProfile:
    """Statistics of one column. Numeric fields are None where they do not apply."""

    name: str
    type: LogicalType
    count: int
    missing: int
    distinct: int
    min: float | str | None = None
    max: float | str | None = None
    mean: float | None = None
    std: float | None = None
    quantiles: dict[str, float] = field(default_factory=dict)
    top_values: list[tuple[Any, int]] = field(default_factory=list)
    histogram: dict[str, list[float]] | None = None  # {"edges": [...], "counts": [...]}

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["type"] = str(self.type)
        data["top_values"] = [[value, count] for value, count in self.top_values]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ColumnProfile:
        values = dict(data)
        values["type"] = LogicalType(values["type"])
        values["top_values"] = [(value, int(count)) for value, count in values["top_values"]]
        return cls(**values)


@dataclass(frozen=True)
class Profile:
    num_rows: int
    num_columns: int
    columns: tuple[ColumnProfile, ...]

    def column(self, name: str) -> ColumnProfile:
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_rows": self.num_rows,
            "num_columns": self.num_columns,
            "columns": [column.to_dict() for column in self.columns],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Profile:
        return cls(
            int(data["num_rows"]),
            int(data["num_columns"]),
            tuple(ColumnProfile.from_dict(c) for c in data["columns"]),
        )


@dataclass(frozen=True)
class DatasetVersion:
    """One immutable version of a named dataset; its rows live in the artifact store."""

    id: int
    name: str
    version: int
    content_hash: str  # sha256 of the stored Parquet file: the blob's key
    num_rows: int
    num_columns: int
    size_bytes: int
    schema: tuple[ColumnSchema, ...] = field(repr=False)
    profile: Profile = field(repr=False)
    operation: str  # "ingest", "clean", ...
    parent_id: int | None
    source: dict[str, Any]  # where it came from: path and format, SQL, or recipe
    created_at: datetime

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    def column_names(self) -> list[str]:
        return [column.name for column in self.schema]


@dataclass(frozen=True)
class DatasetSummary:
    name: str
    latest_version: int
    num_versions: int
    num_rows: int
    num_columns: int
    updated_at: datetime


@dataclass(frozen=True)
class SplitRecord:
    """A row-to-part assignment of a version; its blob holds one `part` column."""

    id: int
    version_id: int
    params: dict[str, Any]
    params_hash: str
    content_hash: str
    counts: dict[str, int]
    created_at: datetime


@dataclass(frozen=True)
class ValidationRecord:
    id: int
    version_id: int
    rules_hash: str
    passed: bool
    report: dict[str, Any]
    created_at: datetime
