"""Request rows checked against a model's signature, before they join a batch.

Each request is checked on its own so that one bad row is refused with its field named (422)
instead of failing the batch it would have joined. Values must already have their JSON type:
numbers for numeric columns, true/false for booleans, text for categories, text and ISO
datetimes; null is accepted anywhere (the model's preprocessing imputes it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from operator import itemgetter
from typing import Any

from fermion.entities import LogicalType, Signature
from fermion.errors import InvalidInputError

Columns = dict[str, list[Any]]


class FieldError(InvalidInputError):
    """A request value that does not fit the model's signature; `field` says where it is."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


def _integer(value: Any) -> bool:
    if isinstance(value, int):
        return not isinstance(value, bool)
    return isinstance(value, float) and value.is_integer()


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _boolean(value: Any) -> bool:
    return isinstance(value, bool)


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _datetime(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


_CHECKS: dict[str, Callable[[Any], bool]] = {
    LogicalType.INTEGER: _integer,
    LogicalType.FLOAT: _number,
    LogicalType.BOOLEAN: _boolean,
    LogicalType.CATEGORICAL: _text,
    LogicalType.STRING: _text,
    LogicalType.DATETIME: _datetime,
}
# The JSON types each column takes without a closer look (bool is not int here: type(True)
# is bool); a value of another type goes through the column's check.
_PLAIN: dict[str, frozenset[type]] = {
    LogicalType.INTEGER: frozenset({int, type(None)}),
    LogicalType.FLOAT: frozenset({float, int, type(None)}),
    LogicalType.BOOLEAN: frozenset({bool, type(None)}),
    LogicalType.CATEGORICAL: frozenset({str, type(None)}),
    LogicalType.STRING: frozenset({str, type(None)}),
}
_NONE_ONLY: frozenset[type] = frozenset({type(None)})
_has = frozenset.__contains__
_WORDS: dict[str, str] = {
    LogicalType.INTEGER: "an integer",
    LogicalType.FLOAT: "a number",
    LogicalType.BOOLEAN: "true or false",
    LogicalType.CATEGORICAL: "a string",
    LogicalType.STRING: "a string",
    LogicalType.DATETIME: "an ISO 8601 datetime string",
}


class InputChecker:
    """Turns a request's rows into columns in signature order, refusing what does not fit."""

    def __init__(self, signature: Signature) -> None:
        self.names = [spec.name for spec in signature.inputs]
        self._name_set = frozenset(self.names)
        self._checks = [(spec.name, _CHECKS.get(spec.type, _text)) for spec in signature.inputs]
        self._types = {spec.name: spec.type for spec in signature.inputs}
        self._plain = [_PLAIN.get(spec.type, _NONE_ONLY) for spec in signature.inputs]
        self._values = _getter(self.names)  # a row object's values in signature order

    def from_rows(self, rows: Any) -> tuple[Columns, int]:
        """`[{column: value, ...}, ...]` as columns; the row count comes second."""
        if not isinstance(rows, list):
            raise FieldError("'rows' must be a list of objects", "rows")
        values = self._values
        tuples = []
        for index, row in enumerate(rows):
            if not isinstance(row, dict):
                raise FieldError(f"rows[{index}] must be an object", f"rows[{index}]")
            if row.keys() != self._name_set:
                self._refuse_keys(row.keys(), f"rows[{index}]")
            got = values(row)
            if not all(map(_has, self._plain, map(type, got))):
                self._check_values(got, f"rows[{index}]")
            tuples.append(got)
        return self._columns(tuples), len(rows)

    def _check_values(self, values: Sequence[Any], where: str) -> None:
        """The full check of a row's values (in signature order): refuse the first misfit."""
        for (name, check), value in zip(self._checks, values, strict=True):
            if value is not None and not check(value):
                self._refuse_value(name, value, f"{where}.{name}")

    def _columns(self, tuples: list[tuple[Any, ...]]) -> Columns:
        if len(tuples) == 1:  # the usual request: one row
            return {name: [value] for name, value in zip(self.names, tuples[0], strict=True)}
        if not tuples:
            return {name: [] for name in self.names}
        return dict(zip(self.names, map(list, zip(*tuples, strict=True)), strict=True))

    def from_table(self, names: Any, data: Any) -> tuple[Columns, int]:
        """`{"columns": [...], "data": [[...], ...]}` as columns in signature order."""
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise FieldError("'columns' must be a list of column names", "columns")
        if not isinstance(data, list):
            raise FieldError("'data' must be a list of rows (lists of values)", "data")
        if len(set(names)) != len(names):
            duplicate = next(n for n in names if names.count(n) > 1)
            raise FieldError(f"column {duplicate!r} is named twice", "columns")
        if set(names) != self._name_set:
            self._refuse_keys(names, "columns")
        position = {name: index for index, name in enumerate(names)}
        values = _getter([position[name] for name in self.names])
        width = len(names)
        tuples = []
        for index, row in enumerate(data):
            if not isinstance(row, list) or len(row) != width:
                raise FieldError(
                    f"data[{index}] must be a list of {width} values, one per column",
                    f"data[{index}]",
                )
            got = values(row)
            if not all(map(_has, self._plain, map(type, got))):
                self._check_values(got, f"data[{index}]")
            tuples.append(got)
        return self._columns(tuples), len(data)

    def _refuse_keys(self, given: Sequence[str] | Any, where: str) -> None:
        missing = [name for name in self.names if name not in given]
        if missing:
            raise FieldError(
                f"{where}: missing input column{'s' if len(missing) > 1 else ''} "
                + ", ".join(repr(m) for m in missing),
                f"{where}.{missing[0]}" if where.startswith("rows") else missing[0],
            )
        unknown = sorted(str(key) for key in given if key not in self._name_set)
        raise FieldError(
            f"{where}: unknown column{'s' if len(unknown) > 1 else ''} "
            + ", ".join(repr(u) for u in unknown)
            + f"; the model takes: {', '.join(self.names)}",
            f"{where}.{unknown[0]}" if where.startswith("rows") else unknown[0],
        )

    def _refuse_value(self, name: str, value: Any, where: str) -> None:
        shown = repr(value)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        raise FieldError(
            f"{where} must be {_WORDS.get(self._types[name], 'a string')}; got {shown}", where
        )


def _getter(keys: Sequence[Any]) -> Callable[[Any], tuple[Any, ...]]:
    """`obj -> (obj[k] for k in keys)` as a tuple, also for one key."""
    if len(keys) == 1:
        key = keys[0]
        return lambda obj: (obj[key],)
    return itemgetter(*keys)


def columns_from_body(checker: InputChecker, body: Any) -> tuple[Columns, int]:
    """The REST body in either form: `{"rows": [...]}` or `{"columns": [...], "data": [...]}`."""
    if not isinstance(body, dict | Mapping):  # dict first: a Mapping check costs a microsecond
        raise FieldError('the body must be a JSON object: {"rows": [...]}', "body")
    if "rows" in body:
        return checker.from_rows(body["rows"])
    if "data" in body or "columns" in body:
        return checker.from_table(body.get("columns"), body.get("data"))
    raise FieldError(
        'the body needs "rows": [{column: value, ...}] or "columns": [...] with "data": [[...]]',
        "body",
    )
