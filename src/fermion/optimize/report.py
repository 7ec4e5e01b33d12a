"""The optimize report: every variant's measurement against the original's, and what the
accuracy gate decided, as a Rich table, JSON and a PNG of small multiples.

Ratios are always variant / original (size, latency, throughput, peak RSS), so below 1 is
smaller or faster for size and latency, and above 1 is faster for throughput; the latency
speedups (original / variant) are in the JSON too. `metric_drop` is positive when the variant
is worse, whichever direction the metric improves in.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fermion.errors import InvalidInputError
from fermion.optimize.measure import Measurement
from fermion.training.metrics import GREATER_IS_BETTER

if TYPE_CHECKING:
    from rich.console import Console

__all__ = ["Decision", "OptimizeReport", "Verdict"]

Verdict = Literal["original", "registered", "passed", "dropped", "failed"]
RATIOS = (
    ("size_ratio", "size_bytes"),
    ("p50_ratio", "p50_ms"),
    ("p99_ratio", "p99_ms"),
    ("rows_per_s_32_ratio", "rows_per_s_32"),
    ("rows_per_s_1000_ratio", "rows_per_s_1000"),
    ("peak_rss_ratio", "peak_rss_mb"),
)
LOWER_IS_BETTER = frozenset({"size_bytes", "p50_ms", "p99_ms", "peak_rss_mb"})
_COLOURS = {"original": "grey", "registered": "green", "passed": "green", "dropped": "red"}


@dataclass(frozen=True)
class Decision:
    """What became of a variant: `registered` as `version`, `passed` the gate (not registered,
    e.g. a dry run), `dropped` by the gate, or `failed` to export or measure; `reason` says why."""

    verdict: Verdict
    reason: str = ""
    version: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"verdict": self.verdict, "reason": self.reason, "version": self.version}


@dataclass
class OptimizeReport:
    """The variants measured in one `optimize` run; `baseline` names the original's entry.
    A name in `decisions` without a measurement is a variant that failed before measuring."""

    model_ref: str
    metric_name: str | None
    max_drop: float
    variants: list[Measurement]
    baseline: str
    decisions: dict[str, Decision] = field(default_factory=dict)
    task: str | None = None
    rows: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        if self.baseline not in {m.name for m in self.variants}:
            raise InvalidInputError(f"the baseline {self.baseline!r} is not among the variants")

    @property
    def original(self) -> Measurement:
        return next(m for m in self.variants if m.name == self.baseline)

    @property
    def greater_is_better(self) -> bool:
        return GREATER_IS_BETTER.get(self.metric_name or "", True)

    def ratios(self, variant: Measurement) -> dict[str, float | None]:
        """The variant against the original: ratios, latency speedups, metric delta and drop."""
        base = self.original
        out = {key: _ratio(getattr(variant, a), getattr(base, a)) for key, a in RATIOS}
        out["p50_speedup"] = _ratio(base.p50_ms, variant.p50_ms)
        out["p99_speedup"] = _ratio(base.p99_ms, variant.p99_ms)
        delta = None
        if variant.metric is not None and base.metric is not None:
            delta = variant.metric - base.metric
        out["metric_delta"] = delta
        out["metric_drop"] = (
            None if delta is None else (-delta if self.greater_is_better else delta)
        )
        return out

    def decision(self, name: str) -> Decision | None:
        if name == self.baseline:
            return self.decisions.get(name, Decision("original"))
        return self.decisions.get(name)

    def to_dict(self) -> dict[str, Any]:
        measured = {m.name for m in self.variants}
        variants = []
        for m in self.variants:
            decision = self.decision(m.name)
            variants.append(
                m.to_dict()
                | {
                    "ratios": self.ratios(m),
                    "decision": decision.to_dict() if decision else None,
                }
            )
        failed = {n: d.to_dict() for n, d in self.decisions.items() if n not in measured}
        data: dict[str, Any] = _json_safe(
            {
                "model": self.model_ref,
                "task": self.task,
                "metric_name": self.metric_name,
                "greater_is_better": self.greater_is_better,
                "max_drop": self.max_drop,
                "baseline": self.baseline,
                "rows": self.rows,
                "threads": self.threads,
                "variants": variants,
                "unmeasured": failed,
            }
        )
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OptimizeReport:
        variants = [Measurement.from_dict(v) for v in data["variants"]]
        decisions = {
            v["name"]: Decision(**v["decision"]) for v in data["variants"] if v["decision"]
        }
        decisions |= {name: Decision(**d) for name, d in data.get("unmeasured", {}).items()}
        return cls(
            model_ref=data["model"],
            metric_name=data["metric_name"],
            max_drop=data["max_drop"],
            variants=variants,
            baseline=data["baseline"],
            decisions=decisions,
            task=data.get("task"),
            rows=data.get("rows", 0),
            threads=data.get("threads", 1),
        )

    def save_json(self, path: Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load_json(cls, path: Path) -> OptimizeReport:
        return cls.from_dict(json.loads(Path(path).read_text()))

    def render(self, console: Console) -> None:
        """One row per variant: its figures, each over its ratio to the original (green when
        better, red when worse), the metric over its change, and the verdict."""
        from rich import box
        from rich.table import Table
        from rich.text import Text

        plural = "" if self.threads == 1 else "s"
        title = f"{self.model_ref}: {self.rows} validation rows, {self.threads} thread{plural}"
        rows = []
        for m in self.variants:
            ratios = self.ratios(m)
            cells = [_variant_cell(m)]
            for key, attribute in RATIOS:
                value = _FORMATS[attribute](getattr(m, attribute))
                cells.append(value + _ratio_line(ratios[key], attribute, m.name == self.baseline))
            cells.append(self._metric_cell(m, ratios["metric_drop"]))
            rows.append([*cells, _verdict_cell(self.decision(m.name))])
        measured = {m.name for m in self.variants}
        for name, decision in self.decisions.items():
            if name not in measured:
                rows.append([name, *["-"] * (len(RATIOS) + 1), _verdict_cell(decision)])
        headers = ["variant", "size", "p50", "p99", "rows/s\n@32", "rows/s\n@1000", "peak\nRSS"]
        table = Table(
            title=title,
            title_justify="left",
            box=box.SIMPLE_HEAD,
            pad_edge=False,
            collapse_padding=True,
        )
        for i, header in enumerate([*headers, self.metric_name or "metric", "verdict"]):
            # a cell is never cut: long headers wrap instead
            widest = max(Text.from_markup(line).cell_len for r in rows for line in r[i].split("\n"))
            justify: Literal["left", "right"] = (
                "left" if header in ("variant", "verdict") else "right"
            )
            table.add_column(header, justify=justify, min_width=widest)
        for row in rows:
            table.add_row(*row)
        console.print(table)
        for m in self.variants:
            for note in m.notes:
                console.print(f"[dim]{m.name}: {note}[/]")
        for name, decision in self.decisions.items():
            if decision.reason:
                console.print(f"{name}: {decision.verdict}, {decision.reason}", highlight=False)

    def save_chart(self, path: Path) -> Path:
        """A PNG of small multiples, one panel per figure with a bar per variant."""
        return _draw_chart(self, Path(path))

    def _metric_cell(self, m: Measurement, drop: float | None) -> str:
        if m.metric is None:
            return "-"
        if m.name == self.baseline or drop is None:
            return f"{m.metric:.4f}"
        colour = "red" if drop > self.max_drop else "green"
        return f"{m.metric:.4f}\n[{colour}]{-drop if self.greater_is_better else drop:+.4f}[/]"


def _ratio(value: float, base: float) -> float | None:
    return value / base if base and math.isfinite(value / base) else None


def _ratio_line(ratio: float | None, attribute: str, is_baseline: bool) -> str:
    if is_baseline or ratio is None:
        return ""
    better = ratio < 1 if attribute in LOWER_IS_BETTER else ratio > 1
    colour = "green" if better else ("red" if ratio != 1 else "dim")
    return f"\n[{colour}]x{ratio:.2f}[/]"


def _variant_cell(m: Measurement) -> str:
    return m.name if m.technique == m.name else f"{m.name}\n[dim]{m.technique}[/]"


def _verdict_cell(decision: Decision | None) -> str:
    if decision is None:
        return ""
    text: str = decision.verdict
    if decision.verdict == "registered" and decision.version is not None:
        text = f"registered v{decision.version}"
    return f"[{_COLOURS.get(decision.verdict, 'red')}]{text}[/]"


def size_text(n: float) -> str:
    for unit in ("B", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.2f} GiB"


def ms_text(ms: float) -> str:
    return f"{ms * 1000:.0f} us" if ms < 1 else f"{ms:.2f} ms"


def rate_text(rate: float) -> str:
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if rate >= scale:
            return f"{rate / scale:.1f}{unit}"
    return f"{rate:.0f}"


_FORMATS: dict[str, Callable[[float], str]] = {
    "size_bytes": size_text,
    "p50_ms": ms_text,
    "p99_ms": ms_text,
    "rows_per_s_32": rate_text,
    "rows_per_s_1000": rate_text,
    "peak_rss_mb": lambda mb: f"{mb:.0f} MiB",
}


_PANELS = (
    ("size_bytes", "size", 1 / 2**20, "MiB"),
    ("p50_ms", "p50 latency at batch 1", 1.0, "ms"),
    ("rows_per_s_32", "throughput at batch 32", 1.0, "rows/s"),
    ("rows_per_s_1000", "throughput at batch 1000", 1.0, "rows/s"),
    ("peak_rss_mb", "peak RSS", 1.0, "MiB"),
)
_BAR_COLOURS = {"original": "#9e9e9e", "registered": "#2e7d32", "passed": "#2e7d32"}


def _draw_chart(report: OptimizeReport, path: Path) -> Path:
    """Five panels of absolute figures (the original's as a dotted line) and one of the metric's
    change from the original, with the gate's limit dashed."""
    import numpy as np

    from fermion.training.plots import new_figure, save_figure

    variants = report.variants
    y = np.arange(len(variants))
    colours = [
        _BAR_COLOURS.get(d.verdict, "#c62828") if (d := report.decision(m.name)) else "#1565c0"
        for m in variants
    ]
    fig = new_figure(13.0, 2.4 + 0.7 * len(variants))
    axes = fig.subplots(2, 3, sharey=True)
    for ax, (attribute, title, scale, unit) in zip(axes.flat, _PANELS, strict=False):
        values = [getattr(m, attribute) * scale for m in variants]
        ax.barh(y, values, color=colours)
        ax.axvline(getattr(report.original, attribute) * scale, color="grey", ls=":", lw=1)
        for i, m in enumerate(variants):
            ratio = report.ratios(m)[_RATIO_OF[attribute]]
            extra = "" if m.name == report.baseline or ratio is None else f"  x{ratio:.2f}"
            label = _FORMATS[attribute](getattr(m, attribute))
            ax.text(values[i], i, f" {label}{extra}", va="center", fontsize=8)
        better = "lower" if attribute in LOWER_IS_BETTER else "higher"
        ax.set_title(f"{title} ({unit}, {better} is better)", fontsize=9)
        ax.set_xlim(0, max(max(values), 1e-12) * 1.6)
        ax.tick_params(labelsize=8)
    _metric_panel(report, axes.flat[5], y, colours)
    axes[0, 0].set_yticks(y, [m.name for m in variants])
    axes[0, 0].invert_yaxis()
    key = "grey: the original, green: passed the gate, red: dropped" if report.decisions else ""
    fig.suptitle(f"{report.model_ref}: variants against the original   {key}", fontsize=11)
    return save_figure(fig, path)


def _metric_panel(report: OptimizeReport, ax: Any, y: Any, colours: list[str]) -> None:
    name = report.metric_name or "metric"
    ax.set_title(f"{name}: change from the original (gate dashed)", fontsize=9)
    ax.tick_params(labelsize=8)
    deltas = [report.ratios(m)["metric_delta"] for m in report.variants]
    if all(d is None for d in deltas):
        ax.text(0.5, 0.5, "no metric", ha="center", va="center", transform=ax.transAxes)
        return
    values = [d or 0.0 for d in deltas]
    ax.barh(y, values, color=colours)
    gate = -report.max_drop if report.greater_is_better else report.max_drop
    ax.axvline(0, color="grey", lw=1)
    ax.axvline(gate, color="#c62828", ls="--", lw=1)
    reach = max([abs(v) for v in values] + [report.max_drop, 1e-9]) * 1.8
    ax.set_xlim(-reach, reach)
    for i, m in enumerate(report.variants):
        if m.metric is not None:
            ax.text(0, i, f" {m.metric:.4f} ({values[i]:+.4f})", va="center", fontsize=8)


_RATIO_OF = {attribute: key for key, attribute in RATIOS}


def _json_safe(value: Any) -> Any:
    """Plain JSON values: numpy scalars as Python numbers, tuples as lists, NaN as None."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # a numpy scalar
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
