"""The model format: a folder of files plus a manifest, stored blob by blob.

A model version is a manifest (`fermion-model.json`) naming its flavor, signature,
preprocessing and every file with its sha256. Each file is a content-addressed blob, and so is
the manifest; the manifest's hash is the version's `content_hash`. Loading copies the verified
blobs into `<workspace>/models/<content_hash>/` once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fermion.entities import Signature
from fermion.errors import IntegrityError, InvalidInputError
from fermion.storage import ArtifactStore
from fermion.storage.artifacts import sha256_file

MANIFEST = "fermion-model.json"
FORMAT = "fermion-model"
FORMAT_VERSION = 1
_COMPLETE = ".complete"


def canonical_json(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, indent=1, default=str).encode("utf-8")


def safe_relative(path: str) -> str:
    """`path` if it stays inside its folder, else raise: bundles come from outside."""
    parts = path.replace("\\", "/").split("/")
    if path.startswith(("/", "\\")) or ".." in parts or ":" in parts[0] or not path.strip("/"):
        raise IntegrityError(f"the model bundle names an unsafe path {path!r}")
    return "/".join(p for p in parts if p not in ("", "."))


def hash_folder(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder` (but the manifest), by relative POSIX path."""
    files = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            raise InvalidInputError(f"model files cannot be links: {path}")
        if path.is_file() and path.name != MANIFEST:
            files[path.relative_to(folder).as_posix()] = sha256_file(path)
    return files


def store_bundle(
    folder: Path, manifest: Mapping[str, Any], store: ArtifactStore, scratch: Path
) -> tuple[str, dict[str, Any], list[str]]:
    """Put every file and then the manifest into the store.

    Returns the manifest's hash, the full manifest, and the blobs this call created (so a
    caller whose later step fails can remove them).
    """
    files = hash_folder(folder)
    created = []
    for relative, digest in files.items():
        if not store.exists(digest):
            created.append(digest)
        store.put_file(folder / relative, digest)
    full = {**manifest, "format": FORMAT, "format_version": FORMAT_VERSION, "files": files}
    manifest_path = scratch / f"manifest-{uuid.uuid4().hex}.json"
    manifest_path.write_bytes(canonical_json(full))
    try:
        digest = hashlib.sha256(manifest_path.read_bytes()).hexdigest()
        if not store.exists(digest):
            created.append(digest)
        store.put_file(manifest_path, digest, move=True)
    finally:
        manifest_path.unlink(missing_ok=True)
    return digest, full, created


def read_manifest(store: ArtifactStore, content_hash: str) -> dict[str, Any]:
    data = json.loads(store.local_path(content_hash).read_bytes())
    check_manifest(data)
    return dict(data)


def check_manifest(data: Any) -> None:
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise IntegrityError(f"not a Fermion model manifest ({MANIFEST} has no format field)")
    format_version = data.get("format_version", 0)
    if not isinstance(format_version, int):
        raise IntegrityError(
            f"the model manifest has a malformed format version {format_version!r}"
        )
    if format_version > FORMAT_VERSION:
        raise IntegrityError(
            f"the model uses format version {format_version}, newer than this "
            "version of Fermion reads: upgrade Fermion"
        )
    if not isinstance(data.get("files"), dict):
        raise IntegrityError("the model manifest lists no files")
    for relative in data["files"]:
        safe_relative(relative)
    # bundles come from outside: a malformed field is refused here, not met later as a KeyError
    if not isinstance(data.get("flavor"), str):
        raise IntegrityError("the model manifest names no flavor")
    try:
        Signature.from_dict(data["signature"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise IntegrityError(f"the model manifest has a malformed signature ({exc!r})") from exc


def materialize(store: ArtifactStore, content_hash: str, cache_root: Path) -> Path:
    """A local folder holding the version's verified files, made once and reused."""
    folder = cache_root / content_hash
    if (folder / _COMPLETE).exists():
        return folder
    manifest = read_manifest(store, content_hash)
    cache_root.mkdir(parents=True, exist_ok=True)
    staging = cache_root / f".{content_hash}.{uuid.uuid4().hex}"
    try:
        for relative, digest in manifest["files"].items():
            target = staging / safe_relative(relative)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(store.local_path(digest), target)
        (staging / MANIFEST).write_bytes(canonical_json(manifest))
        (staging / _COMPLETE).touch()
        try:
            os.rename(staging, folder)
        except OSError:
            if not (folder / _COMPLETE).exists():  # not a concurrent loader that won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def verify_folder(folder: Path, manifest: Mapping[str, Any]) -> None:
    """Every file the manifest lists is present with its checksum, and nothing else is."""
    found = hash_folder(folder)
    listed: dict[str, str] = dict(manifest["files"])
    for relative, digest in listed.items():
        if relative not in found:
            raise IntegrityError(f"the model bundle lacks {relative}")
        if found[relative] != digest:
            raise IntegrityError(f"{relative} in the model bundle fails its checksum")
    extra = sorted(set(found) - set(listed))
    if extra:
        raise IntegrityError(f"the model bundle holds files its manifest does not list: {extra}")


def read_manifest_file(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"cannot read the model manifest {path}: {exc}") from exc
    check_manifest(data)
    return dict(data)
