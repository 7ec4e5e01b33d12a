"""Open Inference Protocol (KServe V2) tensors: a request's inputs as columns, outputs as bytes.

A request is a JSON header, optionally followed by raw tensor data (Triton's binary tensor data
extension): the `Inference-Header-Content-Length` header says where the JSON ends, and each
input with `parameters.binary_data_size` takes that many bytes, in input order. Fixed-size
elements are little-endian; a BYTES element is a 4-byte little-endian length, then its bytes
(UTF-8 text here). Binary data is read with `numpy.frombuffer` and an explicit dtype, never
unpickled. Every refusal is a `TensorError` naming the tensor.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson

from fermion.entities import ColumnSpec, LogicalType
from fermion.errors import InvalidInputError
from fermion.serving.inputs import Columns

HEADER_LENGTH = "inference-header-content-length"

# Fixed-size datatypes as little-endian numpy dtypes; BOOL is read as bytes and checked 0/1.
_DTYPES: dict[str, str] = {
    "BOOL": "|u1",
    "INT8": "<i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "UINT8": "<u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
}
_INTEGERS = ("INT64", "INT32", "INT16", "INT8", "UINT32", "UINT16", "UINT8")
# What a column of each logical type accepts; the first is the one metadata advertises.
_ACCEPTED: dict[str, tuple[str, ...]] = {
    LogicalType.INTEGER: _INTEGERS,
    LogicalType.FLOAT: ("FP64", "FP32", "FP16", *_INTEGERS),
    LogicalType.BOOLEAN: ("BOOL",),
}


class TensorError(InvalidInputError):
    """A request tensor that is malformed or does not fit the model; the message names it."""


def datatype_of(spec: ColumnSpec) -> str:
    """The V2 datatype a column is sent as: INT64, FP64, BOOL, or BYTES for text."""
    return _ACCEPTED.get(spec.type, ("BYTES",))[0]


@dataclass(frozen=True)
class RequestedOutput:
    name: str
    binary: bool | None  # None: as the request's `binary_data_output` says


@dataclass(frozen=True)
class InferRequest:
    """A decoded request: its id, its inputs as flat value lists, the outputs it asks for."""

    id: str | None
    inputs: dict[str, tuple[str, list[Any]]]  # name -> (datatype, values)
    outputs: list[RequestedOutput] | None  # None: every output
    binary_output: bool  # the default for outputs that do not say (`binary_data_output`)


@dataclass(frozen=True)
class OutputTensor:
    name: str
    datatype: str
    shape: list[int]
    data: np.ndarray | list[str]  # FP64 values (flat, C order) or BYTES text


def read_request(body: bytes, header_length: str | None) -> InferRequest:
    """Decode a request body; `header_length` is the `Inference-Header-Content-Length` value."""
    size = len(body)
    if header_length is None:
        json_size = size
    elif header_length.isascii() and header_length.isdigit() and int(header_length) <= size:
        json_size = int(header_length)
    else:
        raise TensorError(
            f"Inference-Header-Content-Length must be a whole number of bytes, at most the "
            f"body's {size}; got {header_length!r}"
        )
    if json_size == 0:
        raise TensorError('the body is empty; send a JSON object: {"inputs": [...]}')
    try:
        head = orjson.loads(memoryview(body)[:json_size])
    except orjson.JSONDecodeError as exc:
        raise TensorError(f"malformed JSON: {exc}") from None
    if not isinstance(head, dict):
        raise TensorError('the request must be a JSON object: {"inputs": [...]}')
    request_id = head.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise TensorError("'id' must be a string")
    parameters = _parameters(head, "the request")
    binary_output = parameters.get("binary_data_output", False)
    if not isinstance(binary_output, bool):
        raise TensorError("parameter 'binary_data_output' must be true or false")
    raw = memoryview(body)[json_size:]
    inputs = _inputs(head.get("inputs"), raw, header_length is not None)
    return InferRequest(request_id, inputs, _outputs(head.get("outputs")), binary_output)


def _parameters(obj: Mapping[str, Any], where: str) -> Mapping[str, Any]:
    parameters = obj.get("parameters", {})
    if not isinstance(parameters, dict):
        raise TensorError(f"'parameters' of {where} must be an object")
    return parameters


def _inputs(specs: Any, raw: memoryview, has_header: bool) -> dict[str, tuple[str, list[Any]]]:
    if not isinstance(specs, list) or not specs:
        raise TensorError("'inputs' must be a list of tensors, one per input column")
    inputs: dict[str, tuple[str, list[Any]]] = {}
    offset = 0
    for index, spec in enumerate(specs):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise TensorError(f"inputs[{index}] must be an object with a 'name'")
        name = spec["name"]
        if name in inputs:
            raise TensorError(f"input tensor {name!r} is given twice")
        datatype = spec.get("datatype")
        if datatype != "BYTES" and datatype not in _DTYPES:
            raise TensorError(
                f"input tensor {name!r}: datatype {datatype!r} is not supported; use one of "
                + ", ".join(["BYTES", *_DTYPES])
            )
        count = _element_count(name, spec.get("shape"))
        parameters = _parameters(spec, f"input tensor {name!r}")
        if "shared_memory_region" in parameters:
            raise TensorError(f"input tensor {name!r}: shared memory is not supported")
        binary_size = parameters.get("binary_data_size")
        if binary_size is None:
            values = _from_json(name, datatype, spec.get("data"), spec["shape"], count)
        elif "data" in spec:
            raise TensorError(f"input tensor {name!r} has both 'data' and binary_data_size")
        elif not has_header:
            raise TensorError(
                f"input tensor {name!r} has binary_data_size but the request has no "
                "Inference-Header-Content-Length header"
            )
        elif not isinstance(binary_size, int) or isinstance(binary_size, bool) or binary_size < 0:
            raise TensorError(f"input tensor {name!r}: binary_data_size must be a whole number")
        elif offset + binary_size > len(raw):
            raise TensorError(
                f"input tensor {name!r}: binary_data_size {binary_size} runs past the end of "
                f"the body ({len(raw) - offset} bytes left)"
            )
        else:
            chunk = raw[offset : offset + binary_size]
            offset += binary_size
            values = _from_binary(name, datatype, chunk, count)
        inputs[name] = (datatype, values)
    if offset != len(raw):
        raise TensorError(
            f"the body has {len(raw)} bytes of tensor data after the JSON header but the "
            f"inputs' binary_data_size add up to {offset}"
        )
    return inputs


def _element_count(name: str, shape: Any) -> int:
    """Rows of a `[N]` or `[N, 1]` tensor (one value per row)."""
    fits = (
        isinstance(shape, list)
        and len(shape) in (1, 2)
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
        and (len(shape) == 1 or shape[1] == 1)
    )
    if not fits:
        raise TensorError(
            f"input tensor {name!r}: shape must be [N] or [N, 1] (one value per row); got {shape!r}"
        )
    return int(shape[0])


def _from_json(name: str, datatype: str, data: Any, shape: list[int], count: int) -> list[Any]:
    if not isinstance(data, list):
        raise TensorError(f"input tensor {name!r} needs 'data' (a list) or binary_data_size")
    flat = _flatten(name, data, shape)
    if len(flat) != count:
        raise TensorError(
            f"input tensor {name!r}: shape {shape} holds {count} values but data has {len(flat)}"
        )
    kind = _kind(datatype)
    check = _JSON_CHECKS[kind]
    for index, value in enumerate(flat):
        if value is not None and not check(value):
            raise TensorError(
                f"input tensor {name!r}: element {index} is not {_WORDS[kind]} "
                f"(datatype {datatype}); got {_shown(value)}"
            )
    return flat


def _flatten(name: str, data: list[Any], shape: Sequence[int]) -> list[Any]:
    """Row-major nested data as a flat list, its nesting checked against `shape`."""
    if not data or not isinstance(data[0], list):
        return data
    if len(shape) < 2 or len(data) != shape[0]:
        raise TensorError(f"input tensor {name!r}: nested data does not match shape {shape}")
    flat: list[Any] = []
    for row in data:
        if not isinstance(row, list) or len(row) != shape[1]:
            raise TensorError(
                f"input tensor {name!r}: nested data does not match shape {list(shape)}"
            )
        flat.extend(row)
    return flat


def _kind(datatype: str) -> str:
    if datatype in _INTEGERS:
        return "integer"
    return {"BOOL": "boolean", "BYTES": "text"}.get(datatype, "number")


_JSON_CHECKS: dict[str, Callable[[Any], bool]] = {
    "integer": lambda value: isinstance(value, int) and not isinstance(value, bool),
    "number": lambda value: isinstance(value, int | float) and not isinstance(value, bool),
    "boolean": lambda value: isinstance(value, bool),
    "text": lambda value: isinstance(value, str),
}
_WORDS = {"integer": "an integer", "number": "a number", "boolean": "true or false"}
_WORDS["text"] = "a string"


def _from_binary(name: str, datatype: str, chunk: memoryview, count: int) -> list[Any]:
    if datatype == "BYTES":
        return _bytes_elements(name, chunk, count)
    dtype = np.dtype(_DTYPES[datatype])
    if len(chunk) != count * dtype.itemsize:
        raise TensorError(
            f"input tensor {name!r}: {count} {datatype} values take {count * dtype.itemsize} "
            f"bytes but binary_data_size is {len(chunk)}"
        )
    array = np.frombuffer(chunk, dtype=dtype)
    if datatype == "BOOL":
        if array.size and int(array.max()) > 1:
            raise TensorError(f"input tensor {name!r}: BOOL bytes must be 0 or 1")
        return array.astype(bool).tolist()  # type: ignore[no-any-return]
    values: list[Any] = array.tolist()
    if datatype.startswith("FP"):  # NaN is how binary floats say "missing": imputed like null
        values = [None if math.isnan(v) else v for v in values]
    return values


def _bytes_elements(name: str, chunk: memoryview, count: int) -> list[Any]:
    values: list[Any] = []
    offset, end = 0, len(chunk)
    length = struct.Struct("<I")
    while offset < end:
        if offset + 4 > end:
            raise TensorError(f"input tensor {name!r}: BYTES data ends inside a length prefix")
        (size,) = length.unpack_from(chunk, offset)
        offset += 4
        if offset + size > end:
            raise TensorError(f"input tensor {name!r}: BYTES element {len(values)} is cut short")
        try:
            values.append(str(chunk[offset : offset + size], "utf-8"))
        except UnicodeDecodeError:
            raise TensorError(
                f"input tensor {name!r}: BYTES element {len(values)} is not UTF-8 text"
            ) from None
        offset += size
    if len(values) != count:
        raise TensorError(
            f"input tensor {name!r}: shape holds {count} values but the BYTES data has "
            f"{len(values)}"
        )
    return values


def _outputs(specs: Any) -> list[RequestedOutput] | None:
    if specs is None or specs == []:
        return None
    if not isinstance(specs, list):
        raise TensorError("'outputs' must be a list of {\"name\": ...} objects")
    outputs: list[RequestedOutput] = []
    for index, spec in enumerate(specs):
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            raise TensorError(f"outputs[{index}] must be an object with a 'name'")
        name = spec["name"]
        parameters = _parameters(spec, f"output {name!r}")
        if "classification" in parameters:
            raise TensorError(f"output {name!r}: the classification extension is not supported")
        if "shared_memory_region" in parameters:
            raise TensorError(f"output {name!r}: shared memory is not supported")
        binary = parameters.get("binary_data")
        if binary is not None and not isinstance(binary, bool):
            raise TensorError(f"output {name!r}: binary_data must be true or false")
        outputs.append(RequestedOutput(name, binary))
    return outputs


def to_columns(
    specs: Sequence[ColumnSpec], inputs: Mapping[str, tuple[str, list[Any]]]
) -> tuple[Columns, int]:
    """The input tensors as columns in signature order, each checked against its column."""
    names = [spec.name for spec in specs]
    missing = [name for name in names if name not in inputs]
    if missing:
        raise TensorError(
            f"missing input tensor{'s' if len(missing) > 1 else ''} "
            + ", ".join(repr(m) for m in missing)
            + f"; the model takes: {', '.join(names)}"
        )
    unknown = [name for name in inputs if name not in names]
    if unknown:
        raise TensorError(
            f"unknown input tensor{'s' if len(unknown) > 1 else ''} "
            + ", ".join(repr(u) for u in unknown)
            + f"; the model takes: {', '.join(names)}"
        )
    columns: Columns = {}
    rows = len(inputs[names[0]][1])
    for spec in specs:
        datatype, values = inputs[spec.name]
        accepted = _ACCEPTED.get(spec.type, ("BYTES",))
        if datatype not in accepted:
            raise TensorError(
                f"input tensor {spec.name!r}: datatype {datatype} does not fit its {spec.type} "
                f"column; send {accepted[0]}"
            )
        if len(values) != rows:
            raise TensorError(
                f"input tensors have different lengths: {names[0]!r} has {rows} rows, "
                f"{spec.name!r} has {len(values)}"
            )
        if spec.type == LogicalType.DATETIME:
            _check_datetimes(spec.name, values)
        columns[spec.name] = values
    return columns, rows


def _check_datetimes(name: str, values: list[Any]) -> None:
    for index, value in enumerate(values):
        if value is None:
            continue
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise TensorError(
                f"input tensor {name!r}: element {index} must be an ISO 8601 datetime; "
                f"got {_shown(value)}"
            ) from None


def _shown(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= 60 else shown[:57] + "..."


def encode_response(
    head: dict[str, Any], outputs: Sequence[tuple[OutputTensor, bool]]
) -> tuple[bytes, int | None]:
    """The response body and, when any output goes in binary, the JSON header's length.

    `head` holds the response's other fields; each output is paired with whether it goes in
    binary."""
    tensors: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for output, binary in outputs:
        tensor: dict[str, Any] = {
            "name": output.name,
            "datatype": output.datatype,
            "shape": output.shape,
        }
        if binary:
            raw = _to_bytes(output)
            tensor["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            tensor["data"] = output.data
        tensors.append(tensor)
    header = orjson.dumps({**head, "outputs": tensors}, option=orjson.OPT_SERIALIZE_NUMPY)
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)


def _to_bytes(output: OutputTensor) -> bytes:
    if isinstance(output.data, np.ndarray):
        return output.data.astype(_DTYPES[output.datatype], copy=False).tobytes()
    length = struct.Struct("<I")
    parts: list[bytes] = []
    for text in output.data:
        encoded = text.encode()
        parts.append(length.pack(len(encoded)))
        parts.append(encoded)
    return b"".join(parts)
