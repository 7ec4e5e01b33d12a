"""Logging metric points: Fermion's `run.log_metric` loop against MLflow, in one script run.

    .venv/bin/python benchmarks/tracking.py                  # 100,000 points
    .venv/bin/python benchmarks/tracking.py --points 20000 --skip-mlflow
    .venv/bin/python benchmarks/tracking.py --postgres postgresql+psycopg://127.0.0.1:5432/test

Fermion: a fresh SQLite workspace in a temporary folder; a plain
`run.log_metric("loss", value, step=i)` loop, timed from the first call to the return of
`run.end()`, which writes every point still buffered. With `--postgres URL` the same loop runs
again with the metadata in a fresh schema of that PostgreSQL database (dropped afterwards).

MLflow runs in its own virtual environment, `benchmarks/.venv-mlflow` (made with
`python -m venv` and `pip install mlflow` on the first run, reused afterwards; never a
dependency of Fermion), in a subprocess that prints its figures as JSON:
  (a) a plain `mlflow.log_metric` loop against a SQLite tracking URI; MLflow stores each call
      in its own transaction, so this loop runs on `--mlflow-loop-points` (5,000) points to
      keep the benchmark within a few minutes, and is reported as points per second;
  (b) `MlflowClient().log_batch` with all the points, 1,000 per call (MLflow's limit per
      batch), building the `Metric` objects inside the timed loop.
Targets: Fermion >= 50,000 points/s, >= 100x MLflow's loop, >= 3x MLflow's log_batch; the
script exits with status 1 when one is missed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MLFLOW_VENV = HERE / ".venv-mlflow"
MLFLOW_REQUIREMENT = "mlflow==3.17.*"
MLFLOW_FALLBACK = "mlflow>=3,<4"  # the newest 3.x, where no 3.17 release can be installed
MLFLOW_BATCH = 1_000  # MLflow refuses more than 1,000 metrics in one log_batch call

TARGET_POINTS_PER_S = 50_000
TARGET_VS_LOOP = 100
TARGET_VS_BATCH = 3

# Runs in MLflow's environment: argv = loop points, batch points, folder; prints JSON.
MLFLOW_WORKER = """
import json, sys, time
loop_points, batch_points, folder = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
import mlflow
from mlflow import MlflowClient
from mlflow.entities import Metric

mlflow.set_tracking_uri(f"sqlite:///{folder}/mlflow.db")
experiment_id = mlflow.set_experiment("bench").experiment_id  # creates the database
with mlflow.start_run():
    start = time.perf_counter()
    for i in range(loop_points):
        mlflow.log_metric("loss", 1.0 / (i + 1), step=i)
    loop_s = time.perf_counter() - start
client = MlflowClient()
run_id = client.create_run(experiment_id).info.run_id
start = time.perf_counter()
for first in range(0, batch_points, BATCH):
    stamp = int(time.time() * 1000)
    metrics = [
        Metric("loss", 1.0 / (i + 1), stamp, i)
        for i in range(first, min(first + BATCH, batch_points))
    ]
    client.log_batch(run_id, metrics=metrics)
client.set_terminated(run_id)
batch_s = time.perf_counter() - start
stored = len(client.get_metric_history(run_id, "loss"))
print(json.dumps({
    "version": mlflow.__version__,
    "loop_points": loop_points, "loop_s": loop_s,
    "batch_points": batch_points, "batch_s": batch_s, "batch_stored": stored,
}))
""".replace("BATCH", str(MLFLOW_BATCH))


def fermion_points_per_s(points: int, metadata_url: str | None, folder: Path) -> dict[str, Any]:
    """Log `points` metric points into a fresh workspace in `folder`; the wall time includes
    the final flush in `run.end()`."""
    from fermion.settings import DEFAULT_TOML, SETTINGS_FILE, Settings
    from fermion.workspace import Workspace

    root = folder / ".fermion"
    root.mkdir(parents=True)
    (root / SETTINGS_FILE).write_text(DEFAULT_TOML, encoding="utf-8")
    # Settings from this folder only: a FERMION_METADATA_URL in the caller's shell is ignored.
    environ = {} if metadata_url is None else {"FERMION_METADATA_URL": metadata_url}
    with Workspace(Settings.load(root, environ=environ)) as ws:
        run = ws.runs.start("bench", experiment="bench")
        start = time.perf_counter()
        for i in range(points):
            run.log_metric("loss", 1.0 / (i + 1), step=i)
        run.end()
        seconds = time.perf_counter() - start
        stored = len(ws.runs.history(run.id, "loss"))
    if stored != points:
        raise SystemExit(f"Fermion stored {stored:,} of {points:,} points")
    return {"points": points, "seconds": seconds, "rate": points / seconds}


def fermion_on_postgres(points: int, url: str, folder: Path) -> dict[str, Any]:
    """The same loop with the metadata in a new schema of `url`, dropped afterwards."""
    import sqlalchemy as sa

    schema = f"bench_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(url)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    separator = "&" if "?" in url else "?"
    try:
        return fermion_points_per_s(
            points, f"{url}{separator}options=-csearch_path%3D{schema}", folder
        )
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def mlflow_python() -> Path:
    """The interpreter of MLflow's own environment, made on first use."""
    python = MLFLOW_VENV / "bin" / "python"
    if python.exists() and _imports_mlflow(python):
        return python
    print(f"making {MLFLOW_VENV.relative_to(HERE.parent)} with {MLFLOW_REQUIREMENT} (once) ...")
    subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    if subprocess.run([*pip, MLFLOW_REQUIREMENT], check=False).returncode != 0:
        print(f"{MLFLOW_REQUIREMENT} is not installable here; trying {MLFLOW_FALLBACK}")
        subprocess.run([*pip, MLFLOW_FALLBACK], check=True)
    if not _imports_mlflow(python):
        raise SystemExit(f"mlflow does not import in {MLFLOW_VENV}")
    return python


def _imports_mlflow(python: Path) -> bool:
    done = subprocess.run(
        [str(python), "-c", "import mlflow"], capture_output=True, check=False, env=_mlflow_env()
    )
    return done.returncode == 0


def _mlflow_env() -> dict[str, str]:
    # No telemetry calls and synchronous logging: MLflow's defaults, minus the network.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update({"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"})
    return env


def mlflow_figures(loop_points: int, batch_points: int, folder: Path) -> dict[str, Any]:
    python = mlflow_python()
    done = subprocess.run(
        [str(python), "-c", MLFLOW_WORKER, str(loop_points), str(batch_points), str(folder)],
        capture_output=True,
        text=True,
        check=False,
        env=_mlflow_env(),
    )
    if done.returncode != 0:
        raise SystemExit(f"the MLflow worker failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if result["batch_stored"] != batch_points:
        raise SystemExit(f"MLflow stored {result['batch_stored']:,} of {batch_points:,} points")
    return result


def report(fermion: dict[str, Any], postgres: dict[str, Any] | None, mlflow: Any) -> bool:
    """Print the table; True when every target holds."""
    rows = [("Fermion, run.log_metric loop (SQLite)", fermion)]
    if postgres is not None:
        rows.append(("Fermion, run.log_metric loop (PostgreSQL)", postgres))
    if mlflow is not None:
        version = mlflow["version"]
        loop = {"points": mlflow["loop_points"], "seconds": mlflow["loop_s"]}
        batch = {"points": mlflow["batch_points"], "seconds": mlflow["batch_s"]}
        for figures in (loop, batch):
            figures["rate"] = figures["points"] / figures["seconds"]
        rows.append((f"MLflow {version}, mlflow.log_metric loop (SQLite)", loop))
        rows.append((f"MLflow {version}, log_batch of {MLFLOW_BATCH:,} (SQLite)", batch))
    print(f"\n| {'what':<48} | {'points':>9} | {'seconds':>8} | {'points/s':>10} |")
    print(f"|{'-' * 50}|{'-' * 10}:|{'-' * 9}:|{'-' * 11}:|")
    for label, figures in rows:
        print(
            f"| {label:<48} | {figures['points']:>9,} | {figures['seconds']:>8.2f} "
            f"| {figures['rate']:>10,.0f} |"
        )
    rate = fermion["rate"]
    checks = [(f"Fermion >= {TARGET_POINTS_PER_S:,} points/s", rate >= TARGET_POINTS_PER_S)]
    if mlflow is not None:
        vs_loop, vs_batch = rate / loop["rate"], rate / batch["rate"]
        print(f"\nFermion / MLflow loop:      {vs_loop:,.0f}x")
        print(f"Fermion / MLflow log_batch: {vs_batch:,.1f}x")
        checks.append((f"Fermion >= {TARGET_VS_LOOP}x the MLflow loop", vs_loop >= TARGET_VS_LOOP))
        checks.append(
            (f"Fermion >= {TARGET_VS_BATCH}x MLflow's log_batch", vs_batch >= TARGET_VS_BATCH)
        )
    print()
    for label, held in checks:
        print(f"{'holds' if held else 'MISSED':>6}  {label}")
    return all(held for _, held in checks)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000, help="points Fermion logs")
    parser.add_argument(
        "--mlflow-loop-points", type=int, default=5_000, help="points of MLflow's plain loop"
    )
    parser.add_argument("--skip-mlflow", action="store_true", help="measure Fermion only")
    parser.add_argument("--postgres", metavar="URL", help="also run Fermion on this database")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fermion-bench-") as folder:
        tmp = Path(folder)
        fermion = fermion_points_per_s(args.points, None, tmp / "sqlite")
        postgres = (
            fermion_on_postgres(args.points, args.postgres, tmp / "postgres")
            if args.postgres
            else None
        )
        mlflow = None
        if not args.skip_mlflow:
            (tmp / "mlflow").mkdir()
            loop_points = min(args.mlflow_loop_points, args.points)
            mlflow = mlflow_figures(loop_points, args.points, tmp / "mlflow")
    held = report(fermion, postgres, mlflow)
    sys.exit(0 if held else 1)


if __name__ == "__main__":
    main()
