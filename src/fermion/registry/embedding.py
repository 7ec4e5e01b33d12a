"""Embedding models in the registry: a sentence-transformers model registered as a version.

An embedding version takes one string column, `input`, and has task `embedding`: `Model.embed`
(and `predict`) return one float32 vector per text, and the server answers OpenAI's
`POST /v1/embeddings` with it. Its flavor metadata records the dimension and the longest
input in tokens. Nothing is downloaded: the source is the model bundled with Fermion's `text`
extra or a local folder.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fermion.entities import ColumnSpec, LogicalType, ModelVersion, Signature
from fermion.errors import InvalidInputError

if TYPE_CHECKING:
    from fermion.registry.registry import ModelRegistry

EMBEDDING = "embedding"
INPUT_COLUMN = "input"


def register_embedding(
    models: ModelRegistry,
    name: str,
    source: str | Path | None = None,
    *,
    description: str = "",
) -> ModelVersion:
    """Register a sentence-embedding model as a new version of `name`.

    `source` is `all-MiniLM-L6-v2` (the default: the model bundled with the `text` extra) or a
    local sentence-transformers folder. Registering the same model again stores no new files.
    """
    from fermion.registry.flavors.sentence_transformers_flavor import (
        SentenceTransformersFlavor,
        load_encoder,
    )

    folder, label = _source_folder(source)
    encoder = load_encoder(folder)
    signature = Signature((ColumnSpec(INPUT_COLUMN, LogicalType.STRING, False),), EMBEDDING)
    with tempfile.TemporaryDirectory(prefix="fermion-embedding-") as scratch:
        bundle = Path(scratch)
        manifest: dict[str, Any] = {
            "name": name,
            "flavor": SentenceTransformersFlavor.name,
            "flavor_meta": SentenceTransformersFlavor().save(encoder, bundle / "model"),
            "family": f"sentence-transformers:{label}",
            "signature": signature.to_dict(),
            "classes": [],
            "preprocessor": None,
            "inputs": "frame",
            "params": {"source": label},
            "metrics": {},
        }
        return models.register(name, bundle, manifest, description=description, origin="pretrained")


def _source_folder(source: str | Path | None) -> tuple[Path, str]:
    """The folder to load, and the name the manifest records for it."""
    from fermion.training.text import DEFAULT_TEXT_MODEL, _model_path

    if source is None or str(source) == DEFAULT_TEXT_MODEL:
        return Path(_model_path(DEFAULT_TEXT_MODEL)), DEFAULT_TEXT_MODEL
    folder = Path(source).expanduser()
    if not folder.is_dir():
        raise InvalidInputError(
            f"{source} is neither {DEFAULT_TEXT_MODEL} (the bundled model) nor a local folder; "
            "models are never downloaded"
        )
    return folder.resolve(), folder.resolve().name
