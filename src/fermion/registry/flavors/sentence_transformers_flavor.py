"""The "sentence_transformers" flavor: a sentence-embedding model as its library's own files.

The folder is what `SentenceTransformer.save` writes (configs, tokenizer, safetensors weights,
a subfolder per pipeline module) and it loads from that local path only: the Hugging Face hub
is never contacted. Without `trusted`, a folder loads only when every module that
`modules.json` names is one of sentence-transformers' own and no weights file is a pickle.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fermion.errors import (
    ConflictError,
    IntegrityError,
    InvalidInputError,
    StorageError,
    require,
)

MODULES_FILE = "modules.json"
_PICKLES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


class SentenceEncoder:
    """A loaded sentence-transformers model: texts in, one float32 vector per text out."""

    flavor: ClassVar[str] = "sentence_transformers"

    def __init__(self, model: Any) -> None:
        self.model = model
        dimension = _call_first(
            model, ("get_embedding_dimension", "get_sentence_embedding_dimension")
        )
        if not isinstance(dimension, int) or dimension < 1:
            raise InvalidInputError("the model gives no fixed-size sentence embedding")
        self.dimension = dimension
        self.max_seq_length = int(model.max_seq_length)

    def __repr__(self) -> str:
        return f"<SentenceEncoder dimension={self.dimension}>"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of shape (len(texts), dimension), normalized if the model's pipeline is;
        a text past `max_seq_length` tokens is cut, as the model does."""
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(list(texts), convert_to_numpy=True, show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """The tokens the model reads of each text: special tokens included, cut as `encode`
        cuts them. Tokenizes exactly as `encode` does, so the two may run side by side."""
        if not texts:
            return []
        method = "preprocess" if hasattr(self.model, "preprocess") else "tokenize"
        features = getattr(self.model, method)(list(texts))
        return [int(n) for n in features["attention_mask"].sum(dim=1).tolist()]


def _call_first(model: Any, names: Sequence[str]) -> Any:
    """The answer of the first of `names` the model has (the library renamed some methods)."""
    for name in names:
        method = getattr(model, name, None)
        if method is not None:
            return method()
    return None


def check_folder(folder: Path) -> None:
    """Refuse a folder that would import other code or unpickle weights when it loads."""
    try:
        modules = json.loads((folder / MODULES_FILE).read_bytes())
    except (OSError, ValueError) as exc:
        raise IntegrityError(f"cannot read {folder / MODULES_FILE}: {exc}") from exc
    if not isinstance(modules, list):
        raise IntegrityError(f"{MODULES_FILE} must list the model's modules")
    for module in modules:
        kind = module.get("type") if isinstance(module, dict) else None
        if not isinstance(kind, str) or not kind.startswith("sentence_transformers."):
            raise ConflictError(
                f"{MODULES_FILE} names the module {kind!r}, which is not sentence-transformers' "
                "own and would run its code; pass trusted=True if you trust its source"
            )
    pickled = sorted(p.name for p in folder.rglob("*") if p.suffix.lower() in _PICKLES)
    if pickled:
        raise ConflictError(
            f"the model holds pickled weights ({', '.join(pickled)}), which can run any code; "
            "pass trusted=True if you trust its source"
        )


def load_encoder(path: Path) -> SentenceEncoder:
    """The sentence-transformers folder at `path`, loaded offline on the CPU."""
    if not (path / MODULES_FILE).is_file():
        raise InvalidInputError(
            f"{path} is not a sentence-transformers model folder (it has no {MODULES_FILE})"
        )
    from fermion.training.text import _load

    return SentenceEncoder(_load(str(path)))


class SentenceTransformersFlavor:
    name: ClassVar[str] = "sentence_transformers"
    pickle_based: ClassVar[bool] = False

    def save(self, model: object, folder: Path) -> dict[str, Any]:
        if not isinstance(model, SentenceEncoder):
            raise InvalidInputError(
                f"the sentence_transformers flavor saves a SentenceEncoder, not {model!r}"
            )
        library: Any = require("sentence_transformers", "text")
        folder.mkdir(parents=True, exist_ok=True)
        with _no_progress_bars():  # transformers draws one per weight shard it writes
            model.model.save(str(folder), create_model_card=False)
        return {
            "flavor": self.name,
            "library": "sentence-transformers",
            "library_version": library.__version__,
            "dimension": model.dimension,
            "max_seq_length": model.max_seq_length,
        }

    def load(self, folder: Path, meta: Mapping[str, Any], *, trusted: bool) -> SentenceEncoder:
        if not (folder / MODULES_FILE).is_file():
            raise StorageError(f"model file {folder / MODULES_FILE} is missing")
        if not trusted:
            check_folder(folder)
        encoder = load_encoder(folder)
        if meta.get("dimension") not in (None, encoder.dimension):
            raise IntegrityError(
                f"the manifest says {meta.get('dimension')} dimensions; the model gives "
                f"{encoder.dimension}"
            )
        return encoder


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    transformers_logging: Any = require("transformers.utils.logging", "text")

    enabled = transformers_logging.is_progress_bar_enabled()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            transformers_logging.enable_progress_bar()
