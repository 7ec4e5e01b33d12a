"""Fixtures shared by the optimize tests: a tiny BERT embedding graph."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

Feeds = dict[str, np.ndarray[Any, Any]]


class MeanPooled(torch.nn.Module):
    """A BERT encoder with mean pooling and L2 normalization, as an embedding graph has."""

    def __init__(self, bert: torch.nn.Module) -> None:
        super().__init__()
        self.bert = bert

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor
    ) -> torch.Tensor:
        hidden = self.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=1)


@pytest.fixture(scope="module")
def bert_onnx(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Feeds]:
    """A tiny random BERT (2 heads, hidden 32), exported with the TorchScript exporter."""
    from transformers import BertConfig, BertModel

    config = BertConfig(
        hidden_size=32,
        num_attention_heads=2,
        num_hidden_layers=2,
        intermediate_size=64,
        vocab_size=100,
        max_position_embeddings=64,
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    encoder = MeanPooled(BertModel(config)).eval()
    ids = torch.randint(1, 100, (3, 10))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0  # one padded row, so the fused attention's masking is exercised
    types = torch.zeros_like(ids)
    path = tmp_path_factory.mktemp("bert") / "model.onnx"
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # legacy exporter
        warnings.filterwarnings("ignore", message="Converting a tensor to a Python boolean")
        warnings.filterwarnings("ignore", message="Exporting aten::index", category=UserWarning)
        torch.onnx.export(
            encoder,
            (ids, mask, types),
            str(path),
            dynamo=False,
            input_names=names,
            output_names=["embeddings"],
            dynamic_axes={
                **{n: {0: "batch", 1: "sequence"} for n in names},
                "embeddings": {0: "batch"},
            },
            opset_version=17,
        )
    feeds = {
        "input_ids": ids.numpy(),
        "attention_mask": mask.numpy(),
        "token_type_ids": types.numpy(),
    }
    return path, feeds
