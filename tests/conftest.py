"""Shared fixtures: metadata URLs for every backend, workspaces, a local S3 server."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

POSTGRES_URL = os.environ.get(
    "FERMION_TEST_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/test"
)
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _postgres_available() -> bool:
    try:
        import psycopg
    except ImportError:
        return False
    try:
        with psycopg.connect(
            POSTGRES_URL.replace("postgresql+psycopg", "postgresql"), connect_timeout=2
        ):
            return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def postgres_available() -> bool:
    return _postgres_available()


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees the developer's own workspace settings."""
    for key in list(os.environ):
        if key.startswith("FERMION_") and key != "FERMION_TEST_POSTGRES_URL":
            monkeypatch.delenv(key)


@pytest.fixture(params=BACKENDS)
def metadata_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_available: bool
) -> Iterator[str]:
    """A fresh, empty metadata database: a SQLite file, or a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'fermion.db'}"
        return
    if not postgres_available:
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    import sqlalchemy as sa

    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_URL)
    with admin.begin() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


@pytest.fixture
def workspace_dir(tmp_path: Path, metadata_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder with an initialised workspace on each metadata backend, as the cwd."""
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    monkeypatch.setenv("FERMION_METADATA_URL", metadata_url)
    return project


@pytest.fixture
def workspace(workspace_dir: Path) -> Iterator[object]:
    from fermion.workspace import Workspace

    with Workspace.init(workspace_dir) as ws:
        yield ws


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """moto's S3-compatible server on 127.0.0.1, with a bucket named `fermion`."""
    pytest.importorskip("s3fs")
    moto_server = pytest.importorskip("moto.server")
    import boto3

    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    credentials = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    saved = {key: os.environ.get(key) for key in credentials}
    os.environ.update(credentials)
    boto3.client("s3", endpoint_url=endpoint).create_bucket(Bucket="fermion")
    try:
        yield endpoint
    finally:
        server.stop()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


CreditCsv = Callable[..., Path]


def _write_credit_csv(path: Path, *, seed: int = 1, rows: int = 300) -> Path:
    """A small credit table (age, income, city -> status good/bad) with a learnable signal."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    age = rng.integers(18, 70, rows)
    income = rng.normal(3000, 800, rows).round(1)
    city = rng.choice(["paris", "lyon", "nice"], rows)
    status = np.where(income + age * 10 + rng.normal(0, 300, rows) > 3400, "good", "bad")
    pl.DataFrame({"age": age, "income": income, "city": city, "status": status}).write_csv(path)
    return path


@pytest.fixture(scope="session")
def credit_csv() -> CreditCsv:
    """Writes the small credit table: `credit_csv(path, seed=1, rows=300)`."""
    return _write_credit_csv
