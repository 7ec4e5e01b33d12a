"""Alembic environment: migrations always run on a connection handed over by `migrate`."""

from __future__ import annotations

from alembic import context

from fermion.storage.tables import VERSION_TABLE, metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    render_as_batch=True,
    version_table=VERSION_TABLE,
)
with context.begin_transaction():
    context.run_migrations()
