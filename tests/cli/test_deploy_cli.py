"""`fermion deploy` as a user runs it: the folder it writes, --json, and one-line refusals."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from fermion.cli.main import app
from fermion.training.trainer import train
from fermion.workspace import Workspace


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, credit_csv: Any) -> tuple[Path, Any]:
    """A logistic model's files and manifest, trained once in a private workspace."""
    root = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("FERMION_")]:
            patch.delenv(key)
        with Workspace.init(root) as ws:
            ws.datasets.add(credit_csv(root / "credit.csv", seed=2), name="credit")
            version = train(ws, "credit", "status", "logistic").model
            assert version is not None
            model = ws.models.load(version)
            assert model.folder is not None
            shutil.copytree(model.folder / "model", root / "bundle" / "model")
            return root / "bundle", ws.models.manifest(version)


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bundle: tuple[Path, Any]) -> CliRunner:
    """A project whose SQLite workspace has `credit@production`, as the cwd."""
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    with Workspace.init(project) as ws:
        ws.models.register("credit", *bundle)
        ws.models.set_alias("credit", "production", 1)
    return CliRunner()


def _ok(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def _fails(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_docker(cli: CliRunner) -> None:
    out = " ".join(
        _ok(cli, "deploy", "credit@production", "--target", "docker", "--port", "8090").split()
    )
    assert "wrote deploy/credit for docker: .dockerignore, Dockerfile, README.md" in out
    assert "note: the metadata store (a SQLite file) and artifact store (a folder)" in out
    assert "next: deploy/credit/README.md" in out
    folder = Path("deploy/credit")
    dockerfile = (folder / "Dockerfile").read_text(encoding="utf-8")
    assert "EXPOSE 8090" in dockerfile
    assert '"credit@production", "--host", "0.0.0.0", "--port", "8090"' in dockerfile
    assert (folder / "fermion.env.example").is_file()

    message = _fails(cli, "deploy", "credit@production", "--target", "docker")
    assert "exists and is not empty: pass --force" in message
    _ok(cli, "deploy", "credit@production", "--target", "docker", "--force")


def test_kubernetes_json(cli: CliRunner) -> None:
    message = _fails(cli, "deploy", "credit@production", "--target", "kubernetes")
    assert "cannot be shared by pods on a cluster" in message and "--allow-local" in message
    assert not Path("deploy").exists()

    written = json.loads(
        _ok(
            cli,
            "deploy",
            "credit@production",
            "--target",
            "kubernetes",
            "--allow-local",
            "--out",
            "k8s",
            "--name",
            "credit-api",
            "--replicas",
            "3",
            "--max-replicas",
            "8",
            "--cpu-target",
            "60",
            "--json",
        )
    )
    assert written["target"] == "kubernetes"
    assert Path(written["folder"]) == Path("k8s").absolute()
    names = {Path(path).name for path in written["files"]}
    assert {"deployment.yaml", "service.yaml", "hpa.yaml", "secret.example.yaml"} <= names
    hpa = yaml.safe_load(Path("k8s/hpa.yaml").read_text(encoding="utf-8"))
    assert hpa["spec"]["scaleTargetRef"]["name"] == "credit-api"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 8)
    deployment = yaml.safe_load(Path("k8s/deployment.yaml").read_text(encoding="utf-8"))
    assert deployment["spec"]["replicas"] == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ghost@production"], "no model named 'ghost'"),
        (["credit@canary"], "model 'credit' has no alias 'canary'"),
        (["credit", "--name", "Credit_API"], "invalid name 'Credit_API'"),
        (["credit", "--target", "swarm"], "unknown target 'swarm'"),
        (["credit", "--extra", "gpu"], "unknown extra 'gpu'"),
    ],
)
def test_refusals(cli: CliRunner, args: list[str], message: str) -> None:
    if "--target" not in args:
        args = [*args, "--target", "docker"]
    assert message in _fails(cli, "deploy", *args)
    assert not Path("deploy").exists()


def test_listed_in_help(cli: CliRunner) -> None:
    assert "deploy" in _ok(cli, "--help")
    assert "--allow-local" in _ok(cli, "deploy", "--help")
