"""Portable model bundles: export one version to a tar, import a tar safely."""

from __future__ import annotations

import hashlib
import posixpath
import shutil
import tarfile
import uuid
from pathlib import Path
from typing import Any

from fermion.errors import IntegrityError, InvalidInputError, NotFoundError
from fermion.registry.bundle import (
    MANIFEST,
    read_manifest_file,
    safe_relative,
    verify_folder,
)

CHECKSUMS = "SHA256SUMS"
CARD = "MODEL_CARD.md"


def write_tar(folder: Path, card: str, target: Path, top: str) -> Path:
    """Tar the bundle folder with its card and a SHA256SUMS of everything in it."""
    target = target.expanduser()
    if target.is_dir():
        target = target / f"{top}.tar.gz"
    if not target.parent.is_dir():
        raise NotFoundError(f"no folder {target.parent} to export into")
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex}"
    sums = []
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    card_bytes = card.encode("utf-8")
    try:
        compressed = target.name.endswith((".tar.gz", ".tgz"))
        with tarfile.open(staging, "w:gz" if compressed else "w") as tar:
            for path in files:
                relative = path.relative_to(folder).as_posix()
                sums.append(f"{_sha256(path.read_bytes())}  {relative}")
                tar.add(path, f"{top}/{relative}", recursive=False)
            sums.append(f"{_sha256(card_bytes)}  {CARD}")
            _add_bytes(tar, f"{top}/{CARD}", card_bytes)
            _add_bytes(tar, f"{top}/{CHECKSUMS}", ("\n".join(sums) + "\n").encode())
        staging.replace(target)
    finally:
        staging.unlink(missing_ok=True)
    return target


def unpack_tar(source: Path, scratch: Path) -> tuple[Path, Path, dict[str, Any]]:
    """Extract a bundle into a new folder under `scratch`, refusing unsafe entries, and check
    every checksum. Returns that folder (the caller removes it), the folder holding the
    manifest inside it, and the manifest."""
    if not source.is_file():
        raise NotFoundError(f"no model bundle at {source}")
    destination = scratch / f"import-{uuid.uuid4().hex}"
    try:
        _extract(source, destination)
        root = _bundle_root(destination)
        _check_sums(root)
        for extra in (CHECKSUMS, CARD):
            (root / extra).unlink(missing_ok=True)
        manifest = read_manifest_file(root / MANIFEST)
        verify_folder(root, manifest)
    except BaseException:
        shutil.rmtree(destination, ignore_errors=True)
        raise
    return destination, root, manifest


def _extract(source: Path, destination: Path) -> None:
    try:
        with tarfile.open(source) as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member)
            destination.mkdir(parents=True)
            tar.extractall(destination, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise InvalidInputError(f"{source} is not a model bundle (a tar file): {exc}") from exc


def _check_member(member: tarfile.TarInfo) -> None:
    name = member.name
    if name.startswith(("/", "\\")) or ".." in name.replace("\\", "/").split("/"):
        raise IntegrityError(f"the bundle entry {name!r} would be written outside its folder")
    if member.issym() or member.islnk():
        link = member.linkname
        resolved = posixpath.normpath(
            posixpath.join(posixpath.dirname(name), link) if member.issym() else link
        )
        if link.startswith("/") or resolved.startswith(".."):
            raise IntegrityError(f"the bundle entry {name!r} links outside its folder ({link})")
    elif not (member.isfile() or member.isdir()):
        raise IntegrityError(f"the bundle entry {name!r} is not a plain file or folder")


def _bundle_root(folder: Path) -> Path:
    if (folder / MANIFEST).is_file():
        return folder
    candidates = [p.parent for p in folder.glob(f"*/{MANIFEST}")]
    if len(candidates) != 1:
        raise IntegrityError(f"the bundle holds no single {MANIFEST}")
    return candidates[0]


def _check_sums(root: Path) -> None:
    sums_file = root / CHECKSUMS
    if not sums_file.is_file():
        raise IntegrityError(f"the bundle has no {CHECKSUMS}")
    for line in sums_file.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        digest, _, relative = line.partition("  ")
        path = root / safe_relative(relative)
        if not path.is_file():
            raise IntegrityError(f"the bundle lacks {relative}, listed in {CHECKSUMS}")
        if _sha256(path.read_bytes()) != digest:
            raise IntegrityError(f"{relative} in the bundle fails its checksum")


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    import io

    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
