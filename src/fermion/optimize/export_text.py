"""ONNX export of a sentence-transformers embedding model: the transformer with pooling and
normalization inside the graph, and its tokenizer as `tokenizer.json`.

The transformer is exported by the TorchScript exporter with eager attention: its graph then
holds the MatMul/Softmax pattern that ONNX Runtime's transformer optimizer fuses into one
Attention node (SDPA's export does not fuse). The tokenizer file is the fast tokenizer's own,
set to cut at `max_seq_length` tokens and to pad a batch to its longest text, so the
`tokenizers` library alone tokenizes as sentence-transformers does.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fermion.errors import InvalidInputError, require
from fermion.optimize.export import (
    EMBEDDINGS,
    MODEL_FILE,
    TOKENIZER_FILE,
    OnnxGraph,
    default_opset,
)
from fermion.optimize.export_torch import quiet_export

if TYPE_CHECKING:
    from fermion.registry.flavors.sentence_transformers_flavor import SentenceEncoder

TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
POOLING_MODES = ("mean", "cls", "max")
# Texts of different lengths, so the traced batch is padded and the mask path is recorded.
_TRACE_ROWS = 8  # of the sample: the trace records the graph, not the data
_TRACE_TEXTS = ("a", "An example sentence, long enough to need padding in the other one.")


def export_encoder(
    encoder: SentenceEncoder, folder: Path, *, opset: int, sample: Sequence[str] | None = None
) -> OnnxGraph:
    """Write `folder/model.onnx` and `folder/tokenizer.json` for a `SentenceEncoder`."""
    require("torch", "torch")
    import onnx
    import torch

    pipeline = list(encoder.model)
    mode, normalize = _pooling(pipeline)
    tokenizer = encoder.model.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise InvalidInputError(
            "the model's tokenizer has no tokenizer.json (it is not a fast one)"
        )
    names = tuple(name for name in TEXT_INPUTS if name in tokenizer.model_input_names)
    # a copy: the loaded model is shared in the process, and its attention is switched here
    network = copy.deepcopy(pipeline[0].auto_model)
    if callable(getattr(network, "set_attn_implementation", None)):
        network.set_attn_implementation("eager")
    else:
        network.config._attn_implementation = "eager"
    network.eval()
    texts = [*(str(text) for text in list(sample or ())[:_TRACE_ROWS]), *_TRACE_TEXTS]
    batch = tokenizer(
        texts,
        padding=True,
        truncation="longest_first",
        max_length=encoder.max_seq_length,
        return_tensors="pt",
    )
    path = folder / MODEL_FILE
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    with quiet_export(), torch.no_grad():
        torch.onnx.export(
            _pooled_module(network, names, mode, normalize),
            tuple(batch[name] for name in names),
            str(path),
            dynamo=False,
            input_names=list(names),
            output_names=[EMBEDDINGS],
            dynamic_axes={**axes, EMBEDDINGS: {0: "batch"}},
            opset_version=opset,
        )
    onnx.checker.check_model(str(path))
    _write_tokenizer(tokenizer, encoder.max_seq_length, folder / TOKENIZER_FILE)
    return OnnxGraph(
        path=path,
        kind="embedding",
        input_names=names,
        output_name=EMBEDDINGS,
        opset=default_opset(onnx.load(str(path), load_external_data=False)),
        source_flavor="sentence_transformers",
        dimension=encoder.dimension,
        max_seq_length=encoder.max_seq_length,
    )


def _pooling(pipeline: Sequence[Any]) -> tuple[str, bool]:
    """The pooling mode and whether vectors are normalized, for a pipeline of a transformer,
    a pooling and an optional normalization; any other module is refused by name."""
    kinds = [type(module).__name__ for module in pipeline]
    if (
        len(pipeline) not in (2, 3)
        or not hasattr(pipeline[0], "auto_model")
        or kinds[1] != "Pooling"
        or kinds[2:] not in ([], ["Normalize"])
    ):
        raise InvalidInputError(
            f"only a Transformer, Pooling and optional Normalize pipeline can be exported; "
            f"this model has {', '.join(kinds)}"
        )
    mode = getattr(pipeline[1], "pooling_mode", None)
    if mode is None and callable(getattr(pipeline[1], "get_pooling_mode_str", None)):
        mode = pipeline[1].get_pooling_mode_str()
    if mode not in POOLING_MODES:
        raise InvalidInputError(
            f"pooling {mode!r} cannot be exported; exportable: {', '.join(POOLING_MODES)}"
        )
    return str(mode), len(pipeline) == 3


def _pooled_module(network: Any, names: Sequence[str], mode: str, normalize: bool) -> Any:
    """The transformer with sentence-transformers' pooling (and normalization) after it."""
    import torch

    class Pooled(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            feeds = dict(zip(names, inputs, strict=True))
            tokens: torch.Tensor = self.network(**feeds)[0]
            mask = feeds["attention_mask"]
            if mode == "mean":
                weights = mask.unsqueeze(-1).to(tokens.dtype)
                total = (tokens * weights).sum(dim=1)
                pooled = total / torch.clamp(weights.sum(dim=1), min=1e-9)
            elif mode == "max":
                hidden = mask.unsqueeze(-1).expand_as(tokens) == 0
                pooled = tokens.masked_fill(hidden, float("-inf")).max(dim=1).values
            else:  # cls: the first token that is not padding
                first = mask.to(torch.int32).argmax(dim=1)
                index = first.view(-1, 1, 1).expand(-1, 1, tokens.shape[-1])
                pooled = torch.gather(tokens, 1, index).squeeze(1)
            if normalize:
                pooled = torch.nn.functional.normalize(pooled, p=2.0, dim=-1)
            return pooled

    return Pooled().eval()


def _write_tokenizer(tokenizer: Any, max_seq_length: int, path: Path) -> None:
    """The fast tokenizer's `tokenizer.json`, cutting and padding as the model's own call."""
    tokenizers: Any = require("tokenizers", "onnx")
    backend = tokenizers.Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.enable_truncation(max_length=max_seq_length)
    if tokenizer.pad_token is not None:
        backend.enable_padding(pad_id=tokenizer.pad_token_id, pad_token=tokenizer.pad_token)
    backend.save(str(path))
