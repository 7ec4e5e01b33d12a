"""`write_deployment`: files a cluster or Docker can use as they are, refused when they could not
work, and a folder that is written whole or not at all."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from fermion import __version__
from fermion.errors import ConflictError, InvalidInputError, NotFoundError
from fermion.serving import deploy_templates
from fermion.serving.deploy import (
    derive_name,
    hide_password,
    loopback_stores,
    required_extras,
    store_variables,
    write_deployment,
)
from fermion.settings import Settings
from fermion.training.trainer import train
from fermion.workspace import Workspace

DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
TEAM_STORES = {
    "metadata_url": "postgresql+psycopg://ml:s3cret@db.internal:5432/fermion",
    "artifacts_url": "s3://team-models/fermion",
    "artifacts_endpoint_url": "http://minio.internal:9000",
}


@dataclass(frozen=True)
class Bundle:
    folder: Path
    manifest: dict[str, Any]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory, credit_csv: Any) -> dict[str, Bundle]:
    """A logistic (sklearn) and a LightGBM model, trained once in a private workspace."""
    root = tmp_path_factory.mktemp("trained")
    found: dict[str, Bundle] = {}
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("FERMION_")]:
            patch.delenv(key)
        with Workspace.init(root) as ws:
            ws.datasets.add(credit_csv(root / "credit.csv", seed=0), name="credit")
            for family in ("logistic", "lightgbm"):
                version = train(ws, "credit", "status", family).model
                assert version is not None
                model = ws.models.load(version)
                assert model.folder is not None
                shutil.copytree(model.folder / "model", root / family / "model")
                found[family] = Bundle(root / family, ws.models.manifest(version))
    return found


@pytest.fixture
def ws(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bundles: dict[str, Bundle]
) -> Iterator[Workspace]:
    """A SQLite workspace (the cwd's project) with `credit@production` (sklearn) and `fraud`
    (LightGBM)."""
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    with Workspace.init(project) as workspace:
        for name, family in (("credit", "logistic"), ("fraud", "lightgbm")):
            bundle = bundles[family]
            workspace.models.register(name, bundle.folder, bundle.manifest)
        workspace.models.set_alias("credit", "production", 1)
        yield workspace


@pytest.fixture
def team_ws(ws: Workspace) -> Workspace:
    """The same workspace as the team configures it: PostgreSQL and S3 (only the settings
    change; deploying reads them, it never connects to those stores)."""
    ws.settings = replace(ws.settings, **TEAM_STORES)
    return ws


def _load_yaml(folder: Path, name: str) -> dict[str, Any]:
    document = yaml.safe_load((folder / name).read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def _dockerfile_json(dockerfile: str, instruction: str) -> list[str]:
    [line] = [line for line in dockerfile.splitlines() if line.startswith(instruction + " ")]
    value = json.loads(line.removeprefix(instruction + " "))
    assert isinstance(value, list)
    return value


def _installed_extras(dockerfile: str) -> set[str]:
    """The extras in the Dockerfile's `pip install "fermion[...]"` (or `"...whl[...]"`)."""
    [extras] = re.findall(
        r'pip install --no-cache-dir (?:--extra-index-url \S+ )?"[^"\[]+\[([^\]]*)\]', dockerfile
    )
    return set(extras.split(","))


def _leftovers(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def test_kubernetes_objects_fit_together(team_ws: Workspace) -> None:
    written = write_deployment(
        team_ws, ["credit@production", "fraud"], target="kubernetes", port=9000, workers=2
    )
    folder = Path("deploy/credit").absolute()
    assert [p.name for p in written] == sorted(
        [
            ".dockerignore",
            "Dockerfile",
            "README.md",
            "deployment.yaml",
            "hpa.yaml",
            "secret.example.yaml",
            "service.yaml",
        ]
    )
    assert all(p.parent == folder and p.is_file() for p in written)

    deployment = _load_yaml(folder, "deployment.yaml")
    service = _load_yaml(folder, "service.yaml")
    hpa = _load_yaml(folder, "hpa.yaml")
    secret = _load_yaml(folder, "secret.example.yaml")
    assert (deployment["apiVersion"], deployment["kind"]) == ("apps/v1", "Deployment")
    assert (service["apiVersion"], service["kind"]) == ("v1", "Service")
    assert (hpa["apiVersion"], hpa["kind"]) == ("autoscaling/v2", "HorizontalPodAutoscaler")
    assert (secret["apiVersion"], secret["kind"]) == ("v1", "Secret")
    for document in (deployment, service, hpa):
        assert DNS_LABEL.match(document["metadata"]["name"])
        assert document["metadata"]["name"] == "credit"
        assert document["metadata"]["labels"]["app.kubernetes.io/name"] == "credit"

    spec = deployment["spec"]
    pod_labels = spec["template"]["metadata"]["labels"]
    assert spec["replicas"] == 2
    assert spec["selector"]["matchLabels"].items() <= pod_labels.items()
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert deployment["metadata"]["labels"] == pod_labels == service["metadata"]["labels"]

    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["terminationGracePeriodSeconds"] >= 30
    [container] = pod["containers"]
    assert container["image"] == f"credit:{__version__}"
    command = container["command"]
    assert command[:4] == ["fermion", "serve", "credit@production", "fraud"]
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert command[command.index("--port") + 1] == "9000"
    assert command[command.index("--workers") + 1] == "2"
    assert "--no-auth" not in command
    [port] = container["ports"]
    assert port["containerPort"] == 9000
    probes = {
        kind: container[kind]["httpGet"]
        for kind in ("livenessProbe", "readinessProbe", "startupProbe")
    }
    assert probes["livenessProbe"]["path"] == "/healthz"
    assert probes["readinessProbe"]["path"] == "/readyz"
    assert probes["startupProbe"]["path"] == "/healthz"
    for probe in probes.values():
        assert probe["port"] in (port["name"], port["containerPort"])
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120  # slow model loads
    resources = container["resources"]
    assert resources["requests"]["cpu"] and resources["limits"]["memory"]

    [service_port] = service["spec"]["ports"]
    assert service["spec"]["type"] == "ClusterIP"
    assert (service_port["port"], service_port["targetPort"]) == (80, 9000)

    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        "apps/v1",
        "Deployment",
        "credit",
    )
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}

    [env_from] = container["envFrom"]
    assert env_from["secretRef"]["name"] == secret["metadata"]["name"] == "credit-stores"
    assert secret["stringData"] == {
        "FERMION_METADATA_URL": "postgresql+psycopg://ml:CHANGE-ME@db.internal:5432/fermion",
        "FERMION_ARTIFACTS_URL": "s3://team-models/fermion",
        "FERMION_ARTIFACTS_ENDPOINT_URL": "http://minio.internal:9000",
        "AWS_ACCESS_KEY_ID": "CHANGE-ME",
        "AWS_SECRET_ACCESS_KEY": "CHANGE-ME",
    }
    assert "s3cret" not in "".join(p.read_text(encoding="utf-8") for p in written)
    assert "volumes" not in pod

    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert "kubectl apply -f deployment.yaml -f service.yaml -f hpa.yaml" in readme
    assert "fermion models alias credit production VERSION" in readme
    # the image for a LightGBM model among the refs
    dockerfile = (folder / "Dockerfile").read_text(encoding="utf-8")
    assert _installed_extras(dockerfile) == {"lightgbm", "postgres", "s3"}


def test_autoscaler_and_resources_follow_the_options(team_ws: Workspace) -> None:
    write_deployment(
        team_ws,
        ["credit"],
        target="kubernetes",
        out="k8s",
        name="scoring-api",
        image="registry.example.com/ml/scoring:7",
        replicas=3,
        max_replicas=12,
        cpu_target=55,
        cpu="500m",
        memory="1Gi",
    )
    deployment = _load_yaml(Path("k8s"), "deployment.yaml")
    hpa = _load_yaml(Path("k8s"), "hpa.yaml")
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "registry.example.com/ml/scoring:7"
    assert container["resources"]["requests"] == {"cpu": "500m", "memory": "1Gi"}
    assert deployment["spec"]["replicas"] == 3
    assert hpa["metadata"]["name"] == hpa["spec"]["scaleTargetRef"]["name"] == "scoring-api"
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 12)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 55
    assert _load_yaml(Path("k8s"), "secret.example.yaml")["metadata"]["name"] == (
        "scoring-api-stores"
    )


def test_docker_files(team_ws: Workspace) -> None:
    written = write_deployment(team_ws, ["credit@production"], target="docker", port=8123)
    folder = Path("deploy/credit")
    assert [p.name for p in written] == [
        ".dockerignore",
        "Dockerfile",
        "README.md",
        "fermion.env.example",
    ]
    dockerfile = (folder / "Dockerfile").read_text(encoding="utf-8")
    assert "\nFROM python:3.11-slim\n" in dockerfile
    assert re.search(
        rf'pip install --no-cache-dir "fermion\[[a-z0-9,]+\]=={__version__}"', dockerfile
    )
    assert _installed_extras(dockerfile) == {"postgres", "s3"}  # sklearn needs no extra
    assert "\nEXPOSE 8123\n" in dockerfile
    assert re.search(r"^USER \d+", dockerfile, re.MULTILINE)  # numeric: non-root, checkable
    assert "FERMION_HOME=/srv/fermion" in dockerfile
    assert _dockerfile_json(dockerfile, "CMD") == [
        "fermion",
        "serve",
        "credit@production",
        "--host",
        "0.0.0.0",
        "--port",
        "8123",
        "--workers",
        "1",
    ]
    [health] = [line for line in dockerfile.splitlines() if line.strip().startswith('CMD ["py')]
    check = json.loads(health.strip().removeprefix("CMD "))
    assert check[:2] == ["python", "-c"]
    assert "urllib.request.urlopen('http://127.0.0.1:8123/healthz'" in check[2]
    assert "HEALTHCHECK " in dockerfile
    assert "curl" not in check[2]

    ignore = (folder / ".dockerignore").read_text(encoding="utf-8").splitlines()
    assert "*" in ignore and "!Dockerfile" in ignore  # fermion.env never enters the image
    env = (folder / "fermion.env.example").read_text(encoding="utf-8")
    variables = dict(
        line.split("=", 1) for line in env.splitlines() if line and not line.startswith("#")
    )
    assert variables["FERMION_METADATA_URL"].endswith(":CHANGE-ME@db.internal:5432/fermion")
    assert variables["FERMION_ARTIFACTS_URL"] == "s3://team-models/fermion"
    assert variables["AWS_SECRET_ACCESS_KEY"] == "CHANGE-ME"
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert f"docker build -t credit:{__version__} ." in readme
    assert f"docker run --rm -p 8123:8123 --env-file fermion.env credit:{__version__}" in readme


def test_docker_with_local_stores_mounts_the_workspace(ws: Workspace) -> None:
    write_deployment(ws, ["fraud"], target="docker")
    folder = Path("deploy/fraud")
    readme = (folder / "README.md").read_text(encoding="utf-8")
    assert f"-v {ws.root}:/srv/fermion" in readme
    env = (folder / "fermion.env.example").read_text(encoding="utf-8")
    assert [line for line in env.splitlines() if not line.startswith("#")] == []
    dockerfile = (folder / "Dockerfile").read_text(encoding="utf-8")
    assert _installed_extras(dockerfile) == {"lightgbm", "postgres", "s3"}


def test_a_local_wheel_is_copied_and_installed(ws: Workspace, tmp_path: Path) -> None:
    wheel = tmp_path / f"fermion-{__version__}-py3-none-any.whl"
    wheel.write_bytes(b"not really a wheel")
    written = write_deployment(ws, ["credit"], target="docker", wheel=wheel, out="image")
    assert Path("image", wheel.name).read_bytes() == b"not really a wheel"
    assert Path("image", wheel.name).absolute() in written
    dockerfile = Path("image/Dockerfile").read_text(encoding="utf-8")
    assert f"COPY {wheel.name} /tmp/wheels/{wheel.name}" in dockerfile
    assert f'"/tmp/wheels/{wheel.name}[' in dockerfile
    assert _installed_extras(dockerfile) == {"postgres", "s3"}
    assert "==" not in dockerfile.split("pip install", 1)[1].split("\n", 1)[0]

    other = tmp_path / "numpy-2.0-py3-none-any.whl"
    other.write_bytes(b"")
    with pytest.raises(InvalidInputError, match="is not a Fermion wheel"):
        write_deployment(ws, ["credit"], target="docker", wheel=other, out="image2")
    with pytest.raises(InvalidInputError, match="no wheel file"):
        write_deployment(ws, ["credit"], target="docker", wheel=tmp_path / "x.whl", out="i3")


@pytest.mark.parametrize(
    ("manifest", "extras"),
    [
        ({"flavor": "sklearn", "inputs": "matrix"}, ("postgres", "s3")),
        ({"flavor": "lightgbm"}, ("lightgbm", "postgres", "s3")),
        ({"flavor": "xgboost"}, ("postgres", "s3", "xgboost")),
        ({"flavor": "torch_export"}, ("postgres", "s3", "torch")),
        ({"flavor": "sentence_transformers"}, ("postgres", "s3", "text")),
        ({"flavor": "python", "inputs": "pandas"}, ("pandas", "postgres", "s3")),
        (
            {
                "flavor": "sklearn",
                "preprocessor": {"columns": [{"name": "note", "role": "text"}]},
            },
            ("postgres", "s3", "text"),
        ),
    ],
)
def test_extras_follow_each_flavor(manifest: dict[str, Any], extras: tuple[str, ...]) -> None:
    assert required_extras([manifest]) == extras


def test_extras_union_over_models_and_asked_for() -> None:
    found = required_extras([{"flavor": "lightgbm"}, {"flavor": "xgboost"}], ["pandas"])
    assert {"lightgbm", "xgboost", "pandas", "postgres", "s3"} <= set(found)
    with pytest.raises(InvalidInputError, match="unknown extra 'lightgbn'"):
        required_extras([], ["lightgbn"])


def test_store_variables_hide_secrets(tmp_path: Path) -> None:
    assert hide_password("postgresql+psycopg://ml:p%40ss@db:5432/f?sslmode=require") == (
        "postgresql+psycopg://ml:CHANGE-ME@db:5432/f?sslmode=require"
    )
    assert hide_password("postgresql://ml@db/f") == "postgresql://ml@db/f"
    assert hide_password("sqlite:///fermion.db") == "sqlite:///fermion.db"
    assert store_variables(Settings(root=tmp_path)) == []
    remote = Settings(root=tmp_path, metadata_url="postgresql://db/f", artifacts_url="gs://b/p")
    assert dict(store_variables(remote)) == {
        "FERMION_METADATA_URL": "postgresql://db/f",
        "FERMION_ARTIFACTS_URL": "gs://b/p",
        "FERMION_ARTIFACTS_ENDPOINT_URL": "",
    }


def test_store_urls_naming_this_machine_are_found(tmp_path: Path) -> None:
    local = Settings(
        root=tmp_path,
        metadata_url="postgresql+psycopg://ml:pw@127.0.0.1:5432/f",
        artifacts_url="s3://bucket/p",
        artifacts_endpoint_url="http://localhost:9000",
    )
    assert loopback_stores(local) == [local.metadata_url, "http://localhost:9000"]
    team = Settings(root=tmp_path, **TEAM_STORES)
    assert loopback_stores(team) == []
    assert loopback_stores(replace(team, metadata_url="postgresql://localhost.corp/f")) == []


@pytest.mark.parametrize(
    ("model", "name"),
    [
        ("credit", "credit"),
        ("Credit_Risk.v2", "credit-risk-v2"),
        ("2024-churn", "model-2024-churn"),
        ("a" * 80, "a" * 63),
    ],
)
def test_names_derive_from_the_model(model: str, name: str) -> None:
    assert derive_name(model) == name
    assert DNS_LABEL.match(name)


def test_sqlite_on_kubernetes_is_refused_unless_allowed(ws: Workspace) -> None:
    with pytest.raises(InvalidInputError, match=r"metadata store \(a SQLite file\)") as refused:
        write_deployment(ws, ["credit@production"], target="kubernetes")
    assert "--allow-local" in str(refused.value)
    assert "\n" not in str(refused.value)
    assert not Path("deploy").exists()

    write_deployment(ws, ["credit@production"], target="kubernetes", allow_local=True)
    deployment = _load_yaml(Path("deploy/credit"), "deployment.yaml")
    pod = deployment["spec"]["template"]["spec"]
    [volume] = pod["volumes"]
    assert volume["persistentVolumeClaim"]["claimName"] == "credit-workspace"
    assert pod["containers"][0]["volumeMounts"] == [
        {"name": volume["name"], "mountPath": "/srv/fermion"}
    ]
    assert "credit-workspace" in Path("deploy/credit/README.md").read_text(encoding="utf-8")


def test_refusals_are_one_line(ws: Workspace) -> None:
    cases: list[tuple[type[Exception], str, dict[str, Any]]] = [
        (NotFoundError, "no model named 'ghost'", {"refs": ["ghost"]}),
        (NotFoundError, "has no alias 'canary'", {"refs": ["credit@canary"]}),
        (NotFoundError, "has no version 9", {"refs": ["credit", "fraud:9"]}),
        (InvalidInputError, "invalid model reference", {"refs": ["credit:0"]}),
        (InvalidInputError, "at least one model", {"refs": []}),
        (InvalidInputError, "invalid name 'Credit_API'", {"name": "Credit_API"}),
        (InvalidInputError, "invalid name '-x'", {"name": "-x"}),
        (InvalidInputError, "unknown target 'nomad'", {"target": "nomad"}),
        (InvalidInputError, "non-root", {"port": 80}),
        (InvalidInputError, "--workers", {"workers": 0}),
        (InvalidInputError, "--min-replicas 5 to --max-replicas 3", {"min_replicas": 5,
                                                                    "max_replicas": 3}),
        (InvalidInputError, "--cpu-target", {"cpu_target": 150}),
        (InvalidInputError, "--memory '2 GB'", {"memory": "2 GB"}),
        (InvalidInputError, "invalid image", {"image": "my image"}),
        (InvalidInputError, "folder of its own", {"out": "."}),
    ]  # fmt: skip
    for error, message, overrides in cases:
        arguments: dict[str, Any] = {"refs": ["credit@production"], "target": "docker"}
        arguments.update(overrides)
        with pytest.raises(error, match=re.escape(message)) as raised:
            write_deployment(ws, arguments.pop("refs"), **arguments)
        assert "\n" not in str(raised.value)
    assert not Path("deploy").exists()
    assert _leftovers(Path.cwd()) == [".fermion"]


def test_an_existing_folder_needs_force_which_keeps_other_files(ws: Workspace) -> None:
    write_deployment(ws, ["credit@production"], target="kubernetes", allow_local=True)
    folder = Path("deploy/credit")
    (folder / "secret.yaml").write_text("filled in by hand\n", encoding="utf-8")
    with pytest.raises(ConflictError, match="exists and is not empty: pass --force"):
        write_deployment(ws, ["credit@production"], target="kubernetes", allow_local=True)

    write_deployment(
        ws, ["credit@production"], target="kubernetes", allow_local=True, port=9100, force=True
    )
    assert (folder / "secret.yaml").read_text(encoding="utf-8") == "filled in by hand\n"
    assert "containerPort: 9100" in (folder / "deployment.yaml").read_text(encoding="utf-8")
    assert _leftovers(folder.parent) == []

    Path("empty").mkdir()
    write_deployment(ws, ["credit"], target="docker", out="empty")  # an empty folder is fine
    assert Path("empty/Dockerfile").is_file()
    Path("a-file").write_text("", encoding="utf-8")
    with pytest.raises(ConflictError, match="is not a folder"):
        write_deployment(ws, ["credit"], target="docker", out="a-file", force=True)


def test_a_failure_leaves_nothing_behind(ws: Workspace, monkeypatch: pytest.MonkeyPatch) -> None:
    write_deployment(ws, ["credit"], target="kubernetes", out="kept", allow_local=True)
    before = {p.name: p.read_bytes() for p in Path("kept").iterdir()}

    def broken(plan: Any) -> dict[str, Any]:
        raise OSError("disk full")

    with monkeypatch.context() as patch, pytest.raises(OSError, match="disk full"):
        patch.setattr(deploy_templates, "hpa", broken)
        write_deployment(ws, ["credit"], target="kubernetes", out="new/deploy", allow_local=True)
    assert not Path("new").exists()

    real_copy = shutil.copyfile

    def failing_copy(source: Any, target: Any, **kwargs: Any) -> Any:
        if str(source).endswith(".whl"):
            raise OSError("read error")
        return real_copy(source, target, **kwargs)

    monkeypatch.setattr(shutil, "copyfile", failing_copy)
    wheel = Path("fermion-0.1.0-py3-none-any.whl")
    wheel.write_bytes(b"wheel")
    with pytest.raises(OSError, match="read error"):  # while writing a new folder
        write_deployment(ws, ["credit"], target="docker", out="new/deploy", wheel=wheel)
    assert not Path("new").exists()
    with pytest.raises(OSError, match="read error"):  # while rewriting one
        write_deployment(
            ws,
            ["credit"],
            target="kubernetes",
            out="kept",
            allow_local=True,
            force=True,
            wheel=wheel,
        )
    assert {p.name: p.read_bytes() for p in Path("kept").iterdir()} == before
    assert _leftovers(Path.cwd()) == [".fermion"]
