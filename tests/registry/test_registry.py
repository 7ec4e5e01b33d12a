"""The registry as a user drives it: refs, versions, aliases with their audit trail, cards."""

from __future__ import annotations

import getpass
import itertools
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from fermion.errors import InvalidInputError, NotFoundError
from fermion.registry.refs import ModelRef
from fermion.registry.registry import ModelRegistry
from fermion.training.trainer import train
from fermion.workspace import Workspace

ROW = {"age": 41, "income": 3100.5, "city": "lyon"}


@dataclass(frozen=True)
class Bundle:
    """A trained model's files (`model/`) and manifest, ready to register in any workspace."""

    folder: Path
    manifest: dict[str, Any]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory, credit_csv: Any) -> Bundle:
    """Train once per module, in a private SQLite workspace; tests register the result."""
    root = tmp_path_factory.mktemp("trained")
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("FERMION_")]:
            patch.delenv(key)
        with Workspace.init(root) as ws:
            ws.datasets.add(credit_csv(root / "credit.csv", seed=0), name="credit")
            version = train(ws, "credit", "status", "logistic").model
            assert version is not None
            model = ws.models.load(version)
            assert model.folder is not None
            shutil.copytree(model.folder / "model", root / "bundle" / "model")
            return Bundle(root / "bundle", ws.models.manifest(version))


def register(ws: Workspace, bundle: Bundle, name: str = "credit") -> int:
    version = ws.models.register(name, bundle.folder, bundle.manifest, metrics={"roc_auc": 0.9})
    return version.version


def _login() -> str:
    """Who an alias move is recorded as when no actor is given."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("credit", ModelRef("credit")),
        ("credit:3", ModelRef("credit", 3)),
        ("credit@production", ModelRef("credit", alias="production")),
        ("fraud.v2@canary-1", ModelRef("fraud.v2", alias="canary-1")),
    ],
)
def test_refs_parse_and_print_back(text: str, expected: ModelRef) -> None:
    assert ModelRef.parse(text) == expected
    assert str(expected) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("credit:0", "invalid model reference 'credit:0'"),
        ("credit:x", "NAME, NAME:VERSION or NAME@ALIAS"),
        ("credit:", "invalid model reference"),
        ("credit@", "invalid alias ''"),
        ("credit@1", "invalid alias '1'"),
        ("credit@prod uction", "invalid alias"),
        ("bad name", "invalid name 'bad name'"),
        ("@production", "invalid name ''"),
    ],
)
def test_bad_refs_are_refused_with_the_reason(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError, match=message):
        ModelRef.parse(text)


def test_register_get_list_versions(workspace: Workspace, bundle: Bundle) -> None:
    models: ModelRegistry = workspace.models
    assert models.list() == []
    assert [register(workspace, bundle) for _ in range(3)] == [1, 2, 3]
    register(workspace, bundle, "fraud")
    assert models.get("credit").version == 3
    second = models.get("credit:2")
    assert (second.ref, second.flavor, second.origin) == ("credit:2", "sklearn", "trained")
    assert second.signature.input_names == ["age", "income", "city"]
    assert second.signature.classes == ("bad", "good")
    assert second.metrics == {"roc_auc": 0.9}
    assert [v.version for v in models.versions("credit")] == [1, 2, 3]
    summaries = {s.name: s for s in models.list()}
    assert sorted(summaries) == ["credit", "fraud"]
    assert (summaries["credit"].latest_version, summaries["credit"].num_versions) == (3, 3)
    assert models.manifest("credit:1")["family"] == "logistic"


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("ghost", "no model named 'ghost'"),
        ("ghost@production", "no model named 'ghost'"),
        ("credit:7", "model 'credit' has no version 7"),
        ("credit@staging", "model 'credit' has no alias 'staging'"),
    ],
)
def test_unknown_refs_are_not_found(
    workspace: Workspace, bundle: Bundle, ref: str, message: str
) -> None:
    register(workspace, bundle)
    with pytest.raises(NotFoundError, match=message):
        workspace.models.get(ref)
    with pytest.raises(NotFoundError, match=message):
        workspace.models.load(ref)


def test_alias_moves_and_the_audit_trail(workspace: Workspace, bundle: Bundle) -> None:
    models = workspace.models
    for _ in range(3):
        register(workspace, bundle)
    first = models.set_alias("credit", "production", 1, actor="alice")
    assert (first.old_version, first.new_version, first.actor) == (None, 1, "alice")
    moved = models.set_alias("credit", "production", 3, actor="bob")
    assert (moved.old_version, moved.new_version) == (1, 3)
    models.set_alias("credit", "staging", 2)
    assert models.get("credit@production").version == 3
    assert models.get("credit:3").aliases == ("production",)
    assert models.get("credit:1").aliases == ()
    assert models.list()[0].aliases == {"production": 3, "staging": 2}

    removed = models.remove_alias("credit", "staging", actor="carol")
    assert (removed.old_version, removed.new_version) == (2, None)
    with pytest.raises(NotFoundError, match="no alias 'staging'"):
        models.get("credit@staging")

    history = models.history("credit")
    assert [(e.alias, e.old_version, e.new_version) for e in history] == [
        ("production", None, 1),
        ("production", 1, 3),
        ("staging", None, 2),
        ("staging", 2, None),
    ]
    assert [e.actor for e in history] == ["alice", "bob", _login(), "carol"]
    assert all(a.at <= b.at for a, b in itertools.pairwise(history))


def test_alias_errors_change_nothing(workspace: Workspace, bundle: Bundle) -> None:
    models = workspace.models
    register(workspace, bundle)
    models.set_alias("credit", "production", 1)
    with pytest.raises(NotFoundError, match="has no version 5"):
        models.set_alias("credit", "production", 5)
    with pytest.raises(InvalidInputError, match="invalid alias '2nd'"):
        models.set_alias("credit", "2nd", 1)
    with pytest.raises(NotFoundError, match="no alias 'canary'"):
        models.remove_alias("credit", "canary")
    with pytest.raises(NotFoundError, match="no model named 'ghost'"):
        models.set_alias("ghost", "production", 1)
    with pytest.raises(NotFoundError, match="no model named 'ghost'"):
        models.history("ghost")
    assert models.get("credit@production").version == 1
    assert len(models.history("credit")) == 1


def test_train_registers_with_alias_lineage_and_card(
    workspace: Workspace, tmp_path: Path, credit_csv: Any
) -> None:
    workspace.datasets.add(credit_csv(tmp_path / "credit.csv", seed=0), name="credit")
    result = train(
        workspace, "credit", "status", "lightgbm", {"num_boost_round": 20}, alias="production"
    )
    assert result.model is not None
    version = workspace.models.get("credit@production")
    assert version == result.model
    assert (version.flavor, version.origin) == ("lightgbm", "trained")
    assert version.run_id == result.run_id
    assert version.metrics == pytest.approx(result.metrics)
    assert workspace.models.history("credit")[0].new_version == 1

    card = workspace.models.card("credit@production")
    assert card.startswith("# Model card: credit:1")
    assert "- `credit:1` (train)" in card
    assert "| age | integer | no |" in card
    assert f"Trained by run {result.run_id}" in card
    assert "roc_auc" in card

    prediction = workspace.models.load("credit@production").predict(ROW)
    assert prediction.tolist()[0] in {"bad", "good"}


def test_a_failed_registration_stores_nothing(workspace: Workspace, bundle: Bundle) -> None:
    with pytest.raises(InvalidInputError, match="invalid name"):
        workspace.models.register("no good", bundle.folder, bundle.manifest)
    assert workspace.models.list() == []
