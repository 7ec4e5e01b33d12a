"""The package surface: light to import, a curated namespace."""

from __future__ import annotations

import subprocess
import sys

import fermion


def test_import_fermion_loads_no_heavy_library() -> None:
    code = (
        "import sys, fermion; "
        "heavy = [m for m in ('polars', 'sqlalchemy', 'pyarrow', 'pandas', 'torch') "
        "if m in sys.modules]; print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_public_names_resolve() -> None:
    for name in fermion.__all__:
        if name not in ("datasets", "runs", "models"):  # need a workspace in the cwd
            assert getattr(fermion, name) is not None
