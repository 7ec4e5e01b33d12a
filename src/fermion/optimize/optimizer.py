"""`optimize`: a registered model in, measured ONNX variants out, the good ones registered.

The run: load the source version and its validation rows; plan the variants (the techniques
asked for, or those that help the family); export each source once, check its parity, derive
the variants (graph optimization, int8, fp16; a pruned network first when asked); measure the
original and every variant in fresh processes on the same rows; gate each on its metric drop;
register those that pass as `onnx` versions of the same model, with lineage to the source.
Everything is a tracked run in experiment `optimize-<model>`, with the report attached.
"""

from __future__ import annotations

import dataclasses
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from fermion.errors import FermionError, InvalidInputError, first_line
from fermion.optimize.measure import (
    Candidate,
    Measurement,
    default_metric,
    measure,
    metric_names,
    score,
)
from fermion.optimize.parity import check_parity
from fermion.optimize.plan import Variant, plan_variants
from fermion.optimize.report import Decision, OptimizeReport
from fermion.optimize.rows import Rows, model_rows, text_rows
from fermion.optimize.variants import VariantBuilder
from fermion.registry.flavors.onnx_flavor import machine_threads

if TYPE_CHECKING:
    from fermion.entities import ModelVersion
    from fermion.registry.model import Model
    from fermion.workspace import Workspace

Quantize = Literal["auto", "dynamic", "static", "fp16", "none"]
COSINE = "cosine"  # an embedding variant's metric: mean cosine with the original's vectors


@dataclass(frozen=True)
class OptimizeOptions:
    """What `fermion optimize` was asked for; see `optimize` for each field."""

    quantize: Quantize = "auto"
    prune: float | None = None
    prune_mode: Literal["structured", "unstructured"] = "structured"
    fine_tune: int = 0
    max_drop: float = 0.01
    metric: str | None = None
    alias: str | None = None
    auto: bool = False
    opset: int = 17
    data: str | None = None
    texts: Path | None = None
    threads: int | None = None
    seconds: float = 1.0
    register: bool = True


@dataclass(frozen=True)
class OptimizeResult:
    """The report, the versions registered, the alias moved (if any) and the run."""

    report: OptimizeReport
    registered: list[ModelVersion]
    run_id: int
    alias: tuple[str, int] | None = None
    artifacts: list[str] = field(default_factory=list)
    fastest: ModelVersion | None = None  # what `alias` goes to: the fastest registered variant

    @property
    def dropped(self) -> list[str]:
        return [n for n, d in self.report.decisions.items() if d.verdict in ("dropped", "failed")]

    @property
    def passed(self) -> bool:
        """True when no variant was dropped by the gate or failed."""
        return not self.dropped


Progress = Callable[[str], None]


def optimize(
    ws: Workspace,
    ref: str,
    options: OptimizeOptions | None = None,
    *,
    progress: Progress | None = None,
) -> OptimizeResult:
    """Optimize the model `ref` (`credit@production`, `credit:3`) and register the variants
    whose metric drops at most `options.max_drop` below the original's.

    `quantize`: `dynamic` (int8 weights), `static` (int8 calibrated on training rows), `fp16`,
    `none` (ONNX float32 only), or `auto` (what helps the family: int8 for networks, nothing
    for tree ensembles and linear models). `auto=True` tries every technique that suits the
    family and moves `alias` to the fastest variant that passes. `prune` (a fraction) prunes
    a `torch_mlp` network first (`prune_mode`), then fine-tunes it `fine_tune` epochs.
    """
    options = options or OptimizeOptions()
    _check_options(options)
    say = progress or (lambda _message: None)
    source = ws.models.get(ref)
    model = ws.models.load(source)
    if model.flavor == "onnx":
        raise InvalidInputError(f"{source.ref} is already an ONNX model (flavor onnx)")
    rows = _rows(ws, model, options)
    metric = _metric_name(model, options)
    variants = plan_variants(
        model, options.quantize, options.auto, options.prune, options.prune_mode
    )
    threads = options.threads or machine_threads()
    work = ws.scratch_dir / f"optimize-{uuid.uuid4().hex}"
    name = source.name
    try:
        with ws.runs.start(f"optimize {source.ref}", experiment=f"optimize-{name}") as run:
            run.log_params(_params(source, options, metric, rows, threads))
            builder = VariantBuilder(model, rows, work, options, say)
            original = _measure_original(model, rows, threads, options.seconds, say)
            original = _scored(original, model, rows, metric, original)
            measured, decisions = [original], {}
            for variant in variants:
                say(f"building {variant.name}")
                try:
                    candidate = builder.build(variant)
                    say(f"measuring {variant.name}")
                    found = measure(
                        candidate, rows.inputs, threads=threads, seconds=options.seconds
                    )
                except FermionError as exc:
                    if not options.auto and len(variants) == 1:
                        raise
                    decisions[variant.name] = Decision("failed", first_line(exc))
                    continue
                measured.append(_scored(found, model, rows, metric, original))
            report = OptimizeReport(
                model_ref=source.ref,
                metric_name=metric,
                max_drop=options.max_drop,
                variants=measured,
                baseline=original.name,
                decisions=decisions,
                task=model.task,
                rows=rows.count,
                threads=threads,
            )
            _gate(report)
            registered: list[ModelVersion] = []
            if options.register:
                registered = _register(ws, source, model, report, builder, run.id)
            fastest = _fastest(ws, report, registered, rows, threads, say)
            moved = _move_alias(ws, fastest, options.alias)
            artifacts = _attach(report, work, run)
            run.log_metrics(_summary_metrics(report))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return OptimizeResult(report, registered, run.id, moved, artifacts, fastest)


def _check_options(options: OptimizeOptions) -> None:
    if options.quantize not in ("auto", "dynamic", "static", "fp16", "none"):
        raise InvalidInputError(
            f"quantize must be auto, dynamic, static, fp16 or none, not {options.quantize!r}"
        )
    if not 0 <= options.max_drop < 1:
        raise InvalidInputError(f"max-drop must be between 0 and 1, not {options.max_drop}")
    if options.prune is not None and not 0 < options.prune < 1:
        raise InvalidInputError(f"prune must be a fraction between 0 and 1, not {options.prune}")
    if options.prune_mode not in ("structured", "unstructured"):
        raise InvalidInputError("prune mode must be structured or unstructured")
    if options.fine_tune < 0 or (options.fine_tune and options.prune is None):
        raise InvalidInputError("fine-tune takes a number of epochs, and only with --prune")
    if options.threads is not None and options.threads < 1:
        raise InvalidInputError("threads must be at least 1")
    if options.seconds <= 0:
        raise InvalidInputError("seconds must be positive")


def _rows(ws: Workspace, model: Model, options: OptimizeOptions) -> Rows:
    if model.task == "embedding":
        if options.data:
            raise InvalidInputError("an embedding model is measured on texts: use --texts")
        return text_rows(path=options.texts)
    if options.texts:
        raise InvalidInputError("--texts is for embedding models; this one takes a dataset")
    return model_rows(ws, model, options.data)


def _metric_name(model: Model, options: OptimizeOptions) -> str:
    if model.task == "embedding":
        if options.metric not in (None, COSINE):
            raise InvalidInputError("an embedding model is gated on its cosine with the original")
        return COSINE
    task = model.task
    metric = options.metric or default_metric(task)  # type: ignore[arg-type]
    if metric not in metric_names(task):  # type: ignore[arg-type]
        raise InvalidInputError(
            f"unknown metric {metric!r} for task {task!r}; "
            f"choose one of: {', '.join(metric_names(task))}"  # type: ignore[arg-type]
        )
    return metric


def _measure_original(
    model: Model, rows: Rows, threads: int, seconds: float, say: Progress
) -> Measurement:
    assert model.folder is not None
    say("measuring the original")
    candidate = Candidate(
        name="original",
        flavor=model.flavor,
        folder=model.folder / "model",
        meta=dict(model.manifest.get("flavor_meta", {})),
        technique=model.flavor,
    )
    return measure(candidate, rows.inputs, threads=threads, seconds=seconds)


def _scored(
    found: Measurement, model: Model, rows: Rows, metric: str, original: Measurement
) -> Measurement:
    parity = check_parity(original.outputs, found.outputs, model.task)
    if metric == COSINE:
        value = 1.0 if found is original else parity.mean_cosine
    else:
        assert rows.y_valid is not None
        value = score(model.task, metric, found.outputs, rows.y_valid, model.classes)  # type: ignore[arg-type]
    return dataclasses.replace(found, metric=value, metric_name=metric, parity=parity.to_dict())


def _gate(report: OptimizeReport) -> None:
    for variant in report.variants:
        if variant.name == report.baseline:
            continue
        drop = report.ratios(variant)["metric_drop"]
        if drop is None:
            report.decisions[variant.name] = Decision("failed", "no metric to gate on")
        elif drop > report.max_drop + 1e-12:
            report.decisions[variant.name] = Decision(
                "dropped",
                f"{report.metric_name} drops {drop:.4f}, more than the {report.max_drop:g} allowed",
            )
        else:
            report.decisions[variant.name] = Decision(
                "passed", f"{report.metric_name} {-drop:+.4f} against the original"
            )


def _register(
    ws: Workspace,
    source: ModelVersion,
    model: Model,
    report: OptimizeReport,
    builder: VariantBuilder,
    run_id: int,
) -> list[ModelVersion]:
    registered = []
    for variant in report.variants:
        decision = report.decisions.get(variant.name)
        if decision is None or decision.verdict != "passed":
            continue
        bundle = builder.bundle(variant.name)
        manifest = {
            key: value
            for key, value in model.manifest.items()
            if key not in ("files", "format", "format_version")
        }
        manifest.update(
            flavor="onnx",
            flavor_meta=builder.meta(variant.name),
            optimized_from={
                "name": source.name,
                "version": source.version,
                "content_hash": source.content_hash,
            },
            optimization={"technique": variant.technique, **report.ratios(variant)},
        )
        metrics = dict(source.metrics or {})
        if variant.metric is not None and report.metric_name:
            metrics[f"optimize_{report.metric_name}"] = variant.metric
        version = ws.models.register(
            source.name,
            bundle,
            manifest,
            run_id=run_id,
            metrics=metrics,
            description=f"{variant.technique} of version {source.version}",
            origin="optimized",
            derived_from=(source, "optimized_from"),
        )
        report.decisions[variant.name] = Decision(
            "registered", decision.reason, version=version.version
        )
        registered.append(version)
    return registered


def _fastest(
    ws: Workspace,
    report: OptimizeReport,
    registered: list[ModelVersion],
    rows: Rows,
    threads: int,
    say: Callable[[str], None],
) -> ModelVersion | None:
    """The registered variant with the most rows/s at batch 32; tabular variants within a
    third of the fastest are timed again head to head (`head_to_head`), as the report's figures
    come from one process after another and cannot tell them apart."""
    from fermion.optimize.head_to_head import close_to_fastest, head_to_head

    if not registered:
        return None
    names = {d.version: n for n, d in report.decisions.items() if d.version is not None}
    speed = {m.name: m.rows_per_s_32 for m in report.variants}
    by_name = {names[v.version]: v for v in registered if v.version in names}
    close = close_to_fastest({name: speed.get(name, 0.0) for name in by_name})
    if len(close) < 2 or rows.texts:
        return by_name[close[0]] if close else registered[0]
    models = {}
    for name in close:
        loaded = ws.models.load(by_name[name])._estimator
        loaded.limit_threads(threads)
        models[name] = loaded
    rates = head_to_head(models, np.asarray(rows.inputs, dtype=np.float32))
    winner = max(rates, key=lambda name: rates[name])
    say("head to head: " + ", ".join(f"{n} {rates[n]:,.0f} rows/s" for n in close))
    return by_name[winner]


def _move_alias(
    ws: Workspace, fastest: ModelVersion | None, alias: str | None
) -> tuple[str, int] | None:
    """Point `alias` at the fastest registered variant."""
    if alias is None or fastest is None:
        return None
    ws.models.set_alias(fastest.name, alias, fastest.version, actor="fermion optimize")
    return alias, fastest.version


def _attach(report: OptimizeReport, work: Path, run: Any) -> list[str]:
    folder = work / "report"
    folder.mkdir(parents=True, exist_ok=True)
    report.save_json(folder / "report.json")
    report.save_chart(folder / "report.png")
    return [artifact.path for artifact in run.log_artifacts(folder, "optimize")]


def _params(
    source: ModelVersion, options: OptimizeOptions, metric: str, rows: Rows, threads: int
) -> dict[str, Any]:
    return {
        "model": source.ref,
        "quantize": options.quantize,
        "prune": options.prune,
        "prune_mode": options.prune_mode if options.prune else None,
        "fine_tune": options.fine_tune,
        "max_drop": options.max_drop,
        "metric": metric,
        "auto": options.auto,
        "opset": options.opset,
        "rows": rows.source,
        "threads": threads,
    }


def _summary_metrics(report: OptimizeReport) -> dict[str, float]:
    out: dict[str, float] = {}
    for variant in report.variants:
        if variant.metric is not None:
            out[f"{variant.name}.{report.metric_name}"] = float(variant.metric)
        out[f"{variant.name}.p50_ms"] = variant.p50_ms
        out[f"{variant.name}.rows_per_s_32"] = variant.rows_per_s_32
        out[f"{variant.name}.size_bytes"] = float(variant.size_bytes)
    return out


__all__ = ["OptimizeOptions", "OptimizeResult", "Variant", "optimize"]
