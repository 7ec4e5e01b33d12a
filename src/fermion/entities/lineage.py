"""Lineage: which object was made from which."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class LineageEdge:
    """`child` was made from `parent` by `relation` (e.g. a cleaned version from its parent).

    Kinds are short nouns ("dataset_version", "split", later "run", "model_version"), so that
    any stage can record and query dependencies without a table of its own.
    """

    parent_kind: str
    parent_id: int
    child_kind: str
    child_id: int
    relation: str
    created_at: datetime
