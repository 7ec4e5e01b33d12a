"""The rules a `gate` step judges, as written in `fermion.yaml`, parsed strictly.

roc_auc >= 0.80                           a threshold on a metric
roc_auc >= production.roc_auc + 0.005     against the model behind an alias of its name
validation passed                         the gate needs a data.validate step, which passed
optimized within drop                     the optimize step it needs registered a variant
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fermion.errors import InvalidInputError
from fermion.registry.refs import check_alias

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
}
VALIDATION_PASSED = "validation passed"
OPTIMIZED_WITHIN_DROP = "optimized within drop"
FACTS = (VALIDATION_PASSED, OPTIMIZED_WITHIN_DROP)

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_RULE = re.compile(rf"^({_NAME})\s*(>=|<=|==|>|<)\s*(.+)$")
_NUMBER_ONLY = re.compile(rf"^{_NUMBER}$")
_ALIAS_METRIC = re.compile(rf"^([A-Za-z][A-Za-z0-9_-]*)\.({_NAME})(?:\s*([+-])\s*({_NUMBER}))?$")
_GRAMMAR = (
    "METRIC OP NUMBER (roc_auc >= 0.80), METRIC OP ALIAS.METRIC [+|- NUMBER] "
    "(roc_auc >= production.roc_auc + 0.005), 'validation passed' or 'optimized within drop'; "
    "OP is one of >=, >, <=, <, =="
)


@dataclass(frozen=True)
class Threshold:
    """`metric op number`."""

    text: str
    metric: str
    op: str
    number: float


@dataclass(frozen=True)
class Comparison:
    """`metric op alias.other + offset` (a `-` offset is stored negative)."""

    text: str
    metric: str
    op: str
    alias: str
    other: str
    offset: float = 0.0


@dataclass(frozen=True)
class Fact:
    """`validation passed` or `optimized within drop`."""

    text: str


Rule = Threshold | Comparison | Fact


def holds(op: str, left: float, right: float) -> bool:
    return OPERATORS[op](left, right)


def parse_rule(text: str) -> Rule:
    """One rule; `InvalidInputError` naming it and the grammar when it is not one."""
    words = " ".join(text.split())
    if words in FACTS:
        return Fact(words)
    match = _RULE.match(words)
    if match is not None:
        metric, op, right = match.groups()
        if _NUMBER_ONLY.match(right):
            return Threshold(words, metric, op, float(right))
        other = _ALIAS_METRIC.match(right)
        if other is not None:
            alias, other_metric, sign, number = other.groups()
            try:
                check_alias(alias)
            except InvalidInputError as exc:
                raise InvalidInputError(f"gate rule {text!r}: {exc}") from None
            offset = 0.0 if number is None else float(number) * (-1 if sign == "-" else 1)
            return Comparison(words, metric, op, alias, other_metric, offset)
    raise InvalidInputError(f"gate rule {text!r} is not one of: {_GRAMMAR}")


def parse_rules(value: Any, step: str) -> list[Rule]:
    """The `rules` of a gate step: a non-empty list of rule strings, each one parsed."""
    if not isinstance(value, list) or not value or not all(isinstance(r, str) for r in value):
        raise InvalidInputError(f"step {step!r}: rules must be a non-empty list of rules (text)")
    try:
        return [parse_rule(rule) for rule in value]
    except InvalidInputError as exc:
        raise InvalidInputError(f"step {step!r}: {exc}") from None
