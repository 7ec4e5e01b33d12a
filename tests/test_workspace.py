"""Workspaces: creation, discovery, settings from fermion.toml and FERMION_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from fermion.errors import ConflictError, InvalidInputError, NotFoundError
from fermion.settings import Settings, find_workspace_root
from fermion.workspace import Workspace


def test_init_creates_a_workspace_found_from_subfolders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Workspace.init(tmp_path) as ws:
        assert ws.root == tmp_path / ".fermion"
        assert (ws.root / "fermion.toml").exists()
        assert (ws.root / "fermion.db").exists()
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    monkeypatch.chdir(nested)
    with Workspace.open() as ws:
        assert ws.root == tmp_path / ".fermion"


def test_init_twice_keeps_settings_unless_refused(tmp_path: Path) -> None:
    Workspace.init(tmp_path).close()
    settings_file = tmp_path / ".fermion" / "fermion.toml"
    settings_file.write_text('metadata_url = "sqlite:///other.db"\n', encoding="utf-8")
    with Workspace.init(tmp_path) as ws:
        assert ws.settings.metadata_url == "sqlite:///other.db"
    with pytest.raises(ConflictError):
        Workspace.init(tmp_path, exist_ok=False)


def test_no_workspace_is_not_found(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="fermion init"):
        find_workspace_root(tmp_path, environ={})


def test_fermion_home_points_at_a_workspace(tmp_path: Path) -> None:
    Workspace.init(tmp_path).close()
    root = find_workspace_root(Path("/"), environ={"FERMION_HOME": str(tmp_path / ".fermion")})
    assert root == tmp_path / ".fermion"
    with pytest.raises(NotFoundError, match="FERMION_HOME"):
        find_workspace_root(Path("/"), environ={"FERMION_HOME": str(tmp_path / "nothing")})


def test_environment_overrides_the_file(tmp_path: Path) -> None:
    (tmp_path / "fermion.toml").write_text('artifacts_url = "blobs"\n', encoding="utf-8")
    settings = Settings.load(tmp_path, environ={"FERMION_METADATA_URL": "sqlite:///x.db"})
    assert settings.artifacts_url == "blobs"
    assert settings.metadata_url == "sqlite:///x.db"
    assert settings.resolved_metadata_url == f"sqlite:///{(tmp_path / 'x.db').resolve()}"
    assert settings.resolved_artifacts_url == str((tmp_path / "blobs").resolve())


def test_unknown_or_malformed_settings_are_refused(tmp_path: Path) -> None:
    (tmp_path / "fermion.toml").write_text('metadata_ulr = "x"\n', encoding="utf-8")
    with pytest.raises(InvalidInputError, match="unknown setting 'metadata_ulr'"):
        Settings.load(tmp_path, environ={})
    (tmp_path / "fermion.toml").write_text("metadata_url = \n", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="not valid TOML"):
        Settings.load(tmp_path, environ={})


def test_workspace_on_s3_artifacts(
    tmp_path: Path, s3_endpoint: str, metadata_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FERMION_METADATA_URL", metadata_url)
    monkeypatch.setenv("FERMION_ARTIFACTS_URL", f"s3://fermion/{tmp_path.name}")
    monkeypatch.setenv("FERMION_ARTIFACTS_ENDPOINT_URL", s3_endpoint)
    csv = tmp_path / "d.csv"
    csv.write_text("a,b\n1,x\n2,y\n", encoding="utf-8")
    with Workspace.init(tmp_path) as ws:
        dataset = ws.datasets.add(csv, name="d")
        assert not (ws.root / "artifacts").exists()
        assert dataset.to_polars().get_column("b").to_list() == ["x", "y"]


def test_unreachable_database_is_a_storage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fermion.errors import StorageError

    monkeypatch.setenv("FERMION_METADATA_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    with pytest.raises(StorageError, match="cannot open the metadata store"):
        Workspace.init(tmp_path)


def test_open_and_init_take_strings_and_an_explicit_path_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Workspace.init(str(tmp_path / "a")) as first:
        assert first.root == tmp_path / "a" / ".fermion"
    Workspace.init(tmp_path / "b").close()
    monkeypatch.setenv("FERMION_HOME", str(tmp_path / "b" / ".fermion"))
    with Workspace.open(str(tmp_path / "a")) as opened:
        assert opened.root == tmp_path / "a" / ".fermion"
    with Workspace.open() as from_env:
        assert from_env.root == tmp_path / "b" / ".fermion"
