"""Building an optimize run's variants: each source exported once and checked, then each
variant's graph written into a folder the `onnx` flavor loads."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fermion.errors import InvalidInputError
from fermion.optimize.export import MODEL_FILE, TOKENIZER_FILE, OnnxGraph, export_onnx
from fermion.optimize.measure import Candidate
from fermion.optimize.parity import Parity, check_parity
from fermion.optimize.plan import Variant

if TYPE_CHECKING:
    from fermion.optimize.optimizer import OptimizeOptions
    from fermion.optimize.rows import Rows
    from fermion.registry.model import Model

PARITY_ROWS = 256  # validation rows each export is checked on
# A float32 export computes what the source computes, in another order: more than this is a
# conversion error, not rounding.
MAX_PROBABILITY_DIFF = 1e-3
MAX_VALUE_DIFF = 1e-3  # relative to the spread of the source's outputs
MIN_COSINE = 0.999
CALIBRATION_TEXTS = 512  # an embedding model's activation ranges come from these many texts


class VariantBuilder:
    """Exports the source (and its pruned copy) once each, and writes every variant from
    those exports into `work/<variant>/`."""

    def __init__(
        self,
        model: Model,
        rows: Rows,
        work: Path,
        options: OptimizeOptions,
        say: Callable[[str], None],
    ) -> None:
        self.model = model
        self.rows = rows
        self.work = work
        self.options = options
        self._say = say
        self._exports: dict[bool, OnnxGraph] = {}
        self._bert: dict[bool, Path] = {}
        self._pruned: Model | None = None
        self._metas: dict[str, dict[str, Any]] = {}
        self._folders: dict[str, Path] = {}

    def build(self, variant: Variant) -> Candidate:
        from fermion.optimize.quantize import (
            calibration_feeds,
            convert_fp16,
            quantize_dynamic_int8,
            quantize_static_int8,
        )

        graph = self._export(variant.pruned)
        base = self._optimized(variant.pruned, graph)
        folder = self.work / "variants" / variant.name
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / MODEL_FILE
        extra: dict[str, Any] = {}
        if variant.quantize == "none":
            shutil.copyfile(base, target)
        elif variant.quantize == "dynamic" and graph.kind == "embedding":
            from fermion.optimize.quantize_tokens import quantize_embedding_int8

            pairs = quantize_embedding_int8(base, target, calibration=self._text_feeds(graph))
            extra["weights_8bit"] = [list(pair) for pair in pairs]
        elif variant.quantize == "dynamic":
            quantize_dynamic_int8(base, target)
        elif variant.quantize == "static":
            assert self.rows.X_train is not None
            feeds = calibration_feeds(self.rows.X_train, input_name=graph.input_names[0])
            quantize_static_int8(graph.path, target, calibration=feeds)
        else:
            convert_fp16(base, target)
        if graph.kind == "embedding":
            shutil.copyfile(graph.path.parent / TOKENIZER_FILE, folder / TOKENIZER_FILE)
        meta = self._meta(graph, variant) | extra
        self._metas[variant.name] = meta
        self._folders[variant.name] = folder
        return Candidate(variant.name, "onnx", folder, meta, variant.technique)

    def meta(self, name: str) -> dict[str, Any]:
        return dict(self._metas[name])

    def bundle(self, name: str) -> Path:
        """A registrable bundle folder holding the variant's files under `model/`."""
        bundle = self.work / "bundles" / name
        shutil.copytree(self._folders[name], bundle / "model")
        return bundle

    def _export(self, pruned: bool) -> OnnxGraph:
        if pruned not in self._exports:
            source = self._pruned_model() if pruned else self.model
            self._say("exporting the pruned network to ONNX" if pruned else "exporting to ONNX")
            folder = self.work / ("export-pruned" if pruned else "export")
            sample: Any = list(self.rows.texts[:8]) if self.rows.texts else self._train()[:256]
            graph = export_onnx(source, folder, opset=self.options.opset, sample=sample)
            _check_export(source, graph, self.rows)
            self._exports[pruned] = graph
        return self._exports[pruned]

    def _optimized(self, pruned: bool, graph: OnnxGraph) -> Path:
        """What the float32 variant and the quantizers start from: an embedding model's graph
        with BERT's attention fused (ONNX Runtime does not fuse it when loading); a tabular
        graph as exported (ONNX Runtime optimizes it when loading, and its offline-optimized
        form is one the quantizers cannot read)."""
        if graph.kind != "embedding":
            return graph.path
        if pruned not in self._bert:
            from fermion.optimize.graph import optimize_graph

            self._say("fusing the transformer's attention")
            target = graph.path.with_name("fused.onnx")
            result = optimize_graph(graph.path, target, kind="embedding")
            self._say(f"fused: {', '.join(f'{op} x{n}' for op, n in result.fused.items())}")
            self._bert[pruned] = result.path
        return self._bert[pruned]

    def _pruned_model(self) -> Model:
        if self._pruned is None:
            from fermion.optimize.prune import fine_tune, prune_mlp
            from fermion.registry.model import Model

            options = self.options
            assert options.prune is not None
            structured = options.prune_mode == "structured"
            self._say(f"pruning {options.prune:g} of the network ({options.prune_mode})")
            pruned = prune_mlp(self.model._estimator, options.prune, structured=structured).model
            if options.fine_tune:
                self._say(f"fine-tuning the pruned network for {options.fine_tune} epochs")
                assert self.rows.y_train is not None
                pruned = fine_tune(
                    pruned, self._train(), self.rows.y_train, epochs=options.fine_tune
                )
            source = self.model
            self._pruned = Model(
                source.manifest, pruned, source._preprocessor, folder=source.folder
            )
        return self._pruned

    def _text_feeds(self, graph: OnnxGraph) -> list[dict[str, Any]]:
        """Graph feeds of the calibration texts (the validation texts), as the encoder
        batches them."""
        from fermion.registry.flavors.onnx_text import OnnxEncoder

        encoder = OnnxEncoder.from_file(graph.path, graph.to_meta())
        return [feeds for _, feeds in encoder.batches(list(self.rows.texts[:CALIBRATION_TEXTS]))]

    def _train(self) -> Any:
        return self.rows.X_train if self.rows.X_train is not None else self.rows.inputs

    def _meta(self, graph: OnnxGraph, variant: Variant) -> dict[str, Any]:
        meta = graph.to_meta() | {"flavor": "onnx", "technique": variant.technique}
        if graph.kind == "matrix":
            fitted = self.model._estimator
            meta |= fitted.fields()
        return meta


def _check_export(source: Model, graph: OnnxGraph, rows: Rows) -> None:
    """Refuse an export whose float32 outputs differ from the source's beyond rounding."""
    from fermion.registry.flavors.onnx_flavor import OnnxModel
    from fermion.registry.flavors.onnx_text import OnnxEncoder

    meta = graph.to_meta()
    if graph.kind == "embedding":
        texts = list(rows.texts[:PARITY_ROWS])
        encoder = OnnxEncoder.from_file(graph.path, meta)
        parity = check_parity(source.embed(texts), encoder.encode(texts), "embedding")
        if (parity.min_cosine or 0.0) < MIN_COSINE:
            raise _mismatch(source, parity)
        return
    X = np.asarray(rows.inputs)[:PARITY_ROWS]
    fitted = source._estimator
    exported = OnnxModel.from_file(graph.path, meta | fitted.fields())
    if source.task == "regression":
        want, got = fitted.predict(X), exported.predict(X)
        spread = float(np.std(want)) or 1.0
        if float(np.max(np.abs(want - got))) > MAX_VALUE_DIFF * spread:
            raise _mismatch(source, check_parity(want, got, "regression"))
        return
    parity = check_parity(fitted.predict_proba(X), exported.predict_proba(X), source.task)
    if parity.max_abs_diff > MAX_PROBABILITY_DIFF:
        raise _mismatch(source, parity)


def _mismatch(source: Model, parity: Parity) -> InvalidInputError:
    details = ", ".join(f"{k} {v:.6g}" for k, v in parity.to_dict().items() if v is not None)
    return InvalidInputError(
        f"the ONNX export of the {source.flavor} model does not compute what the model does "
        f"({details}); the model was left as it was"
    )
