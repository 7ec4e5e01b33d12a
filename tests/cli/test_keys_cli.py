"""`fermion keys ...` as a user runs it: the key printed once, the table, revocation, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fermion.cli.main import app
from fermion.errors import AuthenticationError
from fermion.serving.auth import KeyGuard
from fermion.workspace import Workspace

WIDE = {"COLUMNS": "200"}
KEY = re.compile(r"^fmn_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$", re.MULTILINE)


@pytest.fixture
def cli(workspace_dir: Path) -> CliRunner:
    runner = CliRunner()
    _ok(runner, "init")
    return runner


def _ok(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, list(args), env=WIDE)
    assert result.exit_code == 0, result.output
    return result.stdout


def _fails(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, list(args), env=WIDE)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_create_prints_the_key_once_with_how_to_send_it(cli: CliRunner) -> None:
    out = _ok(
        cli,
        "keys",
        "create",
        "--name",
        "app1",
        "--scope",
        "predict:credit",
        "--scope",
        "admin",
        "--rate",
        "100/s",
        "--expires",
        "30d",
    )
    keys = KEY.findall(out)
    assert len(keys) == 1
    assert "will not be shown again" in out
    assert "Authorization: Bearer <key>" in out
    assert "created API key app1" in out and "admin, predict:credit" in out
    with Workspace.open() as ws:
        guard = KeyGuard(ws.keys)
        assert guard.check(f"Bearer {keys[0]}", "predict:credit") == "app1"
        (record,) = ws.keys.list()
    assert record.rate_per_s == 100.0 and record.expires_at is not None
    listed = _ok(cli, "keys", "list")
    assert keys[0] not in listed  # the key is never shown again
    assert keys[0].split("_", 2)[2] not in listed  # the secret (which may hold "_" itself)


def test_list_shows_ids_scopes_rates_and_status_but_never_the_hash(cli: CliRunner) -> None:
    assert "no API keys yet" in _ok(cli, "keys", "list")
    _ok(cli, "keys", "create", "--name", "app1", "--scope", "predict:credit", "--rate", "6000/m")
    _ok(cli, "keys", "create", "--name", "app2", "--scope", "predict:*", "--expires", "2099-01-31")
    _ok(cli, "keys", "create", "--name", "ops", "--scope", "admin")
    _ok(cli, "keys", "revoke", "ops")
    with Workspace.open() as ws:
        records = {r.name: r for r in ws.keys.list()}
    listed = _ok(cli, "keys", "list")
    rows = {line.split()[1]: line for line in listed.splitlines() if len(line.split()) > 1}
    assert {"app1", "app2", "ops"} <= set(rows)
    assert records["app1"].key_id in rows["app1"] and "predict:credit" in rows["app1"]
    assert "100/s" in rows["app1"] and "active" in rows["app1"]
    assert "2099-01-31 00:00" in rows["app2"] and "active" in rows["app2"]
    assert "revoked" in rows["ops"]
    for record in records.values():
        assert record.secret_hash not in listed and record.salt not in listed
    as_json = json.loads(_ok(cli, "keys", "list", "--json"))
    assert [k["name"] for k in as_json] == ["app1", "app2", "ops"]
    assert all("secret_hash" not in k and "salt" not in k for k in as_json)
    assert as_json[2]["revoked_at"] is not None


def test_create_json_holds_the_key(cli: CliRunner) -> None:
    made: dict[str, Any] = json.loads(
        _ok(cli, "keys", "create", "--name", "app1", "--scope", "admin", "--json")
    )
    assert KEY.match(made["key"]) and made["scopes"] == ["admin"]
    assert "secret_hash" not in made and "salt" not in made


def test_revoked_keys_are_refused(cli: CliRunner) -> None:
    out = _ok(cli, "keys", "create", "--name", "app1", "--scope", "predict:*")
    (key,) = KEY.findall(out)
    assert "revoked API key app1" in _ok(cli, "keys", "revoke", "app1")
    with Workspace.open() as ws, pytest.raises(AuthenticationError, match="revoked"):
        KeyGuard(ws.keys).check(key, "predict:credit")


def test_mistakes_are_one_line_errors(cli: CliRunner) -> None:
    assert "invalid scope 'read'" in _fails(
        cli, "keys", "create", "--name", "app1", "--scope", "read"
    )
    assert "invalid rate '100'" in _fails(
        cli, "keys", "create", "--name", "app1", "--scope", "admin", "--rate", "100"
    )
    assert "invalid expiry 'soon'" in _fails(
        cli, "keys", "create", "--name", "app1", "--scope", "admin", "--expires", "soon"
    )
    _ok(cli, "keys", "create", "--name", "app1", "--scope", "admin")
    assert "already exists" in _fails(cli, "keys", "create", "--name", "app1", "--scope", "admin")
    assert "no API key named 'ghost'" in _fails(cli, "keys", "revoke", "ghost")
