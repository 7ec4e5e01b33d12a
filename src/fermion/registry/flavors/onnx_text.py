"""An embedding model as an ONNX graph and a `tokenizer.json`: `OnnxEncoder`, which has the
`SentenceEncoder` interface (texts in, one float32 vector per text out).

The texts are tokenized by the `tokenizers` library (special tokens added, cut at
`max_seq_length` tokens), sorted by length and run in batches of similar length (at most
`batch_size` texts, little padding: `length_batches`), each padded to its longest text; the
graph pools and normalizes.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from fermion.errors import InvalidInputError, StorageError, first_line, require
from fermion.registry.flavors.onnx_flavor import (
    EMBEDDING,
    TOKENIZER_FILE,
    OnnxSession,
    checked_meta,
)

_PAD_TOKENS = ("[PAD]", "<pad>")


class OnnxEncoder:
    """Texts in, one float32 vector of `dimension` values per text out, from an ONNX graph."""

    flavor: ClassVar[str] = "onnx"
    batch_size: ClassVar[int] = 32

    def __init__(
        self, session: OnnxSession, tokenizer: Any, meta: Mapping[str, Any], tokenizer_path: Path
    ) -> None:
        """`tokenizer` is a `tokenizers.Tokenizer`, set here to cut at `max_seq_length` and to
        leave padding to the encoder."""
        self.meta = checked_meta(meta, EMBEDDING)
        self.session = session
        self.tokenizer_path = tokenizer_path
        self.dimension: int = self.meta["dimension"]
        self.max_seq_length: int = self.meta["max_seq_length"]
        self._pad_id = _pad_id(tokenizer)
        tokenizer.no_padding()  # each batch is padded here, to its own longest text
        tokenizer.enable_truncation(max_length=self.max_seq_length)
        self._tokenizer = tokenizer

    @classmethod
    def from_file(
        cls, path: Path, meta: Mapping[str, Any], *, tokenizer: Path | None = None
    ) -> OnnxEncoder:
        """The graph in the file `path` with the `tokenizer.json` beside it (or at
        `tokenizer`), described by flavor metadata `meta` (kind "embedding", `dimension`,
        `max_seq_length`; input and output names default to the contract's)."""
        tokenizers: Any = require("tokenizers", "onnx")
        checked = checked_meta(meta, EMBEDDING)
        path = Path(path)
        tokenizer_path = Path(tokenizer) if tokenizer is not None else path.parent / TOKENIZER_FILE
        if not tokenizer_path.is_file():
            raise StorageError(f"tokenizer file {tokenizer_path} is missing")
        try:
            loaded = tokenizers.Tokenizer.from_file(str(tokenizer_path))
        except Exception as exc:  # the library raises plain Exceptions for a bad file
            raise StorageError(f"cannot read {tokenizer_path}: {first_line(exc)}") from exc
        session = OnnxSession(
            path,
            feeds=checked["input_names"],
            output=checked["output_name"],
            weights_8bit=[tuple(pair) for pair in checked.get("weights_8bit", [])],
        )
        return cls(session, loaded, checked, tokenizer_path)

    def __repr__(self) -> str:
        return f"<OnnxEncoder dimension={self.dimension}>"

    @property
    def path(self) -> Path:
        return self.session.path

    @property
    def estimator(self) -> OnnxSession:
        """The session (its `model` is ONNX Runtime's own), as `Model.estimator` reads it."""
        return self.session

    def limit_threads(self, threads: int) -> None:
        """Encode with at most `threads` intra-op threads per call."""
        self.session.limit_threads(threads)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Vectors of shape (len(texts), dimension) as the graph gives them (pooled and
        normalized there); a text past `max_seq_length` tokens is cut."""
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        vectors = np.empty((len(texts), self.dimension), dtype=np.float32)
        for rows, feeds in self.batches(texts):
            vectors[rows] = self._run(feeds, len(rows))
        return vectors

    def batches(self, texts: Sequence[str]) -> Iterator[tuple[list[int], dict[str, np.ndarray]]]:
        """The graph feeds `encode` runs for `texts`: batches of similar length, each with
        the positions of its texts in `texts`."""
        encodings = self._tokenizer.encode_batch(list(texts))
        lengths = [len(encoding.ids) for encoding in encodings]
        for rows in length_batches(lengths, max_rows=self.batch_size):
            yield rows, self._feeds([encodings[i] for i in rows])

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """The tokens the model reads of each text: special tokens included, cut as `encode`
        cuts them."""
        if not texts:
            return []
        return [len(encoding.ids) for encoding in self._tokenizer.encode_batch(list(texts))]

    def _feeds(self, encodings: Sequence[Any]) -> dict[str, np.ndarray]:
        width = max(1, max(len(encoding.ids) for encoding in encodings))
        arrays = {
            "input_ids": np.full((len(encodings), width), self._pad_id, dtype=np.int64),
            "attention_mask": np.zeros((len(encodings), width), dtype=np.int64),
            "token_type_ids": np.zeros((len(encodings), width), dtype=np.int64),
        }
        for row, encoding in enumerate(encodings):
            length = len(encoding.ids)
            arrays["input_ids"][row, :length] = encoding.ids
            arrays["attention_mask"][row, :length] = 1
            arrays["token_type_ids"][row, :length] = encoding.type_ids
        return {name: arrays[name] for name in self.session.input_names}

    def _run(self, feeds: Mapping[str, np.ndarray], rows: int) -> np.ndarray:
        out = np.asarray(self.session.run(feeds), dtype=np.float32)
        if out.shape != (rows, self.dimension):
            raise InvalidInputError(
                f"the ONNX graph gave embeddings of shape {out.shape}; expected "
                f"{(rows, self.dimension)}"
            )
        return out


def length_batches(
    lengths: Sequence[int], *, max_rows: int = 32, max_padding: float = 0.2
) -> list[list[int]]:
    """Positions of `lengths` grouped into batches of similar length, longest first: a batch
    ends at `max_rows` or when padding every text to its longest would make more than
    `max_padding` of the batch's tokens padding.

    Padding is work the graph does for nothing (one 50-token text padded 31 others of about
    15 to 50: 1,600 tokens for 490), and with int8 it costs accuracy too: padded positions
    share each matrix product's activation scale with the short texts' real tokens.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    batch: list[int] = []
    tokens = 0
    for i in order:
        if batch:
            padded = (len(batch) + 1) * lengths[batch[0]]
            if len(batch) >= max_rows or padded - tokens - lengths[i] > max_padding * padded:
                batches.append(batch)
                batch, tokens = [], 0
        batch.append(i)
        tokens += lengths[i]
    if batch:
        batches.append(batch)
    return batches


def _pad_id(tokenizer: Any) -> int:
    """The id of the tokenizer's padding token (0 when it names none)."""
    padding = tokenizer.padding
    if padding and isinstance(padding.get("pad_id"), int):
        return int(padding["pad_id"])
    for token in _PAD_TOKENS:
        found = tokenizer.token_to_id(token)
        if found is not None:
            return int(found)
    return 0
