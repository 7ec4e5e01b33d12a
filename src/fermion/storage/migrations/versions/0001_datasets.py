"""Datasets, their versions, splits, validations, and lineage edges.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _created_at() -> sa.Column[object]:
    return sa.Column("created_at", sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    op.create_table(
        "datasets",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        _created_at(),
    )
    op.create_table(
        "dataset_versions",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "dataset_id",
            sa.Integer,
            sa.ForeignKey("datasets.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("num_rows", sa.BigInteger, nullable=False),
        sa.Column("num_columns", sa.Integer, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("schema", sa.JSON, nullable=False),
        sa.Column("profile", sa.JSON, nullable=False),
        sa.Column("operation", sa.String(32), nullable=False),
        sa.Column(
            "parent_id",
            sa.Integer,
            sa.ForeignKey("dataset_versions.id", ondelete="SET NULL"),
            nullable=True,
        ),
        sa.Column("derivation_key", sa.String(64), nullable=True),
        sa.Column("source", sa.JSON, nullable=False),
        _created_at(),
        sa.UniqueConstraint("dataset_id", "version", name="uq_dataset_versions_version"),
        sa.UniqueConstraint("dataset_id", "content_hash", name="uq_dataset_versions_content"),
    )
    op.create_index(
        "ix_dataset_versions_derivation", "dataset_versions", ["dataset_id", "derivation_key"]
    )
    op.create_index("ix_dataset_versions_content_hash", "dataset_versions", ["content_hash"])
    op.create_table(
        "dataset_splits",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "version_id",
            sa.Integer,
            sa.ForeignKey("dataset_versions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("params_hash", sa.String(64), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("counts", sa.JSON, nullable=False),
        _created_at(),
        sa.UniqueConstraint("version_id", "params_hash", name="uq_dataset_splits_params"),
    )
    op.create_table(
        "dataset_validations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "version_id",
            sa.Integer,
            sa.ForeignKey("dataset_versions.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("rules_hash", sa.String(64), nullable=False),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("report", sa.JSON, nullable=False),
        _created_at(),
    )
    op.create_table(
        "lineage_edges",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("parent_kind", sa.String(32), nullable=False),
        sa.Column("parent_id", sa.Integer, nullable=False),
        sa.Column("child_kind", sa.String(32), nullable=False),
        sa.Column("child_id", sa.Integer, nullable=False),
        sa.Column("relation", sa.String(32), nullable=False),
        _created_at(),
    )
    op.create_index("ix_lineage_parent", "lineage_edges", ["parent_kind", "parent_id"])
    op.create_index("ix_lineage_child", "lineage_edges", ["child_kind", "child_id"])


def downgrade() -> None:
    op.drop_table("lineage_edges")
    op.drop_table("dataset_validations")
    op.drop_table("dataset_splits")
    op.drop_table("dataset_versions")
    op.drop_table("datasets")
