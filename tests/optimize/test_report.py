"""The optimize report: ratios against the original, JSON, the Rich table and the PNG chart."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from fermion.errors import InvalidInputError
from fermion.optimize.measure import Measurement
from fermion.optimize.report import Decision, OptimizeReport


def measurement(name: str, scale: float, metric: float | None, **extra: object) -> Measurement:
    return Measurement(
        name=name,
        technique=name if name != "original" else "original",
        size_bytes=int(4_000_000 * scale),
        p50_ms=2.0 * scale,
        p99_ms=5.0 * scale,
        rows_per_s_32=10_000 / scale,
        rows_per_s_1000=40_000 / scale,
        peak_rss_mb=300.0 * scale,
        load_rss_mb=120.0,
        base_rss_mb=30.0,
        metric=metric,
        metric_name="roc_auc" if metric is not None else None,
        outputs=np.ones((3, 2)),
        **extra,  # type: ignore[arg-type]
    )


@pytest.fixture
def report() -> OptimizeReport:
    return OptimizeReport(
        model_ref="churn@3",
        metric_name="roc_auc",
        max_drop=0.005,
        variants=[
            measurement("original", 1.0, 0.9000),
            measurement("graph", 0.5, 0.9000, parity={"max_abs_diff": np.float32(1e-7)}),
            measurement("dynamic_int8", 0.25, 0.8900, notes=("p99 from 80 batch-1 calls",)),
        ],
        baseline="original",
        decisions={
            "graph": Decision("registered", version=4),
            "dynamic_int8": Decision("dropped", reason="roc_auc fell 0.0100 > 0.005"),
            "fp16": Decision("failed", reason="an operator the converter lacks"),
        },
        task="binary",
        rows=200,
        threads=1,
    )


def test_ratios_compare_each_variant_with_the_original(report: OptimizeReport) -> None:
    graph = report.ratios(report.variants[1])
    assert graph["size_ratio"] == pytest.approx(0.5)
    assert graph["p50_ratio"] == pytest.approx(0.5) and graph["p50_speedup"] == pytest.approx(2)
    assert graph["p99_speedup"] == pytest.approx(2)
    assert graph["rows_per_s_32_ratio"] == pytest.approx(2)
    assert graph["rows_per_s_1000_ratio"] == pytest.approx(2)
    assert graph["peak_rss_ratio"] == pytest.approx(0.5)
    assert graph["metric_delta"] == 0 and graph["metric_drop"] == 0
    int8 = report.ratios(report.variants[2])
    assert int8["metric_delta"] == pytest.approx(-0.01)
    assert int8["metric_drop"] == pytest.approx(0.01)
    assert report.ratios(report.variants[0])["size_ratio"] == 1


def test_a_drop_is_positive_when_worse_for_a_lower_is_better_metric(
    report: OptimizeReport,
) -> None:
    report.metric_name = "rmse"
    assert report.ratios(report.variants[2])["metric_drop"] == pytest.approx(-0.01)


def test_the_json_round_trips_and_holds_ratios_and_decisions(
    report: OptimizeReport, tmp_path: Path
) -> None:
    path = report.save_json(tmp_path / "out" / "report.json")
    data = json.loads(path.read_text())
    assert data["model"] == "churn@3" and data["greater_is_better"] is True
    graph = data["variants"][1]
    assert "outputs" not in graph
    assert graph["ratios"]["p50_speedup"] == pytest.approx(2)
    assert graph["decision"] == {"verdict": "registered", "reason": "", "version": 4}
    assert graph["parity"] == {"max_abs_diff": pytest.approx(1e-7)}
    assert data["variants"][0]["decision"]["verdict"] == "original"
    assert data["unmeasured"]["fp16"]["verdict"] == "failed"
    again = OptimizeReport.load_json(path)
    assert again.variants == report.variants
    assert again.decisions["fp16"] == report.decisions["fp16"]
    assert again.to_dict() == data


def test_the_table_shows_every_variant_its_ratios_and_verdict(report: OptimizeReport) -> None:
    console = Console(record=True, width=140, color_system=None)
    report.render(console)
    text = console.export_text()
    for expected in ("original", "graph", "dynamic_int8", "fp16", "roc_auc", "registered v4"):
        assert expected in text
    assert "x0.50" in text and "x2.00" in text  # size halved, throughput doubled
    assert "-0.0100" in text and "dropped" in text and "failed" in text
    assert "3.8 MiB" in text and "1.00 ms" in text and "500 us" in text
    assert "p99 from 80 batch-1 calls" in text


def test_the_chart_is_a_png(report: OptimizeReport, tmp_path: Path) -> None:
    path = report.save_chart(tmp_path / "charts" / "report.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(data) > 20_000


def test_a_chart_without_metrics_still_draws(tmp_path: Path) -> None:
    report = OptimizeReport(
        "encoder@1",
        None,
        0.01,
        [measurement("original", 1.0, None), measurement("fp16", 0.5, None)],
        "original",
    )
    assert report.save_chart(tmp_path / "r.png").stat().st_size > 10_000
    assert report.to_dict()["variants"][1]["ratios"]["metric_delta"] is None


def test_the_baseline_must_be_a_variant() -> None:
    with pytest.raises(InvalidInputError, match="baseline"):
        OptimizeReport("m@1", "rmse", 0.1, [measurement("graph", 1.0, None)], "original")
