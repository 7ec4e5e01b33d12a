"""The pipeline step that hands on the int8 variant `optimize` registered.

An `optimize` step registers every variant that passes its gate (the float32 ONNX export
as well as the int8 one) and hands on the fastest at batch 32, which on a busy machine may be
the float32 one. This step picks the int8 variant of its `model` instead, so that what is
evaluated, gated and promoted is always the quantized network.
"""

from __future__ import annotations

from fermion.pipelines.types import StepContext, StepOutput


def pick(context: StepContext, technique: str = "int8 static") -> StepOutput:
    """The newest version optimized from the step's `model` with this technique (as the
    `optimize` step's manifest records it); run after that step (`needs: [optimize]`)."""
    models = context.workspace.models
    source = models.get(context.ref("model", "model"))
    for version in sorted(models.versions(source.name), key=lambda v: -v.version):
        manifest = models.manifest(version)
        origin = manifest.get("optimized_from") or {}
        optimization = manifest.get("optimization") or {}
        if (
            origin.get("content_hash") == source.content_hash
            and optimization.get("technique") == technique
        ):
            ratios = {k: float(v) for k, v in optimization.items() if isinstance(v, int | float)}
            return StepOutput(
                refs={"model": version.ref},
                hashes={"model": version.content_hash},
                metrics=ratios,
                summary=f"{version.ref} ({technique} of {source.ref}, "
                f"{ratios.get('size_ratio', float('nan')):.2f}x the size)",
            )
    raise LookupError(f"no {technique} variant of {source.ref}: did its optimize step drop it?")
