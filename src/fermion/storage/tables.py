"""SQLAlchemy Core tables of the metadata store. Alembic migrations create them."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

metadata = MetaData()

datasets = Table(
    "datasets",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

dataset_versions = Table(
    "dataset_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("dataset_id", ForeignKey("datasets.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("num_rows", BigInteger, nullable=False),
    Column("num_columns", Integer, nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Column("schema", JSON, nullable=False),
    Column("profile", JSON, nullable=False),
    Column("operation", String(32), nullable=False),
    Column("parent_id", ForeignKey("dataset_versions.id", ondelete="SET NULL"), nullable=True),
    Column("derivation_key", String(64), nullable=True),
    Column("source", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("dataset_id", "version", name="uq_dataset_versions_version"),
    UniqueConstraint("dataset_id", "content_hash", name="uq_dataset_versions_content"),
    Index("ix_dataset_versions_derivation", "dataset_id", "derivation_key"),
    Index("ix_dataset_versions_content_hash", "content_hash"),
)

dataset_splits = Table(
    "dataset_splits",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version_id", ForeignKey("dataset_versions.id", ondelete="CASCADE"), nullable=False),
    Column("params", JSON, nullable=False),
    Column("params_hash", String(64), nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("counts", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("version_id", "params_hash", name="uq_dataset_splits_params"),
)

dataset_validations = Table(
    "dataset_validations",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("version_id", ForeignKey("dataset_versions.id", ondelete="CASCADE"), nullable=False),
    Column("rules_hash", String(64), nullable=False),
    Column("passed", Boolean, nullable=False),
    Column("report", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

lineage_edges = Table(
    "lineage_edges",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("parent_kind", String(32), nullable=False),
    Column("parent_id", Integer, nullable=False),
    Column("child_kind", String(32), nullable=False),
    Column("child_id", Integer, nullable=False),
    Column("relation", String(32), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Index("ix_lineage_parent", "parent_kind", "parent_id"),
    Index("ix_lineage_child", "child_kind", "child_id"),
)
