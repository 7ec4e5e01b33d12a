"""ONNX export of PyTorch models: the MLP family (flavor `torch`) with the TorchScript
exporter, a custom module's exported program (flavor `torch_export`) with the
torch.export-based one, which reads the program's dynamic batch as it is.

Both graphs end at the network's raw output; `add_head` adds what the `FittedModel` computes
after it: the softmax, a sigmoid logit as two columns, or the regression target's scaling.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from fermion.errors import InvalidInputError, require
from fermion.optimize.export import FEATURES, add_head, set_opset

if TYPE_CHECKING:
    from fermion.training.families.base import FittedModel

LOGITS = "logits"
DYNAMO_MIN_OPSET = 18  # the torch.export-based exporter has no lower implementations
_LOGGERS = ("torch.onnx", "onnxscript")


@contextlib.contextmanager
def quiet_export() -> Iterator[None]:
    """The exporters' notes silenced while they run: the TorchScript exporter's deprecation,
    tracer hints about shapes read as constants, torch's own internal deprecations and log
    lines about optional libraries. They concern torch's internals, not the model."""
    from torch.jit import TracerWarning  # type: ignore[attr-defined]  # not in __all__

    loggers = [logging.getLogger(name) for name in _LOGGERS]
    levels = [logger.level for logger in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", TracerWarning)
        warnings.filterwarnings("ignore", message="Exporting aten::", category=UserWarning)
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels, strict=True):
                logger.setLevel(level)


def _example(rows: npt.NDArray[np.float32]) -> Any:
    """Two rows to trace with: a batch of one could be taken for a constant size."""
    import torch

    pair = rows[:2] if len(rows) >= 2 else np.repeat(rows[:1], 2, axis=0)
    return torch.from_numpy(np.ascontiguousarray(pair))


def mlp_graph(fitted: FittedModel, opset: int, rows: npt.NDArray[np.float32]) -> Any:
    """The `TabularMLP` of a `TorchMLPModel`: softmax over its logits, or its one output
    de-standardised (`* y_scale + y_mean`)."""
    require("torch", "torch")
    import onnx
    import torch

    buffer = io.BytesIO()
    with quiet_export(), torch.no_grad():
        torch.onnx.export(
            fitted.estimator,
            (_example(rows),),
            buffer,  # type: ignore[arg-type]  # the TorchScript exporter writes to files too
            dynamo=False,
            input_names=[FEATURES],
            output_names=[LOGITS],
            dynamic_axes={FEATURES: {0: "batch"}, LOGITS: {0: "batch"}},
            opset_version=opset,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    if fitted.task == "regression":
        scale, shift = float(getattr(fitted, "y_scale", 1.0)), float(getattr(fitted, "y_mean", 0.0))
        add_head(proto, LOGITS, "values", width=1, scale=scale, shift=shift)
    else:
        add_head(proto, LOGITS, "softmax", width=fitted.n_classes)
    return proto


def exported_program_graph(fitted: FittedModel, opset: int, rows: npt.NDArray[np.float32]) -> Any:
    """A custom module's `ExportedProgram`, post-processed as `ExportedTorchModel` does: its
    logits through a softmax, one sigmoid logit as two columns, or its values flattened."""
    require("torch", "torch")
    require("onnxscript", "onnx")
    import torch

    with quiet_export():
        program = torch.onnx.export(
            fitted.estimator,
            (_example(rows),),
            dynamo=True,
            input_names=[FEATURES],
            output_names=[LOGITS],
            opset_version=max(opset, DYNAMO_MIN_OPSET),
            verbose=False,
        )
    assert program is not None  # the torch.export-based exporter returns its program
    proto = set_opset(program.model_proto, opset)
    outputs = proto.graph.output
    if len(outputs) != 1:
        raise InvalidInputError(f"the module gives {len(outputs)} outputs; one tensor is needed")
    dims = [dim.dim_value for dim in outputs[0].type.tensor_type.shape.dim]
    source = outputs[0].name
    if fitted.task == "regression":
        add_head(proto, source, "values", width=1)
    elif len(dims) == 1 or dims[-1] == 1:
        add_head(proto, source, "sigmoid", width=2)
    elif dims[-1] == fitted.n_classes:
        add_head(proto, source, "softmax", width=fitted.n_classes)
    else:
        raise InvalidInputError(
            f"the module gives {dims[-1]} outputs for {fitted.n_classes} classes"
        )
    return proto
