"""Serving one-row predictions: `fermion serve` against MLflow, BentoML and a bare endpoint.

    .venv/bin/python benchmarks/serving.py                    # 10 s per load point, ~7 min
    .venv/bin/python benchmarks/serving.py --quick            # 3 s per point, 3-4 min
    .venv/bin/python benchmarks/serving.py --skip-baselines   # Fermion and the bare endpoint
    .venv/bin/python benchmarks/serving.py --only cold        # or throughput, batching, log

The model: scikit-learn's breast-cancer data (569 rows, 30 float features), standardised, then
LogisticRegression(max_iter=5000). Fermion trains it as its `logistic` family (which
standardises) in a fresh workspace and serves it with `fermion serve NAME@bench --workers 1
--no-auth`; MLflow 3.17 saves the same pipeline with `mlflow.sklearn.save_model` and serves it
with `mlflow models serve --env-manager local --workers 1`; BentoML 1.4.40 saves it in its model
store and serves `serving_baselines/bentoml_service.py` (one worker, with and without
`batchable=True`) with `bentoml serve`. The floor is `serving_baselines/bare.py`: a Starlette
endpoint that reads the body and answers a constant, on uvicorn with uvloop and httptools like
Fermion. MLflow and BentoML live in their own virtual environments under `.bench-envs/` (made
with `python -m venv` + pip on the first run, reused afterwards; never Fermion dependencies).

Every server binds 127.0.0.1 on a free port, writes its output to a file, and is stopped
(SIGTERM, then SIGKILL for anything left of its process tree) when its measurement ends, also on
an error or Ctrl-C. Each request is one row of 30 floats in the server's own format (Fermion
`{"rows": [{...}]}`, MLflow `{"inputs": [[...]]}`, BentoML `{"rows": [[...]]}`); one answer of
each is checked (status 200, label of the first row) before it is loaded.

Load generator: `wrk` (C; `apt-get install wrk`) with one thread, N keep-alive connections in a
closed loop, a Lua script for the POST body and its exact p50/p99; without wrk, the asyncio
raw-socket client `serving_baselines/loadgen.py` (which takes CPU from the server on a small
machine; the output says which one ran).

Figures, each against a baseline measured in the same run (medians over `--rounds`):
  - throughput: req/s, p50, p99 at 1 and 32 connections per server, after a warm-up; Fermion
    with its defaults (batching on, access log on, to a file)
  - cold start: process spawn to the first correct answer, polled every 10 ms; one unmeasured
    start of each server first (disk caches; Fermion's first load copies the model's blobs),
    then `--cold-repeats` starts each, taking turns; the median
  - access log: Fermion's default against `--no-access-log`, both servers up, loaded in turns
    (ABBA, `--passes`), req/s at 32 connections summed over the passes
  - batching: Fermion's `torch_mlp` family on the same data, batching on against
    `--no-batching`, at 64 connections, same ABBA method
Targets: at 32 connections Fermion >= 40% of the bare endpoint's req/s and a p99 <= a quarter of
MLflow's and BentoML's; at 1 connection a p50 <= 3x the bare endpoint's; cold start faster than
MLflow and BentoML, and under 1 s; the access log costs < 10% of req/s; batching >= 4x the
req/s of no batching at 64 connections. Exit status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BASELINES = HERE / "serving_baselines"
ENVS = ROOT / ".bench-envs"  # ignored by git
# first choice, then a fallback where the pinned release cannot be installed
REQUIREMENTS = {
    "mlflow": (["mlflow==3.17.*", "scikit-learn"], ["mlflow>=3,<4", "scikit-learn"]),
    "bentoml": (["bentoml==1.4.40", "scikit-learn"], ["bentoml>=1.4,<1.5", "scikit-learn"]),
}
MODEL = "breast_cancer"
TORCH_MODEL = "breast_cancer_torch"
ALIAS = "bench"
START_TIMEOUT_S = 180.0

TARGET_VS_BARE = 0.40
TARGET_P99_SHARE = 0.25
TARGET_P50_VS_BARE = 3.0
TARGET_COLD_S = 1.0
TARGET_LOG_COST = 0.10
TARGET_BATCHING = 4.0

WRK_SCRIPT = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[BODY]==]
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, '
    .. '"p99_us": %d, "connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def load_average() -> float:
    return os.getloadavg()[0]


# -- the model and its row ---------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """The first row of the breast-cancer data, which every server is asked about."""

    names: list[str]
    values: list[float]
    label: int


def first_row() -> Row:
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer()
    names = [str(n).replace(" ", "_") for n in data.feature_names]
    return Row(names, [float(v) for v in data.data[0]], int(data.target[0]))


def write_csv(path: Path) -> None:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [str(c).replace(" ", "_") for c in frame.columns]
    frame.to_csv(path, index=False)


def fermion_workspace(folder: Path, torch: bool) -> Path:
    """A fresh workspace with `logistic` (and `torch_mlp`) trained and aliased `bench`."""
    from fermion.training.trainer import train
    from fermion.workspace import Workspace

    folder.mkdir()
    write_csv(folder / "breast_cancer.csv")
    with _without_fermion_env(), Workspace.init(folder) as ws:
        ws.datasets.add(folder / "breast_cancer.csv", name="breast_cancer")
        families = [(MODEL, "logistic", {"max_iter": 5000})]
        if torch:
            families.append((TORCH_MODEL, "torch_mlp", {}))
        for name, family, params in families:
            version = train(ws, "breast_cancer", "target", family, params, name=name).model
            assert version is not None
            ws.models.set_alias(name, ALIAS, version.version)
    return folder


@contextlib.contextmanager
def _without_fermion_env() -> Iterator[None]:
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("FERMION_")}
    try:
        yield
    finally:
        os.environ.update(saved)


def in_process_rates(workspace: Path, row: Row, seconds: float) -> dict[str, float]:
    """One-row calls per second in this process: Fermion's `Model.predict` on a dict and the
    same scikit-learn pipeline's `predict` on a (1, 30) array."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from fermion.workspace import Workspace

    def rate(call: Callable[[], Any]) -> float:
        calls, started = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - started) < seconds:
            call()
            calls += 1
        return calls / elapsed

    data = load_breast_cancer()
    pipeline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    pipeline.fit(data.data, data.target)
    array = np.asarray([row.values])
    with _without_fermion_env(), Workspace.open(workspace) as ws:
        model = ws.models.load(f"{MODEL}@{ALIAS}")
        record = dict(zip(row.names, row.values, strict=True))
        return {
            "fermion": rate(lambda: model.predict(record)),
            "sklearn": rate(lambda: pipeline.predict(array)),
        }


# -- baseline environments ---------------------------------------------------------------------


def baseline_python(tool: str) -> Path:
    """The interpreter of the tool's own virtual environment, made on first use."""
    folder = ENVS / tool
    python = folder / "bin" / "python"
    if python.exists() and _imports(python, tool):
        return python
    first, fallback = REQUIREMENTS[tool]
    print(f"making .bench-envs/{tool} with {' '.join(first)} (once) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(folder)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if subprocess.run([*pip, *first], check=False).returncode != 0:
        print(f"{first[0]} is not installable here; trying {fallback[0]}", flush=True)
        subprocess.run([*pip, *fallback], check=True)
    if not _imports(python, tool):
        raise SystemExit(f"{tool} does not import in {folder}")
    return python


def _imports(python: Path, module: str) -> bool:
    done = subprocess.run([str(python), "-c", f"import {module}"], capture_output=True, check=False)
    return done.returncode == 0


def version_of(python: Path, module: str) -> str:
    code = f"import {module}; print({module}.__version__)"
    done = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def baseline_env(tool_python: Path, folder: Path) -> dict[str, str]:
    # The environment's bin first on PATH, as when it is activated (`mlflow models serve`
    # runs `uvicorn` from PATH); no telemetry.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "BENTOML_"))}
    env.pop("PYTHONPATH", None)
    env.update(
        {
            "PATH": f"{tool_python.parent}{os.pathsep}{env.get('PATH', '')}",
            "VIRTUAL_ENV": str(tool_python.parent.parent),
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "true",
            "BENTOML_DO_NOT_TRACK": "true",
            "BENTOML_HOME": str(folder / "bentoml-home"),
        }
    )
    return env


def train_baseline(tool: str, python: Path, folder: Path, row: Row) -> None:
    args = [str(python), str(BASELINES / "train_baseline.py"), tool, str(folder)]
    done = subprocess.run(
        args, capture_output=True, text=True, env=baseline_env(python, folder), check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"training the {tool} model failed:\n{done.stderr[-3000:]}")
    label = int(done.stdout.strip().splitlines()[-1])
    if label != row.label:
        raise SystemExit(f"the {tool} model predicts {label} for the first row, not {row.label}")


# -- servers -----------------------------------------------------------------------------------


@dataclass
class Server:
    """How to start one server and what to send it."""

    key: str
    label: str
    argv: Callable[[int], list[str]]  # the command line for a port
    path: str
    body: bytes
    expect: Callable[[Any], bool]  # is this answer (parsed JSON) right?
    cwd: Path | None = None
    env: dict[str, str] | None = None


@dataclass
class Running:
    server: Server
    process: subprocess.Popen[bytes]
    port: int
    spawned: float  # perf_counter just before the spawn
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.server.path}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Launcher:
    """Starts servers and stops every one of them, whatever happens (use it with `with`)."""

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._running: list[Running] = []
        self._count = 0

    def __enter__(self) -> Launcher:
        return self

    def __exit__(self, *exc: object) -> None:
        for running in list(self._running):
            self.stop(running)

    def start(self, server: Server) -> Running:
        port = free_port()
        self._count += 1
        log = self._folder / f"{self._count:03d}-{server.key}.log"
        with log.open("wb") as out:
            spawned = time.perf_counter()
            process = subprocess.Popen(
                server.argv(port),
                cwd=server.cwd,
                env=server.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in the terminal reaches the benchmark only
            )
        running = Running(server, process, port, spawned, log)
        self._running.append(running)
        return running

    def stop(self, running: Running) -> None:
        """SIGTERM, then SIGKILL for the process and every descendant still there (BentoML's
        worker runs in a session of its own, so a process group is not enough)."""
        process = running.process
        tree = _descendants(process.pid)
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        for pid in tree:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        self._running.remove(running)


def _descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def post(running: Running, timeout: float = 5.0) -> tuple[int, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", running.port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"}
        connection.request("POST", running.server.path, running.server.body, headers)
        answer = connection.getresponse()
        raw = answer.read()
    finally:
        connection.close()
    try:
        return answer.status, json.loads(raw)
    except ValueError:
        return answer.status, raw[:200]


def first_answer(running: Running) -> float:
    """Seconds from the spawn to the first right answer; a wrong one or an exit is an error."""
    deadline = running.spawned + START_TIMEOUT_S
    while time.perf_counter() < deadline:
        if running.process.poll() is not None:
            tail = running.log.read_text(errors="replace")[-3000:]
            raise SystemExit(f"{running.server.label} exited before answering:\n{tail}")
        try:
            status, answer = post(running)
        except OSError:
            status, answer = 0, None
        if status == 200:
            if not running.server.expect(answer):
                raise SystemExit(f"{running.server.label} answered wrongly: {answer!r}")
            return time.perf_counter() - running.spawned
        time.sleep(0.01)
    raise SystemExit(f"{running.server.label} gave no answer in {START_TIMEOUT_S:.0f} s")


def make_servers(
    row: Row,
    folder: Path,
    workspace: Path | None,
    baselines: dict[str, Path],
) -> dict[str, Server]:
    record = dict(zip(row.names, row.values, strict=True))
    fermion_body = json.dumps({"rows": [record]}).encode()
    fermion_env = {k: v for k, v in os.environ.items() if not k.startswith("FERMION_")}
    python = sys.executable

    def fermion(key: str, label: str, model: str, *options: str) -> Server:
        def argv(port: int) -> list[str]:
            return [
                *(python, "-m", "fermion", "serve", f"{model}@{ALIAS}", "--port", str(port)),
                *("--workers", "1", "--no-auth", *options),
            ]

        def expect(answer: Any) -> bool:
            return isinstance(answer, dict) and answer.get("predictions") == [row.label]

        path = f"/v1/models/{model}/predict"
        return Server(key, label, argv, path, fermion_body, expect, workspace, fermion_env)

    servers: dict[str, Server] = {
        "bare": Server(
            "bare",
            "bare Starlette",
            lambda port: [
                *(python, "-m", "uvicorn", "bare:app", "--app-dir", str(BASELINES)),
                *("--loop", "uvloop", "--http", "httptools", "--no-access-log"),
                *("--log-level", "warning", "--host", "127.0.0.1", "--port", str(port)),
            ],
            "/predict",
            fermion_body,
            lambda answer: True,
        ),
    }
    if workspace is not None:
        servers["fermion"] = fermion("fermion", "Fermion", MODEL)
        servers["fermion_nolog"] = fermion(
            "fermion_nolog", "Fermion --no-access-log", MODEL, "--no-access-log"
        )
        servers["torch"] = fermion("torch", "Fermion torch_mlp", TORCH_MODEL)
        servers["torch_nobatch"] = fermion(
            "torch_nobatch", "Fermion torch_mlp --no-batching", TORCH_MODEL, "--no-batching"
        )
    if "mlflow" in baselines:
        mlflow = baselines["mlflow"]
        servers["mlflow"] = Server(
            "mlflow",
            f"MLflow {version_of(mlflow, 'mlflow')}",
            lambda port: [
                *(str(mlflow.parent / "mlflow"), "models", "serve", "-m", str(folder / "model")),
                *("--env-manager", "local", "-p", str(port), "-h", "127.0.0.1", "--workers", "1"),
            ],
            "/invocations",
            json.dumps({"inputs": [row.values]}).encode(),
            lambda answer: isinstance(answer, dict) and answer.get("predictions") == [row.label],
            folder,
            baseline_env(mlflow, folder),
        )
    if "bentoml" in baselines:
        bento = baselines["bentoml"]
        version = version_of(bento, "bentoml")

        def bentoml(service: str) -> Callable[[int], list[str]]:
            def argv(port: int) -> list[str]:
                return [
                    *(str(bento.parent / "bentoml"), "serve", f"bentoml_service:{service}"),
                    *("--working-dir", str(BASELINES), "--host", "127.0.0.1", "--port", str(port)),
                ]

            return argv

        for key, service, label in [
            ("bentoml", "Classifier", f"BentoML {version}"),
            ("bentoml_batched", "BatchedClassifier", f"BentoML {version} batchable"),
        ]:
            servers[key] = Server(
                key,
                label,
                bentoml(service),
                "/predict",
                json.dumps({"rows": [row.values]}).encode(),
                lambda answer: answer == [row.label],
                BASELINES,
                baseline_env(bento, folder),
            )
    return servers


# -- load --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Point:
    """One load run: req/s and latency percentiles at some number of connections."""

    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int
    load: float


class LoadGenerator:
    """wrk when installed, else the Python fallback; the same for every server."""

    def __init__(self, folder: Path, force_python: bool = False) -> None:
        self._folder = folder
        self.wrk = None if force_python else shutil.which("wrk")
        if self.wrk:
            done = subprocess.run([self.wrk, "-v"], capture_output=True, text=True, check=False)
            self.name = (done.stdout + done.stderr).split("Copyright")[0].strip()
        else:
            self.name = "serving_baselines/loadgen.py (Python asyncio; wrk not found)"

    def run(self, running: Running, connections: int, seconds: float) -> Point:
        server = running.server
        before = load_average()
        if self.wrk:
            script = self._folder / f"{server.key}.lua"
            if not script.exists():
                script.write_text(WRK_SCRIPT.replace("BODY", server.body.decode()))
            command = [
                *(self.wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s"),
                *("--timeout", "30s", "-s", str(script), running.url),
            ]
        else:
            body = self._folder / f"{server.key}.json"
            body.write_bytes(server.body)
            loadgen = str(BASELINES / "loadgen.py")
            command = [
                *(sys.executable, loadgen, running.url, str(body), str(connections)),
                str(seconds),
            ]
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=seconds + 120, check=False
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
        if done.returncode != 0 or not lines:
            raise SystemExit(f"the load generator failed on {server.label}:\n{done.stderr[-2000:]}")
        result = json.loads(lines[-1].removeprefix("RESULT "))
        errors = sum(result[k] for k in ("connect", "read", "write", "status", "timeout"))
        return Point(
            connections,
            result["requests"] / (result["duration_us"] / 1e6),
            result["p50_us"] / 1000,
            result["p99_us"] / 1000,
            int(result["requests"]),
            int(errors),
            (before + load_average()) / 2,
        )


def progress(label: str, point: Point) -> None:
    errors = f"  ERRORS {point.errors}" if point.errors else ""
    print(
        f"  {label:<34} c={point.connections:<3} {point.rps:9,.0f} req/s  "
        f"p50 {point.p50_ms:8.2f} ms  p99 {point.p99_ms:8.2f} ms  load {point.load:.1f}{errors}",
        flush=True,
    )


def median_point(points: list[Point]) -> Point:
    def med(key: str) -> float:
        return float(statistics.median(getattr(p, key) for p in points))

    return Point(
        points[0].connections,
        med("rps"),
        med("p50_ms"),
        med("p99_ms"),
        sum(p.requests for p in points),
        sum(p.errors for p in points),
        med("load"),
    )


# -- the measurements --------------------------------------------------------------------------


@dataclass
class Settings:
    duration: float
    warmup: float
    rounds: int
    cold_repeats: int
    passes: int


def bench_throughput(
    servers: list[Server], loader: LoadGenerator, launcher: Launcher, settings: Settings
) -> dict[str, dict[int, Point]]:
    """Each server alone on the machine: started, checked, warmed up, loaded at 1 and 32."""
    points: dict[str, dict[int, list[Point]]] = {s.key: {1: [], 32: []} for s in servers}
    for index in range(settings.rounds):
        print(f"throughput, round {index + 1} of {settings.rounds}:", flush=True)
        for server in servers:
            running = launcher.start(server)
            try:
                first_answer(running)
                loader.run(running, 32, settings.warmup)
                for connections in (1, 32):
                    point = loader.run(running, connections, settings.duration)
                    points[server.key][connections].append(point)
                    progress(server.label, point)
            finally:
                launcher.stop(running)
    return {key: {c: median_point(p) for c, p in by.items()} for key, by in points.items()}


def bench_cold(servers: list[Server], launcher: Launcher, repeats: int) -> dict[str, list[float]]:
    """Spawn to first right answer, the servers taking turns; one unmeasured start each first.
    Also Fermion's own figure for loading and warming up its model (`fermion_load`)."""
    seconds: dict[str, list[float]] = {s.key: [] for s in servers}
    seconds["fermion_load"] = []
    seconds["load"] = []  # the 1-minute load average after each measured start
    for index in range(repeats + 1):
        order = servers[index % len(servers) :] + servers[: index % len(servers)]
        for server in order:
            running = launcher.start(server)
            try:
                took = first_answer(running)
                if server.key == "fermion" and index > 0:
                    model_load = [
                        value
                        for name, value in fermion_metrics(running).items()
                        if name.startswith(f'fermion_model_load_seconds{{model="{MODEL}"')
                    ]
                    seconds["fermion_load"] += model_load[:1]
            finally:
                launcher.stop(running)
            if index == 0:
                print(f"  {server.label:<34} unmeasured start: {took:.2f} s", flush=True)
                continue
            seconds[server.key].append(took)
            seconds["load"].append(load_average())
            print(
                f"  {server.label:<34} cold start {took:.2f} s  load {load_average():.1f}",
                flush=True,
            )
    return seconds


@dataclass
class Pair:
    """Two servers loaded in turns at the same number of connections."""

    points: dict[str, list[Point]] = field(default_factory=dict)
    batch_rows: dict[str, float] = field(default_factory=dict)

    def rps(self, key: str) -> float:
        points = self.points[key]
        seconds = sum(p.requests / p.rps for p in points)
        return sum(p.requests for p in points) / seconds

    def p99(self, key: str) -> float:
        return float(statistics.median(p.p99_ms for p in self.points[key]))

    def loads(self) -> str:
        return _loads([p for points in self.points.values() for p in points])


def bench_pair(
    first: Server,
    second: Server,
    connections: int,
    loader: LoadGenerator,
    launcher: Launcher,
    settings: Settings,
    model: str,
) -> Pair:
    """Both servers up, each warmed up, then loaded in turns: A B B A ... (`passes`)."""
    pair = Pair({first.key: [], second.key: []})
    a, b = launcher.start(first), launcher.start(second)
    try:
        for running in (a, b):
            first_answer(running)
            loader.run(running, connections, settings.warmup)
        before = {r.server.key: _batch_stats(r, model) for r in (a, b)}
        for index in range(settings.passes):
            for running in (a, b) if index % 2 == 0 else (b, a):
                point = loader.run(running, connections, settings.duration)
                pair.points[running.server.key].append(point)
                progress(running.server.label, point)
        for running in (a, b):
            rows, calls = _batch_stats(running, model)
            done_rows, done_calls = before[running.server.key]
            if calls > done_calls:
                pair.batch_rows[running.server.key] = (rows - done_rows) / (calls - done_calls)
    finally:
        launcher.stop(a)
        launcher.stop(b)
    return pair


def _batch_stats(running: Running, model: str) -> tuple[float, float]:
    """Fermion's `fermion_batch_rows` histogram for `model`: (sum of rows, model calls)."""
    metrics = fermion_metrics(running)
    labels = f'{{model="{model}"}}'
    return (
        metrics.get(f"fermion_batch_rows_sum{labels}", 0.0),
        metrics.get(f"fermion_batch_rows_count{labels}", 0.0),
    )


def fermion_metrics(running: Running) -> dict[str, float]:
    """The samples of a Fermion server's `/metrics`, by name with labels; empty on failure."""
    connection = http.client.HTTPConnection("127.0.0.1", running.port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    except OSError:
        return {}
    finally:
        connection.close()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                samples[name] = float(value)
    return samples


# -- the tables --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    figure: str
    fermion: str
    baseline: str
    ratio: str
    target: str
    held: bool | None  # None: a figure shown for context, without a target
    load: str


def _loads(points: list[Point]) -> str:
    loads = [p.load for p in points]
    return f"{min(loads):.1f}-{max(loads):.1f}" if loads else ""


def _rps(point: Point) -> str:
    return f"{point.rps:,.0f} req/s"


def throughput_checks(
    points: dict[str, dict[int, Point]], labels: dict[str, str], in_process: dict[str, float]
) -> list[Check]:
    ours, bare = points["fermion"], points["bare"]
    share = ours[32].rps / bare[32].rps
    loads = _loads([p for by in points.values() for p in by.values()])
    checks = [
        Check(
            "req/s at 32 connections, against the bare endpoint",
            _rps(ours[32]),
            f"{_rps(bare[32])} (bare)",
            f"{share:.0%}",
            f">= {TARGET_VS_BARE:.0%}",
            share >= TARGET_VS_BARE,
            loads,
        )
    ]
    for key in ("mlflow", "bentoml", "bentoml_batched"):
        if key not in points:
            continue
        theirs = points[key][32]
        checks.append(
            Check(
                f"req/s at 32 connections, against {labels[key]}",
                _rps(ours[32]),
                _rps(theirs),
                f"{ours[32].rps / theirs.rps:.1f}x",
                "",
                None,
                loads,
            )
        )
        target = key != "bentoml_batched"  # the p99 target names the plain services
        checks.append(
            Check(
                f"p99 at 32 connections, against {labels[key]}",
                f"{ours[32].p99_ms:.1f} ms",
                f"{theirs.p99_ms:.1f} ms",
                f"{ours[32].p99_ms / theirs.p99_ms:.2f}x",
                f"<= {TARGET_P99_SHARE}x" if target else "",
                ours[32].p99_ms <= TARGET_P99_SHARE * theirs.p99_ms if target else None,
                loads,
            )
        )
    checks += [
        Check(
            "p50 at 1 connection, against the bare endpoint",
            f"{ours[1].p50_ms:.2f} ms",
            f"{bare[1].p50_ms:.2f} ms (bare)",
            f"{ours[1].p50_ms / bare[1].p50_ms:.1f}x",
            f"<= {TARGET_P50_VS_BARE:.0f}x",
            ours[1].p50_ms <= TARGET_P50_VS_BARE * bare[1].p50_ms,
            loads,
        ),
        Check(
            "p99 at 1 connection, against the bare endpoint",
            f"{ours[1].p99_ms:.2f} ms",
            f"{bare[1].p99_ms:.2f} ms (bare)",
            f"{ours[1].p99_ms / bare[1].p99_ms:.1f}x",
            "",
            None,
            loads,
        ),
    ]
    if in_process:
        checks.append(
            Check(
                "in process, one-row calls/s: Model.predict against the sklearn pipeline",
                f"{in_process['fermion']:,.0f}/s",
                f"{in_process['sklearn']:,.0f}/s",
                f"{in_process['fermion'] / in_process['sklearn']:.2f}x",
                "",
                None,
                "",
            )
        )
    return checks


def cold_checks(seconds: dict[str, list[float]], labels: dict[str, str]) -> list[Check]:
    def shown(key: str) -> str:
        values = seconds[key]
        spread = f" ({min(values):.2f}-{max(values):.2f})" if len(values) > 1 else ""
        return f"{statistics.median(values):.2f} s{spread}"

    ours = statistics.median(seconds["fermion"])
    loads = f"{min(seconds['load']):.1f}-{max(seconds['load']):.1f}"
    checks = []
    for key in ("mlflow", "bentoml"):
        if key in seconds:
            theirs = statistics.median(seconds[key])
            checks.append(
                Check(
                    f"cold start to first answer, against {labels[key]}",
                    shown("fermion"),
                    shown(key),
                    f"{ours / theirs:.2f}x",
                    "faster",
                    ours < theirs,
                    loads,
                )
            )
    checks.append(
        Check(
            "cold start to first answer",
            shown("fermion"),
            "",
            "",
            f"< {TARGET_COLD_S:.0f} s",
            ours < TARGET_COLD_S,
            loads,
        )
    )
    if seconds["fermion_load"]:
        checks.append(
            Check(
                "- of which loading and warming up the model (fermion_model_load_seconds)",
                shown("fermion_load"),
                "",
                "",
                "",
                None,
                loads,
            )
        )
    return checks


def log_checks(pair: Pair) -> list[Check]:
    on, off = pair.rps("fermion"), pair.rps("fermion_nolog")
    return [
        Check(
            "access log on (default) against --no-access-log, req/s at 32 connections",
            f"{on:,.0f} req/s",
            f"{off:,.0f} req/s",
            f"{on / off:.2f}x",
            f">= {1 - TARGET_LOG_COST:.2f}x",
            on >= (1 - TARGET_LOG_COST) * off,
            pair.loads(),
        ),
        Check(
            "- p99 (median of the passes)",
            f"{pair.p99('fermion'):.1f} ms",
            f"{pair.p99('fermion_nolog'):.1f} ms",
            "",
            "",
            None,
            pair.loads(),
        ),
    ]


def batching_checks(pair: Pair) -> list[Check]:
    on, off = pair.rps("torch"), pair.rps("torch_nobatch")
    rows = pair.batch_rows
    return [
        Check(
            "torch_mlp: batching on against --no-batching, req/s at 64 connections",
            f"{on:,.0f} req/s",
            f"{off:,.0f} req/s",
            f"{on / off:.1f}x",
            f">= {TARGET_BATCHING:.0f}x",
            on >= TARGET_BATCHING * off,
            pair.loads(),
        ),
        Check(
            "- p99 (median of the passes)",
            f"{pair.p99('torch'):.1f} ms",
            f"{pair.p99('torch_nobatch'):.1f} ms",
            "",
            "",
            None,
            pair.loads(),
        ),
        Check(
            "- mean rows per model call",
            f"{rows.get('torch', 0):.1f}",
            f"{rows.get('torch_nobatch', 0):.1f}",
            "",
            "",
            None,
            pair.loads(),
        ),
    ]


def print_servers(points: dict[str, dict[int, Point]], labels: dict[str, str]) -> None:
    print("\n### Servers (medians)\n")
    print("| server | req/s c=1 | p50 c=1 | p99 c=1 | req/s c=32 | p50 c=32 | p99 c=32 | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for key, by in points.items():
        one, many = by[1], by[32]
        print(
            f"| {labels[key]} | {one.rps:,.0f} | {one.p50_ms:.2f} ms | {one.p99_ms:.2f} ms "
            f"| {many.rps:,.0f} | {many.p50_ms:.2f} ms | {many.p99_ms:.1f} ms "
            f"| {one.errors + many.errors} |"
        )


def print_table(title: str, checks: list[Check]) -> None:
    print(f"\n### {title}\n")
    print("| figure | Fermion | baseline | ratio | target | holds | load |")
    print("|---|---:|---:|---:|---|---|---:|")
    for c in checks:
        held = "" if c.held is None else ("holds" if c.held else "MISSED")
        print(
            f"| {c.figure} | {c.fermion} | {c.baseline} | {c.ratio} | {c.target} | {held} "
            f"| {c.load} |"
        )
    sys.stdout.flush()


# -- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, help="seconds per load point (10; quick 3)")
    parser.add_argument("--warmup", type=float, help="seconds of load before measuring (2; 1)")
    parser.add_argument("--rounds", type=int, default=1, help="throughput rounds (median)")
    parser.add_argument("--cold-repeats", type=int, help="measured starts per server (3; 1)")
    parser.add_argument("--passes", type=int, default=2, help="ABBA passes, log and batching")
    parser.add_argument("--quick", action="store_true", help="3 s points, one cold start each")
    parser.add_argument(
        "--skip-baselines", action="store_true", help="Fermion and the bare endpoint only"
    )
    parser.add_argument("--only", choices=["cold", "throughput", "batching", "log"])
    parser.add_argument(
        "--python-load", action="store_true", help="the Python load generator even if wrk is here"
    )
    args = parser.parse_args()
    settings = Settings(
        duration=args.duration or (3.0 if args.quick else 10.0),
        warmup=args.warmup or (1.0 if args.quick else 2.0),
        rounds=args.rounds,
        cold_repeats=args.cold_repeats or (1 if args.quick else 3),
        passes=args.passes,
    )
    parts = [args.only] if args.only else ["throughput", "cold", "log", "batching"]
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))  # run the cleanups
    started = time.perf_counter()
    tables: list[tuple[str, list[Check]]] = []
    with tempfile.TemporaryDirectory(prefix="fermion-serving-bench-") as tmp:
        folder = Path(tmp)
        loader = LoadGenerator(folder, force_python=args.python_load)
        print(
            f"{os.cpu_count()} CPUs; load average "
            f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; load generator: {loader.name}; "
            f"{settings.duration:g} s per point",
            flush=True,
        )
        row = first_row()
        baselines: dict[str, Path] = {}
        if not args.skip_baselines and set(parts) & {"throughput", "cold"}:
            for tool in ("mlflow", "bentoml"):
                baselines[tool] = baseline_python(tool)
                train_baseline(tool, baselines[tool], folder, row)
        print("training Fermion's models ...", flush=True)
        workspace = fermion_workspace(folder / "workspace", torch="batching" in parts)
        servers = make_servers(row, folder, workspace, baselines)
        labels = {key: server.label for key, server in servers.items()}
        if baselines:
            print(f"baselines: {labels['mlflow']}, {labels['bentoml']}", flush=True)
        with Launcher(folder) as launcher:
            if "throughput" in parts:
                keys = ["bare", "fermion", "mlflow", "bentoml", "bentoml_batched"]
                points = bench_throughput(
                    [servers[k] for k in keys if k in servers], loader, launcher, settings
                )
                in_process = in_process_rates(workspace, row, min(settings.duration, 3.0))
                print_servers(points, labels)
                tables.append(
                    (
                        "Throughput, one row per request",
                        throughput_checks(points, labels, in_process),
                    )
                )
            if "cold" in parts:
                print("cold start:", flush=True)
                keys = ["fermion", "mlflow", "bentoml"]
                seconds = bench_cold(
                    [servers[k] for k in keys if k in servers], launcher, settings.cold_repeats
                )
                tables.append(("Cold start", cold_checks(seconds, labels)))
            if "log" in parts:
                print("access log (32 connections):", flush=True)
                pair = bench_pair(
                    servers["fermion"],
                    servers["fermion_nolog"],
                    32,
                    loader,
                    launcher,
                    settings,
                    MODEL,
                )
                tables.append(("Access log", log_checks(pair)))
            if "batching" in parts:
                print("batching, torch_mlp (64 connections):", flush=True)
                pair = bench_pair(
                    servers["torch"],
                    servers["torch_nobatch"],
                    64,
                    loader,
                    launcher,
                    settings,
                    TORCH_MODEL,
                )
                tables.append(("Adaptive batching", batching_checks(pair)))
    for title, checks in tables:
        print_table(title, checks)
    print(f"\ntook {(time.perf_counter() - started) / 60:.1f} min")
    missed = [c.figure for _, checks in tables for c in checks if c.held is False]
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
