"""`fermion data ...` as a user runs it: output, --json, exit codes, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fermion.cli.main import app

CSV = "id,age,income,status\n1,25,1000,good\n2,40,,bad\n3,35,3000,good\n4,52,4000,good\n"


@pytest.fixture
def cli(workspace_dir: Path) -> CliRunner:
    runner = CliRunner()
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    (workspace_dir / "credit.csv").write_text(CSV, encoding="utf-8")
    return runner


def _ok(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def _json(runner: CliRunner, *args: str) -> object:
    return json.loads(_ok(runner, *args, "--json"))


def _fails(runner: CliRunner, *args: str, code: int = 2) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_add_show_list_versions(cli: CliRunner) -> None:
    assert "added credit:1" in _ok(cli, "data", "add", "credit.csv", "--name", "credit")
    assert "unchanged" in _ok(cli, "data", "add", "credit.csv", "--name", "credit")
    shown = _ok(cli, "data", "show", "credit")
    assert "credit:1" in shown and "income" in shown
    record = _json(cli, "data", "show", "credit:1")
    assert isinstance(record, dict)
    assert record["record"]["num_rows"] == 4
    assert record["record"]["profile"]["columns"][2]["missing"] == 1
    listed = _json(cli, "data", "list")
    assert isinstance(listed, list) and listed[0]["name"] == "credit"
    versions = _json(cli, "data", "versions", "credit")
    assert isinstance(versions, list) and versions[0]["version"] == 1


def test_clean_validate_split_diff_export_rm(cli: CliRunner, workspace_dir: Path) -> None:
    _ok(cli, "data", "add", "credit.csv", "--name", "credit")
    (workspace_dir / "clean.yaml").write_text(
        "steps:\n  - fill_missing: {columns: [income], strategy: median}\n  - drop_columns: [id]\n",
        encoding="utf-8",
    )
    assert "credit:2" in _ok(cli, "data", "clean", "credit:1", "--recipe", "clean.yaml")
    diff = _json(cli, "data", "diff", "credit:1", "credit:2")
    assert "id" in json.dumps(diff)
    (workspace_dir / "rules.yaml").write_text(
        "rules:\n  - {column: income, not_null: true}\n  - {rows: {min: 1}}\n", encoding="utf-8"
    )
    assert "passed" in _ok(cli, "data", "validate", "credit:2", "--rules", "rules.yaml")
    failed = cli.invoke(app, ["data", "validate", "credit:1", "--rules", "rules.yaml"])
    assert failed.exit_code == 1 and "income" in failed.stdout
    split = _json(
        cli,
        "data",
        "split",
        "credit:2",
        "--train",
        "0.5",
        "--valid",
        "0.25",
        "--test",
        "0.25",
        "--seed",
        "7",
    )
    assert isinstance(split, dict) and sum(split["split"]["counts"].values()) == 4
    _ok(cli, "data", "export", "credit:2", "out.csv")
    assert (workspace_dir / "out.csv").read_text(encoding="utf-8").startswith("age,income")
    assert "made from it" in _fails(cli, "data", "rm", "credit:1")
    assert "removed credit:1" in _ok(cli, "data", "rm", "credit:1", "--force")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["data", "add", "nope.csv", "--name", "x"], "nope.csv"),
        (["data", "show", "ghost"], "no dataset named 'ghost'"),
        (["data", "show", "credit:x"], "positive integer"),
        (["data", "add", "credit.csv", "--name", "bad name"], "invalid name"),
        (["data", "clean", "credit", "--recipe", "missing.yaml"], "missing.yaml"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli: CliRunner, args: list[str], expected: str) -> None:
    _ok(cli, "data", "add", "credit.csv", "--name", "credit")
    assert expected in _fails(cli, *args)


def test_malformed_recipe_and_rules(cli: CliRunner, workspace_dir: Path) -> None:
    _ok(cli, "data", "add", "credit.csv", "--name", "credit")
    (workspace_dir / "bad.yaml").write_text("steps:\n  - drop_columns: [id\n", encoding="utf-8")
    assert "bad.yaml" in _fails(cli, "data", "clean", "credit", "--recipe", "bad.yaml")
    assert "bad.yaml" in _fails(cli, "data", "validate", "credit", "--rules", "bad.yaml")
    (workspace_dir / "filter.yaml").write_text(
        "steps:\n  - filter: 'age >>> 3'\n", encoding="utf-8"
    )
    assert "age >>> 3" in _fails(cli, "data", "clean", "credit", "--recipe", "filter.yaml")
    assert len(_json(cli, "data", "versions", "credit")) == 1  # type: ignore[arg-type]


def test_no_workspace_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["data", "list"])
    assert result.exit_code == 2
    assert "fermion init" in result.stderr


def test_sql_tsv_and_explicit_encoding(cli: CliRunner, workspace_dir: Path) -> None:
    import sqlite3

    with sqlite3.connect(workspace_dir / "shop.db") as conn:
        conn.execute("create table orders (id integer, total real)")
        conn.executemany("insert into orders values (?, ?)", [(1, 9.5), (2, 12.0), (3, 1.25)])
    added = _json(
        cli,
        "data",
        "add",
        "--name",
        "orders",
        "--sql",
        "select * from orders where total > 2",
        "--url",
        "sqlite:///shop.db",
    )
    assert isinstance(added, dict) and added["record"]["num_rows"] == 2
    (workspace_dir / "t.tsv").write_text("a\tb\n1\tx\n2\ty\n", encoding="utf-8")
    assert "2 rows, 2 columns" in _ok(cli, "data", "add", "t.tsv", "--name", "t")
    (workspace_dir / "latin.csv").write_bytes("name;city\nJosé;Málaga\n".encode("cp1252"))
    _ok(
        cli,
        "data",
        "add",
        "latin.csv",
        "--name",
        "latin",
        "--encoding",
        "cp1252",
        "--delimiter",
        ";",
    )
    shown = _json(cli, "data", "show", "latin")
    assert isinstance(shown, dict)
    assert shown["record"]["profile"]["columns"][1]["top_values"][0][0] == "Málaga"


def test_init_honours_fermion_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "team-workspace"
    monkeypatch.setenv("FERMION_HOME", str(home))
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    assert (home / "fermion.toml").exists()
    assert not (tmp_path / ".fermion").exists()
    assert CliRunner().invoke(app, ["data", "list", "--json"]).stdout.strip() == "[]"
