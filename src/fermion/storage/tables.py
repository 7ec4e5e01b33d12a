"""SQLAlchemy Core tables of the metadata store. Alembic migrations create them."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()
# Not Alembic's default `alembic_version`: Optuna keeps its study tables in the same database,
# with its own Alembic history in that table.
VERSION_TABLE = "fermion_schema_version"

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

experiments = Table(
    "experiments",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

runs = Table(
    "runs",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("experiment_id", ForeignKey("experiments.id", ondelete="CASCADE"), nullable=False),
    Column("parent_id", ForeignKey("runs.id", ondelete="SET NULL"), nullable=True),
    Column("name", String(256), nullable=False),
    Column("status", String(16), nullable=False),
    Column("start_time", DateTime(timezone=True), nullable=False),
    Column("end_time", DateTime(timezone=True), nullable=True),
    Column("environment", JSON, nullable=False),
    Column("error", Text, nullable=True),
    Index("ix_runs_experiment", "experiment_id"),
    Index("ix_runs_parent", "parent_id"),
)

run_params = Table(
    "run_params",
    metadata,
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("value", JSON, nullable=True),
)

# `find_runs` looks runs up by a tag's value (a pipeline step's cache key). PostgreSQL gets a
# hash index: a B-tree refuses values over about 2.7 kB, and a tag's value may be long.
run_tags = Table(
    "run_tags",
    metadata,
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_run_tags_value", "value", postgresql_using="hash"),
)

# Every point, append-only: no primary key to maintain on the hot path of a training loop.
run_metrics = Table(
    "run_metrics",
    metadata,
    Column("run_id", Integer, nullable=False),
    Column("key", String(256), nullable=False),
    Column("value", Float, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
    Index("ix_run_metrics_run_key", "run_id", "key"),
)

run_latest_metrics = Table(
    "run_latest_metrics",
    metadata,
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("value", Float, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", BigInteger, nullable=False),
)

run_artifacts = Table(
    "run_artifacts",
    metadata,
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("path", String(1024), primary_key=True),
    Column("content_hash", String(64), nullable=False),
    Column("size_bytes", BigInteger, nullable=False),
    Index("ix_run_artifacts_content_hash", "content_hash"),
)

registered_models = Table(
    "registered_models",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", ForeignKey("registered_models.id", ondelete="CASCADE"), nullable=False),
    Column("version", Integer, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("flavor", String(32), nullable=False),
    Column("signature", JSON, nullable=False),
    Column("run_id", ForeignKey("runs.id", ondelete="SET NULL"), nullable=True),
    Column("metrics", JSON, nullable=False),
    Column("origin", String(16), nullable=False),
    Column("description", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("model_id", "version", name="uq_model_versions_version"),
    Index("ix_model_versions_content_hash", "content_hash"),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("model_id", ForeignKey("registered_models.id", ondelete="CASCADE"), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("version_id", ForeignKey("model_versions.id", ondelete="CASCADE"), nullable=False),
)

alias_events = Table(
    "alias_events",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("model_id", ForeignKey("registered_models.id", ondelete="CASCADE"), nullable=False),
    Column("alias", String(64), nullable=False),
    Column("old_version", Integer, nullable=True),
    Column("new_version", Integer, nullable=True),
    Column("actor", String(256), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)

# The inference server's API keys: the secret itself is never stored, only a salted sha256.
api_keys = Table(
    "api_keys",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("key_id", String(32), nullable=False, unique=True),
    Column("salt", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Column("scopes", JSON, nullable=False),
    Column("rate_per_s", Float, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=True),
    Column("revoked_at", DateTime(timezone=True), nullable=True),
)

# Pipeline schedules; `last_run_at` is the slot last claimed, the compare-and-set that keeps
# two schedulers from running one slot twice.
schedules = Table(
    "schedules",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("pipeline", String(128), nullable=False),
    Column("project_file", Text, nullable=False),
    Column("cron", String(128), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_run_at", DateTime(timezone=True), nullable=True),
    Column("last_run_id", Integer, nullable=True),
    Column("last_status", String(16), nullable=True),
    Column("missed", Integer, nullable=False),
    Column("timezone", String(64), nullable=False, server_default="UTC"),
)
