"""8-bit int8 weights on CPUs whose integer kernel would overflow with them.

x86 CPUs without VNNI multiply uint8 activations by int8 weights with VPMADDUBSW, which adds
each pair of products into a saturating int16: 255 * 127 * 2 overflows it, 255 * 63 * 2 does
not. VNNI (and ARM's dot products) accumulate in 32 bits. Graphs that keep 8-bit weights list
them in their flavor metadata (`weights_8bit`: [weight, scale] initializer pairs); on a CPU
that saturates, `narrowed` halves those weights (7 bits) and doubles their scales before
ONNX Runtime sees them.
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from fermion.errors import InvalidInputError, StorageError, first_line

_VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
_X86 = frozenset({"x86_64", "amd64", "i386", "i686", "x86"})


@functools.cache
def int8_saturates() -> bool:
    """Whether this machine's uint8 x int8 kernel adds pairs of products in 16 bits."""
    try:
        cpuinfo: str | None = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        cpuinfo = None
    return saturates(platform.machine(), cpuinfo)


def saturates(machine: str, cpuinfo: str | None) -> bool:
    """`int8_saturates` for a CPU architecture and the text of its /proc/cpuinfo: x86
    without a VNNI flag, or x86 whose flags are unknown (the safe choice)."""
    if machine.lower() not in _X86:
        return False
    for line in (cpuinfo or "").splitlines():
        if line.startswith("flags"):
            return not (_VNNI_FLAGS & set(line.partition(":")[2].split()))
    return True


def checked_pairs(value: object) -> list[tuple[str, str]]:
    """`weights_8bit` metadata as (weight, scale) pairs; anything else is refused."""
    if not isinstance(value, list) or not all(
        isinstance(pair, list | tuple)
        and len(pair) == 2
        and all(isinstance(name, str) for name in pair)
        for pair in value
    ):
        raise InvalidInputError("onnx metadata 'weights_8bit' must be a list of [weight, scale]")
    return [(str(pair[0]), str(pair[1])) for pair in value]


def narrowed(path: Path, pairs: Sequence[tuple[str, str]]) -> bytes:
    """The graph at `path` with each pair's int8 weight halved (7 bits) and its scale
    doubled, serialized for ONNX Runtime."""
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(str(path))
    except Exception as exc:
        raise StorageError(f"cannot read the ONNX model {path}: {first_line(exc)}") from exc
    initializers = {init.name: init for init in model.graph.initializer}
    for weight_name, scale_name in pairs:
        weight, scale = initializers.get(weight_name), initializers.get(scale_name)
        if weight is None or scale is None:
            raise StorageError(f"the ONNX model {path} lacks the int8 weight {weight_name}")
        halved = np.clip(np.rint(numpy_helper.to_array(weight) / 2.0), -63, 63).astype(np.int8)
        doubled = (numpy_helper.to_array(scale) * 2.0).astype(np.float32)
        weight.CopyFrom(numpy_helper.from_array(halved, weight_name))
        scale.CopyFrom(numpy_helper.from_array(doubled, scale_name))
    data: bytes = model.SerializeToString()
    return data
