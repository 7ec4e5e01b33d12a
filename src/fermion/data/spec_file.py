"""Reading declarative YAML specs (recipes, rule sets) and fingerprinting their canonical form."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import yaml

from fermion.errors import InvalidInputError


def read_yaml(path: str | Path, kind: str) -> Any:
    """Parse the YAML file at `path`; `kind` ("recipe", "rules") only words the errors.

    A missing, unreadable or malformed file raises `InvalidInputError` naming the file and,
    for a syntax error, the 1-based line and column.
    """
    where = Path(path)
    try:
        text = where.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidInputError(f"{kind} file {str(where)!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInputError(f"cannot read {kind} file {str(where)!r}: {exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise InvalidInputError(
            f"{kind} file {str(where)!r} is not valid YAML{at}: {problem}"
        ) from None


def fingerprint(canonical: Any) -> str:
    """sha256 (hex) of `canonical` as compact JSON with sorted keys: stable across key order."""
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def check_scalar(value: Any, what: str) -> Any:
    """Return `value` if it is a JSON scalar (None, bool, int, finite float, str), else raise.

    YAML turns unquoted dates into date objects, which have no canonical JSON form, hence the
    hint to quote them.
    """
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float) and math.isfinite(value):
        return value
    raise InvalidInputError(
        f"{what} must be a number, string, boolean or null, not {value!r} (quote dates)"
    )


def check_names(value: Any, what: str) -> tuple[str, ...]:
    """Return `value` (a list of column names) as a tuple, or raise naming `what`."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise InvalidInputError(f"{what} must be a list of column names, not {value!r}")
    if not value:
        raise InvalidInputError(f"{what} must name at least one column")
    for name in value:
        if not isinstance(name, str) or not name:
            raise InvalidInputError(f"{what} must be a list of column names, not {value!r}")
    return tuple(value)


def check_number(value: Any, what: str) -> float:
    """Return `value` as a float if it is a finite int or float (not a bool), else raise."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidInputError(f"{what} must be a number, not {value!r}")
    return float(value)


def check_keys(args: dict[str, Any], allowed: tuple[str, ...], what: str) -> None:
    """Raise if `args` holds a key outside `allowed`, listing them; `what` prefixes the error."""
    prefix = f"{what}: " if what else ""
    for key in args:
        if key not in allowed:
            raise InvalidInputError(
                f"{prefix}unknown argument {key!r}; expected one of {', '.join(allowed)}"
            )
