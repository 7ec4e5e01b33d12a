"""Frozen records the stores return. No I/O here."""

from __future__ import annotations

from fermion.entities.dataset import (
    ColumnProfile,
    ColumnSchema,
    DatasetRef,
    DatasetSummary,
    DatasetVersion,
    LogicalType,
    Profile,
    SplitRecord,
    ValidationRecord,
)
from fermion.entities.lineage import LineageEdge

__all__ = [
    "ColumnProfile",
    "ColumnSchema",
    "DatasetRef",
    "DatasetSummary",
    "DatasetVersion",
    "LineageEdge",
    "LogicalType",
    "Profile",
    "SplitRecord",
    "ValidationRecord",
]
