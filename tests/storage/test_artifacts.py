"""The artifact store contract, on the local filesystem and on S3 (moto's server)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from fermion.errors import IntegrityError, NotFoundError
from fermion.storage import ArtifactStore, open_artifact_store
from fermion.storage.artifacts import LocalArtifactStore


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ArtifactStore]:
    if request.param == "local":
        yield open_artifact_store(str(tmp_path / "artifacts"), tmp_path / "cache")
        return
    endpoint = request.getfixturevalue("s3_endpoint")
    prefix = f"s3://fermion/{tmp_path.name}"
    yield open_artifact_store(prefix, tmp_path / "cache", endpoint_url=endpoint)


def _file(tmp_path: Path, content: bytes, name: str = "blob.bin") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def test_put_is_content_addressed_and_idempotent(store: ArtifactStore, tmp_path: Path) -> None:
    content = b"hello fermion" * 1000
    digest = store.put_file(_file(tmp_path, content))
    assert digest == hashlib.sha256(content).hexdigest()
    assert store.put_file(_file(tmp_path, content, "copy.bin")) == digest
    assert store.exists(digest)
    assert store.local_path(digest).read_bytes() == content


def test_missing_blob_is_not_found(store: ArtifactStore) -> None:
    with pytest.raises(NotFoundError):
        store.local_path("0" * 64)
    store.delete("0" * 64)  # deleting nothing is fine


def test_delete_removes_the_blob(store: ArtifactStore, tmp_path: Path) -> None:
    digest = store.put_file(_file(tmp_path, b"x"))
    store.delete(digest)
    assert not store.exists(digest)


def test_corrupted_blob_is_refused_on_read(tmp_path: Path) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    digest = store.put_file(_file(tmp_path, b"original"))
    blob = store.local_path(digest)
    blob.chmod(0o644)
    blob.write_bytes(b"tampered")
    with pytest.raises(IntegrityError, match="corrupted"):
        store.local_path(digest)


def test_no_partial_blob_is_visible_after_a_failed_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = LocalArtifactStore(tmp_path / "artifacts")
    source = _file(tmp_path, b"data" * 1000)

    def crash(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("fermion.storage.artifacts.os.replace", crash)
    with pytest.raises(OSError, match="disk full"):
        store.put_file(source)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    assert not store.exists(digest)
    assert list((tmp_path / "artifacts" / "tmp").iterdir()) == []


def test_move_takes_the_file_without_copying(store: ArtifactStore, tmp_path: Path) -> None:
    source = _file(tmp_path, b"moved content")
    digest = store.put_file(source, move=True)
    assert store.local_path(digest).read_bytes() == b"moved content"
    if isinstance(store, LocalArtifactStore):
        assert not source.exists()
