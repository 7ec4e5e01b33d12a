"""The hand-written optimization scripts `optimize.py` measures Fermion against.

Each is what a user writes with the libraries' own tools, no Fermion code:
  - `export_minilm` + `bert_fuse` + `quantize_int8`: the MiniLM's transformer exported by the
    TorchScript exporter with eager attention (its last hidden state as output; mean pooling and
    normalization in numpy), fused by `onnxruntime.transformers.optimizer` (model_type "bert"),
    then ORT dynamic int8 per channel with ORT's default op types (MatMul, Attention, Gather,
    EmbedLayerNormalization ...), run by `MiniLMSession` with the model's own fast tokenizer
  - `export_module` + `quantize_int8`: a float32 nn.Module (feature matrix in, logits out)
    exported by the TorchScript exporter, dynamic int8 per channel, run by `ort_session`
  - `convert_sklearn`: skl2onnx with zipmap off, run by `ort_session`
  - `torch_ao_int8`: `torch.ao.quantization.quantize_dynamic` on the module's nn.Linear layers
    (the MHA fast path off, which the quantized TransformerEncoder cannot take)
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]


def ort_session(path: Path, threads: int) -> Any:
    """An ONNX Runtime CPU session with `threads` intra-op threads and every graph
    optimization, as a hand-written script sets it up."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def quantize_int8(src: Path, dst: Path, *, op_types: list[str] | None = None) -> Path:
    """ORT dynamic int8: int8 weights per output channel, ORT's default op types unless
    `op_types` names them."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(src),
        str(dst),
        per_channel=True,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=op_types,
        # what ORT's error asks for on a fused graph: its contrib ops' outputs carry no type
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return dst


# -- MiniLM --------------------------------------------------------------------------------------


def export_minilm(st_model: Any, path: Path) -> Path:
    """The sentence-transformers model's transformer, eager attention, TorchScript exporter:
    input_ids, attention_mask, token_type_ids in, last_hidden_state out."""
    import torch

    network = copy.deepcopy(st_model[0].auto_model)
    network.set_attn_implementation("eager")
    network.eval()

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.network = network

        def forward(self, ids: Any, mask: Any, types: Any) -> Any:
            out = self.network(input_ids=ids, attention_mask=mask, token_type_ids=types)
            return out.last_hidden_state

    tokenizer = st_model.tokenizer
    batch = tokenizer(
        ["a", "An example sentence, long enough to need padding in the other one."],
        padding=True,
        return_tensors="pt",
    )
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {name: {0: "batch", 1: "sequence"} for name in names}
    with torch.no_grad():
        torch.onnx.export(
            Hidden().eval(),
            tuple(batch[name] for name in names),
            str(path),
            dynamo=False,
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_axes={**axes, "last_hidden_state": {0: "batch", 1: "sequence"}},
            opset_version=17,
        )
    return path


def bert_fuse(src: Path, dst: Path, *, num_heads: int = 12, hidden_size: int = 384) -> Path:
    """ORT's transformer optimizer, BERT fusions (Attention, SkipLayerNormalization,
    EmbedLayerNormalization, BiasGelu), CPU."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimized = optimize_model(
        str(src),
        model_type="bert",
        num_heads=num_heads,
        hidden_size=hidden_size,
        opt_level=1,
        use_gpu=False,
    )
    optimized.save_model_to_file(str(dst))
    return dst


class MiniLMSession:
    """Texts in, normalized mean-pooled embeddings out: the fast tokenizer (padding to the
    batch's longest text, cut at `max_length`), the ONNX graph, pooling in numpy."""

    def __init__(self, path: Path, tokenizer: Any, max_length: int, threads: int) -> None:
        self.session = ort_session(path, threads)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.names = [i.name for i in self.session.get_inputs()]

    def encode(self, texts: list[str]) -> Matrix:
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="np"
        )
        feeds = {name: batch[name].astype(np.int64) for name in self.names}
        hidden = self.session.run(None, feeds)[0]
        mask = feeds["attention_mask"][..., None].astype(np.float32)
        pooled = (hidden * mask).sum(axis=1) / np.maximum(mask.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        vectors: Matrix = (pooled / np.maximum(norms, 1e-12)).astype(np.float32)
        return vectors


# -- PyTorch modules -----------------------------------------------------------------------------


def export_module(module: Any, n_features: int, path: Path) -> Path:
    """A float32 module (feature matrix in, logits out), TorchScript exporter, dynamic batch.
    The MHA fast path is off while tracing: its fused kernel has no ONNX export."""
    import torch

    module = module.eval()
    example = torch.zeros((2, n_features), dtype=torch.float32)
    fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad():
            torch.onnx.export(
                module,
                (example,),
                str(path),
                dynamo=False,
                input_names=["features"],
                output_names=["logits"],
                dynamic_axes={"features": {0: "batch"}, "logits": {0: "batch"}},
                opset_version=17,
            )
    finally:
        torch.backends.mha.set_fastpath_enabled(fast)
    return path


def torch_ao_int8(module: Any) -> Any:
    """torch.ao dynamic int8 of the module's nn.Linear layers (a copy)."""
    import torch

    quantized = torch.ao.quantization.quantize_dynamic(
        copy.deepcopy(module).eval(), {torch.nn.Linear}, dtype=torch.qint8
    )
    return quantized


# -- scikit-learn --------------------------------------------------------------------------------


def convert_sklearn(estimator: Any, n_features: int, path: Path) -> Path:
    """skl2onnx, float32 input `features`, probabilities as a tensor (zipmap off)."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType

    final = estimator.steps[-1][1] if hasattr(estimator, "steps") else estimator
    proto = to_onnx(
        estimator,
        initial_types=[("features", FloatTensorType([None, n_features]))],
        options={id(final): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    path.write_bytes(proto.SerializeToString())
    return path
