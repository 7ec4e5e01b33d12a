"""Turn a CSV/TSV, JSON Lines or Parquet file, or a SQL query, into one Parquet file.

Files are streamed through Polars' streaming engine, so a file larger than memory ingests;
a CSV that fits `csv_reader.memory_budget()` is read in memory once instead, with the same
output.
The output is zstd Parquet with fixed row groups, so the same input always gives the same
bytes: callers content-address it. It holds only types that pyarrow and pandas read: an
integer column wider than int64 (from any source) is stored as Decimal(38, 0), exactly; a
CSV integer column with a value of more than 38 digits becomes Float64, and another source
with one is refused, naming the column.

Every failure is an `InvalidInputError` (a missing file is `NotFoundError`) with one line
naming the file and, where it can be found, the line and column; the location is searched
for only after the fast reader has failed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from fermion.data import sniff
from fermion.data.csv_reader import READ_ERRORS, csv_to_parquet, memory_budget
from fermion.data.jsonl_reader import jsonl_to_parquet
from fermion.data.parquet import write_parquet
from fermion.data.profile import describe_frame, describe_parquet
from fermion.entities import ColumnSchema, Profile
from fermion.errors import InvalidInputError, MissingDependencyError, NotFoundError

FORMATS = ("csv", "tsv", "parquet", "jsonl")
SQL_BATCH_ROWS = 100_000


@dataclass(frozen=True)
class Ingested:
    """What `ingest_file_described` returns: the description, schema and profile."""

    description: dict[str, Any]
    schema: tuple[ColumnSchema, ...]
    profile: Profile


def ingest_file(
    path: Path,
    dest: Path,
    *,
    fmt: str | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
    memory_budget: int | None = None,
) -> dict[str, Any]:
    """Write the rows of `path` to the Parquet file `dest`; return a JSON-able description.

    `fmt` is one of FORMATS, else taken from the extension (.csv .txt .tsv .tab .parquet
    .pq .jsonl .ndjson). CSV: the delimiter and encoding are sniffed unless given, the
    tokens in `sniff.NULL_TOKENS` are missing, column names are stripped, blank lines
    (and rows with every field missing) are skipped, and types are inferred from the first
    10,000 rows, widened where a later number needs it (`csv_reader.csv_to_parquet`).
    A CSV of at most `memory_budget` bytes (default: `csv_reader.memory_budget()`) is read
    in memory, a larger one streamed; the output is the same. JSON Lines: types are inferred
    from every line (`jsonl_reader`). `dest` appears only on success.
    """
    return _ingest(path, dest, fmt, delimiter, encoding, memory_budget, describe=False)[0]


def ingest_file_described(
    path: Path,
    dest: Path,
    *,
    fmt: str | None = None,
    delimiter: str | None = None,
    encoding: str | None = None,
    memory_budget: int | None = None,
) -> Ingested:
    """`ingest_file`, plus `describe_parquet` of `dest`: from the rows in memory where the
    CSV was read in memory, so that the Parquet file is not read back."""
    description, described = _ingest(
        path, dest, fmt, delimiter, encoding, memory_budget, describe=True
    )
    assert described is not None
    return Ingested(description, *described)


def _ingest(
    path: Path,
    dest: Path,
    fmt: str | None,
    delimiter: str | None,
    encoding: str | None,
    budget: int | None,
    *,
    describe: bool,
) -> tuple[dict[str, Any], tuple[tuple[ColumnSchema, ...], Profile] | None]:
    source = _existing_file(path)
    kind = _format_of(source, fmt)
    if delimiter is not None and (len(delimiter) != 1 or delimiter in '"\r\n'):
        raise InvalidInputError(f"invalid delimiter {delimiter!r}: give one character")
    description: dict[str, Any] = {
        "path": str(source),
        "format": kind,
        "delimiter": None,
        "encoding": None,
        "size_bytes": source.stat().st_size,
    }
    described = None
    with _staged(dest) as (staged, work):
        frame = None
        if kind == "parquet":
            _sink(_renamed(pl.scan_parquet(source), source), staged, source, kind)
            _check_not_empty(staged, source)
        elif kind == "jsonl":
            description["encoding"] = _ingest_jsonl(source, staged, work, encoding)
        else:
            description["delimiter"], description["encoding"], frame = _ingest_csv(
                source,
                staged,
                work,
                kind,
                delimiter,
                encoding,
                memory_budget() if budget is None else budget,
            )
        if describe:
            described = describe_parquet(staged) if frame is None else describe_frame(frame.lazy())
    return description, described


def ingest_sql(query: str, url: str, dest: Path) -> dict[str, Any]:
    """Run `query` against the SQLAlchemy `url` and write its rows to the Parquet file `dest`.

    Rows are fetched in batches of SQL_BATCH_ROWS (server-side cursors where the driver has
    them), each batch is spilled to a part file, and the parts are merged with their types
    widened to a common one (a batch of all-NULL ints joins the integer batches).
    """
    from sqlalchemy import create_engine, make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InvalidInputError(
            "invalid database URL: expected dialect+driver://user:password@host/database"
        ) from None
    masked = parsed.render_as_string(hide_password=True)
    database = parsed.database
    is_file_db = parsed.get_backend_name() == "sqlite" and database not in (None, "", ":memory:")
    if is_file_db and not Path(str(database)).is_file():
        raise NotFoundError(f"SQLite database {parsed.database} does not exist")
    with _staged(dest) as (staged, work):
        try:
            engine = create_engine(parsed)
            try:
                parts = _fetch_parts(engine, query, work)
            finally:
                engine.dispose()
        except ImportError as exc:
            raise MissingDependencyError(
                f"the database driver for {masked} is not installed: {exc}"
            ) from None
        except SQLAlchemyError as exc:
            cause = getattr(exc, "orig", None) or exc
            raise InvalidInputError(
                f"query against {masked} failed: {sniff.first_line(str(cause))}"
            ) from None
        if not parts:
            raise InvalidInputError(f"query against {masked} returned no rows")
        merged = pl.concat([pl.scan_parquet(part) for part in parts], how="vertical_relaxed")
        _sink(merged, staged, Path("query"), "sql")
    return {"sql": query, "url": masked, "format": "sql"}


def _fetch_parts(engine: Any, query: str, work: Path) -> list[Path]:
    parts: list[Path] = []
    with engine.connect() as connection:
        streaming = connection.execution_options(yield_per=SQL_BATCH_ROWS)
        result = streaming.exec_driver_sql(query)
        if not result.returns_rows:
            raise InvalidInputError("the query returns no rows: give a SELECT statement")
        keys = result.keys()
        names = sniff.check_names([str(key) for key in keys], "query")
        while rows := result.fetchmany(SQL_BATCH_ROWS):
            part = work / f"part-{len(parts):06d}.parquet"
            try:
                frame = pl.DataFrame(
                    [tuple(row) for row in rows],
                    schema=names,
                    orient="row",
                    infer_schema_length=None,
                )
                frame.write_parquet(part)
            except READ_ERRORS as exc:
                raise InvalidInputError(
                    f"query result cannot be stored: {sniff.first_line(str(exc))}"
                ) from None
            parts.append(part)
    return parts


def _existing_file(path: Path) -> Path:
    source = Path(path).expanduser().resolve()
    if not source.exists():
        raise NotFoundError(f"{source}: no such file")
    if not source.is_file():
        raise InvalidInputError(f"{source}: is a directory, not a file")
    if source.stat().st_size == 0:
        raise InvalidInputError(f"{source}: the file is empty (0 bytes)")
    return source


def _format_of(source: Path, fmt: str | None) -> str:
    if fmt is not None:
        if fmt.lower() not in FORMATS:
            raise InvalidInputError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
        return fmt.lower()
    match source.suffix.lower():
        case ".csv" | ".txt":
            return "csv"
        case ".tsv" | ".tab":
            return "tsv"
        case ".parquet" | ".pq":
            return "parquet"
        case ".jsonl" | ".ndjson":
            return "jsonl"
    raise InvalidInputError(
        f"{source}: cannot tell the format from the extension {source.suffix!r}: "
        f"pass fmt= one of {', '.join(FORMATS)}"
    )


@contextmanager
def _staged(dest: Path) -> Iterator[tuple[Path, Path]]:
    """A staging file and scratch folder beside `dest`; the file becomes `dest` on success."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".fermion-ingest-", dir=dest.parent) as work:
        staged = Path(work) / "data.parquet"
        yield staged, Path(work)
        os.replace(staged, dest)


def _sink(frame: pl.LazyFrame, staged: Path, source: Path, kind: str) -> None:
    try:
        write_parquet(frame, staged)
    except READ_ERRORS as exc:
        raise InvalidInputError(
            f"{source}: cannot read it as {kind}: {sniff.first_line(str(exc))}"
        ) from None


def _renamed(frame: pl.LazyFrame, source: Path) -> pl.LazyFrame:
    """Strip column names, refusing empty and duplicate ones."""
    try:
        names = frame.collect_schema().names()
    except READ_ERRORS as exc:
        raise InvalidInputError(f"{source}: cannot read it: {sniff.first_line(str(exc))}") from None
    stripped = sniff.check_names([name.strip() for name in names], source)
    if stripped == names:
        return frame
    return frame.rename(dict(zip(names, stripped, strict=True)))


def _check_not_empty(staged: Path, source: Path) -> None:
    frame = pl.scan_parquet(staged)
    if not frame.collect_schema().names():
        raise InvalidInputError(f"{source}: the file holds no columns")
    if frame.select(pl.len()).collect(engine="streaming").item() == 0:
        raise InvalidInputError(f"{source}: the file holds no rows")


def _readable_utf8(source: Path, encoding: str, work: Path, *, bom_ok: bool) -> Path:
    """`source` itself if Polars can read its encoding, else a UTF-8 copy in `work`."""
    if encoding == "utf-8" or (bom_ok and encoding == "utf-8-sig"):
        return source
    target = work / f"utf8{source.suffix}"
    sniff.transcode(source, encoding, target)
    return target


def _encoding_of(source: Path, encoding: str | None) -> tuple[str, str]:
    """(encoding, decoded start of the file)."""
    sample = sniff.read_sample(source)
    complete = len(sample) < sniff.SAMPLE_BYTES
    if encoding is None:
        chosen = sniff.sniff_encoding(sample, source, complete=complete)
    else:
        chosen = sniff.normalize_encoding(encoding, source)
    return chosen, sniff.decode_sample(sample, chosen, source, complete=complete)


def _ingest_jsonl(source: Path, staged: Path, work: Path, encoding: str | None) -> str:
    chosen, _ = _encoding_of(source, encoding)
    jsonl_to_parquet(_readable_utf8(source, chosen, work, bom_ok=False), staged, source)
    _check_not_empty(staged, source)
    return chosen


def _ingest_csv(
    source: Path,
    staged: Path,
    work: Path,
    kind: str,
    delimiter: str | None,
    encoding: str | None,
    budget: int,
) -> tuple[str, str, pl.DataFrame | None]:
    """(delimiter, encoding, the rows if they were read in memory)."""
    chosen, text = _encoding_of(source, encoding)
    if delimiter is None:
        delimiter = "\t" if kind == "tsv" else sniff.sniff_delimiter(text)
    readable = _readable_utf8(source, chosen, work, bom_ok=True)
    names = sniff.read_header(readable, delimiter, source)
    frame = csv_to_parquet(readable, staged, source, delimiter, names, budget)
    return delimiter, chosen, frame
