"""Pipeline schedules: a cron expression, a project file, and the slot last run.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "schedules",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("pipeline", sa.String(128), nullable=False),
        sa.Column("project_file", sa.Text, nullable=False),
        sa.Column("cron", sa.String(128), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_run_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_run_id", sa.Integer, nullable=True),
        sa.Column("last_status", sa.String(16), nullable=True),
        sa.Column("missed", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("schedules")
