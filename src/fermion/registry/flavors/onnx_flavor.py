"""The "onnx" flavor: an ONNX graph that ONNX Runtime runs, for a tabular or an embedding model.

`model/` holds `model.onnx` and, for an embedding model, `tokenizer.json`. A tabular graph
("matrix") takes the preprocessed float32 matrix as `features` (batch, n_features) and gives
`probabilities` (batch, n_classes) or `values` (batch,); an embedding graph takes int64
`input_ids`, `attention_mask` (and maybe `token_type_ids`) and gives `embeddings`, already
pooled and normalized (see `onnx_text.py`). ONNX files and tokenizer.json hold no code, so
untrusted bundles load.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from fermion.errors import InvalidInputError, StorageError, first_line, require
from fermion.training.families.base import FittedModel, Floats, Matrix, fields_from_meta

if TYPE_CHECKING:
    from fermion.registry.flavors.onnx_text import OnnxEncoder

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
MATRIX = "matrix"
EMBEDDING = "embedding"
FEATURES = "features"
TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def machine_threads() -> int:
    """The cores this process may run on (its CPU affinity, where the system has one)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count() or 1


def session_options(threads: int) -> Any:
    """ONNX Runtime options for one CPU session: `threads` intra-op threads, one inter-op
    thread, sequential execution, every graph optimization, the CPU memory arena on."""
    ort: Any = require("onnxruntime", "onnx")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.enable_cpu_mem_arena = True
    options.log_severity_level = 3  # errors only: ORT's warnings would go to the server's stderr
    return options


class OnnxSession:
    """An ONNX Runtime session on one file, built at its first use and again, with the new
    thread count, at the first use after `limit_threads`. Building late means a server's
    `limit_threads(1)` right after loading costs no second build; a file that cannot load fails
    at that first use. `run` may be called from many threads at once: a call in flight
    finishes on the session it started with.

    `feeds` names the inputs its owner can give: a graph that declares another input, or lacks
    the output `output`, is refused when the session is built.
    """

    def __init__(
        self,
        path: Path,
        *,
        feeds: Collection[str],
        output: str,
        threads: int | None = None,
        weights_8bit: Sequence[tuple[str, str]] = (),
    ) -> None:
        """`weights_8bit`: (weight, scale) initializer pairs to narrow to 7 bits on a CPU
        whose int8 kernel saturates (see `onnx_int8`)."""
        self.path = path
        self.output = output
        self.weights_8bit = list(weights_8bit)
        self._feeds = frozenset(feeds)
        self._threads = threads
        self._session: Any = None
        self._input_names: list[str] = []
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<OnnxSession {self.path} threads={self.threads}>"

    @property
    def threads(self) -> int:
        """The intra-op threads of the session calls run on: the cores, or the limit."""
        return self._threads if self._threads is not None else machine_threads()

    @property
    def model(self) -> Any:
        """ONNX Runtime's own `InferenceSession` (built now if it is not yet)."""
        session = self._session
        if session is None:
            with self._lock:
                if self._session is None:
                    self._session = self._build()
                session = self._session
        return session

    @property
    def input_names(self) -> list[str]:
        """The inputs the graph declares, in its order."""
        self.model  # noqa: B018 - building the session reads them
        return list(self._input_names)

    def limit_threads(self, threads: int) -> None:
        threads = max(1, threads)
        with self._lock:
            if threads != self._threads:
                self._threads = threads
                self._session = None

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        """The output for `feeds` (one array per input the graph declares)."""
        out: np.ndarray = self.model.run([self.output], dict(feeds))[0]
        return out

    def _build(self) -> Any:
        ort: Any = require("onnxruntime", "onnx")
        if not self.path.is_file():
            raise StorageError(f"model file {self.path} is missing")
        try:
            session = ort.InferenceSession(
                self._graph(),
                sess_options=session_options(self.threads),
                providers=["CPUExecutionProvider"],
            )
        except Exception as exc:  # ORT's errors share no base class worth naming
            raise StorageError(
                f"cannot load the ONNX model {self.path}: {first_line(exc)}"
            ) from exc
        inputs = [node.name for node in session.get_inputs()]
        outputs = [node.name for node in session.get_outputs()]
        unknown = [name for name in inputs if name not in self._feeds]
        if unknown or not inputs:
            raise InvalidInputError(
                f"the ONNX graph {self.path} takes the inputs {inputs}; expected only "
                f"{sorted(self._feeds)}"
            )
        if self.output not in outputs:
            raise InvalidInputError(
                f"the ONNX graph {self.path} has no output {self.output!r} (it gives {outputs})"
            )
        self._input_names = inputs
        return session

    def _graph(self) -> str | bytes:
        from fermion.registry.flavors.onnx_int8 import int8_saturates, narrowed

        if self.weights_8bit and int8_saturates():
            return narrowed(self.path, self.weights_8bit)
        return str(self.path)


def checked_meta(meta: Mapping[str, Any], kind: str | None = None) -> dict[str, Any]:
    """`meta` with its kind, input and output names checked, the names defaulting to the
    contract's (`features` -> `probabilities`/`values`; the text inputs -> `embeddings`)."""
    if not isinstance(meta, Mapping):
        raise InvalidInputError("onnx model metadata must be a mapping")
    found = meta.get("kind")
    if found not in (MATRIX, EMBEDDING) or (kind is not None and found != kind):
        wanted = kind or f"{MATRIX!r} or {EMBEDDING!r}"
        raise InvalidInputError(f"onnx model metadata has kind {found!r}; expected {wanted}")
    checked = dict(meta)
    if found == MATRIX:
        fields = fields_from_meta(meta)
        default_inputs = [FEATURES]
        default_output = "values" if fields["task"] == "regression" else "probabilities"
        checked.update(fields)
    else:
        default_inputs = list(TEXT_INPUTS)
        default_output = "embeddings"
        for key in ("dimension", "max_seq_length"):
            value = meta.get(key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise InvalidInputError(f"onnx embedding metadata lacks a positive {key!r}")
    inputs = meta.get("input_names", default_inputs)
    output = meta.get("output_name", default_output)
    if (
        not isinstance(inputs, list)
        or not inputs
        or not all(isinstance(name, str) for name in inputs)
        or not isinstance(output, str)
    ):
        raise InvalidInputError(
            "onnx model metadata needs 'input_names' (a list) and 'output_name'"
        )
    if found == MATRIX and len(inputs) != 1:
        raise InvalidInputError(f"a tabular onnx graph takes one input, not {inputs}")
    if found == EMBEDDING and any(name not in TEXT_INPUTS for name in inputs):
        raise InvalidInputError(f"an embedding onnx graph takes {list(TEXT_INPUTS)}, not {inputs}")
    checked.update(flavor=OnnxFlavor.name, input_names=list(inputs), output_name=output)
    if "weights_8bit" in meta:
        from fermion.registry.flavors.onnx_int8 import checked_pairs

        checked["weights_8bit"] = [list(pair) for pair in checked_pairs(meta["weights_8bit"])]
    return checked


class OnnxModel(FittedModel):
    """A tabular model as an ONNX graph: the preprocessed float32 matrix in, probabilities
    (n, n_classes) or values (n,) out, as float64 like every `FittedModel`."""

    flavor: ClassVar[str] = "onnx"

    def __init__(self, session: OnnxSession, meta: Mapping[str, Any]) -> None:
        self.meta = checked_meta(meta, MATRIX)
        super().__init__(session, **fields_from_meta(self.meta))
        self._input = self.meta["input_names"][0]
        self._width = self.n_classes

    @classmethod
    def from_file(cls, path: Path, meta: Mapping[str, Any]) -> OnnxModel:
        """The graph in the file `path`, described by flavor metadata `meta` (its kind
        "matrix", the `FittedFields`; input and output names default to the contract's)."""
        checked = checked_meta(meta, MATRIX)
        session = OnnxSession(
            Path(path), feeds=checked["input_names"], output=checked["output_name"]
        )
        return cls(session, checked)

    @property
    def path(self) -> Path:
        return self.session.path

    @property
    def session(self) -> OnnxSession:
        session: OnnxSession = self.estimator
        return session

    def limit_threads(self, threads: int) -> None:
        super().limit_threads(threads)
        self.session.limit_threads(self.predict_threads)

    def _predict_raw(self, X: Matrix) -> Floats:
        if X.shape[0] == 0:
            return np.zeros((0,) if self.task == "regression" else (0, self._width))
        out = np.asarray(self.session.run({self._input: X}), dtype=np.float64)
        if self.task == "regression":
            if out.ndim == 2 and out.shape[1] == 1:
                out = out[:, 0]
            expected: tuple[int, ...] = (len(X),)
        else:
            expected = (len(X), self._width)
        if out.shape != expected:
            raise InvalidInputError(
                f"the ONNX graph gave an output of shape {out.shape}; expected {expected}"
            )
        return out


class OnnxFlavor:
    name: ClassVar[str] = "onnx"
    pickle_based: ClassVar[bool] = False

    def save(self, model: object, folder: Path) -> dict[str, Any]:
        """Copy the model's graph (and tokenizer) into `folder`; the metadata is the model's
        own, with the graph's input names, its opset and this ONNX Runtime's version."""
        from fermion.registry.flavors.onnx_text import OnnxEncoder

        if not isinstance(model, OnnxModel | OnnxEncoder):
            raise InvalidInputError(
                f"the onnx flavor saves OnnxModel or OnnxEncoder, not {model!r}"
            )
        ort: Any = require("onnxruntime", "onnx")
        session: OnnxSession = model.session
        folder.mkdir(parents=True, exist_ok=True)
        _copy(session.path, folder / MODEL_FILE)
        if isinstance(model, OnnxEncoder):
            _copy(model.tokenizer_path, folder / TOKENIZER_FILE)
        meta = dict(model.meta)
        meta.update(
            flavor=self.name,
            input_names=session.input_names,
            output_name=session.output,
            onnxruntime_version=ort.__version__,
        )
        if not isinstance(meta.get("opset"), int):
            meta["opset"] = graph_opset(session.path)
        if isinstance(model, OnnxModel):
            meta.update(model.fields())
        return meta

    def load(
        self, folder: Path, meta: Mapping[str, Any], *, trusted: bool
    ) -> OnnxModel | OnnxEncoder:
        from fermion.registry.flavors.onnx_text import OnnxEncoder

        require("onnxruntime", "onnx")
        path = folder / MODEL_FILE
        if not path.is_file():
            raise StorageError(f"model file {path} is missing")
        if checked_meta(meta)["kind"] == EMBEDDING:
            return OnnxEncoder.from_file(path, meta)
        return OnnxModel.from_file(path, meta)


def graph_opset(path: Path) -> int:
    """The version of the default ONNX operator set the graph in `path` imports."""
    onnx: Any = require("onnx", "onnx")
    graph = onnx.load(str(path), load_external_data=False)
    for entry in graph.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise InvalidInputError(f"the ONNX graph {path} imports no default operator set")


def _copy(source: Path, target: Path) -> None:
    if target.exists() and target.samefile(source):
        return
    shutil.copyfile(source, target)
