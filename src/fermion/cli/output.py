"""Printing for the CLI: Rich tables for people, `--json` for programs."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console

from fermion.entities.jsonable import to_jsonable


def console() -> Console:
    return Console(highlight=False, soft_wrap=False)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False) + "\n")


def fmt(value: Any, digits: int = 4) -> str:
    """A short human form of a statistic."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:.{digits}g}"
    if isinstance(value, int):
        return f"{value:,}"
    text = str(value)
    return text if len(text) <= 24 else text[:23] + "…"


@contextmanager
def working(message: str) -> Iterator[None]:
    """A spinner on stderr while a long step runs; nothing when stderr is not a terminal."""
    err = Console(stderr=True)
    if not err.is_terminal:
        yield
        return
    with err.status(message):
        yield
