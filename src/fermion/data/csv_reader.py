"""A UTF-8 CSV file to one Parquet file: read in memory when it is small, else streamed.

A file no larger than `memory_budget()` is parsed once with `pl.read_csv`; the checks run
on that frame, and the caller may describe it (schema, profile) without reading the
Parquet back. A larger file is streamed (`pl.scan_csv` -> `sink_parquet`), so a file
larger than memory ingests, and is checked in one pass over the written Parquet. Both
paths read with the same options and write through `write_parquet`, so they write the
same bytes for the same file: callers content-address the output.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from pathlib import Path
from typing import Any

import polars as pl

from fermion.data import sniff
from fermion.data.parquet import storable, write_parquet
from fermion.errors import InvalidInputError

INFER_ROWS = 10_000
MIXED_SHARE = 0.9  # a text column this numeric is a numeric column with typos in it
SAMPLE_NUMERIC_SHARE = 0.5
DATE_LIKE = r"^\s*\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}"
MEMORY_CAP = 2 * 1024**3
# A parsed frame can take ~4x its CSV (a 2-byte field becomes an 8-byte integer), plus
# the Parquet writer's buffers: so at most an eighth of RAM, a quarter of a data limit.
RAM_SHARE = 8
LIMIT_SHARE = 4
TALLY_CHUNK = 8 * 1024 * 1024

# Polars raises these, and panics as a BaseException; none may escape raw.
READ_ERRORS = (pl.exceptions.PolarsError, pl.exceptions.PanicException, OSError, ValueError)


def memory_budget() -> int:
    """The largest CSV, in bytes, that is read in memory rather than streamed.

    min(2 GiB, physical RAM / 8, the process's data or address-space limit / 4, the
    cgroup's memory limit / 8): whichever of these the platform reports.
    """
    budgets = [MEMORY_CAP]
    with contextlib.suppress(AttributeError, ValueError, OSError):  # no sysconf on Windows
        budgets.append(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // RAM_SHARE)
    if sys.platform != "win32":
        import resource

        for kind in (resource.RLIMIT_DATA, resource.RLIMIT_AS):
            soft = resource.getrlimit(kind)[0]
            if soft != resource.RLIM_INFINITY:
                budgets.append(soft // LIMIT_SHARE)
    limit = cgroup_memory_limit()
    if limit is not None:
        budgets.append(limit // RAM_SHARE)
    return max(0, min(budgets))


def cgroup_memory_limit(
    proc_cgroup: Path = Path("/proc/self/cgroup"), hierarchy: Path = Path("/sys/fs/cgroup")
) -> int | None:
    """The memory limit of this process's cgroup (v2 `memory.max` or v1
    `memory.limit_in_bytes`), or None where there is none or it cannot be read."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    candidates = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        relative = path.lstrip("/")
        if controllers == "":
            candidates.append(hierarchy / relative / "memory.max")
        elif "memory" in controllers.split(","):
            candidates.append(hierarchy / "memory" / relative / "memory.limit_in_bytes")
    for candidate in candidates:
        try:
            text = candidate.read_text().strip()
        except OSError:
            continue
        # cgroup v1 writes "no limit" as a huge number near the largest page-aligned int64
        if text.isdigit() and int(text) < 1 << 60:
            return int(text)
    return None


def csv_to_parquet(
    readable: Path, staged: Path, source: Path, delimiter: str, names: list[str], budget: int
) -> pl.DataFrame | None:
    """Write the rows of the UTF-8 CSV `readable` to `staged`; errors name `source`.

    Returns the rows written when the file (at most `budget` bytes) was read in memory,
    None when it was streamed. Rows with every field missing are dropped. A column with no
    value in the first INFER_ROWS rows takes its type from its first INFER_ROWS values. An
    integer column with a later integer past int64 is read again as Int128 (stored as a
    decimal); with a later other number, or an integer of more than 38 digits, as Float64.
    """
    overrides: dict[str, pl.DataType] = {}

    def options(*, dates: bool) -> dict[str, Any]:
        return {
            "separator": delimiter,
            "null_values": list(sniff.NULL_TOKENS),
            "infer_schema_length": INFER_ROWS,
            "new_columns": names,
            "try_parse_dates": dates,
            "schema_overrides": overrides,
        }

    blank = pl.all_horizontal(pl.all().is_null())
    for attempt in range(2 * len(names) + 1):  # a retry widens one column: to Int128, Float64
        frame: pl.DataFrame | None = None
        try:
            head = pl.scan_csv(readable, **options(dates=False)).head(INFER_ROWS).collect()
            if attempt == 0:
                overrides.update(_late_types(readable, head, options(dates=False)))
            # Polars' date inference is slow on every text column: ask only if a value looks so
            dates = any(
                _date_like(head[name]) for name, dtype in head.schema.items() if dtype == pl.String
            )
            if readable.stat().st_size <= budget:
                frame = storable(pl.read_csv(readable, **options(dates=dates)))
                records = frame.height
                if frame.select(blank.any()).item():  # filter only then: it copies the frame
                    frame = frame.filter(~blank)
                empty = records - frame.height
                output = frame.lazy()
            else:
                write_parquet(pl.scan_csv(readable, **options(dates=dates)).filter(~blank), staged)
                output = pl.scan_parquet(staged)
            break
        except READ_ERRORS as exc:
            widened = sniff.widened(str(exc), names, overrides)
            if widened is None:
                raise sniff.csv_error(str(exc), source, readable, delimiter, names) from None
            overrides[widened[0]] = widened[1]
    checks = _Checks(source, readable, delimiter, names)
    checks.run(output, numeric_looking(head), None if frame is None else (records, empty))
    if frame is not None:
        write_parquet(output, staged)
    return frame


def _date_like(values: pl.Series) -> bool:
    return bool(values.drop_nulls().head(100).str.contains(DATE_LIKE).any())


def _late_types(
    readable: Path, head: pl.DataFrame, options: dict[str, Any]
) -> dict[str, pl.DataType]:
    """The types Polars infers from the first INFER_ROWS values of the columns that hold
    none in the first INFER_ROWS rows: one more pass, only when there are such columns."""
    late = [name for name in head.columns if head[name].null_count() == head.height]
    if head.height < INFER_ROWS or not late:
        return {}
    firsts = (
        pl.scan_csv(readable, **{**options, "infer_schema_length": 0})
        .select(pl.col(name).drop_nulls().head(INFER_ROWS).implode() for name in late)
        .collect(engine="streaming")
    )
    types: dict[str, pl.DataType] = {}
    for name in late:
        values = firsts[name][0]
        if values.len() == 0:
            continue
        text = io.BytesIO()
        pl.DataFrame({name: values}).write_csv(text)
        dtype = pl.read_csv(
            text.getvalue(), infer_schema_length=INFER_ROWS, try_parse_dates=_date_like(values)
        ).schema[name]
        if dtype != pl.String:
            types[name] = dtype
    return types


class _Checks:
    """Refuse no rows, short rows, and text columns that are numbers but for a few values."""

    def __init__(self, source: Path, readable: Path, delimiter: str, names: list[str]) -> None:
        self.source, self.readable, self.delimiter, self.names = source, readable, delimiter, names

    def run(
        self, output: pl.LazyFrame, candidates: list[str], records: tuple[int, int] | None
    ) -> None:
        """One pass over `output`, the rows as written.

        Polars pads a short row with nulls, so lines are looked at only when the last
        column has nulls: first, if the file was read in memory, by a delimiter tally
        (`records`: rows read, and rows of nulls among them), then line by line if needed. A
        text column is checked for mixed types only if its first rows were at least half
        numbers (`candidates`).
        """
        names = self.names
        stats = (
            output.select(
                pl.len().alias("__rows"),
                pl.col(names[-1]).null_count().alias("__last_nulls"),
                *[pl.col(name).count().alias(f"n:{name}") for name in candidates],
                *[as_number(name).count().alias(f"x:{name}") for name in candidates],
            )
            .collect(engine="streaming")
            .row(0, named=True)
        )
        if stats["__rows"] == 0:
            raise InvalidInputError(f"{self.source}: the file has a header but no rows")
        if len(names) > 1 and stats["__last_nulls"]:
            tallied = records is not None and _no_short_rows(
                self.readable, self.delimiter, len(names), records
            )
            ragged = (
                None if tallied else sniff.ragged_line(self.readable, self.delimiter, len(names))
            )
            if ragged is not None:
                raise sniff.ragged_error(self.source, ragged, len(names))
        for name in candidates:
            count, numbers = stats[f"n:{name}"], stats[f"x:{name}"]
            if count and MIXED_SHARE * count <= numbers < count:
                self._mixed(output, name, count, numbers)

    def _mixed(self, output: pl.LazyFrame, name: str, count: int, numbers: int) -> None:
        value = (
            output.select(name)
            .filter(pl.col(name).is_not_null() & as_number(name).is_null())
            .head(1)
            .collect(engine="streaming")
            .item()
        )
        line = sniff.line_of_value(self.readable, self.delimiter, self.names.index(name), value)
        where = f"line {line}, " if line is not None else ""
        raise InvalidInputError(
            f"{self.source}: {where}column {name!r}: mixed types: {numbers} of {count} values "
            f"are numbers but {value!r} is not"
        )


def _no_short_rows(path: Path, delimiter: str, width: int, records: tuple[int, int]) -> bool:
    """True if no line of `path` is short; False if it has quotes or may have one.

    `records`: the rows Polars read (a blank line reads as a row of nulls) and how many
    of them were all nulls. Without quotes a record is a line, and Polars refuses a line
    with too many fields, so the header and each non-blank line hold exactly `width - 1`
    delimiters if and only if the file's delimiters add up to that. One vectorised pass
    in bounded chunks.
    """
    rows, empty = records
    with path.open("rb") as handle:
        tally = _tally(handle, ord(delimiter), blank_lines=empty > 0)
    if tally is None:
        return False
    delimiters, blanks = tally
    return delimiters == (width - 1) * (rows + 1 - blanks)


def _tally(
    handle: io.BufferedReader, separator: int, *, blank_lines: bool
) -> tuple[int, int] | None:
    """(delimiters, blank lines if asked for, else 0), or None if the file has a quote."""
    import numpy as np  # here: its import costs memory the streamed path may not have

    buffer = bytearray(TALLY_CHUNK + 2)  # 2 bytes carried over: a blank line may straddle
    window = np.frombuffer(buffer, dtype=np.uint8)
    delimiters = blanks = back = 0
    while size := handle.readinto(memoryview(buffer)[2:]):
        if buffer.find(b'"', 2, 2 + size) >= 0:
            return None
        part = window[2 - back : 2 + size]
        delimiters += int(np.count_nonzero(part[back:] == separator))
        if blank_lines:
            newlines = np.flatnonzero(part == ord("\n"))
            gaps, last = np.diff(newlines), newlines[1:]
            crlf = (gaps == 2) & (part[last - 1] == ord("\r"))
            blanks += int(np.count_nonzero((last >= back) & ((gaps == 1) | crlf)))
        window[:2] = window[size : size + 2].copy()
        back = min(back + size, 2)
    return delimiters, blanks


def numeric_looking(head: pl.DataFrame) -> list[str]:
    """Text columns whose first rows are at least half numbers: candidates for mixed types."""
    texts = [name for name, dtype in head.schema.items() if dtype == pl.String]
    shares = head.select(
        (as_number(name).count() / pl.col(name).count().clip(1)).alias(name) for name in texts
    )
    return [name for name in texts if (shares[name].item() or 0.0) >= SAMPLE_NUMERIC_SHARE]


def as_number(name: str) -> pl.Expr:
    return pl.col(name).str.strip_chars().cast(pl.Float64, strict=False)
