"""The dataset API end to end on each metadata backend: versions, lineage, cleanup on failure."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from fermion.errors import ConflictError, InvalidInputError, NotFoundError
from fermion.workspace import Workspace

CSV = "id,age,income,status\n1,25,1000,good\n2,40,,bad\n3,35,3000,good\n4,52,4000,good\n"


def _csv(folder: Path, text: str = CSV, name: str = "credit.csv") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def _blobs(ws: Workspace) -> list[Path]:
    return sorted(p for p in (ws.root / "artifacts" / "blobs").rglob("*") if p.is_file())


def test_add_creates_immutable_numbered_versions(workspace: Workspace, tmp_path: Path) -> None:
    first = workspace.datasets.add(_csv(tmp_path), name="credit")
    assert (first.ref, first.num_rows, first.num_columns) == ("credit:1", 4, 4)
    again = workspace.datasets.add(_csv(tmp_path, name="copy.csv"), name="credit")
    assert again.ref == "credit:1"
    assert first.created and not again.created
    assert len(_blobs(workspace)) == 1  # identical content copied nothing
    second = workspace.datasets.add(_csv(tmp_path, CSV + "5,61,5000,bad\n"), name="credit")
    assert second.ref == "credit:2"
    assert workspace.datasets.get("credit").ref == "credit:2"
    assert workspace.datasets.get("credit:1").num_rows == 4


def test_rows_come_back_as_polars_and_pandas(workspace: Workspace, tmp_path: Path) -> None:
    dataset = workspace.datasets.add(_csv(tmp_path), name="credit")
    frame = dataset.to_polars()
    assert frame.get_column("income").to_list() == [1000, None, 3000, 4000]
    assert dataset.to_pandas()["status"].tolist() == ["good", "bad", "good", "good"]
    assert dataset.profile.column("income").missing == 1
    assert dataset.profile.column("age").mean == pytest.approx(38.0)


def test_unknown_dataset_or_version(workspace: Workspace, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no dataset named 'ghost'"):
        workspace.datasets.get("ghost")
    workspace.datasets.add(_csv(tmp_path), name="credit")
    with pytest.raises(NotFoundError, match="has no version 9"):
        workspace.datasets.get("credit:9")
    with pytest.raises(InvalidInputError, match="positive integer"):
        workspace.datasets.get("credit:x")


def test_clean_records_lineage_and_is_idempotent(workspace: Workspace, tmp_path: Path) -> None:
    workspace.datasets.add(_csv(tmp_path), name="credit")
    recipe = {
        "steps": [
            {"fill_missing": {"columns": ["income"], "strategy": "median"}},
            {"drop_columns": ["id"]},
        ]
    }
    cleaned = workspace.datasets.clean("credit:1", recipe)
    assert cleaned.ref == "credit:2"
    assert cleaned.record.parent_id == workspace.datasets.get("credit:1").record.id
    assert cleaned.record.source["parent"] == "credit:1"
    assert cleaned.columns == ["age", "income", "status"]
    assert cleaned.to_polars().get_column("income").null_count() == 0
    assert workspace.datasets.clean("credit:1", recipe).ref == "credit:2"
    assert len(workspace.datasets.versions("credit")) == 2


def test_validation_results_are_stored(workspace: Workspace, tmp_path: Path) -> None:
    workspace.datasets.add(_csv(tmp_path), name="credit")
    report = workspace.datasets.validate(
        "credit",
        {
            "rules": [
                {"column": "income", "not_null": True},
                {"column": "status", "allowed": ["good", "bad"]},
            ]
        },
    )
    assert not report.passed
    stored = workspace.datasets.get("credit").validations
    assert len(stored) == 1 and stored[0].passed is False


def test_split_is_deterministic_and_recorded(workspace: Workspace, tmp_path: Path) -> None:
    rows = "\n".join(
        f"{i},{20 + i % 50},{i * 10},{'bad' if i % 4 == 0 else 'good'}" for i in range(200)
    )
    workspace.datasets.add(_csv(tmp_path, "id,age,income,status\n" + rows + "\n"), name="c")
    split = workspace.datasets.split("c", train=0.6, valid=0.2, test=0.2, stratify="status", seed=7)
    assert (
        workspace.datasets.split("c", train=0.6, valid=0.2, test=0.2, stratify="status", seed=7)
        == split
    )
    assert sum(split.counts.values()) == 200
    frames = workspace.datasets.get("c").split_frames()
    assert {k: v.height for k, v in frames.items()} == split.counts
    bad_share = frames["test"].get_column("status").eq("bad").mean()
    assert bad_share == pytest.approx(0.25, abs=0.03)
    ids = pl.concat([f.select("id") for f in frames.values()]).get_column("id").sort()
    assert ids.to_list() == list(range(200))


def test_export_formats(workspace: Workspace, tmp_path: Path) -> None:
    workspace.datasets.add(_csv(tmp_path), name="credit")
    for name in ("out.csv", "out.parquet", "out.jsonl"):
        path = workspace.datasets.export("credit", tmp_path / name)
        back = workspace.datasets.add(path, name=f"back-{path.suffix[1:]}")
        assert back.to_polars().equals(workspace.datasets.get("credit").to_polars())
    with pytest.raises(InvalidInputError, match=r"out\.xlsx"):
        workspace.datasets.export("credit", tmp_path / "out.xlsx")


def test_remove_refuses_while_derived_versions_exist(workspace: Workspace, tmp_path: Path) -> None:
    workspace.datasets.add(_csv(tmp_path), name="credit")
    workspace.datasets.clean("credit:1", {"steps": [{"drop_columns": ["id"]}]})
    workspace.datasets.split("credit:1", train=0.5, valid=0.25, test=0.25)
    with pytest.raises(ConflictError, match="credit:2 was made from it"):
        workspace.datasets.remove("credit:1")
    workspace.datasets.remove("credit:1", force=True)
    assert [v.ref for v in workspace.datasets.versions("credit")] == ["credit:2"]
    workspace.datasets.remove("credit")
    assert workspace.datasets.list() == []
    assert _blobs(workspace) == []


def test_failed_ingest_leaves_nothing_behind(workspace: Workspace, tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(InvalidInputError, match=r"empty\.csv"):
        workspace.datasets.add(empty, name="credit")
    with pytest.raises(NotFoundError, match=r"missing\.csv"):
        workspace.datasets.add(tmp_path / "missing.csv", name="credit")
    assert workspace.datasets.list() == []
    assert _blobs(workspace) == []
    assert list((workspace.root / "tmp").iterdir()) == []


def test_failed_clean_leaves_nothing_behind(workspace: Workspace, tmp_path: Path) -> None:
    workspace.datasets.add(_csv(tmp_path), name="credit")
    with pytest.raises(InvalidInputError, match="nope"):
        workspace.datasets.clean("credit", {"steps": [{"drop_columns": ["nope"]}]})
    with pytest.raises(InvalidInputError):
        workspace.datasets.clean("credit", {"steps": [{"filter": "age >>> 3"}]})
    assert len(workspace.datasets.versions("credit")) == 1
    assert len(_blobs(workspace)) == 1


def test_sql_ingest(workspace: Workspace, tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "source.db"
    with sqlite3.connect(db) as conn:
        conn.execute("create table loans (id integer, amount real)")
        conn.executemany("insert into loans values (?, ?)", [(1, 10.5), (2, 20.0)])
    dataset = workspace.datasets.add(
        name="loans", sql="select * from loans where id > 0", url=f"sqlite:///{db}"
    )
    assert dataset.to_polars().get_column("amount").to_list() == [10.5, 20.0]
    assert dataset.record.source["format"] == "sql"


def test_diff_between_versions(workspace: Workspace, tmp_path: Path) -> None:
    workspace.datasets.add(_csv(tmp_path), name="credit")
    workspace.datasets.clean("credit", {"steps": [{"drop_columns": ["id"]}, {"drop_missing": {}}]})
    diff = workspace.datasets.diff("credit:1", "credit:2")
    assert diff.has_changes
    text = str(diff.to_dict())
    assert "id" in text


def test_python_api_finds_the_workspace_from_the_cwd(workspace: Workspace, tmp_path: Path) -> None:
    import fermion

    dataset = fermion.datasets.add(_csv(tmp_path), name="credit")
    assert fermion.datasets.get("credit").ref == dataset.ref == "credit:1"


def test_failed_metadata_write_removes_the_new_blob(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fermion.errors import StorageError

    def refuse(*args: object, **kwargs: object) -> None:
        raise StorageError("database went away")

    monkeypatch.setattr(workspace.storage.datasets, "add_version", refuse)
    with pytest.raises(StorageError, match="went away"):
        workspace.datasets.add(_csv(tmp_path), name="credit")
    assert _blobs(workspace) == []
    monkeypatch.undo()
    assert workspace.datasets.list() == []


def test_split_frames_never_guesses_between_splits(workspace: Workspace, tmp_path: Path) -> None:
    rows = "\n".join(f"{i},{i % 2}" for i in range(40))
    workspace.datasets.add(_csv(tmp_path, "id,y\n" + rows + "\n"), name="s")
    halves = workspace.datasets.split("s", train=0.5, valid=0.0, test=0.5, seed=1)
    dataset = workspace.datasets.get("s")
    assert set(dataset.split_frames()) == {"train", "test"}
    stratified = workspace.datasets.split("s", stratify="y", seed=0)
    with pytest.raises(InvalidInputError, match="2 splits"):
        dataset.split_frames()
    assert set(dataset.split_frames(stratified)) == {"train", "valid", "test"}
    assert dataset.split_frames(halves)["train"].height == 20


def test_export_of_what_a_format_cannot_hold_is_a_clear_error(
    workspace: Workspace, tmp_path: Path
) -> None:
    nested = tmp_path / "nested.jsonl"
    nested.write_text('{"a": 1, "tags": ["x", "y"]}\n{"a": 2, "tags": []}\n', encoding="utf-8")
    workspace.datasets.add(nested, name="nested")
    with pytest.raises(InvalidInputError, match=r"cannot export nested:1 to out\.csv"):
        workspace.datasets.export("nested", tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()
    assert workspace.datasets.export("nested", tmp_path / "out.jsonl").exists()
