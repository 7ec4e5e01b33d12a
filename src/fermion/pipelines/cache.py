"""Step cache keys, and the step runs that hold what a cached step gave.

A step's key is a sha256 over its kind, its config, the content of the files its config
names, the code it runs (Fermion's version, or a `python` step's module source) and the
content hashes of what its inputs and needs gave. A finished step run is tagged with its key
and its output; a later run computing the same key reuses that output instead of running.
Keys are over content, not over versions or times: a step whose output comes out
byte-for-byte the same (a cleaning rule that changes nothing) leaves its dependants cached.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fermion.entities import RunStatus
from fermion.pipelines.types import StepOutput, StepSpec

if TYPE_CHECKING:
    from fermion.pipelines.kinds import StepKind
    from fermion.workspace import Workspace

CACHE_TAG = "fermion.cache_key"
OUTPUT_TAG = "fermion.output"
STEP_TAG = "fermion.step"  # "<pipeline>/<step>": the latest output of a step, for --only
STATE_TAG = "fermion.state"
CHECKS_TAG = "fermion.checks"  # a failed step's checks (a finished one's are in its output)


def cache_key(
    spec: StepSpec,
    kind: StepKind,
    root: Path,
    upstream: Mapping[str, StepOutput],
) -> str:
    """The key of `spec` given the outputs of the steps it needs (by step name)."""
    from fermion.pipelines.kinds import code_hash, file_hashes

    payload = {
        "kind": spec.kind,
        "config": {k: v for k, v in spec.config.items() if k not in spec.inputs},
        "inputs": {key: upstream[step].hashes for key, step in sorted(spec.inputs.items())},
        "needs": {step: upstream[step].hashes for step in sorted(spec.needs)},
        "files": file_hashes(kind, spec.config, root),
        "code": code_hash(spec, root),
    }
    text = json.dumps(payload, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def cached_output(ws: Workspace, key: str) -> StepOutput | None:
    """The output of the newest finished step run with this key, if any."""
    return _newest_output(ws, CACHE_TAG, key)


def latest_output(ws: Workspace, pipeline: str, step: str) -> StepOutput | None:
    """What the step gave the last time it finished in this pipeline, if it ever did."""
    return _newest_output(ws, STEP_TAG, f"{pipeline}/{step}")


def _newest_output(ws: Workspace, tag: str, value: str) -> StepOutput | None:
    for record in ws.runs.store.find_runs(tag, value, status=RunStatus.FINISHED):
        stored = record.tags.get(OUTPUT_TAG)
        if stored is not None:
            return StepOutput.from_dict(json.loads(stored))
    return None


def output_tags(output: StepOutput) -> dict[str, Any]:
    return {OUTPUT_TAG: json.dumps(output.to_dict(), sort_keys=True)}
