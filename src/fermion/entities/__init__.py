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
from fermion.entities.keys import ApiKeyRecord
from fermion.entities.lineage import LineageEdge
from fermion.entities.model import AliasEvent, ColumnSpec, ModelSummary, ModelVersion, Signature
from fermion.entities.run import Experiment, MetricPoint, RunArtifact, RunRecord, RunStatus
from fermion.entities.schedule import ScheduleRecord

__all__ = [
    "AliasEvent",
    "ApiKeyRecord",
    "ColumnProfile",
    "ColumnSchema",
    "ColumnSpec",
    "DatasetRef",
    "DatasetSummary",
    "DatasetVersion",
    "Experiment",
    "LineageEdge",
    "LogicalType",
    "MetricPoint",
    "ModelSummary",
    "ModelVersion",
    "Profile",
    "RunArtifact",
    "RunRecord",
    "RunStatus",
    "ScheduleRecord",
    "Signature",
    "SplitRecord",
    "ValidationRecord",
]
