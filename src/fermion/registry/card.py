"""Model cards: one Markdown page per model version, from what the registry and runs know."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fermion.entities import ModelVersion, RunArtifact, RunRecord


def model_card(
    version: ModelVersion,
    manifest: dict[str, Any],
    run: RunRecord | None,
    inputs: Sequence[tuple[str, str]],
    artifacts: Sequence[RunArtifact],
) -> str:
    """`inputs` are (dataset reference, context) pairs, e.g. ("credit:2", "train")."""
    signature = version.signature
    lines = [
        f"# Model card: {version.ref}",
        "",
        f"- Task: {signature.task}"
        + (f", target `{signature.target}`" if signature.target else ""),
        f"- Model family: {manifest.get('family', version.flavor)} (flavor `{version.flavor}`)",
        f"- Registered: {version.created_at:%Y-%m-%d %H:%M:%S} UTC, origin {version.origin}",
        f"- Aliases: {', '.join(version.aliases) or 'none'}",
        f"- Content hash: `{version.content_hash}`",
    ]
    if signature.classes:
        lines.append(f"- Classes: {', '.join(signature.classes)}")
    if version.description:
        lines += ["", version.description]
    lines += ["", "## Data", ""]
    if inputs:
        lines += [f"- `{ref}` ({context})" for ref, context in inputs]
    else:
        lines.append("- not recorded")
    split = manifest.get("split")
    if split:
        parts = split.get("counts", {})
        rank = {"train": 0, "valid": 1, "test": 2}
        ordered = sorted(parts.items(), key=lambda item: rank.get(item[0], 3))
        counts = ", ".join(f"{part}: {n:,}" for part, n in ordered)
        lines.append(f"- Split: {counts}")
    lines += ["", "## Inputs (signature)", "", "| column | type | nullable |", "|---|---|---|"]
    lines += [
        f"| {c.name} | {c.type} | {'yes' if c.nullable else 'no'} |" for c in signature.inputs
    ]
    params = run.params if run is not None else manifest.get("params", {})
    lines += ["", "## Parameters", ""]
    lines += [f"- `{k}`: {v}" for k, v in sorted(params.items())] or ["- none recorded"]
    metrics = version.metrics or (run.metrics if run is not None else {})
    lines += ["", "## Metrics", "", "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v:.4g} |" for k, v in sorted(metrics.items())]
    plots = [a for a in artifacts if a.path.endswith(".png")]
    if plots:
        lines += ["", "## Plots", ""]
        lines += [f"- `{a.path}` (run artifact, blob `{a.content_hash[:12]}`)" for a in plots]
    lines += ["", "## Lineage", ""]
    if run is not None:
        lines.append(f"- Trained by run {run.id} ({run.name}) in experiment `{run.experiment}`")
        git = run.environment.get("git")
        if git:
            lines.append(f"- Code: git {git['commit'][:12]}{' (dirty)' if git['dirty'] else ''}")
        packages = run.environment.get("packages", {})
        if packages:
            lines.append(
                "- Packages: " + ", ".join(f"{k} {v}" for k, v in sorted(packages.items()))
            )
    else:
        lines.append("- no training run recorded (imported)")
    return "\n".join(lines) + "\n"
