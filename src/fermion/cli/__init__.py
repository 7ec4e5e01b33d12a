"""The `fermion` command line: a thin adapter over the Python API."""

from __future__ import annotations

import gc


def run() -> None:
    """The console script: Ctrl-C while the libraries load exits quietly, like later on."""
    gc.disable()  # imports make many objects and free few: collecting meanwhile is wasted time
    try:
        from fermion.cli.main import app
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    finally:
        gc.enable()
    app()
