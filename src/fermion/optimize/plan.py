"""Which variants an optimize run builds, from what was asked and the model's family."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from fermion.errors import InvalidInputError

if TYPE_CHECKING:
    from fermion.registry.model import Model

Technique = Literal["none", "dynamic", "static", "fp16"]
# Networks: their MatMul/Gemm weights are most of the work, so int8 weights pay. A tree
# ensemble's graph has none (TreeEnsemble nodes), and a linear model's one small product
# gains nothing from int8.
NETWORKS = frozenset({"torch", "torch_export", "sentence_transformers"})
_LABELS = {
    "none": "float32",
    "dynamic": "int8 dynamic",  # weights per channel, activations quantized per call
    "static": "int8 static",  # QDQ, weights per channel, activations calibrated
    "fp16": "float16",
}


@dataclass(frozen=True)
class Variant:
    """One variant to build: a quantization of the exported graph, of the pruned network
    when `pruned`."""

    name: str
    technique: str
    quantize: Technique
    pruned: bool = False


def plan_variants(
    model: Model, quantize: str, auto: bool, prune: float | None, prune_mode: str = "structured"
) -> list[Variant]:
    """The float32 export first, then each quantization chosen; the same again from the
    pruned network when `prune` is set."""
    network = model.flavor in NETWORKS
    if prune is not None and model.flavor != "torch":
        raise InvalidInputError(
            f"pruning is for the torch_mlp family's networks; this is a {model.flavor} model"
        )
    chosen: list[Technique]
    if auto:
        chosen = ["dynamic", "static"] if model.flavor in ("torch", "torch_export") else []
        chosen = ["dynamic"] if model.flavor == "sentence_transformers" else chosen
    elif quantize == "auto":
        chosen = ["dynamic"] if network else []
    elif quantize == "none":
        chosen = []
    else:
        chosen = [quantize]  # type: ignore[list-item]
    if not network and any(q in ("dynamic", "static") for q in chosen):
        raise InvalidInputError(
            f"int8 quantization does not help a {model.flavor} model (its graph has no "
            "large matrix products): use --quantize none, or --auto"
        )
    if "static" in chosen and model.task == "embedding":
        raise InvalidInputError(
            "static int8 is calibrated on feature rows; quantize embedding models with dynamic"
        )
    plan = [Variant("onnx", _LABELS["none"], "none")]
    plan += [Variant(f"onnx-{q}", _LABELS[q], q) for q in chosen]
    if prune is not None:
        label = f"{prune_mode} pruning {prune:g}"
        plan.append(Variant("pruned-onnx", f"{label}, {_LABELS['none']}", "none", True))
        plan += [Variant(f"pruned-onnx-{q}", f"{label}, {_LABELS[q]}", q, True) for q in chosen]
    return plan
