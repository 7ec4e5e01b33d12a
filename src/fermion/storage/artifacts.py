"""Content-addressed artifact stores: blobs named by their sha256, written atomically.

A blob becomes visible only once complete (temp file, fsync, rename; or a single object PUT),
so a crash never leaves a partial blob under its final name. Reads verify the checksum.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
import uuid
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from fermion.errors import IntegrityError, NotFoundError, StorageError

_CHUNK = 1 << 20
_OBJECT_STORES = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss"}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _check_digest(digest: str) -> str:
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise NotFoundError(f"{digest!r} is not a sha256 blob name")
    return digest


class ArtifactStore(ABC):
    """Immutable blobs keyed by sha256 of their content.

    Contract: `put_file` returns the digest and stores the content once however often it is
    called; `local_path` returns a readable local file whose content matches the digest (else
    `IntegrityError`), or raises `NotFoundError`; `delete` of a missing blob is a no-op.
    """

    @abstractmethod
    def put_file(self, path: Path, digest: str | None = None, *, move: bool = False) -> str:
        """Store the file at `path`; with `move`, the store may take the file itself (it is
        gone afterwards), which saves a copy when it lies on the store's filesystem."""

    @abstractmethod
    def exists(self, digest: str) -> bool: ...

    @abstractmethod
    def local_path(self, digest: str, *, verify: bool = True) -> Path: ...

    @abstractmethod
    def delete(self, digest: str) -> None: ...


class LocalArtifactStore(ArtifactStore):
    def __init__(self, root: Path) -> None:
        self.root = root
        self._tmp = root / "tmp"

    def _path(self, digest: str) -> Path:
        _check_digest(digest)
        return self.root / "blobs" / digest[:2] / digest[2:]

    def put_file(self, path: Path, digest: str | None = None, *, move: bool = False) -> str:
        digest = digest or sha256_file(path)
        final = self._path(digest)
        if final.exists():
            return digest
        final.parent.mkdir(parents=True, exist_ok=True)
        if move and self._move_into_place(path, final):
            return digest
        self._tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp, prefix=digest[:12] + ".")
        try:
            with os.fdopen(fd, "wb") as out, path.open("rb") as src:
                shutil.copyfileobj(src, out, _CHUNK)
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp_name, 0o444)
            os.replace(tmp_name, final)
            _fsync_dir(final.parent)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return digest

    def _move_into_place(self, path: Path, final: Path) -> bool:
        """Rename `path` to `final` if both are on one filesystem; False if they are not."""
        with path.open("rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(path, 0o444)
        try:
            os.replace(path, final)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            os.chmod(path, 0o644)
            return False
        _fsync_dir(final.parent)
        return True

    def exists(self, digest: str) -> bool:
        return self._path(digest).exists()

    def local_path(self, digest: str, *, verify: bool = True) -> Path:
        path = self._path(digest)
        if not path.exists():
            raise NotFoundError(f"blob {digest[:12]} is missing from {self.root}")
        if verify and sha256_file(path) != digest:
            raise IntegrityError(f"blob {digest[:12]} in {self.root} is corrupted")
        return path

    def delete(self, digest: str) -> None:
        self._path(digest).unlink(missing_ok=True)


class FsspecArtifactStore(ArtifactStore):
    """Blobs under any fsspec URL (`s3://bucket/prefix`, ...), with a local read cache."""

    def __init__(self, url: str, cache_dir: Path, **storage_options: Any) -> None:
        import fsspec

        self.url = url.rstrip("/")
        self._fs, self._prefix = fsspec.core.url_to_fs(self.url, **storage_options)
        self._atomic_put = url.split("://", 1)[0] in _OBJECT_STORES
        self._cache = LocalArtifactStore(cache_dir)

    def _key(self, digest: str) -> str:
        _check_digest(digest)
        return f"{self._prefix}/blobs/{digest[:2]}/{digest[2:]}"

    def put_file(self, path: Path, digest: str | None = None, *, move: bool = False) -> str:
        digest = digest or sha256_file(path)
        key = self._key(digest)
        try:
            if self._fs.exists(key):
                return digest
            if self._atomic_put:
                self._fs.put_file(str(path), key)  # one object PUT: all or nothing
            else:
                tmp = f"{key}.tmp-{uuid.uuid4().hex}"
                self._fs.put_file(str(path), tmp)
                self._fs.mv(tmp, key)
        except OSError as exc:
            raise StorageError(f"cannot write to artifact store {self.url}: {exc}") from exc
        return digest

    def exists(self, digest: str) -> bool:
        try:
            return bool(self._fs.exists(self._key(digest)))
        except OSError as exc:
            raise StorageError(f"cannot reach artifact store {self.url}: {exc}") from exc

    def local_path(self, digest: str, *, verify: bool = True) -> Path:
        if self._cache.exists(digest):
            return self._cache.local_path(digest, verify=verify)
        self._cache.root.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=self._cache.root, prefix="download.")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            try:
                self._fs.get_file(self._key(digest), tmp_name)
            except FileNotFoundError as exc:
                raise NotFoundError(f"blob {digest[:12]} is missing from {self.url}") from exc
            except OSError as exc:
                raise StorageError(f"cannot read from artifact store {self.url}: {exc}") from exc
            if sha256_file(tmp) != digest:
                raise IntegrityError(f"blob {digest[:12]} in {self.url} is corrupted")
            self._cache.put_file(tmp, digest)
        finally:
            tmp.unlink(missing_ok=True)
        return self._cache.local_path(digest, verify=False)

    def delete(self, digest: str) -> None:
        self._cache.delete(digest)
        try:
            self._fs.rm_file(self._key(digest))
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise StorageError(f"cannot delete from artifact store {self.url}: {exc}") from exc


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
