"""Look at the start of a text file to guess its encoding, delimiter and header.

Also the scanners that turn "something is wrong" into "line N": they read the whole file
in bounded chunks with Python's csv/codecs modules, which is slow, so they run only
once a fast Polars pass has failed or found a suspect (`csv_error`, `ragged_line`).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from fermion.data.encoding import guess_legacy_encoding, mostly_utf8
from fermion.errors import InvalidInputError

SAMPLE_BYTES = 64 * 1024
CHUNK_BYTES = 4 * 1024 * 1024
DELIMITERS = ",;\t|"
NULL_TOKENS = ("", "NA", "N/A", "NULL", "null", "NaN", "nan", "None")
PARSE_ERROR = re.compile(
    r"could not parse `(?P<value>.*?)` as dtype `(?P<dtype>.*?)` at column '(?P<column>.*?)'"
)
_TOO_WIDE = re.compile(r"from `[iu]128` to `decimal\[38, ?0\]` failed in column '(?P<column>.*?)'")
_FLOAT = pl.Float64()
# a character decoded from 2-4 bytes; surrogateescape turns each bad byte into U+DC80-U+DCFF


def read_sample(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(SAMPLE_BYTES)


def normalize_encoding(name: str, path: Path) -> str:
    """The codec's canonical name ("utf-8", "cp1252", ...), or an error for an unknown one."""
    try:
        canonical = codecs.lookup(name).name
    except LookupError:
        raise InvalidInputError(f"{path}: unknown encoding {name!r}") from None
    return {"utf-8": "utf-8", "utf-8-sig": "utf-8-sig"}.get(canonical, canonical)


def sniff_encoding(sample: bytes, path: Path, *, complete: bool) -> str:
    """Guess the encoding from the first bytes of a file.

    A BOM decides; else UTF-8 if the sample decodes as UTF-8 (a multi-byte character cut at
    the end of an incomplete sample is allowed); else, if the sample is mostly valid UTF-8
    (`encoding.mostly_utf8`), an error naming the first bad line; else the likeliest legacy
    encoding (`encoding.guess_legacy_encoding`).
    """
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=complete)
    except UnicodeDecodeError as exc:
        if mostly_utf8(sample):
            raise utf8_error(path, sample[: exc.start].count(b"\n") + 1) from None
    else:
        return "utf-8"
    guess = guess_legacy_encoding(sample)
    if guess is None:
        raise InvalidInputError(
            f"{path}: cannot tell the text encoding; pass encoding=, e.g. 'cp1252'"
        )
    return normalize_encoding(guess, path)


def decode_sample(sample: bytes, encoding: str, path: Path, *, complete: bool) -> str:
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        return str(decoder.decode(sample, final=complete))
    except UnicodeDecodeError as exc:
        line = sample[: exc.start].count(b"\n") + 1
        raise InvalidInputError(
            f"{path}: line {line} is not valid {encoding} (byte 0x{sample[exc.start]:02x})"
        ) from None


def sniff_delimiter(text: str) -> str:
    """The delimiter among `,;<tab>|` that splits the sample's lines most consistently.

    Each candidate parses the sample with the csv module; the winner has the most lines
    sharing one field count above 1, then the larger field count. "," if none splits.
    """
    lines = text.splitlines(keepends=True)
    if len(lines) > 1:
        lines = lines[:-1]  # the last line of a sample may be cut short
    lines = lines[:200]
    best, best_score = ",", (0, 0)
    for delimiter in DELIMITERS:
        counts = [len(row) for row in csv.reader(lines, delimiter=delimiter) if row]
        if not counts:
            continue
        width = max(set(counts), key=lambda n: (counts.count(n), n))
        score = (counts.count(width), width)
        if width > 1 and score > best_score:
            best, best_score = delimiter, score
    return best


def read_header(path: Path, delimiter: str, source: Path) -> list[str]:
    """The first record of the UTF-8 file `path`, names stripped; errors name `source`."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            header = next(csv.reader(handle, delimiter=delimiter), None)
    except (UnicodeDecodeError, csv.Error) as exc:
        raise InvalidInputError(f"{source}: line 1: cannot read the header: {exc}") from None
    if not header or all(not name.strip() for name in header):
        raise InvalidInputError(f"{source}: line 1: no header row (the file holds no data)")
    return check_names([name.strip() for name in header], source)


def check_names(names: list[str], path: Path | str) -> list[str]:
    seen: dict[str, int] = {}
    for number, name in enumerate(names, start=1):
        if not name:
            raise InvalidInputError(f"{path}: column {number} has an empty name")
        if name in seen:
            raise InvalidInputError(
                f"{path}: duplicate column name {name!r} (columns {seen[name]} and {number})"
            )
        seen[name] = number
    return names


def transcode(source: Path, encoding: str, target: Path) -> None:
    """Copy `source` to `target` as UTF-8, chunk by chunk; a bad byte names its line."""
    decoder = codecs.getincrementaldecoder(encoding)()
    newlines = 0
    with source.open("rb") as src, target.open("wb") as dst:
        while True:
            chunk = src.read(CHUNK_BYTES)
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                good = chunk[: max(exc.start, 0)].decode(encoding, errors="replace")
                raise InvalidInputError(
                    f"{source}: line {newlines + good.count(chr(10)) + 1} is not valid "
                    f"{encoding}; pass the right encoding="
                ) from None
            dst.write(text.encode("utf-8"))
            newlines += text.count("\n")
            if not chunk:
                return


def invalid_utf8_line(path: Path) -> int | None:
    """The line number of the first byte that is not valid UTF-8, if any."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    newlines = 0
    with path.open("rb") as handle:
        while True:
            chunk = handle.read(CHUNK_BYTES)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                # a character cut at the chunk's start began in the previous chunk
                return newlines + chunk[: max(exc.start, 0)].count(b"\n") + 1
            if not chunk:
                return None
            newlines += chunk.count(b"\n")


def records(path: Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of each non-blank data record of a UTF-8 CSV file."""
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        start = 1
        try:
            next(reader, None)
            start = reader.line_num + 1
            for row in reader:
                if any(row):
                    yield start, row
                start = reader.line_num + 1
        except csv.Error as exc:
            raise InvalidInputError(f"{path}: line {start}: {exc}") from None


def ragged_record(path: Path, delimiter: str, width: int) -> tuple[int, int] | None:
    """(line, number of fields) of the first record whose field count is not `width`."""
    for line, row in records(path, delimiter):
        if len(row) != width:
            return line, len(row)
    return None


def ragged_line(path: Path, delimiter: str, width: int) -> tuple[int, int] | None:
    """`ragged_record`, after a fast Polars pass over the lines has found a suspect.

    The pass counts delimiters per line; a file with quotes is suspect only where a line
    has an odd number of quotes or the wrong count outside quoted text.
    """
    line = pl.col("line")
    blank = line == ""
    quoted = line.str.contains('"', literal=True)
    plain_fields = line.str.count_matches(delimiter, literal=True) + 1
    try:
        flags = (
            pl.scan_lines(path)
            .select(
                quoted.any().alias("quoted"),
                ((plain_fields != width) & ~blank & ~quoted).any().alias("plain"),
            )
            .collect(engine="streaming")
            .row(0, named=True)
        )
        suspect = bool(flags["plain"])
        if flags["quoted"] and not suspect:
            outside = line.filter(quoted).str.replace_all(r'"[^"]*"', "")
            fields = outside.str.count_matches(delimiter, literal=True) + 1
            odd = line.filter(quoted).str.count_matches('"', literal=True) % 2 == 1
            check = ((fields != width) | odd).any()
            suspect = bool(pl.scan_lines(path).select(check).collect(engine="streaming").item())
    except (pl.exceptions.PolarsError, OSError):
        suspect = True
    return ragged_record(path, delimiter, width) if suspect else None


def ragged_error(source: Path, ragged: tuple[int, int], width: int) -> InvalidInputError:
    line, found = ragged
    return InvalidInputError(
        f"{source}: line {line} has {found} field{'s' * (found != 1)}, but the header has {width}"
    )


def csv_error(
    message: str, source: Path, readable: Path, delimiter: str, names: list[str]
) -> InvalidInputError:
    """Turn a Polars CSV error into one line naming the line and column at fault."""
    if "utf-8" in message.lower():
        line = invalid_utf8_line(readable)
        if line is not None:
            return utf8_error(source, line)
    if "more fields" in message:
        ragged = ragged_record(readable, delimiter, len(names))
        if ragged is not None:
            return ragged_error(source, ragged, len(names))
    parse = PARSE_ERROR.search(message)
    if parse is not None and parse["column"] in names:
        column, value = parse["column"], parse["value"]
        line = line_of_value(readable, delimiter, names.index(column), value)
        where = f"line {line}, " if line is not None else ""
        return InvalidInputError(
            f"{source}: {where}column {column!r}: mixed types: {value!r} is not "
            f"{_dtype_words(parse['dtype'])} like the values before it"
        )
    return InvalidInputError(f"{source}: cannot read it as CSV: {first_line(message)}")


def utf8_error(source: Path, line: int) -> InvalidInputError:
    return InvalidInputError(
        f"{source}: line {line} is not valid UTF-8; pass encoding= (e.g. 'cp1252') "
        "if the file is in another encoding"
    )


def widened(
    message: str, names: list[str], overrides: dict[str, pl.DataType]
) -> tuple[str, pl.DataType] | None:
    """The column, and its wider type, that `message` (a Polars error) calls for: in an
    integer column, an integer past int64 widens to Int128 (stored as a decimal), another
    number to Float64; in a date column, a value in another format keeps the column as text
    (a recipe's `cast` with a `format` can then read it)."""
    found = PARSE_ERROR.search(message)
    wider: pl.DataType = _FLOAT
    if found is not None and found["dtype"].startswith(("date", "datetime")):
        name = found["column"]
        return (name, pl.String()) if name in names and name not in overrides else None
    if found is not None and found["dtype"].startswith(("i", "u")):
        value = found["value"].strip()
        if found["dtype"] in ("i64", "u64") and re.fullmatch(r"[-+]?\d+", value):
            wider = pl.Int128()
        try:
            float(value)
        except ValueError:
            return None
    else:
        found = _TOO_WIDE.search(message)
    if found is None or found["column"] not in names or overrides.get(found["column"]) == _FLOAT:
        return None
    return found["column"], wider


def _dtype_words(dtype: str) -> str:
    if dtype.startswith(("i", "u")):
        return "an integer"
    if dtype.startswith("f"):
        return "a number"
    if dtype.startswith(("date", "datetime")):
        return "a date"
    return f"of type {dtype}"


def line_of_value(path: Path, delimiter: str, column: int, value: str) -> int | None:
    """The line of the first record whose field number `column` (0-based) is `value`."""
    for line, row in records(path, delimiter):
        if column < len(row) and row[column] == value:
            return line
    return None


def first_line(text: str) -> str:
    """The first non-empty line of an exception's text: drivers append hints below."""
    for line in io.StringIO(text):
        if line.strip():
            return line.strip()
    return text.strip()
