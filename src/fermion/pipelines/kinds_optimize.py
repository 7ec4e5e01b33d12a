"""The `optimize` step kind: ONNX variants of a model, measured, gated and registered."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fermion.errors import InvalidInputError
from fermion.pipelines.kinds_config import StepConfig, input_ref, model_output
from fermion.pipelines.types import DATASET, MODEL, StepContext, StepOutput

if TYPE_CHECKING:
    from fermion.entities import ModelVersion
    from fermion.optimize.measure import Measurement
    from fermion.optimize.optimizer import OptimizeResult

PASSED = ("registered", "passed")
FIGURES = ("p50_ms", "p99_ms", "rows_per_s_32", "rows_per_s_1000", "size_bytes", "peak_rss_mb")
RATIOS = ("metric_drop", "p50_speedup", "p99_speedup", "size_ratio", "rows_per_s_32_ratio")


def run_optimize(ctx: StepContext) -> StepOutput:
    """A variant the gate drops is not a failure while another passes; when none passes, the
    step gives the source model on (its figures, `variants_passed` 0) unless
    `require_variant: true`, which makes that a failure naming why each variant fell."""
    from fermion.optimize.optimizer import OptimizeOptions, optimize

    config = StepConfig(ctx)
    source = ctx.workspace.models.get(ctx.ref(MODEL, MODEL))
    options = OptimizeOptions(
        quantize=config.text("quantize", "auto"),  # type: ignore[arg-type]  # checked by optimize
        prune=config.number("prune"),
        prune_mode=config.text("prune_mode", "structured"),  # type: ignore[arg-type]
        fine_tune=config.integer("fine_tune", 0),
        max_drop=config.number("max_drop", 0.01),
        metric=config.text("metric"),
        alias=config.text("alias"),
        auto=config.flag("auto"),
        opset=config.integer("opset", 17),
        data=input_ref(ctx, DATASET, DATASET),
        texts=config.path("texts"),
        threads=config.integer("threads"),
        seconds=config.number("seconds", 1.0),
        register=not config.flag("no_register"),
    )
    result = optimize(ctx.workspace, source.ref, options, progress=ctx.say)
    decisions = result.report.decisions
    passed = [name for name, d in decisions.items() if d.verdict in PASSED]
    if not passed and config.flag("require_variant"):
        raise InvalidInputError(
            f"step {ctx.spec.name!r}: no variant of {source.ref} passed the gate: "
            + "; ".join(f"{name}: {d.reason}" for name, d in decisions.items())
        )
    chosen = result.fastest  # what optimize moves its alias to
    measured = result.report.original if chosen is None else _measurement(result, chosen)
    metrics = _figures(result, measured) | {
        "variants_passed": float(len(passed)),
        "variants_dropped": float(len(result.dropped)),
    }
    if chosen is None:
        why = "none registered" if passed else "none passed the gate"
        return model_output(
            source, f"{source.ref} kept: {len(decisions)} variant(s), {why}", metrics
        )
    speedup = metrics.get("p99_speedup")
    return model_output(
        chosen,
        f"{chosen.ref} ({measured.technique}"
        + (f", p99 {speedup:.2f}x faster" if speedup is not None else "")
        + f") from {source.ref}",
        metrics,
    )


def _measurement(result: OptimizeResult, version: ModelVersion) -> Measurement:
    name = next(n for n, d in result.report.decisions.items() if d.version == version.version)
    return next(m for m in result.report.variants if m.name == name)


def _figures(result: OptimizeResult, measured: Measurement) -> dict[str, float]:
    """The variant's own figures, its metric, and its ratios against the original."""
    report = result.report
    figures: dict[str, Any] = {name: getattr(measured, name) for name in FIGURES}
    if report.metric_name and measured.metric is not None:
        figures[report.metric_name] = measured.metric
    ratios = report.ratios(measured)
    figures |= {name: ratios[name] for name in RATIOS if ratios.get(name) is not None}
    return {name: float(value) for name, value in figures.items()}
