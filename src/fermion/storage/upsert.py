"""Dialect-specific INSERT ... ON CONFLICT, the one place the SQL dialects differ."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table
from sqlalchemy.engine import Connection


def upsert(
    conn: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    keys: list[str],
    update: list[str],
    *,
    only_if: Any = None,
) -> None:
    """Insert `rows`, updating `update` columns where the `keys` already exist.

    `only_if(table, excluded)` returns an extra condition for the update (e.g. a newer step).
    """
    if not rows:
        return
    from sqlalchemy.dialects import postgresql, sqlite

    dialects: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
    statement = dialects[conn.dialect.name](table)
    excluded = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=[table.c[k] for k in keys],
        set_={name: excluded[name] for name in update},
        where=None if only_if is None else only_if(table, excluded),
    )
    conn.execute(statement, rows)
