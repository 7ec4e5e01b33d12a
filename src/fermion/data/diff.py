"""What changed between two dataset versions, from their recorded schema and profile only."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fermion.entities import ColumnProfile, ColumnSchema, DatasetVersion

STATISTICS = ("missing", "distinct", "mean", "std", "min", "max")


@dataclass(frozen=True)
class TypeChange:
    column: str
    old_type: str
    new_type: str
    old_dtype: str
    new_dtype: str

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "old_type": self.old_type, "new_type": self.new_type,
                "old_dtype": self.old_dtype, "new_dtype": self.new_dtype}  # fmt: skip


@dataclass(frozen=True)
class NullabilityChange:
    column: str
    old: bool
    new: bool

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "old": self.old, "new": self.new}


@dataclass(frozen=True)
class StatShift:
    """A statistic of a column that differs. `absolute` is new - old and `relative` is
    absolute / |old|; both are None when either side is not a number, `relative` also when
    old is 0."""

    column: str
    statistic: str
    old: float | str | None
    new: float | str | None
    absolute: float | None
    relative: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"column": self.column, "statistic": self.statistic, "old": self.old,
                "new": self.new, "absolute": self.absolute, "relative": self.relative}  # fmt: skip


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _shift(column: str, statistic: str, old: Any, new: Any) -> StatShift | None:
    """The shift of one statistic, or None if it did not change (floats up to 1e-9)."""
    a, b = _number(old), _number(new)
    if a is None or b is None:
        return None if old == new else StatShift(column, statistic, old, new, None, None)
    if math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12):
        return None
    relative = (b - a) / abs(a) if a != 0 else None
    return StatShift(column, statistic, old, new, b - a, relative)


def _stat_shifts(old: ColumnProfile, new: ColumnProfile) -> list[StatShift]:
    shifts = (_shift(new.name, s, getattr(old, s), getattr(new, s)) for s in STATISTICS)
    return [shift for shift in shifts if shift is not None]


@dataclass(frozen=True)
class VersionDiff:
    """Differences from `old` to `new` (refs like `credit:1`), in the new version's column
    order. `has_changes` covers schema, row count and statistics; identical statistics with a
    different `content_changed` mean the rows moved or changed without shifting a statistic."""

    old: str
    new: str
    old_rows: int
    new_rows: int
    added: tuple[ColumnSchema, ...]
    removed: tuple[ColumnSchema, ...]
    type_changes: tuple[TypeChange, ...]
    nullability_changes: tuple[NullabilityChange, ...]
    stat_shifts: tuple[StatShift, ...]
    content_changed: bool

    @property
    def row_change(self) -> int:
        return self.new_rows - self.old_rows

    @property
    def row_change_relative(self) -> float | None:
        return self.row_change / self.old_rows if self.old_rows else None

    @property
    def has_changes(self) -> bool:
        return bool(
            self.row_change
            or self.added
            or self.removed
            or self.type_changes
            or self.nullability_changes
            or self.stat_shifts
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "old": self.old,
            "new": self.new,
            "has_changes": self.has_changes,
            "content_changed": self.content_changed,
            "rows": {
                "old": self.old_rows,
                "new": self.new_rows,
                "absolute": self.row_change,
                "relative": self.row_change_relative,
            },
            "added": [column.to_dict() for column in self.added],
            "removed": [column.to_dict() for column in self.removed],
            "type_changes": [change.to_dict() for change in self.type_changes],
            "nullability_changes": [change.to_dict() for change in self.nullability_changes],
            "stat_shifts": [shift.to_dict() for shift in self.stat_shifts],
        }


def _profiles(version: DatasetVersion) -> dict[str, ColumnProfile]:
    return {column.name: column for column in version.profile.columns}


def diff_versions(old: DatasetVersion, new: DatasetVersion) -> VersionDiff:
    """Compare two versions' records; no rows are read. Columns match by name, so a rename
    shows as one column removed and one added."""
    old_schema = {column.name: column for column in old.schema}
    new_schema = {column.name: column for column in new.schema}
    old_profiles, new_profiles = _profiles(old), _profiles(new)
    types: list[TypeChange] = []
    nullability: list[NullabilityChange] = []
    shifts: list[StatShift] = []
    for name, after in new_schema.items():
        before = old_schema.get(name)
        if before is None:
            continue
        if before.type != after.type or before.dtype != after.dtype:
            types.append(
                TypeChange(name, str(before.type), str(after.type), before.dtype, after.dtype)
            )
        if before.nullable != after.nullable:
            nullability.append(NullabilityChange(name, before.nullable, after.nullable))
        if name in old_profiles and name in new_profiles:
            shifts.extend(_stat_shifts(old_profiles[name], new_profiles[name]))
    return VersionDiff(
        old=old.ref,
        new=new.ref,
        old_rows=old.num_rows,
        new_rows=new.num_rows,
        added=tuple(c for name, c in new_schema.items() if name not in old_schema),
        removed=tuple(c for name, c in old_schema.items() if name not in new_schema),
        type_changes=tuple(types),
        nullability_changes=tuple(nullability),
        stat_shifts=tuple(shifts),
        content_changed=old.content_hash != new.content_hash,
    )
