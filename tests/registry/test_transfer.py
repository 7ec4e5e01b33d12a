"""Export and import: a bundle moves between workspaces intact, and a bad one is refused."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from fermion.errors import ConflictError, IntegrityError, InvalidInputError, NotFoundError
from fermion.registry.flavors import get_flavor
from fermion.training.trainer import train
from fermion.workspace import Workspace

ROWS = [
    {"age": 23, "income": 1800.0, "city": "paris"},
    {"age": 41, "income": 3100.5, "city": "lyon"},
    {"age": 66, "income": 4200.0, "city": "nice"},
]


@dataclass(frozen=True)
class Exported:
    """A LightGBM model trained in another workspace: its exported bundle and its outputs."""

    tar: Path
    folder: Path  # its `model/` files, for registering variants
    manifest: dict[str, Any]
    content_hash: str
    predictions: list[str]
    proba: npt.NDArray[np.float64]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, credit_csv: Any) -> Exported:
    root = tmp_path_factory.mktemp("source")
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("FERMION_")]:
            patch.delenv(key)
        with Workspace.init(root) as ws:
            ws.datasets.add(credit_csv(root / "credit.csv", seed=2), name="credit")
            version = train(ws, "credit", "status", "lightgbm", {"num_boost_round": 20}).model
            assert version is not None
            model = ws.models.load(version)
            assert model.folder is not None
            shutil.copytree(model.folder / "model", root / "bundle" / "model")
            return Exported(
                tar=ws.models.export(version.ref, root / "credit.tar"),
                folder=root / "bundle",
                manifest=ws.models.manifest(version),
                content_hash=version.content_hash,
                predictions=model.predict(ROWS).tolist(),
                proba=model.predict_proba(ROWS),
            )


def test_import_keeps_predictions_and_marks_the_origin(
    workspace: Workspace, exported: Exported
) -> None:
    version = workspace.models.import_bundle(exported.tar)
    assert (version.ref, version.origin, version.run_id) == ("credit:1", "imported", None)
    assert version.content_hash == exported.content_hash  # the very same manifest and files
    assert version.metrics == pytest.approx(exported.manifest["metrics"])
    model = workspace.models.load("credit")
    assert model.predict(ROWS).tolist() == exported.predictions
    np.testing.assert_array_equal(model.predict_proba(ROWS), exported.proba)
    assert "origin imported" in workspace.models.card("credit:1")

    again = workspace.models.import_bundle(exported.tar, name="credit-copy", description="QA copy")
    assert (again.ref, again.description) == ("credit-copy:1", "QA copy")
    assert again.content_hash == version.content_hash


def test_export_import_round_trip_in_each_format(
    workspace: Workspace, exported: Exported, tmp_path: Path
) -> None:
    workspace.models.import_bundle(exported.tar)
    folder = tmp_path / "out"
    folder.mkdir()
    into_folder = workspace.models.export("credit:1", folder)
    assert into_folder == folder / "credit-v1.tar.gz"
    plain = workspace.models.export("credit", tmp_path / "model.tar")
    gzipped = workspace.models.export("credit", tmp_path / "model.tar.gz")
    assert gzipped.read_bytes()[:2] == b"\x1f\x8b" and plain.read_bytes()[:2] != b"\x1f\x8b"
    with tarfile.open(into_folder) as tar:
        assert sorted(tar.getnames()) == [
            "credit-v1/MODEL_CARD.md",
            "credit-v1/SHA256SUMS",
            "credit-v1/fermion-model.json",
            "credit-v1/model/model.txt",
        ]
    for index, path in enumerate((into_folder, plain, gzipped)):
        version = workspace.models.import_bundle(path, name=f"copy{index}")
        assert version.origin == "imported"
        assert workspace.models.load(version).predict(ROWS).tolist() == exported.predictions


def test_export_needs_an_existing_folder(workspace: Workspace, exported: Exported) -> None:
    workspace.models.import_bundle(exported.tar)
    with pytest.raises(NotFoundError, match="no folder"):
        workspace.models.export("credit", workspace.root / "missing" / "credit.tar")
    with pytest.raises(NotFoundError, match="no model named 'ghost'"):
        workspace.models.export("ghost", workspace.root)


Member = tuple[tarfile.TarInfo, bytes | None]


def _members(tar_path: Path) -> list[Member]:
    with tarfile.open(tar_path) as tar:
        return [
            (m, tar.extractfile(m).read() if m.isfile() else None)  # type: ignore[union-attr]
            for m in tar.getmembers()
        ]


def _write(path: Path, members: list[Member]) -> Path:
    with tarfile.open(path, "w") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"print('hi')\n") -> Member:
    return tarfile.TarInfo(name), data


def _symlink(name: str, target: str) -> Member:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info, None


def _tamper(members: list[Member]) -> list[Member]:
    return [
        (m, d.replace(b"num_leaves=", b"num_leaves=9", 1) if m.name.endswith("model.txt") else d)
        for m, d in members
        if d is not None
    ]


BAD_BUNDLES: dict[str, tuple[Callable[[list[Member]], list[Member]], str]] = {
    "absolute path": (lambda ms: [*ms, _file("/tmp/fermion-evil.py")], "outside its folder"),
    "dot-dot entry": (lambda ms: [*ms, _file("credit-v1/../../evil.py")], "outside its folder"),
    "escaping symlink": (
        lambda ms: [*ms, _symlink("credit-v1/model/passwd", "../../../../etc/passwd")],
        "links outside its folder",
    ),
    "absolute symlink": (
        lambda ms: [*ms, _symlink("credit-v1/model/passwd", "/etc/passwd")],
        "links outside its folder",
    ),
    "tampered file": (_tamper, "model/model.txt in the bundle fails its checksum"),
    "no SHA256SUMS": (
        lambda ms: [(m, d) for m, d in ms if not m.name.endswith("SHA256SUMS")],
        "the bundle has no SHA256SUMS",
    ),
    "unlisted file": (
        lambda ms: [*ms, _file("credit-v1/model/extra.py")],
        "files its manifest does not list",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_BUNDLES))
def test_import_refuses_an_unsafe_or_damaged_bundle(
    workspace: Workspace, exported: Exported, tmp_path: Path, case: str
) -> None:
    change, message = BAD_BUNDLES[case]
    members = _members(exported.tar)
    assert {m.name.split("/")[0] for m, _ in members} == {"credit-v1"}
    bad = _write(tmp_path / "bad.tar", change(members))
    with pytest.raises(IntegrityError, match=message):
        workspace.models.import_bundle(bad)
    assert workspace.models.list() == []
    assert not (Path("/tmp") / "fermion-evil.py").exists()
    assert not list(workspace.scratch_dir.iterdir())  # the extracted files are cleaned up


def test_import_refuses_what_is_not_a_bundle(workspace: Workspace, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="no model bundle at"):
        workspace.models.import_bundle(tmp_path / "missing.tar")
    (tmp_path / "notes.tar").write_text("not a tar", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="is not a model bundle"):
        workspace.models.import_bundle(tmp_path / "notes.tar")
    empty = _write(tmp_path / "empty.tar", [_file("readme.txt", b"hello")])
    with pytest.raises(IntegrityError, match=r"no single fermion-model\.json"):
        workspace.models.import_bundle(empty)


def test_an_imported_pickle_needs_trust_to_load(
    workspace: Workspace, exported: Exported, tmp_path: Path
) -> None:
    meta = exported.manifest["flavor_meta"]
    fitted = get_flavor("lightgbm").load(exported.folder / "model", meta, trusted=False)
    pickled = tmp_path / "pickled"
    meta = get_flavor("python").save(fitted, pickled / "model")
    manifest = {**exported.manifest, "flavor": "python", "flavor_meta": meta}
    trained = workspace.models.register("custom", pickled, manifest)
    assert workspace.models.load(trained).predict(ROWS).tolist() == exported.predictions

    bundle = workspace.models.export("custom", tmp_path / "custom.tar.gz")
    imported = workspace.models.import_bundle(bundle, name="custom-imported")
    assert (imported.flavor, imported.origin) == ("python", "imported")
    with pytest.raises(ConflictError, match="trusted=True"):
        workspace.models.load("custom-imported")
    model = workspace.models.load("custom-imported", trusted=True)
    assert model.predict(ROWS).tolist() == exported.predictions


def _resigned(members: list[Member], edit: Callable[[dict[str, Any]], None]) -> list[Member]:
    """The bundle with its manifest edited and SHA256SUMS recomputed to match, as a forger would."""
    files = {m.name: d for m, d in members if d is not None}
    manifest_name = next(n for n in files if n.endswith("/fermion-model.json"))
    manifest = json.loads(files[manifest_name])
    edit(manifest)
    files[manifest_name] = json.dumps(manifest).encode()
    top = manifest_name.split("/")[0]
    sums = [
        f"{hashlib.sha256(data).hexdigest()}  {name.removeprefix(top + '/')}"
        for name, data in files.items()
        if not name.endswith("SHA256SUMS")
    ]
    files[f"{top}/SHA256SUMS"] = ("\n".join(sums) + "\n").encode()
    return [_file(name, data) for name, data in files.items()]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.pop("signature"), "signature"),
        (lambda m: m.update(signature={"inputs": "age"}), "signature"),
        (lambda m: m.pop("flavor"), "flavor"),
        (lambda m: m.update(format_version="two"), "format version"),
    ],
)
def test_import_refuses_a_malformed_manifest(
    workspace: Workspace,
    exported: Exported,
    tmp_path: Path,
    edit: Callable[[dict[str, Any]], None],
    message: str,
) -> None:
    bad = _write(tmp_path / "bad.tar", _resigned(_members(exported.tar), edit))
    with pytest.raises(IntegrityError, match=message):
        workspace.models.import_bundle(bad)
    assert workspace.models.list() == []
