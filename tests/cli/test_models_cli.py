"""`fermion models ...` as a user runs it: tables, --json, alias moves, bundles, one-line errors."""

from __future__ import annotations

import json
import os
import shutil
import tarfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fermion.cli.main import app
from fermion.registry.flavors import get_flavor
from fermion.training.trainer import train
from fermion.workspace import Workspace


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory, credit_csv: Any) -> dict[str, Path]:
    """Bundles exported from another workspace: a logistic model and a pickled copy of it."""
    root = tmp_path_factory.mktemp("source")
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("FERMION_")]:
            patch.delenv(key)
        with Workspace.init(root) as ws:
            ws.datasets.add(credit_csv(root / "credit.csv", seed=3), name="credit")
            version = train(ws, "credit", "status", "logistic").model
            assert version is not None
            manifest = ws.models.manifest(version)
            folder = ws.models.load(version).folder
            assert folder is not None
            flavor = get_flavor("sklearn")
            fitted = flavor.load(folder / "model", manifest["flavor_meta"], trusted=False)
            meta = get_flavor("python").save(fitted, root / "pickled" / "model")
            pickled = {**manifest, "flavor": "python", "flavor_meta": meta, "name": "custom"}
            custom = ws.models.register("custom", root / "pickled", pickled)
            return {
                "credit": ws.models.export(version.ref, root / "credit.tar.gz"),
                "custom": ws.models.export(custom.ref, root / "custom.tar"),
            }


@pytest.fixture
def cli(workspace_dir: Path, bundles: dict[str, Path]) -> CliRunner:
    runner = CliRunner()
    _ok(runner, "init")
    for path in bundles.values():
        shutil.copy(path, workspace_dir / path.name)
    return runner


def _ok(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def _json(runner: CliRunner, *args: str) -> Any:
    return json.loads(_ok(runner, *args, "--json"))


def _fails(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_list_versions_and_show(cli: CliRunner) -> None:
    assert "no models yet" in _ok(cli, "models", "list")
    assert "imported credit:1" in _ok(cli, "models", "import", "credit.tar.gz")
    _ok(cli, "models", "import", "credit.tar.gz")

    listed = _ok(cli, "models", "list")
    assert "credit:2" in listed
    [summary] = _json(cli, "models", "list")
    assert (summary["name"], summary["latest_version"], summary["num_versions"]) == ("credit", 2, 2)
    assert summary["aliases"] == {}

    versions = _json(cli, "models", "versions", "credit")
    assert [v["version"] for v in versions] == [1, 2]
    assert {v["origin"] for v in versions} == {"imported"}
    assert "roc_auc" in _ok(cli, "models", "versions", "credit")

    shown = _ok(cli, "models", "show", "credit:1")
    assert "credit:1  logistic model (flavor sklearn), binary classification of status" in shown
    for text in ("age", "integer", "categorical", "roc_auc", "origin: imported", "classes: bad"):
        assert text in shown
    record = _json(cli, "models", "show", "credit")
    assert record["ref"] == "credit:2"
    assert record["record"]["signature"]["inputs"][0] == {
        "name": "age",
        "type": "integer",
        "nullable": False,
    }
    assert record["manifest"]["family"] == "logistic"
    assert "preprocessor" not in record["manifest"]

    card = _ok(cli, "models", "show", "credit:1", "--card")
    assert card.startswith("# Model card: credit:1\n")
    assert "| income | float | no |" in card
    assert _json(cli, "models", "show", "credit:1", "--card")["card"] == card


def test_alias_moves_and_history(cli: CliRunner) -> None:
    _ok(cli, "models", "import", "credit.tar.gz")
    _ok(cli, "models", "import", "credit.tar.gz")
    assert _ok(cli, "models", "alias", "credit", "production", "1").strip() == (
        "credit@production: none -> 1"
    )
    assert _ok(cli, "models", "alias", "credit", "production", "2").strip() == (
        "credit@production: 1 -> 2"
    )
    assert _json(cli, "models", "show", "credit@production")["record"]["version"] == 2
    assert _json(cli, "models", "list")[0]["aliases"] == {"production": 2}
    assert "production" in _ok(cli, "models", "versions", "credit")

    removed = _json(cli, "models", "alias", "credit", "production", "--remove")
    assert (removed["old_version"], removed["new_version"]) == (2, None)

    history = _json(cli, "models", "history", "credit")
    assert [(e["alias"], e["old_version"], e["new_version"]) for e in history] == [
        ("production", None, 1),
        ("production", 1, 2),
        ("production", 2, None),
    ]
    assert all(e["actor"] and e["at"] for e in history)
    table = _ok(cli, "models", "history", "credit")
    assert "production" in table and "removed" in table


def test_export_and_import_round_trip(cli: CliRunner, workspace_dir: Path) -> None:
    _ok(cli, "models", "import", "credit.tar.gz")
    _ok(cli, "models", "alias", "credit", "production", "1")
    assert "exported credit:1 to out.tar" in _ok(
        cli, "models", "export", "credit@production", "out.tar"
    )
    (workspace_dir / "bundles").mkdir()
    exported = _json(cli, "models", "export", "credit", "bundles")
    assert exported["path"].endswith("credit-v1.tar.gz") and exported["size_bytes"] > 0
    with tarfile.open(workspace_dir / "out.tar") as tar:
        assert "credit-v1/SHA256SUMS" in tar.getnames()

    assert "imported copy:1" in _ok(cli, "models", "import", "out.tar", "--name", "copy")
    imported = _json(cli, "models", "import", "bundles/credit-v1.tar.gz", "--name", "copy")
    assert (imported["ref"], imported["needs_trusted"]) == ("copy:2", False)
    assert imported["record"]["origin"] == "imported"
    with Workspace.open() as ws:
        rows = [{"age": 30, "income": 2500.0, "city": "nice"}]
        expected = ws.models.load("credit@production").predict(rows).tolist()
        assert ws.models.load("copy:1").predict(rows).tolist() == expected


def test_importing_a_pickle_warns_that_loading_needs_trust(cli: CliRunner) -> None:
    imported = _ok(cli, "models", "import", "custom.tar")
    assert "imported custom:1" in imported
    assert "trusted=True" in imported
    assert _json(cli, "models", "show", "custom")["record"]["flavor"] == "python"


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["show", "ghost"], "no model named 'ghost'"),
        (["show", "credit@staging"], "model 'credit' has no alias 'staging'"),
        (["show", "credit:9"], "model 'credit' has no version 9"),
        (["show", "credit:0"], "invalid model reference 'credit:0'"),
        (["versions", "ghost"], "no model named 'ghost'"),
        (["history", "ghost"], "no model named 'ghost'"),
        (["alias", "credit", "production", "9"], "model 'credit' has no version 9"),
        (["alias", "ghost", "production", "1"], "no model named 'ghost'"),
        (["alias", "credit", "production", "x"], "VERSION is a version number"),
        (["alias", "credit", "production"], "give a VERSION"),
        (["alias", "credit", "production", "1", "--remove"], "not both"),
        (["alias", "credit", "staging", "--remove"], "model 'credit' has no alias 'staging'"),
        (["alias", "credit", "1st", "1"], "invalid alias '1st'"),
        (["export", "ghost", "out.tar"], "no model named 'ghost'"),
        (["export", "credit", "missing/out.tar"], "no folder missing"),
        (["import", "missing.tar"], "no model bundle at missing.tar"),
        (["import", "credit.tar.gz", "--name", "bad name"], "invalid name 'bad name'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli: CliRunner, args: list[str], expected: str) -> None:
    _ok(cli, "models", "import", "credit.tar.gz")
    assert expected in _fails(cli, "models", *args)
