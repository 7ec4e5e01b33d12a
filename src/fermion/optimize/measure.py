"""One model variant measured in a fresh process: size, latency, throughput, memory, outputs.

`measure` writes the request and the rows into a temporary folder and runs
`python -m fermion.optimize.measure FOLDER`, so each variant starts from a bare interpreter:
its peak RSS is its own, and no variant's allocations, caches or thread pools colour another's.
The child loads the model, limits its threads, computes its outputs on every row (the parent
scores them), then times batch-1 calls, and rows/s at batch 32 and at batch 1000.
"""

from __future__ import annotations

import gc
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

import fermion.errors
from fermion.errors import FermionError, InvalidInputError, NotFoundError, first_line
from fermion.training.metrics import (
    GREATER_IS_BETTER,
    PRIMARY_METRIC,
    Task,
    classification_metric,
    regression_metrics,
)

__all__ = [
    "Candidate",
    "Measurement",
    "MeasurementError",
    "default_metric",
    "measure",
    "metric_names",
    "score",
]

Inputs = npt.NDArray[np.float32] | Sequence[str]
LATENCY_ROWS = 256  # batch-1 calls cycle through the first rows
CAP = 4.0  # no timed phase (and no single timed call) runs past CAP x `seconds`
CHUNK = 1000  # the outputs on every row are computed in chunks of this many rows
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
REGRESSION_METRICS = ("rmse", "mae", "median_ae", "r2", "mape")


class MeasurementError(FermionError):
    """A variant's measuring process failed, died or ran out of time."""


@dataclass(frozen=True)
class Candidate:
    """A variant to measure: a flavor's files in `folder`, loadable with `meta`."""

    name: str
    flavor: str
    folder: Path
    meta: dict[str, Any]
    technique: str


@dataclass(frozen=True)
class Measurement:
    """What one variant measured. Memory is the child process's own RSS in MiB: `base_rss_mb`
    before loading (interpreter, numpy, Fermion, the rows), `load_rss_mb` the high-water mark
    just after loading minus that base, `peak_rss_mb` the high-water mark of the whole run
    (base, load, outputs on every row, timing). `rows_1000` is the rows per call of the
    batch-1000 figure (fewer when a call of 1000 would run past the time cap). `metric`,
    `metric_name` and `parity` are filled by the caller; `outputs` (on every row given) stays
    out of `to_dict`."""

    name: str
    technique: str
    size_bytes: int
    p50_ms: float
    p99_ms: float
    rows_per_s_32: float
    rows_per_s_1000: float
    peak_rss_mb: float
    load_rss_mb: float
    base_rss_mb: float = 0.0
    load_s: float = 0.0
    latency_calls: int = 0
    rows_1000: int = 1000
    threads: int = 1
    notes: tuple[str, ...] = ()
    metric: float | None = None
    metric_name: str | None = None
    parity: dict[str, Any] | None = None
    outputs: npt.NDArray[Any] = field(
        default_factory=lambda: np.empty(0, dtype=np.float32), compare=False, repr=False
    )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["outputs"]
        data["notes"] = list(self.notes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        known = {f.name for f in fields(cls)} - {"outputs"}
        values = {key: value for key, value in data.items() if key in known}
        values["notes"] = tuple(values.get("notes", ()))
        return cls(**values)


def measure(
    candidate: Candidate,
    inputs: Inputs,
    *,
    threads: int,
    seconds: float = 1.0,
    min_calls: int = 200,
    timeout: float = 600.0,
) -> Measurement:
    """Measure `candidate` on `inputs` (a float32 matrix, or texts for an embedding model) in a
    fresh process using `threads` threads.

    Each timed phase runs about `seconds`: batch-1 latency until it has `min_calls` calls and
    `seconds` (at most 4 x `seconds`), then rows/s at batch 32 and at batch 1000 (rows cycle
    when there are fewer). The child is stopped after `timeout` seconds.
    """
    rows = _checked_inputs(inputs)
    if threads < 1 or seconds <= 0 or min_calls < 1:
        raise InvalidInputError("threads and min_calls must be at least 1, seconds positive")
    if not candidate.folder.is_dir():
        raise NotFoundError(f"variant {candidate.name!r}: folder {candidate.folder} does not exist")
    with tempfile.TemporaryDirectory(prefix="fermion-measure-") as tmp:
        work = Path(tmp)
        _write_request(work, candidate, rows, threads, seconds, min_calls)
        src = str(Path(fermion.errors.__file__).resolve().parents[1])
        env = os.environ | {name: str(threads) for name in THREAD_VARIABLES}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        command = [sys.executable, "-m", "fermion.optimize.measure", str(work)]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, env=env, check=False
            )
        except subprocess.TimeoutExpired:
            raise MeasurementError(
                f"measuring variant {candidate.name!r} took over {timeout:g} s; it was stopped"
            ) from None
        if done.returncode != 0 or not (work / "result.json").is_file():
            raise _child_error(candidate.name, work, done)
        result = json.loads((work / "result.json").read_text())
        result["notes"] = tuple(result["notes"])
        outputs = np.load(work / "outputs.npy", allow_pickle=False)
    return Measurement(
        name=candidate.name,
        technique=candidate.technique,
        size_bytes=folder_size(candidate.folder),
        outputs=outputs,
        **result,
    )


def folder_size(folder: Path) -> int:
    """Bytes of every file under `folder`."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def metric_names(task: Task) -> tuple[str, ...]:
    """The metric names `score` accepts for `task`."""
    if task == "regression":
        return REGRESSION_METRICS
    return tuple(name for name in GREATER_IS_BETTER if name not in REGRESSION_METRICS)


def default_metric(task: Task) -> str:
    """The metric Fermion's trainer reports first for `task`."""
    return PRIMARY_METRIC[task]


def score(
    task: Task,
    metric_name: str,
    outputs: npt.ArrayLike,
    y_true: npt.ArrayLike,
    classes: Sequence[object] = (),
) -> float:
    """`metric_name` of `outputs` (class probabilities, or predicted values) against `y_true`
    (class codes 0..k-1 in the order of `classes`, or true values), with Fermion's metrics."""
    if task not in PRIMARY_METRIC:
        raise InvalidInputError(f"task must be one of {', '.join(PRIMARY_METRIC)}, not {task!r}")
    if metric_name not in metric_names(task):
        raise InvalidInputError(
            f"unknown metric {metric_name!r} for task {task!r}; "
            f"choose one of: {', '.join(metric_names(task))}"
        )
    value: float | None
    if task == "regression":
        value = regression_metrics(y_true, outputs).get(metric_name)
    else:
        width = np.asarray(outputs).shape[-1]
        labels = [str(c) for c in classes] if classes else [str(i) for i in range(width)]
        value = classification_metric(metric_name, y_true, outputs, labels)
    if value is None or not math.isfinite(value):
        raise InvalidInputError(f"metric {metric_name!r} is undefined on these rows")
    return value


def _checked_inputs(inputs: Inputs) -> Inputs:
    if isinstance(inputs, np.ndarray):
        if inputs.ndim != 2 or inputs.shape[0] == 0:
            raise InvalidInputError(
                f"inputs must be a non-empty matrix, not of shape {inputs.shape}"
            )
        return np.ascontiguousarray(inputs, dtype=np.float32)
    texts = list(inputs)
    if not texts or not all(isinstance(text, str) for text in texts):
        raise InvalidInputError("inputs must be a float32 matrix or a non-empty list of texts")
    return texts


def _write_request(
    work: Path, candidate: Candidate, rows: Inputs, threads: int, seconds: float, min_calls: int
) -> None:
    if isinstance(rows, np.ndarray):
        np.save(work / "inputs.npy", rows, allow_pickle=False)
    else:
        (work / "inputs.json").write_text(json.dumps(list(rows)))
    request = {
        "flavor": candidate.flavor,
        "folder": str(candidate.folder),
        "meta": candidate.meta,
        "threads": threads,
        "seconds": seconds,
        "min_calls": min_calls,
    }
    (work / "request.json").write_text(json.dumps(request))


def _child_error(name: str, work: Path, done: subprocess.CompletedProcess[str]) -> FermionError:
    """The child's own error, as the Fermion error class it raised when it raised one."""
    error_file = work / "error.json"
    if error_file.is_file():
        error = json.loads(error_file.read_text())
        message = f"measuring variant {name!r} failed: {error['message']}"
        cls = getattr(fermion.errors, error["type"], None)
        if error["module"] == "fermion.errors" and isinstance(cls, type):
            try:
                made = cls(message)
            except TypeError:  # an error class with more arguments than a message
                made = None
            if isinstance(made, FermionError):
                return made
        if error["type"] not in error["message"]:
            message = f"measuring variant {name!r} failed: {error['type']}: {error['message']}"
        return MeasurementError(message)
    lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
    last = lines[-1] if lines else f"exit status {done.returncode}"
    return MeasurementError(f"the process measuring variant {name!r} died: {last}")


# ---- the child ----------------------------------------------------------------------------


def _main(work: Path) -> int:
    rows: Inputs
    if (work / "inputs.npy").is_file():
        rows = np.load(work / "inputs.npy", allow_pickle=False)
    else:
        rows = json.loads((work / "inputs.json").read_text())
    request = json.loads((work / "request.json").read_text())
    try:
        result, outputs = _run(request, rows)
    except Exception as exc:
        error = {
            "type": type(exc).__name__,
            "module": type(exc).__module__,
            "message": first_line(exc),
        }
        (work / "error.json").write_text(json.dumps(error))
        return 1
    np.save(work / "outputs.npy", outputs, allow_pickle=False)
    (work / "result.json").write_text(json.dumps(result))
    return 0


def _run(request: dict[str, Any], rows: Inputs) -> tuple[dict[str, Any], npt.NDArray[Any]]:
    from fermion.registry.flavors import get_flavor

    threads, seconds = int(request["threads"]), float(request["seconds"])
    base = _current_rss_mb()
    started = time.perf_counter()
    flavor = get_flavor(request["flavor"])
    model = flavor.load(Path(request["folder"]), request["meta"], trusted=True)
    load_s = time.perf_counter() - started
    if hasattr(model, "limit_threads"):
        model.limit_threads(threads)
    if "torch" in sys.modules:  # its intra-op pool is per process, whatever loaded it
        sys.modules["torch"].set_num_threads(threads)
    load_rss = _peak_rss_mb() - base
    predict = _predictor(model)
    singles = [_take(rows, [i]) for i in range(min(len(rows), LATENCY_ROWS))]
    for single in singles[:3]:
        predict(single)
    outputs = np.concatenate(
        [np.asarray(predict(rows[i : i + CHUNK])) for i in range(0, len(rows), CHUNK)]
    )
    p50, p99, calls = _latency(predict, singles, seconds, int(request["min_calls"]))
    rate_32, _ = _throughput(predict, rows, 32, seconds, 1000.0 / max(p50, 1e-6))
    rate_1000, rows_1000 = _throughput(predict, rows, 1000, seconds, rate_32)
    notes = []
    if calls < int(request["min_calls"]):
        notes.append(f"p99 from {calls} batch-1 calls (time cap {CAP * seconds:g} s)")
    if rows_1000 < 1000:
        notes.append(f"batch 1000 timed with {rows_1000} rows per call (time cap)")
    result = {
        "p50_ms": p50,
        "p99_ms": p99,
        "rows_per_s_32": rate_32,
        "rows_per_s_1000": rate_1000,
        "peak_rss_mb": _peak_rss_mb(),
        "load_rss_mb": load_rss,
        "base_rss_mb": base,
        "load_s": load_s,
        "latency_calls": calls,
        "rows_1000": rows_1000,
        "threads": threads,
        "notes": notes,
    }
    return result, outputs


def _predictor(model: Any) -> Callable[[Any], Any]:
    if hasattr(model, "encode"):
        return model.encode  # type: ignore[no-any-return]
    if model.task == "regression":
        return model.predict  # type: ignore[no-any-return]
    return model.predict_proba  # type: ignore[no-any-return]


def _take(rows: Inputs, index: Sequence[int]) -> Any:
    if isinstance(rows, np.ndarray):
        return np.ascontiguousarray(rows[list(index)])
    return [rows[i] for i in index]


def _latency(
    predict: Callable[[Any], Any], singles: list[Any], seconds: float, min_calls: int
) -> tuple[float, float, int]:
    gc.collect()
    times: list[int] = []
    start = time.perf_counter()
    while True:
        single = singles[len(times) % len(singles)]
        tick = time.perf_counter_ns()
        predict(single)
        times.append(time.perf_counter_ns() - tick)
        elapsed = time.perf_counter() - start
        if (len(times) >= min_calls and elapsed >= seconds) or elapsed >= CAP * seconds:
            break
    p50, p99 = np.percentile(np.asarray(times, dtype=np.float64) / 1e6, [50, 99])
    return float(p50), float(p99), len(times)


def _throughput(
    predict: Callable[[Any], Any], rows: Inputs, batch: int, seconds: float, rate_hint: float
) -> tuple[float, int]:
    """Rows/s at `batch` rows per call; fewer (but at least 32) when `rate_hint` (rows/s) says
    a call would run past the cap."""
    size = batch
    if batch / rate_hint > CAP * seconds:
        size = min(batch, max(32, int(rate_hint * CAP * seconds)))  # never below batch 32
    n = len(rows)
    batches = [
        _take(rows, [(start * size + j) % n for j in range(size)])
        for start in range(min(8, max(1, math.ceil(n / size))))
    ]
    if size / rate_hint <= seconds:
        predict(batches[0])  # warm-up at this shape; a slow model had its warm-up in the outputs
    gc.collect()
    calls = 0
    start = time.perf_counter()
    while True:
        predict(batches[calls % len(batches)])
        calls += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return calls * size / elapsed, size


def _current_rss_mb() -> float:
    return _proc_status_mb("VmRSS") or _peak_rss_mb()  # elsewhere: the high-water mark so far


def _peak_rss_mb() -> float:
    """This process's high-water RSS. On Linux from /proc: `ru_maxrss` of a process started by
    fork and exec keeps the mark of the forked copy of its parent (the parent's whole RSS)."""
    peak = _proc_status_mb("VmHWM")
    if peak:
        return peak
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return float(peak / 2**20 if sys.platform == "darwin" else peak / 2**10)  # bytes vs KiB


def _proc_status_mb(key: str) -> float:
    """A `kB` line of /proc/self/status in MiB, or 0 where there is none (not Linux)."""
    try:
        lines = Path("/proc/self/status").read_text().splitlines()
    except OSError:
        return 0.0
    for line in lines:
        if line.startswith(f"{key}:"):
            return int(line.split()[1]) / 2**10
    return 0.0


if __name__ == "__main__":
    sys.exit(_main(Path(sys.argv[1])))
