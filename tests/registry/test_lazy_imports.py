"""A server of a tabular model starts and answers without importing Polars (0.1-0.4 s of its
start): loading the model, checking JSON inputs and preprocessing them are numpy only."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fermion.workspace import Workspace

ROW = {"age": 41, "income": 3100.5, "city": "lyon"}

# What a server worker does (`app_from_spec`, the lifespan, a predict call), then the Python
# API's batch path, in a process that has imported nothing yet.
CHILD = """
import json, sys, time
from starlette.testclient import TestClient
from fermion.serving.model_set import parse_refs
from fermion.serving.options import ServeOptions
from fermion.serving.server import app_from_spec, serve_spec
from fermion.workspace import Workspace

root, ref, row = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
with Workspace.open(root) as ws:
    spec = serve_spec(ws, parse_refs([ref]), ServeOptions(auth=False))
    model = ws.models.load(ref)
    values, _ = model.predict_columns({name: [value] for name, value in row.items()}, 1)
with TestClient(app_from_spec(spec)) as client:
    deadline = time.monotonic() + 60
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get(f"/v1/models/{ref}").text
        time.sleep(0.02)
    answer = client.post(f"/v1/models/{ref}/predict", json={"rows": [row]}).json()
print(json.dumps({"polars": "polars" in sys.modules, "served": answer["predictions"],
                  "columns": values.tolist()}))
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, credit_csv: Any) -> Iterator[Path]:
    """A workspace holding `numeric` (age, income) and `categorical` (and city) classifiers."""
    from fermion.training.trainer import train

    root = tmp_path_factory.mktemp("lazy")
    with Workspace.init(root) as ws:
        ws.datasets.add(credit_csv(root / "credit.csv", seed=0), name="credit")
        train(ws, "credit", "status", "logistic", features=["age", "income"], name="numeric")
        train(ws, "credit", "status", "logistic", name="categorical")
    yield root


@pytest.mark.parametrize(
    ("ref", "row"),
    [
        ("numeric", {"age": ROW["age"], "income": ROW["income"]}),
        ("categorical", ROW),
    ],
)
def test_serving_a_tabular_model_never_imports_polars(
    trained: Path, ref: str, row: dict[str, Any]
) -> None:
    child = subprocess.run(
        [sys.executable, "-c", CHILD, str(trained), ref, json.dumps(row)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout.splitlines()[-1])
    assert not result["polars"]
    with Workspace.open(trained) as ws:
        expected = ws.models.load(ref).predict(row).tolist()
    assert result["served"] == expected
    assert result["columns"] == expected
