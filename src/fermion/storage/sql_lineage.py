"""The lineage store on SQLAlchemy."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Row, delete, insert, or_, select

from fermion.entities import LineageEdge
from fermion.storage.base import LineageStore
from fermion.storage.sql_datasets import utc
from fermion.storage.tables import lineage_edges as edges


def _to_edge(row: Row[Any]) -> LineageEdge:
    return LineageEdge(
        row.parent_kind,
        row.parent_id,
        row.child_kind,
        row.child_id,
        row.relation,
        utc(row.created_at),
    )


class SqlLineageStore(LineageStore):
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def add_edge(
        self, parent: tuple[str, int], child: tuple[str, int], relation: str
    ) -> LineageEdge:
        now = datetime.now(UTC)
        with self._engine.begin() as conn:
            conn.execute(
                insert(edges).values(
                    parent_kind=parent[0],
                    parent_id=parent[1],
                    child_kind=child[0],
                    child_id=child[1],
                    relation=relation,
                    created_at=now,
                )
            )
        return LineageEdge(parent[0], parent[1], child[0], child[1], relation, now)

    def children(self, kind: str, object_id: int) -> list[LineageEdge]:
        query = select(edges).where(edges.c.parent_kind == kind, edges.c.parent_id == object_id)
        with self._engine.connect() as conn:
            return [_to_edge(row) for row in conn.execute(query.order_by(edges.c.id))]

    def parents(self, kind: str, object_id: int) -> list[LineageEdge]:
        query = select(edges).where(edges.c.child_kind == kind, edges.c.child_id == object_id)
        with self._engine.connect() as conn:
            return [_to_edge(row) for row in conn.execute(query.order_by(edges.c.id))]

    def forget(self, kind: str, object_id: int) -> None:
        with self._engine.begin() as conn:
            conn.execute(
                delete(edges).where(
                    or_(
                        (edges.c.parent_kind == kind) & (edges.c.parent_id == object_id),
                        (edges.c.child_kind == kind) & (edges.c.child_id == object_id),
                    )
                )
            )
