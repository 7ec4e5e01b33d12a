"""Ingest: formats, sniffing, deterministic output, and one readable error per bad input."""

from __future__ import annotations

import gzip
import hashlib
import sqlite3
from pathlib import Path

import polars as pl
import pytest

from fermion.data import csv_reader
from fermion.data.ingest import ingest_file, ingest_file_described, ingest_sql
from fermion.data.profile import describe_parquet
from fermion.errors import FermionError, InvalidInputError, NotFoundError


def write(path: Path, text: str, encoding: str = "utf-8") -> Path:
    path.write_bytes(text.encode(encoding))
    return path


def ingest(tmp_path: Path, source: Path, **options: str) -> pl.DataFrame:
    dest = tmp_path / "out" / "data.parquet"
    ingest_file(source, dest, **options)
    return pl.read_parquet(dest)


def assert_clean(folder: Path) -> None:
    """Nothing left behind: no destination, no staging files."""
    assert not folder.exists() or list(folder.iterdir()) == []


def test_csv_types_nulls_and_description(tmp_path: Path) -> None:
    source = write(
        tmp_path / "people.csv",
        " id , name ,score,joined\n1,Ann,1.5,2024-01-02\n2,NA,,2024-02-03\n3,Bob,N/A,\n",
    )
    dest = tmp_path / "out" / "people.parquet"
    info = ingest_file(source, dest)
    assert info == {
        "path": str(source.resolve()),
        "format": "csv",
        "delimiter": ",",
        "encoding": "utf-8",
        "size_bytes": source.stat().st_size,
    }
    frame = pl.read_parquet(dest)
    assert frame.columns == ["id", "name", "score", "joined"]
    assert frame.schema["id"] == pl.Int64
    assert frame.schema["score"] == pl.Float64
    assert frame.schema["joined"] == pl.Date
    assert frame["name"].to_list() == ["Ann", None, "Bob"]
    assert frame["score"].null_count() == 2
    assert list((tmp_path / "out").iterdir()) == [dest]


def test_every_null_token_is_missing(tmp_path: Path) -> None:
    tokens = ["", "NA", "N/A", "NULL", "null", "NaN", "nan", "None"]
    lines = ["a,b"] + [f"{i},{token}" for i, token in enumerate(tokens)]
    frame = ingest(tmp_path, write(tmp_path / "n.csv", "\n".join(lines) + "\n"))
    assert frame["b"].null_count() == len(tokens)


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    frame = ingest(tmp_path, write(tmp_path / "b.csv", "a,b\r\n1,x\r\n\r\n2,y\r\n\r\n"))
    assert frame.rows() == [(1, "x"), (2, "y")]


def test_quoted_fields_keep_delimiters_and_newlines(tmp_path: Path) -> None:
    source = write(tmp_path / "q.csv", 'a,b\n1,"x, ""quoted""\nnext"\n2,\n')
    frame = ingest(tmp_path, source)
    assert frame["b"].to_list() == ['x, "quoted"\nnext', None]


@pytest.mark.parametrize(
    ("name", "text", "delimiter"),
    [
        ("semi.csv", "a;b;c\n1;2,5;x\n3;4,5;y\n", ";"),
        ("tabs.tsv", "a\tb\tc\n1\t2\tx\n3\t4\ty\n", "\t"),
        ("tabs.csv", "a\tb\tc\n1\t2\tx\n3\t4\ty\n", "\t"),
        ("pipes.csv", "a|b|c\n1|2|x\n3|4|y\n", "|"),
    ],
)
def test_delimiter_is_sniffed(tmp_path: Path, name: str, text: str, delimiter: str) -> None:
    dest = tmp_path / "out.parquet"
    info = ingest_file(write(tmp_path / name, text), dest)
    assert info["delimiter"] == delimiter
    assert pl.read_parquet(dest).columns == ["a", "b", "c"]


def test_given_delimiter_wins(tmp_path: Path) -> None:
    source = write(tmp_path / "d.csv", "a;b\n1;2\n")
    frame = ingest(tmp_path, source, delimiter=",")
    assert frame.columns == ["a;b"]


def test_cp1252_is_sniffed_and_transcoded(tmp_path: Path) -> None:
    text = "city,note\n" + "".join(f"Zürich,crème brûlée {i} \u2013 “ok”\n" for i in range(50))
    source = write(tmp_path / "legacy.csv", text, "cp1252")
    dest = tmp_path / "out" / "legacy.parquet"
    info = ingest_file(source, dest)
    assert info["encoding"] in ("cp1252", "windows-1252")
    frame = pl.read_parquet(dest)
    assert frame["city"][0] == "Zürich"
    assert frame["note"][0] == "crème brûlée 0 \u2013 “ok”"
    assert list((tmp_path / "out").iterdir()) == [dest]


def test_given_encoding_and_boms(tmp_path: Path) -> None:
    latin = write(tmp_path / "l.csv", "name\nJosé\nAndré\n", "latin-1")
    assert ingest(tmp_path, latin, encoding="latin-1")["name"].to_list() == ["José", "André"]
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbfname\nJos\xc3\xa9\n")
    assert ingest(tmp_path, bom).columns == ["name"]
    wide = write(tmp_path / "u16.csv", "\ufeffname,n\nJosé,1\n", "utf-16-le")
    dest = tmp_path / "u16.parquet"
    assert ingest_file(wide, dest)["encoding"] == "utf-16"
    assert pl.read_parquet(dest).rows() == [("José", 1)]


def test_jsonl_and_parquet(tmp_path: Path) -> None:
    jsonl = write(tmp_path / "r.ndjson", '{"a": 1, "b": "x"}\n\n{"a": 2, "b": null}\n')
    assert ingest(tmp_path, jsonl).rows() == [(1, "x"), (2, None)]
    parquet = tmp_path / "in.parquet"
    pl.DataFrame({" a ": [1, 2], "b": ["x", "y"]}).write_parquet(parquet, compression="snappy")
    dest = tmp_path / "p.parquet"
    info = ingest_file(parquet, dest)
    assert info["format"] == "parquet" and info["encoding"] is None
    assert pl.read_parquet(dest).columns == ["a", "b"]


def test_format_can_be_given(tmp_path: Path) -> None:
    source = write(tmp_path / "data.dat", "a\tb\n1\t2\n")
    frame = ingest(tmp_path, source, fmt="tsv")
    assert frame.rows() == [(1, 2)]


def test_output_bytes_are_deterministic(tmp_path: Path) -> None:
    lines = ["k,v,w"] + [f"{i},{i * 0.5},s{i % 7}" for i in range(300_000)]
    source = write(tmp_path / "big.csv", "\n".join(lines) + "\n")
    digests = set()
    for attempt in range(3):
        dest = tmp_path / f"out{attempt}.parquet"
        ingest_file(source, dest)
        digests.add(hashlib.sha256(dest.read_bytes()).hexdigest())
    assert len(digests) == 1


SAME_BYTES = {
    "dates.csv": "id,day,v\n"
    + "".join(f"{i},2024-01-{i % 28 + 1:02d},{i / 3}\n" for i in range(500)),
    "blanks.csv": "a,b,c\r\n1,x,\r\n\r\n,,\r\n2,y,NA\r\n\r\n",
    "quoted.csv": 'a,b\n1,"x, y"\n2,\n3,"p\nq"\n',
    "wide.csv": "k,v,w\n"
    + "".join(f"{i},{i * 0.5},{'s' if i % 9 else ''}{i % 7}\n" for i in range(70_000)),
    # integers past int64, early and late; a float and a first value after 10,000 rows
    "late.csv": "id,big,late_big,qty,empty\n"
    + "".join(f"{i},{i},{i},{i},\n" for i in range(10_000))
    + f"10000,99999999999999999999,{-(10**37)},1.5,7\n10001,{2**64},1,2,8\n",
}


@pytest.mark.parametrize("name", sorted(SAME_BYTES))
def test_in_memory_and_streamed_ingest_write_the_same(tmp_path: Path, name: str) -> None:
    source = write(tmp_path / name, SAME_BYTES[name])
    streamed = ingest_file_described(source, tmp_path / "s.parquet", memory_budget=0)
    in_memory = ingest_file_described(source, tmp_path / "m.parquet", memory_budget=1 << 30)
    assert (tmp_path / "s.parquet").read_bytes() == (tmp_path / "m.parquet").read_bytes()
    assert streamed == in_memory
    assert (in_memory.schema, in_memory.profile) == describe_parquet(tmp_path / "m.parquet")
    assert in_memory.description == ingest_file(source, tmp_path / "plain.parquet")


def test_memory_budget_is_bounded() -> None:
    assert 0 < csv_reader.memory_budget() <= csv_reader.MEMORY_CAP


SHORT_ROWS = [
    ("a,b,c\n1,2,\n3,4\n5,6,7\n", 3),  # no quotes: the delimiter tally finds it
    ('a,b,c\n1,"2",\n3,4\n5,6,7\n', 3),  # quotes: the line scan finds it
    ("a,b,c\n1,2,\n\n3,4\n\n5,,\n", 4),  # blank lines, and a short one
    ("a,b,c\r\n1,2,\r\n\r\n3,4\r\n", 4),
]


@pytest.mark.parametrize(("text", "line"), SHORT_ROWS)
@pytest.mark.parametrize("chunk", [2, 1 << 20])
@pytest.mark.parametrize("budget", [0, None], ids=["streamed", "in-memory"])
def test_short_row_is_found(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    line: int,
    chunk: int,
    budget: int | None,
) -> None:
    monkeypatch.setattr(csv_reader, "TALLY_CHUNK", chunk)
    source = write(tmp_path / "s.csv", text)
    with pytest.raises(InvalidInputError, match=f"line {line} has 2 fields, but the header has 3"):
        ingest_file(source, tmp_path / "out" / "x.parquet", memory_budget=budget)
    assert_clean(tmp_path / "out")


@pytest.mark.parametrize(
    "text",
    [
        "a,b,c\n1,2,\n\n\n3,4,NA\n\n",
        "a,b,c\r\n1,2,\r\n\r\n3,4,\r\n\r\n",
        "a;b\n1;\n\n2;NA",
    ],
)
@pytest.mark.parametrize("chunk", [1, 2, 3, 1 << 20])
@pytest.mark.parametrize("budget", [0, None], ids=["streamed", "in-memory"])
def test_missing_last_fields_are_not_short_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, chunk: int, budget: int | None
) -> None:
    monkeypatch.setattr(csv_reader, "TALLY_CHUNK", chunk)

    def slow_scan(*args: object) -> None:
        raise AssertionError("the delimiter tally should have settled it")

    if budget is None:  # a streamed file is scanned line by line
        monkeypatch.setattr(csv_reader.sniff, "ragged_line", slow_scan)
    dest = tmp_path / "out.parquet"
    ingest_file(write(tmp_path / "m.csv", text), dest, memory_budget=budget)
    frame = pl.read_parquet(dest)
    assert frame.height == 2
    assert frame[:, -1].null_count() == 2


def test_sql_from_sqlite(tmp_path: Path) -> None:
    database = tmp_path / "shop.db"
    with sqlite3.connect(database) as connection:
        connection.execute("create table orders (id integer, item text, price real)")
        connection.executemany(
            "insert into orders values (?, ?, ?)", [(1, "pen", 1.5), (2, "ink", None)]
        )
    dest = tmp_path / "out" / "orders.parquet"
    info = ingest_sql("select * from orders order by id", f"sqlite:///{database}", dest)
    assert info == {
        "sql": "select * from orders order by id",
        "url": f"sqlite:///{database}",
        "format": "sql",
    }
    assert pl.read_parquet(dest).rows() == [(1, "pen", 1.5), (2, "ink", None)]


def test_sql_errors(tmp_path: Path) -> None:
    database = tmp_path / "empty.db"
    sqlite3.connect(database).close()
    dest = tmp_path / "out" / "q.parquet"
    with pytest.raises(InvalidInputError, match="no such table: nope"):
        ingest_sql("select * from nope", f"sqlite:///{database}", dest)
    with pytest.raises(InvalidInputError, match="returned no rows"):
        ingest_sql("select 1 as a where 1 = 0", f"sqlite:///{database}", dest)
    with pytest.raises(InvalidInputError, match="invalid database URL"):
        ingest_sql("select 1", "not a url", dest)
    with pytest.raises(NotFoundError, match=r"missing\.db"):
        ingest_sql("select 1", f"sqlite:///{tmp_path / 'missing.db'}", dest)
    assert_clean(tmp_path / "out")


def test_sql_url_password_is_masked(tmp_path: Path) -> None:
    url = "postgresql+psycopg://user:s3cret@127.0.0.1:1/db?connect_timeout=1"
    with pytest.raises(FermionError) as caught:  # MissingDependencyError without psycopg
        ingest_sql("select 1", url, tmp_path / "q.parquet")
    assert "s3cret" not in str(caught.value)
    assert "***" in str(caught.value)


BAD_CSV = [
    ("empty.csv", "", "empty"),
    ("header.csv", "a,b\n", "header but no rows"),
    ("long.csv", "a,b\n1,2\n3,4,5\n6,7\n", "line 3 has 3 fields, but the header has 2"),
    ("short.csv", "a,b,c\n1,2,3\n4,5\n6,7,8\n", "line 3 has 2 fields, but the header has 3"),
    ("dup.csv", "a,b,a\n1,2,3\n", "duplicate column name 'a' \\(columns 1 and 3\\)"),
    ("blankname.csv", "a, ,c\n1,2,3\n", "column 2 has an empty name"),
    ("nohead.csv", "\n\n", "no header"),
]


@pytest.mark.parametrize("budget", [0, None], ids=["streamed", "in-memory"])
@pytest.mark.parametrize(("name", "text", "message"), BAD_CSV)
def test_bad_csv(tmp_path: Path, name: str, text: str, message: str, budget: int | None) -> None:
    source = write(tmp_path / name, text)
    with pytest.raises(InvalidInputError, match=message) as caught:
        ingest_file(source, tmp_path / "out" / "x.parquet", memory_budget=budget)
    assert str(source) in str(caught.value)
    assert "\n" not in str(caught.value)
    assert_clean(tmp_path / "out")


def test_mixed_types_after_inference_names_line_column_and_value(tmp_path: Path) -> None:
    lines = ["id,qty"] + [f"{i},{i}" for i in range(12_000)] + ["12000,abc"]
    source = write(tmp_path / "mixed.csv", "\n".join(lines) + "\n")
    with pytest.raises(InvalidInputError) as caught:
        ingest_file(source, tmp_path / "out" / "x.parquet")
    message = str(caught.value)
    assert "line 12002" in message and "'qty'" in message and "'abc'" in message
    assert "mixed types" in message
    assert_clean(tmp_path / "out")


def test_mostly_numeric_text_column_is_mixed(tmp_path: Path) -> None:
    lines = ["id,amount"] + [f"{i},{i}.5" for i in range(30)]
    lines[8] = "7,seven"
    source = write(tmp_path / "m.csv", "\n".join(lines) + "\n")
    with pytest.raises(InvalidInputError, match=r"line 9, column 'amount'.*'seven'"):
        ingest_file(source, tmp_path / "out" / "x.parquet")
    assert_clean(tmp_path / "out")


def test_text_column_with_some_numbers_is_fine(tmp_path: Path) -> None:
    lines = ["code"] + ["A1", "B2", "7"] * 5
    assert ingest(tmp_path, write(tmp_path / "c.csv", "\n".join(lines)))["code"][2] == "7"


def test_invalid_utf8_late_in_file_names_the_line(tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    source.write_bytes(b"a,b\n" + b"1,x\n" * 40_000 + b"2,caf\xe9\n")
    with pytest.raises(InvalidInputError, match="line 40002 is not valid UTF-8"):
        ingest_file(source, tmp_path / "out" / "x.parquet")
    assert_clean(tmp_path / "out")


def test_wrong_given_encoding(tmp_path: Path) -> None:
    source = tmp_path / "bad.csv"
    source.write_bytes(b"a\n\xff\xfe\n")
    with pytest.raises(InvalidInputError, match="line 2 is not valid utf-8"):
        ingest_file(source, tmp_path / "x.parquet", encoding="utf-8")
    with pytest.raises(InvalidInputError, match="unknown encoding"):
        ingest_file(source, tmp_path / "x.parquet", encoding="klingon")


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match=r"nothere\.csv: no such file"):
        ingest_file(tmp_path / "nothere.csv", tmp_path / "x.parquet")
    with pytest.raises(InvalidInputError, match="is a directory"):
        ingest_file(tmp_path, tmp_path / "x.parquet")


def test_unknown_format(tmp_path: Path) -> None:
    source = write(tmp_path / "sheet.xlsx", "a\n1\n")
    with pytest.raises(InvalidInputError, match=r"sheet.xlsx.*pass fmt="):
        ingest_file(source, tmp_path / "x.parquet")
    with pytest.raises(InvalidInputError, match="unknown format 'xml'"):
        ingest_file(source, tmp_path / "x.parquet", fmt="xml")
    gz = tmp_path / "data.csv.gz"
    gz.write_bytes(gzip.compress(b"a\n1\n"))
    with pytest.raises(InvalidInputError, match=r"'\.gz'"):
        ingest_file(gz, tmp_path / "x.parquet")


def test_bad_jsonl_names_the_line(tmp_path: Path) -> None:
    source = write(tmp_path / "r.jsonl", '{"a": 1}\n{"a": 2}\n{"a": \n')
    with pytest.raises(InvalidInputError, match=r"r.jsonl: line 3 is not valid JSON"):
        ingest_file(source, tmp_path / "out" / "x.parquet")
    assert_clean(tmp_path / "out")


def test_bad_parquet(tmp_path: Path) -> None:
    source = write(tmp_path / "broken.parquet", "this is not parquet")
    with pytest.raises(InvalidInputError, match=r"broken.parquet: cannot read it") as caught:
        ingest_file(source, tmp_path / "out" / "x.parquet")
    assert "\n" not in str(caught.value)
    assert_clean(tmp_path / "out")


def test_existing_destination_survives_a_failure(tmp_path: Path) -> None:
    dest = tmp_path / "keep.parquet"
    dest.write_bytes(b"old")
    with pytest.raises(InvalidInputError):
        ingest_file(write(tmp_path / "h.csv", "a,b\n"), dest)
    assert dest.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.csv", "keep.parquet"]
