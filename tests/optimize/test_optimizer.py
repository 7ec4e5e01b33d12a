"""`optimize` end to end on registered models: variants measured, gated, registered, served."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from fermion.cli.main import app
from fermion.errors import InvalidInputError
from fermion.optimize.optimizer import OptimizeOptions, optimize
from fermion.workspace import Workspace

FAST = 0.05  # seconds per timed phase: these tests check behaviour, not speed


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory, credit_csv: Any) -> Iterator[Workspace]:
    """A workspace with `credit` (logistic), `credit_mlp` (torch_mlp) and `credit_trees`
    (LightGBM) trained on the same split."""
    from fermion.training.trainer import train

    root = tmp_path_factory.mktemp("optimize")
    csv = credit_csv(root / "credit.csv", rows=600)
    with Workspace.init(root) as workspace:
        data = workspace.datasets.add(csv, name="credit")
        workspace.datasets.split(data.ref, seed=0)
        train(workspace, "credit", "status", "logistic", {}, name="credit")
        train(workspace, "credit", "status", "torch_mlp", {"epochs": 20}, name="credit_mlp")
        train(
            workspace, "credit", "status", "lightgbm", {"num_boost_round": 30}, name="credit_trees"
        )
        yield workspace


def _options(**changes: Any) -> OptimizeOptions:
    return OptimizeOptions(seconds=FAST, threads=1, **changes)


def test_a_linear_model_becomes_an_onnx_version_that_predicts_the_same(ws: Workspace) -> None:
    result = optimize(ws, "credit:1", _options())
    names = [m.name for m in result.report.variants]
    assert names == ["original", "onnx"]  # auto: no int8 for a linear model
    assert result.passed
    (version,) = result.registered
    assert version.flavor == "onnx" and version.origin == "optimized"
    manifest = ws.models.manifest(version)
    assert manifest["optimized_from"] == {
        "name": "credit",
        "version": 1,
        "content_hash": ws.models.get("credit:1").content_hash,
    }
    rows = [{"age": 30, "income": 2500.0, "city": "lyon"}, {"age": 60, "income": 4200.0}]
    rows[1]["city"] = "nice"
    original, onnx = ws.models.load("credit:1"), ws.models.load(version)
    np.testing.assert_allclose(onnx.predict_proba(rows), original.predict_proba(rows), atol=1e-5)
    assert onnx.predict(rows).tolist() == original.predict(rows).tolist()
    report = result.report.to_dict()
    assert report["variants"][1]["decision"]["verdict"] == "registered"
    assert report["variants"][1]["parity"]["label_agreement"] == 1.0
    assert sorted(result.artifacts) == ["optimize/report.json", "optimize/report.png"]
    run = ws.runs.get(result.run_id)
    assert run.params["model"] == "credit:1"


def test_the_network_gets_int8_and_pruned_variants_and_the_alias_moves(ws: Workspace) -> None:
    result = optimize(
        ws, "credit_mlp", _options(prune=0.5, fine_tune=2, alias="optimized", max_drop=0.2)
    )
    names = [m.name for m in result.report.variants]
    assert names == ["original", "onnx", "onnx-dynamic", "pruned-onnx", "pruned-onnx-dynamic"]
    sizes = {m.name: m.size_bytes for m in result.report.variants}
    assert sizes["onnx-dynamic"] < sizes["onnx"] / 2
    assert sizes["pruned-onnx"] < sizes["onnx"]  # structured pruning shrinks the layers
    assert len(result.registered) == 4
    alias, version = result.alias or ("", 0)
    assert alias == "optimized"
    assert ws.models.get("credit_mlp@optimized").version == version
    assert result.fastest is not None and result.fastest.version == version


def test_a_variant_past_the_allowed_drop_is_not_registered(ws: Workspace) -> None:
    # an unstructured prune of 95% without fine-tuning cannot keep a 0.0 drop
    before = len(ws.models.versions("credit_mlp"))
    result = optimize(
        ws,
        "credit_mlp:1",
        _options(quantize="none", prune=0.95, prune_mode="unstructured", max_drop=0.0),
    )
    assert not result.passed
    decision = result.report.decisions["pruned-onnx"]
    assert decision.verdict == "dropped" and "more than the 0 allowed" in decision.reason
    registered_names = {d.version for d in result.report.decisions.values() if d.version}
    assert len(ws.models.versions("credit_mlp")) == before + len(registered_names)


def test_bad_requests_are_refused_before_any_work(ws: Workspace) -> None:
    with pytest.raises(InvalidInputError, match="int8 quantization does not help a lightgbm"):
        optimize(ws, "credit_trees", _options(quantize="dynamic"))
    with pytest.raises(InvalidInputError, match="pruning is for the torch_mlp"):
        optimize(ws, "credit:1", _options(prune=0.3))
    with pytest.raises(InvalidInputError, match="unknown metric 'nope'"):
        optimize(ws, "credit:1", _options(metric="nope"))
    with pytest.raises(InvalidInputError, match="max-drop"):
        optimize(ws, "credit:1", _options(max_drop=2.0))
    onnx = next((v for v in ws.models.versions("credit") if v.flavor == "onnx"), None)
    if onnx is None:  # no earlier test in this process registered one
        onnx = optimize(ws, "credit:1", _options(quantize="none")).registered[0]
    with pytest.raises(InvalidInputError, match="already an ONNX model"):
        optimize(ws, onnx.ref, _options())


def test_the_cli_prints_the_report_and_exits_1_when_the_gate_drops_a_variant(
    ws: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ws.root)
    runner = CliRunner()
    ok = runner.invoke(
        app,
        ["optimize", "credit_trees", "--seconds", "0.05", "--threads", "1", "--json"],
    )
    assert ok.exit_code == 0, ok.output
    report = json.loads(ok.stdout)
    assert [v["name"] for v in report["variants"]] == ["original", "onnx"]
    assert report["variants"][1]["decision"]["verdict"] == "registered"
    shown = runner.invoke(app, ["models", "show", "credit_trees:2"])
    assert "origin: optimized from credit_trees:1 by run" in shown.output
    dropped = runner.invoke(
        app,
        [
            "optimize",
            "credit_mlp:1",
            *("--quantize", "none", "--prune", "0.95", "--prune-mode", "unstructured"),
            *("--max-drop", "0", "--seconds", "0.05", "--threads", "1", "--no-register"),
        ],
    )
    assert dropped.exit_code == 1
    assert "pruned-onnx" in dropped.output and "more than the 0 allowed" in dropped.output
    bad = runner.invoke(app, ["optimize", "credit:1", "--quantize", "int4"])
    assert bad.exit_code == 2
    assert "quantize must be auto, dynamic, static, fp16 or none" in bad.output


def test_a_model_without_data_needs_a_dataset(ws: Workspace, tmp_path: Path) -> None:
    exported = ws.models.export("credit:1", tmp_path / "credit.tar")
    imported = ws.models.import_bundle(exported, name="imported")
    manifest = ws.models.manifest(imported)
    assert manifest.get("data")  # an imported bundle still names its data...
    result = optimize(ws, imported.ref, _options(data="credit", register=False))
    assert result.registered == [] and result.passed
