"""Every kind of bad input named in the data issue: one line, exit 2, nothing stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fermion.cli.main import app

GOOD = "id,age,income\n1,25,1000\n2,40,2000\n"

BAD_FILES: dict[str, tuple[bytes, str]] = {
    # name: (content, what the one-line error must mention besides the file name)
    "empty.csv": (b"", "empty"),
    "header_only.csv": (b"id,age,income\n", "no rows"),
    "ragged.csv": (b"id,age,income\n1,25,1000\n2,40\n3,35,3000\n", "line 3"),
    "mixed.csv": (
        b"id,qty\n" + b"".join(f"{i},{i * 3}\n".encode() for i in range(40)) + b"40,seven\n",
        "'qty'",
    ),
    "invalid_utf8.csv": (
        b"id,name\n"
        + b"".join(f"{i},name{i}\n".encode() for i in range(20000))
        + b"20000,caf\xe9\xff\xfe\n",
        "line 20002",
    ),
    "broken.parquet": (b"PAR1 this is not parquet", "cannot read"),
    "broken.jsonl": (b'{"a": 1}\n{"a": \n', "line 2"),
}


@pytest.fixture
def cli(workspace_dir: Path) -> CliRunner:
    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0
    return runner


def _one_line_error(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def _nothing_stored(runner: CliRunner, workspace_dir: Path) -> None:
    listed = runner.invoke(app, ["data", "list", "--json"])
    assert json.loads(listed.stdout) == []
    blobs = workspace_dir / ".fermion" / "artifacts" / "blobs"
    assert not blobs.exists() or not any(p.is_file() for p in blobs.rglob("*"))
    scratch = workspace_dir / ".fermion" / "tmp"
    assert not scratch.exists() or not any(scratch.iterdir())


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_are_refused(cli: CliRunner, workspace_dir: Path, name: str) -> None:
    content, detail = BAD_FILES[name]
    (workspace_dir / name).write_bytes(content)
    message = _one_line_error(cli, "data", "add", name, "--name", "bad")
    assert name in message and detail in message
    _nothing_stored(cli, workspace_dir)


def test_missing_file(cli: CliRunner, workspace_dir: Path) -> None:
    assert "nowhere.csv" in _one_line_error(cli, "data", "add", "nowhere.csv", "--name", "x")
    _nothing_stored(cli, workspace_dir)


def test_unknown_dataset_and_version(cli: CliRunner, workspace_dir: Path) -> None:
    (workspace_dir / "good.csv").write_text(GOOD, encoding="utf-8")
    assert cli.invoke(app, ["data", "add", "good.csv", "--name", "good"]).exit_code == 0
    assert "'ghost'" in _one_line_error(cli, "data", "show", "ghost")
    assert "no version 4" in _one_line_error(cli, "data", "show", "good:4")
    assert "'ghost'" in _one_line_error(cli, "data", "diff", "good:1", "ghost:1")


@pytest.mark.parametrize(
    ("command", "content", "detail"),
    [
        ("clean", "steps:\n  - drop_columns: [id\n", "line"),
        ("clean", "steps:\n  - explode: {}\n", "unknown step 'explode'"),
        ("clean", "steps:\n  - filter: 'age >< 3'\n", "age >< 3"),
        ("clean", "steps:\n  - fill_missing: {columns: [salary], strategy: mean}\n", "salary"),
        ("validate", "rules:\n  - {column: age, rnage: {min: 1}}\n", "rnage"),
        ("validate", "rules: [\n", "line"),
    ],
)
def test_malformed_recipes_and_rules(
    cli: CliRunner, workspace_dir: Path, command: str, content: str, detail: str
) -> None:
    (workspace_dir / "good.csv").write_text(GOOD, encoding="utf-8")
    assert cli.invoke(app, ["data", "add", "good.csv", "--name", "good"]).exit_code == 0
    (workspace_dir / "spec.yaml").write_text(content, encoding="utf-8")
    option = "--recipe" if command == "clean" else "--rules"
    message = _one_line_error(cli, "data", command, "good", option, "spec.yaml")
    assert "spec.yaml" in message or command == "clean"
    assert detail in message
    versions = json.loads(cli.invoke(app, ["data", "versions", "good", "--json"]).stdout)
    assert len(versions) == 1
    shown = json.loads(cli.invoke(app, ["data", "show", "good", "--json"]).stdout)
    assert shown["validations"] == []
