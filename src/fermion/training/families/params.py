"""Model params: what each family accepts, parsed from text or Python values and checked."""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from fermion.errors import InvalidInputError

_KIND_WORDS: Mapping[type, str] = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "a boolean (true or false)",
}
_NONE_WORDS = frozenset({"none", "null"})
_TRUE_WORDS = frozenset({"true", "yes", "on", "1"})
_FALSE_WORDS = frozenset({"false", "no", "off", "0"})


@dataclass(frozen=True)
class ParamSpec:
    """One accepted param: its kind (int, float, str or bool), default and optional bounds."""

    name: str
    kind: type
    default: object
    help: str = ""
    nullable: bool = False
    choices: tuple[str, ...] = ()
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None

    def coerce(self, value: object) -> object:
        """Parse `value` (strings such as "0.05", "true", "None" included) or raise."""
        if value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS):
            if self.nullable:
                return None
            raise self._type_error(value)
        parsed = _parse(self.kind, value)
        if parsed is None:
            raise self._type_error(value)
        if self.choices and parsed not in self.choices:
            raise InvalidInputError(
                f"param '{self.name}' must be one of: {', '.join(self.choices)}; got {value!r}"
            )
        if isinstance(parsed, int | float) and not isinstance(parsed, bool):
            self._check_bounds(parsed)
        return parsed

    def _type_error(self, value: object) -> InvalidInputError:
        word = _KIND_WORDS.get(self.kind, self.kind.__name__)
        if self.nullable:
            word += " or None"
        return InvalidInputError(f"param '{self.name}' must be {word}, got {value!r}")

    def _check_bounds(self, value: float) -> None:
        checks: tuple[tuple[float | None, str, Callable[[float, float], bool]], ...] = (
            (self.ge, ">=", operator.ge),
            (self.gt, ">", operator.gt),
            (self.le, "<=", operator.le),
            (self.lt, "<", operator.lt),
        )
        for bound, op, ok in checks:
            if bound is not None and not ok(value, bound):
                raise InvalidInputError(f"param '{self.name}' must be {op} {bound:g}, got {value}")


def _parse(kind: type, value: object) -> object | None:
    """The value as `kind`, or None when it cannot be read as one."""
    if isinstance(value, str):
        text = value.strip()
        if kind is str:
            return text
        if kind is bool:
            low = text.lower()
            return True if low in _TRUE_WORDS else False if low in _FALSE_WORDS else None
        try:
            number = float(text)
        except ValueError:
            return None
        return _parse(kind, number)
    if kind is str or isinstance(value, bool | np.bool_):
        return bool(value) if kind is bool and isinstance(value, bool | np.bool_) else None
    if not isinstance(value, int | float | np.integer | np.floating) or not math.isfinite(value):
        return None
    if kind is float:
        return float(value)
    if kind is int:
        return int(value) if float(value).is_integer() else None
    if kind is bool and value in (0, 1):
        return bool(value)
    return None


def get_int(params: Mapping[str, object], name: str) -> int:
    value = params[name]
    assert isinstance(value, int), name
    return value


def get_opt_int(params: Mapping[str, object], name: str) -> int | None:
    return None if params[name] is None else get_int(params, name)


def get_float(params: Mapping[str, object], name: str) -> float:
    value = params[name]
    assert isinstance(value, float), name
    return value


def get_str(params: Mapping[str, object], name: str) -> str:
    value = params[name]
    assert isinstance(value, str), name
    return value


def get_opt_str(params: Mapping[str, object], name: str) -> str | None:
    return None if params[name] is None else get_str(params, name)
