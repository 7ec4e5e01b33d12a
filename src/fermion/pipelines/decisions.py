"""The record of a promotion: which gate checks a `promote` step's alias move rested on, and
who set it off.

The registry's alias audit trail holds who moved an alias and when, but no reason, so the
decision is kept as tags on the promote step's run (no table of its own): `fermion.decision`
(JSON) and `fermion.promoted` ("credit:3@production"), which `decision_for` finds it by.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fermion.pipelines import cache
from fermion.pipelines.types import Check, StepContext

if TYPE_CHECKING:
    from fermion.entities import ModelVersion
    from fermion.workspace import Workspace

DECISION_TAG = "fermion.decision"
PROMOTED_TAG = "fermion.promoted"
ACTOR = "fermion run"


@dataclass(frozen=True)
class Decision:
    """`model` (credit:3) went to `alias` on `at`, set off by `by`, on the strength of `checks`
    (those of the gate steps the promote step needed; none without a gate)."""

    model: str
    alias: str
    by: str
    pipeline: str
    at: datetime
    checks: tuple[Check, ...] = ()
    run_id: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "alias": self.alias,
            "by": self.by,
            "pipeline": self.pipeline,
            "at": self.at.isoformat(),
            "checks": [check.to_dict() for check in self.checks],
            "run_id": self.run_id,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], run_id: int | None = None) -> Decision:
        return cls(
            model=str(data["model"]),
            alias=str(data["alias"]),
            by=str(data["by"]),
            pipeline=str(data.get("pipeline", "")),
            at=datetime.fromisoformat(str(data["at"])),
            checks=tuple(Check.from_dict(c) for c in data.get("checks", [])),
            run_id=run_id,
        )

    def text(self) -> str:
        """`promoted to production by fermion run (pipeline credit) on 2025-06-01 14:02 UTC:
        roc_auc >= 0.80 (0.86) ok; ...`"""
        judged = "; ".join(_check_text(check) for check in self.checks) or "no gate"
        return f"promoted to {self.alias} by {self.by} on {self.at:%Y-%m-%d %H:%M} UTC: {judged}"


def _check_text(check: Check) -> str:
    value = f" ({check.value:.4g})" if check.value is not None else ""
    return f"{check.name}{value} {'ok' if check.passed else 'FAILED'}"


def triggered_by(pipeline: str) -> str:
    """`fermion run (pipeline credit, alice)`: the user from $GITHUB_ACTOR, else $USER."""
    user = os.environ.get("GITHUB_ACTOR") or os.environ.get("USER")
    return f"{ACTOR} (pipeline {pipeline}" + (f", {user})" if user else ")")


def gate_checks(ctx: StepContext) -> tuple[Check, ...]:
    """The checks of the steps the promote step needs (its gates), in the file's order."""
    return tuple(check for output in ctx.needed.values() for check in output.checks)


def record_promotion(ctx: StepContext, version: ModelVersion, alias: str) -> Decision | None:
    """Tag the running promote step's run with the decision; None outside `fermion run`
    (a kind called directly has no step run to keep it on)."""
    from fermion.tracking.run import active_run

    run = active_run()
    if run is None:
        return None
    step = run.record().tags.get(cache.STEP_TAG)
    if step is None:
        return None
    pipeline = step.rpartition("/")[0]
    decision = Decision(
        model=version.ref,
        alias=alias,
        by=triggered_by(pipeline),
        pipeline=pipeline,
        at=datetime.now(UTC),
        checks=gate_checks(ctx),
        run_id=run.id,
    )
    run.set_tags(
        {
            DECISION_TAG: json.dumps(decision.to_dict(), sort_keys=True),
            PROMOTED_TAG: f"{version.ref}@{alias}",
        }
    )
    return decision


def decision_for(ws: Workspace, version: ModelVersion, alias: str) -> Decision | None:
    """The latest promote step decision that put `alias` on `version`, as long as the alias's
    latest move is `fermion run`'s (a later move by hand is not that decision's)."""
    moves = [event for event in ws.models.history(version.name) if event.alias == alias]
    if not moves or moves[-1].actor != ACTOR or moves[-1].new_version != version.version:
        return None
    for record in ws.runs.store.find_runs(PROMOTED_TAG, f"{version.ref}@{alias}"):
        stored = record.tags.get(DECISION_TAG)
        if stored is not None:
            return Decision.from_dict(json.loads(stored), record.id)
    return None
