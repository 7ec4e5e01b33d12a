"""A UTF-8 JSON Lines file to one Parquet file, its types inferred from every line.

Inference reads the whole file once before the streamed read, so a key first seen on any
line is a column, and a key's values meet in a common type (numbers then text make a text
column). Such a text column is refused as mixed types, as a CSV column is, when nearly all
its values are JSON numbers. Errors name the line: a line that is not a JSON object, a value
whose type no common type joins (`true` after numbers), or the text among the numbers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

from fermion.data import sniff
from fermion.data.csv_reader import (
    INFER_ROWS,
    MIXED_SHARE,
    READ_ERRORS,
    as_number,
    numeric_looking,
)
from fermion.data.parquet import write_parquet
from fermion.errors import InvalidInputError

_KINDS = {
    bool: "true/false",
    int: "a number",
    float: "a number",
    str: "text",
    dict: "an object",
    list: "a list",
}


def jsonl_to_parquet(readable: Path, staged: Path, source: Path) -> None:
    """Write the rows of the UTF-8 JSON Lines file `readable` to `staged`; errors name `source`."""
    try:
        schema = pl.scan_ndjson(readable, infer_schema_length=None).collect_schema()
        keys = schema.names()
        names = sniff.check_names([key.strip() for key in keys], source)
        # the schema given, so the read does not infer it again
        frame = pl.scan_ndjson(readable, schema=schema)
        write_parquet(frame.rename(dict(zip(keys, names, strict=True))), staged)
    except READ_ERRORS as exc:
        raise _read_error(str(exc), readable, source) from None
    _check(staged, readable, source, dict(zip(names, keys, strict=True)))


def _check(staged: Path, readable: Path, source: Path, keys: dict[str, str]) -> None:
    """Refuse no rows, and a text column of JSON numbers but for a few text values."""
    written = pl.scan_parquet(staged)
    head = written.head(INFER_ROWS).collect()
    if head.height == 0:
        raise InvalidInputError(f"{source}: the file holds no rows")
    candidates = numeric_looking(head)
    if not candidates:
        return
    stats = (
        written.select(
            *[pl.col(name).count().alias(f"n:{name}") for name in candidates],
            *[as_number(name).count().alias(f"x:{name}") for name in candidates],
        )
        .collect(engine="streaming")
        .row(0, named=True)
    )
    for name in candidates:
        count, numbers = stats[f"n:{name}"], stats[f"x:{name}"]
        if count and MIXED_SHARE * count <= numbers < count:
            try:
                found = _text_among_numbers(readable, keys[name])
            except _NotAnObject:  # Polars read a line that Python's json refuses
                found = None
            if found is not None:
                raise InvalidInputError(
                    f"{source}: line {found[0]}, column {name!r}: mixed types: {numbers} of "
                    f"{count} values are numbers but {found[1]!r} is not"
                )


def _text_among_numbers(path: Path, key: str) -> tuple[int, str] | None:
    """(line, value) of the first text value of `key` that is not a number, if `key` also
    holds JSON numbers; None if it holds only text (the user quoted the numbers)."""
    first: tuple[int, str] | None = None
    numbers = False
    for number, row in _objects(path):
        value = row.get(key)
        if isinstance(value, str) and first is None and not _is_number(value):
            first = number, value
        numbers = numbers or (isinstance(value, int | float) and not isinstance(value, bool))
        if first is not None and numbers:
            return first
    return None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _read_error(message: str, readable: Path, source: Path) -> InvalidInputError:
    """Turn a Polars JSON error into one line naming the line at fault."""
    try:
        conflict = _type_conflict(readable)
    except _NotAnObject as exc:
        return InvalidInputError(f"{source}: line {exc.line} is not valid JSON: {exc.reason}")
    if conflict is not None:
        return InvalidInputError(f"{source}: {conflict}")
    return InvalidInputError(f"{source}: cannot read it as JSON Lines: {sniff.first_line(message)}")


def _type_conflict(path: Path) -> str | None:
    """Where a key's value is of a kind that Polars cannot join with its earlier values'
    (text joins any kind), or is an integer that Decimal(38, 0) cannot hold."""
    seen: dict[str, tuple[str, int]] = {}
    for number, row in _objects(path):
        for key, value in row.items():
            if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**38:
                return (
                    f"line {number}, column {key.strip()!r}: the integer {value} has more than "
                    "38 digits; make it a float or a string"
                )
            kind = _KINDS.get(type(value))
            if kind is None:
                continue
            earlier, line = seen.setdefault(key, (kind, number))
            if kind != earlier and "text" not in (kind, earlier):
                return (
                    f"line {number}, column {key.strip()!r}: mixed types: {kind} after "
                    f"{earlier} (line {line})"
                )
    return None


class _NotAnObject(Exception):
    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line, self.reason = line, reason


def _not_json(constant: str) -> Any:
    """Python's json reads NaN and Infinity; JSON, and so Polars, does not."""
    raise ValueError(f"{constant} is not a JSON value (write null or a number)")


def _objects(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of each non-blank line; `_NotAnObject` at the first bad line."""
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line, parse_constant=_not_json)
            except json.JSONDecodeError as exc:
                raise _NotAnObject(number, exc.msg) from None
            except ValueError as exc:
                raise _NotAnObject(number, str(exc)) from None
            if not isinstance(value, dict):
                raise _NotAnObject(number, f"expected a JSON object, got {type(value).__name__}")
            yield number, value
