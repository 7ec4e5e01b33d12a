"""A workspace with a trained classifier registered as `credit` (alias production), once per
module, and a helper that serves it in process."""

from __future__ import annotations

import io
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from fermion.serving.model_set import parse_refs
from fermion.serving.options import ServeOptions
from fermion.workspace import Workspace

ROW = {"age": 41, "income": 3100.5, "city": "lyon"}


@pytest.fixture(scope="module")
def served_workspace(
    tmp_path_factory: pytest.TempPathFactory, credit_csv: Any
) -> Iterator[Workspace]:
    from fermion.training.trainer import train

    root = tmp_path_factory.mktemp("serving")
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("FERMION_")]:
            patch.delenv(key)
        with Workspace.init(root) as ws:
            ws.datasets.add(credit_csv(root / "credit.csv", seed=0), name="credit")
            version = train(ws, "credit", "status", "logistic").model
            assert version is not None
            ws.models.set_alias("credit", "production", version.version)
            yield ws


@pytest.fixture(scope="session")
def row() -> dict[str, Any]:
    """A valid input row of the `credit` model."""
    return dict(ROW)


@pytest.fixture(scope="session")
def serve() -> Any:
    """`serve(ws, refs, options=None, *, guard=None, wait_ready=True)`: see `serving`."""
    return serving


@contextmanager
def serving(
    ws: Workspace,
    refs: list[str],
    options: ServeOptions | None = None,
    *,
    guard: Any = None,
    wait_ready: bool = True,
) -> Iterator[tuple[Any, io.StringIO]]:
    """A TestClient on the app (lifespan run), ready unless told not to wait; the access log
    goes to the StringIO returned with it."""
    from starlette.testclient import TestClient

    from fermion.serving.app import create_app

    log = io.StringIO()
    app = create_app(
        ws, parse_refs(refs), options or ServeOptions(auth=False), guard=guard, log_stream=log
    )
    with TestClient(app) as client:
        if wait_ready:
            deadline = time.monotonic() + 30
            while client.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline, "the models did not load"
                time.sleep(0.02)
        yield client, log


def state_of(client: Any) -> Any:
    return client.app.state.fermion
