"""Ingest + schema + profile of a wide CSV: Fermion against a pandas baseline.

    .venv/bin/python benchmarks/data_ingest.py            # 5,000,000 rows x 20 columns
    .venv/bin/python benchmarks/data_ingest.py --rows 200000

Each measurement runs in its own subprocess, which reports its own wall time and peak RSS
(getrusage RUSAGE_SELF), so one run's memory never counts against another:
  (a) pandas: read_csv + describe(include="all") + to_parquet
  (b) Fermion: ingest_file_described, the ingest + schema + profile that `fermion data add`
      runs (the CSV is read in memory when it fits `csv_reader.memory_budget()`); the
      artifact-store copy and the metadata insert are left out
  (c) streaming: Fermion's ingest_file of a CSV at least twice STREAM_LIMIT (the benchmark
      CSV repeated) in a memory cgroup limited to STREAM_LIMIT, which only a streaming reader
      survives. Where no cgroup can be made (not root), RLIMIT_DATA = STREAM_LIMIT instead;
      that limit counts address space the allocator reserves but never touches, so it can
      fail a run that stays far below it in RSS. RLIMIT_AS cannot be used at all: Polars
      memory-maps the CSV, and the mapping counts toward the address space.
The CSVs are generated into a temporary folder and deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

MIB = 1024 * 1024
STREAM_LIMIT = 800 * MIB


def generate(path: Path, rows: int, seed: int = 7) -> None:
    """20 columns: 7 integer, 7 float, 6 text (low and high cardinality), ~2% missing."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    words = np.array(["red", "green", "blue", "amber", "violet", "teal", "coral", "ivory"])
    columns: dict[str, pl.Series] = {}
    for i in range(7):
        columns[f"int_{i}"] = pl.Series(rng.integers(-(10 ** (i + 2)), 10 ** (i + 2), rows))
    for i in range(7):
        columns[f"float_{i}"] = pl.Series(rng.normal(i * 10.0, 1.0 + i, rows).round(4))
    for i in range(4):
        columns[f"cat_{i}"] = pl.Series(words[rng.integers(0, 3 + i, rows)])
    columns["city"] = pl.Series(rng.integers(0, 5000, rows)).cast(pl.String).str.pad_start(5, "c")
    columns["note"] = pl.Series(rng.integers(0, rows, rows)).cast(pl.String).str.pad_start(9, "n")
    frame = pl.DataFrame(columns)
    missing = {
        name: pl.when(pl.Series(rng.random(rows) < 0.02)).then(None).otherwise(pl.col(name))
        for name in ("int_1", "float_2", "cat_1", "note")
    }
    frame.with_columns(**missing).write_csv(path)


def repeat(csv: Path, target: Path, min_bytes: int) -> None:
    """`csv` with its data rows repeated until the file holds at least `min_bytes`."""
    with csv.open("rb") as source:
        header = source.readline()
        body = source.read()
    with target.open("wb") as out:
        out.write(header)
        written = len(header)
        while written < min_bytes:
            out.write(body)
            written += len(body)


def run_pandas(csv: Path, out: Path) -> None:
    import pandas as pd

    frame = pd.read_csv(csv)
    frame.describe(include="all")
    frame.to_parquet(out / "pandas.parquet")


def run_fermion(csv: Path, out: Path) -> None:
    from fermion.data.ingest import ingest_file_described

    ingest_file_described(csv, out / "fermion.parquet")


def run_ingest(csv: Path, out: Path) -> None:
    from fermion.data.ingest import ingest_file

    ingest_file(csv, out / "streamed.parquet")


WORKERS: dict[str, Callable[[Path, Path], None]] = {
    "pandas": run_pandas,
    "fermion": run_fermion,
    "ingest": run_ingest,
}


def memory_cgroup(limit: int) -> Path | None:
    """A new memory cgroup (v2, else v1) limited to `limit` bytes, or None if none can be made
    here (not root, no memory controller)."""
    name = f"fermion-bench-{os.getpid()}"
    for base, limit_file in (
        (Path("/sys/fs/cgroup"), "memory.max"),
        (Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes"),
    ):
        if not (base / "cgroup.procs").exists():  # not a cgroup hierarchy, e.g. a tmpfs
            continue
        group = base / name
        try:
            group.mkdir()
        except OSError:
            continue
        try:
            (group / limit_file).write_text(str(limit))
            if limit_file == "memory.max":
                (group / "memory.swap.max").write_text("0")
            return group
        except OSError:
            group.rmdir()
    return None


def worker(name: str, csv: Path, out: Path, limit: str) -> None:
    """Runs in the subprocess: do the work, print {"seconds", "peak_mib"} as JSON.

    `limit` is "0", "rlimit:BYTES", or "cgroup:PATH" (join that memory cgroup first).
    """
    kind, _, value = limit.partition(":")
    if kind == "rlimit":
        resource.setrlimit(resource.RLIMIT_DATA, (int(value), int(value)))
    elif kind == "cgroup":
        (Path(value) / "cgroup.procs").write_text(str(os.getpid()))
    start = time.perf_counter()
    WORKERS[name](csv, out)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(json.dumps({"seconds": seconds, "peak_mib": peak}))


def measure(name: str, csv: Path, out: Path, limit: str = "0") -> dict[str, float]:
    command = [sys.executable, __file__, "--worker", name, str(csv), str(out), limit]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        return {"failed": 1.0, "error": tail}  # type: ignore[dict-item]
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--worker", nargs=4, metavar=("NAME", "CSV", "OUT", "LIMIT"))
    args = parser.parse_args()
    if args.worker:
        name, csv, out, limit = args.worker
        worker(name, Path(csv), Path(out), limit)
        return
    with tempfile.TemporaryDirectory(prefix="fermion-bench-") as folder:
        out = Path(folder)
        csv = out / "data.csv"
        start = time.perf_counter()
        generate(csv, args.rows)
        size = csv.stat().st_size
        print(
            f"generated {args.rows:,} rows x 20 columns, {size / MIB:,.0f} MiB CSV "
            f"in {time.perf_counter() - start:.1f}s"
        )
        pandas = measure("pandas", csv, out)
        fermion = measure("fermion", csv, out)
        print(f"{'':10}{'seconds':>10}{'peak MiB':>10}")
        for label, result in (("pandas", pandas), ("fermion", fermion)):
            print(f"{label:10}{result['seconds']:>10.2f}{result['peak_mib']:>10.0f}")
        print(
            f"speed-up {pandas['seconds'] / fermion['seconds']:.1f}x, "
            f"peak memory {fermion['peak_mib'] / pandas['peak_mib']:.2f}x of pandas"
        )
        big = out / "big.csv"
        repeat(csv, big, 2 * STREAM_LIMIT)
        big_mib = big.stat().st_size / MIB
        group = memory_cgroup(STREAM_LIMIT)
        if group is not None:
            how = f"a memory cgroup of {STREAM_LIMIT / MIB:,.0f} MiB"
            try:
                streamed = measure("ingest", big, out, f"cgroup:{group}")
            finally:
                group.rmdir()
        else:
            how = f"RLIMIT_DATA = {STREAM_LIMIT / MIB:,.0f} MiB (no cgroup could be made)"
            streamed = measure("ingest", big, out, f"rlimit:{STREAM_LIMIT}")
        if "failed" in streamed:
            print(f"streaming: FAILED on a {big_mib:,.0f} MiB CSV in {how}: {streamed['error']}")
            sys.exit(1)
        print(
            f"streaming: ingest of a {big_mib:,.0f} MiB CSV in {how} took "
            f"{streamed['seconds']:.2f}s, peak RSS {streamed['peak_mib']:.0f} MiB"
        )


if __name__ == "__main__":
    main()
