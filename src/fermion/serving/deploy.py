"""Deployment files for a model server: a Docker image, or Kubernetes objects around it.

The container serves from the team's stores, not from a model baked into the image: the
image holds Fermion and the extras the models' flavors need, and the server reads the model
versions and the API keys from the metadata and artifact stores that the `FERMION_*`
variables name. Moving an alias therefore swaps the model in every replica, and keys are
checked against the same database everywhere. A store on local disk (SQLite, an artifact
folder) cannot be shared by pods on a cluster, so Kubernetes refuses it unless
`allow_local`, and then the workspace folder must be mounted.

The folder is written whole or not at all: into a hidden sibling, then renamed into place.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args

from fermion.errors import ConflictError, InvalidInputError
from fermion.registry.refs import ModelRef
from fermion.serving import deploy_templates as templates
from fermion.serving.deploy_templates import DeploymentPlan

if TYPE_CHECKING:
    from fermion.settings import Settings
    from fermion.workspace import Workspace

Target = Literal["docker", "kubernetes"]
PLACEHOLDER = "CHANGE-ME"
BASE_EXTRAS = ("postgres", "s3")  # what the team's stores need: PostgreSQL and S3
FLAVOR_EXTRAS = {
    "lightgbm": "lightgbm",
    "xgboost": "xgboost",
    "torch": "torch",
    "torch_export": "torch",
    "sentence_transformers": "text",
}
# every name either target writes: what `force` replaces; other files in the folder are kept
GENERATED = frozenset(
    {
        "Dockerfile",
        ".dockerignore",
        "README.md",
        "fermion.env.example",
        "deployment.yaml",
        "service.yaml",
        "hpa.yaml",
        "secret.example.yaml",
    }
)
_DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_QUANTITY = re.compile(r"^(\d+(\.\d+)?|\.\d+)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$")
_LOOPBACK = re.compile(r"(://|@)(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?(/|$|\?)")
_IMAGE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/:@-]*$")


def write_deployment(
    workspace: Workspace,
    refs: Sequence[str],
    *,
    target: Target,
    out: Path | str | None = None,
    name: str | None = None,
    port: int = 8080,
    workers: int = 1,
    replicas: int = 2,
    image: str | None = None,
    min_replicas: int | None = None,
    max_replicas: int | None = None,
    cpu_target: int = 70,
    cpu: str = "1",
    memory: str = "2Gi",
    wheel: Path | str | None = None,
    extras: Iterable[str] = (),
    allow_local: bool = False,
    force: bool = False,
) -> list[Path]:
    """Write the files that serve `refs` from one server, into `out` (default
    `deploy/<name>`); returns their paths.

    `name` (default: the first model's name made DNS-safe) names the image and every
    Kubernetes object. `min_replicas` defaults to `replicas`, `max_replicas` to three times
    that. `wheel` is a local Fermion wheel copied into the folder and installed instead of
    `fermion==<version>` from the package index. An existing non-empty `out` is refused
    unless `force`, which rewrites the generated files and keeps any others (a filled-in
    `fermion.env` or `secret.yaml`).
    """
    plan = plan_deployment(
        workspace,
        refs,
        target=target,
        name=name,
        port=port,
        workers=workers,
        replicas=replicas,
        image=image,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        cpu_target=cpu_target,
        cpu=cpu,
        memory=memory,
        wheel=wheel,
        extras=extras,
        allow_local=allow_local,
    )
    folder = Path(out) if out is not None else Path("deploy") / plan.name
    folder = folder.expanduser().absolute()
    _check_folder(folder, workspace.root, force=force)
    copies = {plan.wheel: Path(wheel)} if plan.wheel and wheel is not None else {}
    return write_folder(folder, render(plan, target), copies)


def plan_deployment(
    workspace: Workspace,
    refs: Sequence[str],
    *,
    target: Target,
    name: str | None = None,
    port: int = 8080,
    workers: int = 1,
    replicas: int = 2,
    image: str | None = None,
    min_replicas: int | None = None,
    max_replicas: int | None = None,
    cpu_target: int = 70,
    cpu: str = "1",
    memory: str = "2Gi",
    wheel: Path | str | None = None,
    extras: Iterable[str] = (),
    allow_local: bool = False,
) -> DeploymentPlan:
    """Check every argument and look the models up; writes nothing."""
    from fermion import __version__

    if target not in get_args(Target):
        raise InvalidInputError(f"unknown target {target!r}: docker or kubernetes")
    parsed = _parse_refs(refs)
    _check_numbers(port, workers, replicas, cpu_target)
    low = replicas if min_replicas is None else min_replicas
    high = 3 * low if max_replicas is None else max_replicas
    if not 1 <= low <= high:
        raise InvalidInputError(
            f"replicas go from --min-replicas {low} to --max-replicas {high}: "
            "the minimum must be at least 1 and at most the maximum"
        )
    for label, quantity in (("--cpu", cpu), ("--memory", memory)):
        if not _QUANTITY.match(quantity):
            raise InvalidInputError(
                f"{label} {quantity!r} is not a Kubernetes quantity such as 500m, 1, 2Gi"
            )
    name = check_name(name) if name is not None else derive_name(parsed[0].name)
    image = image or f"{name}:{__version__}"
    if not _IMAGE.match(image):
        raise InvalidInputError(f"invalid image {image!r}: use REPOSITORY:TAG, e.g. {name}:1")
    wheel_name = _check_wheel(Path(wheel)) if wheel is not None else None

    manifests = [workspace.models.manifest(workspace.models.get(ref)) for ref in parsed]
    local = local_stores(workspace.settings)
    if local and target == "kubernetes" and not allow_local:
        raise InvalidInputError(
            f"the workspace's {' and '.join(local)} on this machine's disk cannot be shared "
            "by pods on a cluster: use PostgreSQL and S3 (metadata_url, artifacts_url), or "
            "pass --allow-local and mount the workspace folder in the pods"
        )
    return DeploymentPlan(
        name=name,
        refs=tuple(str(ref) for ref in parsed),
        image=image,
        fermion_version=__version__,
        extras=required_extras(manifests, extras),
        port=port,
        workers=workers,
        wheel=wheel_name,
        store_env=tuple(store_variables(workspace.settings)),
        mount_workspace=bool(local),
        workspace_root=str(workspace.root),
        replicas=replicas,
        min_replicas=low,
        max_replicas=high,
        cpu_target=cpu_target,
        cpu=cpu,
        memory=memory,
    )


def render(plan: DeploymentPlan, target: Target) -> dict[str, str]:
    """The folder's text files by name."""
    files = {
        "Dockerfile": templates.dockerfile(plan),
        ".dockerignore": templates.dockerignore(),
    }
    if target == "docker":
        files["fermion.env.example"] = templates.env_example(plan)
        files["README.md"] = templates.docker_readme(plan)
        return files
    secret_note = (
        "# Copy to secret.yaml, fill in and apply it; keep secret.yaml out of version control.\n"
    )
    files["deployment.yaml"] = templates.to_yaml(plan, templates.deployment(plan))
    files["service.yaml"] = templates.to_yaml(plan, templates.service(plan))
    files["hpa.yaml"] = templates.to_yaml(plan, templates.hpa(plan))
    files["secret.example.yaml"] = templates.to_yaml(plan, templates.secret(plan), secret_note)
    files["README.md"] = templates.kubernetes_readme(plan)
    return files


def check_name(name: str) -> str:
    """`name` if it can name a Kubernetes Deployment, Service and image, else raise."""
    if not _DNS_LABEL.match(name):
        raise InvalidInputError(
            f"invalid name {name!r}: use lower-case letters, digits and '-', starting with a "
            "letter and ending with a letter or digit, at most 63 characters"
        )
    return name


def derive_name(model: str) -> str:
    """A valid `check_name` name from a model name: `Credit_Risk.v2` -> `credit-risk-v2`."""
    text = re.sub(r"-{2,}", "-", re.sub(r"[^a-z0-9-]+", "-", model.lower())).strip("-")
    if not text[:1].isalpha():
        text = f"model-{text}"
    return check_name(text[:63].rstrip("-"))


def required_extras(
    manifests: Iterable[Mapping[str, Any]], extras: Iterable[str] = ()
) -> tuple[str, ...]:
    """The `fermion[...]` extras a server of these models needs: the stores', each flavor's,
    `text` for a text column, `pandas` for a model taking pandas frames, plus `extras`."""
    declared = _declared_extras()
    wanted = set(BASE_EXTRAS)
    for extra in extras:
        if declared and extra not in declared:
            raise InvalidInputError(
                f"unknown extra {extra!r}: choose from {', '.join(sorted(declared))}"
            )
        wanted.add(extra)
    for manifest in manifests:
        flavor = str(manifest.get("flavor", ""))
        if flavor in FLAVOR_EXTRAS:
            wanted.add(FLAVOR_EXTRAS[flavor])
        columns = (manifest.get("preprocessor") or {}).get("columns", [])
        if any(column.get("role") == "text" for column in columns):
            wanted.add("text")
        if manifest.get("inputs") == "pandas":
            wanted.add("pandas")
    return tuple(sorted(wanted))


def local_stores(settings: Settings) -> list[str]:
    """The stores that live on this machine's disk, described for a message."""
    found = []
    if settings.metadata_url.startswith("sqlite"):
        found.append("metadata store (a SQLite file)")
    if _is_local_path(settings.artifacts_url):
        found.append("artifact store (a folder)")
    return found


def loopback_stores(settings: Settings) -> list[str]:
    """The store URLs naming this machine (localhost, 127.0.0.1, ::1): inside a container
    those names mean the container itself."""
    urls = (settings.metadata_url, settings.artifacts_url, settings.artifacts_endpoint_url)
    return [url for url in urls if _LOOPBACK.search(url)]


def store_variables(settings: Settings) -> list[tuple[str, str]]:
    """The variables a server needs to reach the workspace's remote stores, with the
    workspace's values and placeholders for the secrets (a password, S3 keys)."""
    env = []
    if not settings.metadata_url.startswith("sqlite"):
        env.append(("FERMION_METADATA_URL", hide_password(settings.metadata_url)))
    if not _is_local_path(settings.artifacts_url):
        env.append(("FERMION_ARTIFACTS_URL", settings.artifacts_url))
        env.append(("FERMION_ARTIFACTS_ENDPOINT_URL", settings.artifacts_endpoint_url))
        if settings.artifacts_url.startswith(("s3://", "s3a://")):
            env += [("AWS_ACCESS_KEY_ID", PLACEHOLDER), ("AWS_SECRET_ACCESS_KEY", PLACEHOLDER)]
    return env


def hide_password(url: str) -> str:
    """`url` with the password of its user part replaced by a placeholder."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    userinfo, at, host = netloc.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    user = userinfo.partition(":")[0]
    return f"{scheme}://{user}:{PLACEHOLDER}@{host}{slash}{path}"


def write_folder(
    folder: Path, files: Mapping[str, str], copies: Mapping[str, Path] | None = None
) -> list[Path]:
    """Write `files` (name -> text) and `copies` (name -> source file) as `folder`, whole or
    not at all; files of an existing `folder` that are not generated ones are carried over."""
    missing_parents = [p for p in folder.parents if not p.exists()]  # innermost first
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:12]}.tmp"
    staging.mkdir()
    try:
        for relative, text in files.items():
            (staging / relative).write_text(text, encoding="utf-8", newline="\n")
        for relative, source in (copies or {}).items():
            shutil.copyfile(source, staging / relative)
        if folder.is_dir():
            _carry_over(folder, staging, set(files) | set(copies or {}))
        _swap_into_place(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for path in missing_parents:
            with contextlib.suppress(OSError):
                path.rmdir()  # only if still empty
        raise
    return sorted(folder / name for name in (*files, *(copies or {})))


def _parse_refs(refs: Sequence[str]) -> list[ModelRef]:
    if isinstance(refs, str):
        refs = [refs]
    if not refs:
        raise InvalidInputError("name at least one model to serve, e.g. credit@production")
    parsed: list[ModelRef] = []
    for ref in refs:
        model = ModelRef.parse(ref)
        if model not in parsed:
            parsed.append(model)
    return parsed


def _check_numbers(port: int, workers: int, replicas: int, cpu_target: int) -> None:
    if not 1024 <= port <= 65535:
        raise InvalidInputError(
            f"--port {port}: use 1024-65535 (the container runs as a non-root user, "
            "which cannot bind lower ports)"
        )
    if workers < 1:
        raise InvalidInputError(f"--workers must be at least 1, got {workers}")
    if replicas < 1:
        raise InvalidInputError(f"--replicas must be at least 1, got {replicas}")
    if not 1 <= cpu_target <= 100:
        raise InvalidInputError(f"--cpu-target is a percentage from 1 to 100, got {cpu_target}")


def _check_wheel(wheel: Path) -> str:
    if not wheel.is_file():
        raise InvalidInputError(f"no wheel file at {wheel}")
    if not (wheel.name.startswith("fermion-") and wheel.name.endswith(".whl")):
        raise InvalidInputError(
            f"{wheel.name} is not a Fermion wheel (fermion-VERSION-...whl): build one with "
            "`python -m build --wheel` or `pip wheel . --no-deps`"
        )
    return wheel.name


def _check_folder(folder: Path, workspace_root: Path, *, force: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise ConflictError(f"{folder} exists and is not a folder")
    real = folder.resolve()
    for inside in (Path.cwd().resolve(), workspace_root.resolve()):
        if real == inside or real in inside.parents:
            raise InvalidInputError(
                f"{folder} holds {inside}: write the deployment into a folder of its own"
            )
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise ConflictError(f"{folder} exists and is not empty: pass --force to rewrite it")


def _carry_over(old: Path, staging: Path, written: set[str]) -> None:
    for entry in old.iterdir():
        if entry.name in GENERATED or entry.name in written or entry.name.endswith(".whl"):
            continue
        target = staging / entry.name
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, target, symlinks=True)
        else:
            shutil.copy2(entry, target, follow_symlinks=False)


def _swap_into_place(staging: Path, folder: Path) -> None:
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
    if not folder.exists():
        staging.rename(folder)
        return
    old = folder.parent / f".{folder.name}.{uuid.uuid4().hex[:12]}.old"
    folder.rename(old)
    try:
        staging.rename(folder)
    except BaseException:
        old.rename(folder)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _is_local_path(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def _declared_extras() -> set[str]:
    """The extras the installed Fermion declares; empty when run from a bare source tree."""
    from importlib import metadata

    try:
        return set(metadata.metadata("fermion").get_all("Provides-Extra") or [])
    except metadata.PackageNotFoundError:
        return set()
