"""The metadata store contract: every backend (SQLite, PostgreSQL) runs these same tests."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fermion.entities import ColumnProfile, ColumnSchema, LogicalType, Profile
from fermion.errors import NotFoundError
from fermion.storage import DatasetStore, LineageStore, NewVersion, open_metadata


@pytest.fixture
def stores(metadata_url: str) -> Iterator[tuple[DatasetStore, LineageStore]]:
    meta = open_metadata(metadata_url)
    yield meta.datasets, meta.lineage
    meta.engine.dispose()


def _new(name: str, content: str, **extra: Any) -> NewVersion:
    schema = (ColumnSchema("x", LogicalType.INTEGER, False, "Int64"),)
    profile = Profile(3, 1, (ColumnProfile("x", LogicalType.INTEGER, 3, 0, 3, 1.0, 3.0, 2.0),))
    return NewVersion(
        name=name,
        content_hash=content * 64,
        num_rows=3,
        num_columns=1,
        size_bytes=10,
        schema=schema,
        profile=profile,
        operation="ingest",
        source={"path": "x.csv"},
        **extra,
    )


def test_versions_are_numbered_in_order_and_round_trip(stores: Any) -> None:
    datasets, _ = stores
    first, created = datasets.add_version(_new("credit", "a"))
    second, _ = datasets.add_version(_new("credit", "b", parent_id=first.id))
    assert created and (first.version, second.version) == (1, 2)
    assert datasets.get_version("credit") == second
    assert datasets.get_version("credit", 1) == first
    assert second.parent_id == first.id
    assert second.profile.column("x").mean == 2.0
    assert second.schema[0].type is LogicalType.INTEGER
    assert second.created_at.tzinfo is not None


def test_same_content_returns_the_existing_version(stores: Any) -> None:
    datasets, _ = stores
    first, _ = datasets.add_version(_new("credit", "a"))
    again, created = datasets.add_version(_new("credit", "a"))
    assert not created and again == first
    assert [v.version for v in datasets.list_versions("credit")] == [1]


def test_unknown_names_and_versions_raise_not_found(stores: Any) -> None:
    datasets, _ = stores
    with pytest.raises(NotFoundError, match="no dataset named 'nope'"):
        datasets.get_version("nope")
    datasets.add_version(_new("credit", "a"))
    with pytest.raises(NotFoundError, match="has no version 7"):
        datasets.get_version("credit", 7)
    with pytest.raises(NotFoundError):
        datasets.list_versions("nope")


def test_find_by_content_or_derivation(stores: Any) -> None:
    datasets, _ = stores
    made, _ = datasets.add_version(_new("credit", "a", derivation_key="k" * 64))
    assert datasets.find_version("credit", content_hash="a" * 64) == made
    assert datasets.find_version("credit", derivation_key="k" * 64) == made
    assert datasets.find_version("credit", content_hash="b" * 64) is None


def test_list_datasets_summarises_latest_versions(stores: Any) -> None:
    datasets, _ = stores
    datasets.add_version(_new("credit", "a"))
    datasets.add_version(_new("credit", "b"))
    datasets.add_version(_new("churn", "c"))
    summaries = {s.name: s for s in datasets.list_datasets()}
    assert summaries["credit"].latest_version == 2
    assert summaries["credit"].num_versions == 2
    assert summaries["churn"].num_rows == 3


def test_delete_version_removes_splits_and_the_empty_dataset(stores: Any) -> None:
    datasets, _ = stores
    version, _ = datasets.add_version(_new("credit", "a"))
    datasets.add_split(
        version.id,
        params={"seed": 1},
        params_hash="p" * 64,
        content_hash="s" * 64,
        counts={"train": 2, "test": 1},
    )
    datasets.add_validation(version.id, rules_hash="r" * 64, passed=True, report={})
    assert datasets.content_in_use("s" * 64)
    datasets.delete_version(version.id)
    assert not datasets.content_in_use("a" * 64)
    assert not datasets.content_in_use("s" * 64)
    assert datasets.list_datasets() == []


def test_splits_are_idempotent_per_params(stores: Any) -> None:
    datasets, _ = stores
    version, _ = datasets.add_version(_new("credit", "a"))
    split, created = datasets.add_split(
        version.id,
        params={"seed": 1},
        params_hash="p" * 64,
        content_hash="s" * 64,
        counts={"train": 3},
    )
    again, created_again = datasets.add_split(
        version.id,
        params={"seed": 1},
        params_hash="p" * 64,
        content_hash="s" * 64,
        counts={"train": 3},
    )
    assert created and not created_again and again == split
    assert datasets.list_splits(version.id) == [split]


def test_validations_are_kept_newest_first(stores: Any) -> None:
    datasets, _ = stores
    version, _ = datasets.add_version(_new("credit", "a"))
    datasets.add_validation(version.id, rules_hash="r" * 64, passed=False, report={"n": 1})
    datasets.add_validation(version.id, rules_hash="r" * 64, passed=True, report={"n": 2})
    assert [v.report["n"] for v in datasets.list_validations(version.id)] == [2, 1]


def test_concurrent_writers_get_distinct_version_numbers(stores: Any) -> None:
    datasets, _ = stores
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            datasets.add_version(_new("credit", "0123456789abcdef"[i]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(v.version for v in datasets.list_versions("credit")) == [1, 2, 3, 4, 5, 6]


def test_lineage_edges(stores: Any) -> None:
    _, lineage = stores
    lineage.add_edge(("dataset_version", 1), ("dataset_version", 2), "clean")
    lineage.add_edge(("dataset_version", 1), ("split", 5), "split")
    assert [e.child_id for e in lineage.children("dataset_version", 1)] == [2, 5]
    assert lineage.parents("dataset_version", 2)[0].relation == "clean"
    lineage.forget("dataset_version", 1)
    assert lineage.children("dataset_version", 1) == []
    assert lineage.parents("split", 5) == []


def test_opening_twice_migrates_once(metadata_url: str) -> None:
    for _ in range(2):
        meta = open_metadata(metadata_url)
        assert meta.datasets.list_datasets() == []
        meta.engine.dispose()


def _open_and_count(url: str) -> int:
    meta = open_metadata(url)
    try:
        return len(meta.datasets.list_datasets())
    finally:
        meta.engine.dispose()


def test_the_head_revision_read_from_the_scripts_is_alembics() -> None:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from fermion.storage.database import MIGRATIONS, head_revision

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert head_revision() == ScriptDirectory.from_config(config).get_current_head()


def test_the_head_revision_is_none_unless_the_scripts_form_one_chain(tmp_path: Path) -> None:
    from fermion.storage.database import head_revision

    def script(name: str, text: str) -> None:
        (tmp_path / f"{name}.py").write_text(f'"""{name}"""\n{text}\n', encoding="utf-8")

    script("0001_a", "revision = '0001'\ndown_revision = None")
    script("0002_b", 'revision = "0002"\ndown_revision = "0001"')
    assert head_revision(tmp_path) == "0002"
    script("0003_c", 'revision = "0003"\ndown_revision = "0001"')  # two heads
    assert head_revision(tmp_path) is None
    script("0004_merge", "revision = '0004'\ndown_revision = ('0002', '0003')")
    assert head_revision(tmp_path) is None
    script("0004_merge", "down_revision = '0003'")  # no revision of its own
    assert head_revision(tmp_path) is None


def test_opening_a_current_store_does_not_load_the_migrations(metadata_url: str) -> None:
    import subprocess
    import sys

    open_metadata(metadata_url).engine.dispose()
    script = (
        "import sys\n"
        "from fermion.storage import open_metadata\n"
        f"meta = open_metadata({metadata_url!r})\n"
        "print(meta.datasets.list_datasets(), 'alembic' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.split() == ["[]", "False"]


def test_a_store_newer_than_the_code_is_refused(metadata_url: str) -> None:
    import sqlalchemy as sa

    from fermion.errors import StorageError
    from fermion.storage.tables import VERSION_TABLE

    meta = open_metadata(metadata_url)
    with meta.engine.begin() as conn:
        conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '9999'"))
    meta.engine.dispose()
    with pytest.raises(StorageError, match="newer than this version of Fermion"):
        open_metadata(metadata_url)


def test_concurrent_processes_migrate_a_new_database_once(metadata_url: str) -> None:
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(4) as pool:
        assert pool.map(_open_and_count, [metadata_url] * 4) == [0, 0, 0, 0]


def test_migrations_create_exactly_the_declared_tables(metadata_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from fermion.storage.tables import VERSION_TABLE, metadata

    meta = open_metadata(metadata_url)
    try:
        with meta.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            assert compare_metadata(context, metadata) == []
    finally:
        meta.engine.dispose()


def test_a_workspace_from_before_the_version_table_rename_opens(metadata_url: str) -> None:
    import sqlalchemy as sa

    from fermion.storage.tables import VERSION_TABLE

    meta = open_metadata(metadata_url)
    with meta.engine.begin() as conn:  # as workspaces made before the rename have it
        conn.execute(sa.text(f"ALTER TABLE {VERSION_TABLE} RENAME TO alembic_version"))
    meta.engine.dispose()
    again = open_metadata(metadata_url)
    try:
        tables = set(sa.inspect(again.engine).get_table_names())
        assert VERSION_TABLE in tables and "alembic_version" not in tables
        assert again.datasets.list_datasets() == []
    finally:
        again.engine.dispose()
