"""Ingest: types past the inference window, integers past int64, and mis-encoded UTF-8."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest

from fermion.data.ingest import ingest_file, ingest_file_described
from fermion.errors import InvalidInputError

BUDGETS = pytest.mark.parametrize("budget", [0, None], ids=["streamed", "in-memory"])
BIG = 99999999999999999999


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def readable_everywhere(dest: Path) -> pl.DataFrame:
    """The stored file as Polars reads it, after checking that pyarrow and pandas read it."""
    pq.read_table(dest)
    frame = pl.read_parquet(dest)
    frame.to_pandas()
    return frame


def ingest_readable(tmp_path: Path, source: Path, budget: int | None = None) -> pl.DataFrame:
    dest = tmp_path / "out" / "data.parquet"
    ingest_file(source, dest, memory_budget=budget)
    return readable_everywhere(dest)


def test_jsonl_key_first_seen_after_10000_lines_is_kept(tmp_path: Path) -> None:
    rows = [json.dumps({"a": i}) for i in range(12_000)] + [json.dumps({"a": 0, "late": "x"})]
    frame = ingest_readable(tmp_path, write_lines(tmp_path / "r.jsonl", rows))
    assert frame.columns == ["a", "late"]
    assert frame["late"].to_list()[-2:] == [None, "x"]


def test_jsonl_text_among_numbers_after_10000_lines_is_mixed(tmp_path: Path) -> None:
    rows = [json.dumps({"id": i, "qty": i}) for i in range(12_000)]
    rows.append(json.dumps({"id": 0, "qty": "abc"}))
    with pytest.raises(InvalidInputError) as caught:
        ingest_file(write_lines(tmp_path / "m.jsonl", rows), tmp_path / "x.parquet")
    message = str(caught.value)
    assert "line 12001, column 'qty': mixed types" in message and "'abc'" in message


def test_jsonl_quoted_numbers_stay_text(tmp_path: Path) -> None:
    rows = [json.dumps({"code": str(i)}) for i in range(50)] + [json.dumps({"code": "A-7"})]
    frame = ingest_readable(tmp_path, write_lines(tmp_path / "c.jsonl", rows))
    assert frame["code"].to_list()[-2:] == ["49", "A-7"]


def test_jsonl_numbers_then_floats_widen(tmp_path: Path) -> None:
    rows = [json.dumps({"v": i}) for i in range(12_000)] + [json.dumps({"v": 1.5})]
    frame = ingest_readable(tmp_path, write_lines(tmp_path / "f.jsonl", rows))
    assert frame.schema["v"] == pl.Float64 and frame["v"][-1] == 1.5


@pytest.mark.parametrize(
    ("value", "kind"), [("true", "true/false"), ('{"x": 1}', "an object"), ("[1]", "a list")]
)
def test_jsonl_conflicting_value_names_the_line(tmp_path: Path, value: str, kind: str) -> None:
    rows = ['{"a": 1}'] * 12_000 + [f'{{"a": {value}}}']
    with pytest.raises(InvalidInputError, match=f"line 12001, column 'a': mixed types: {kind}"):
        ingest_file(write_lines(tmp_path / "t.jsonl", rows), tmp_path / "out" / "x.parquet")
    assert not (tmp_path / "out" / "x.parquet").exists()


@BUDGETS
def test_csv_integers_past_int64_are_exact_decimals(tmp_path: Path, budget: int | None) -> None:
    lines = ["id,early,late"] + [f"{i},{BIG if i == 1 else i},{i}" for i in range(12_000)]
    lines.append(f"12000,-{BIG},{BIG}")
    described = ingest_file_described(
        write_lines(tmp_path / "big.csv", lines), tmp_path / "o.parquet", memory_budget=budget
    )
    frame = readable_everywhere(tmp_path / "o.parquet")
    assert frame.schema["early"] == frame.schema["late"] == pl.Decimal(38, 0)
    assert frame["early"][1] == frame["late"][-1] == Decimal(BIG)
    assert frame["early"][-1] == Decimal(-BIG)
    assert frame.schema["id"] == pl.Int64
    assert {column.name: column.dtype for column in described.schema}["late"].startswith("Decimal")


@BUDGETS
def test_csv_integers_past_38_digits_become_floats(tmp_path: Path, budget: int | None) -> None:
    for number, value in enumerate([2**127 - 1, 2**127 + 1, 10**40]):
        source = write_lines(tmp_path / f"huge{number}.csv", ["a", "1", str(value)])
        frame = ingest_readable(tmp_path, source, budget)
        assert frame.schema["a"] == pl.Float64 and frame["a"][1] == float(value)


def test_jsonl_parquet_and_nested_wide_integers_are_stored_readably(tmp_path: Path) -> None:
    rows = [json.dumps({"a": BIG, "s": {"x": BIG}}), '{"a": 1, "s": {"x": 2}}']
    frame = ingest_readable(tmp_path, write_lines(tmp_path / "w.jsonl", rows))
    assert frame["a"].to_list() == [Decimal(BIG), Decimal(1)]
    assert frame["s"].struct.field("x").to_list() == [Decimal(BIG), Decimal(2)]
    parquet = tmp_path / "wide.parquet"
    pl.DataFrame({"a": [BIG, -1]}, schema={"a": pl.Int128}).write_parquet(parquet)
    frame = ingest_readable(tmp_path, parquet)
    assert frame["a"].to_list() == [Decimal(BIG), Decimal(-1)]


def test_jsonl_integer_past_38_digits_is_refused_naming_the_column(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "h.jsonl", ['{"a": 1}', f'{{"a": {2**127 - 1}}}'])
    with pytest.raises(InvalidInputError, match="line 2, column 'a': the integer 1701"):
        ingest_file(source, tmp_path / "x.parquet")
    source = write_lines(tmp_path / "h2.jsonl", ['{"a": 1}', f'{{"a": {10**40}}}'])
    with pytest.raises(InvalidInputError, match="line 2, column 'a': the integer 1"):
        ingest_file(source, tmp_path / "x.parquet")


@BUDGETS
def test_number_after_10000_integers_widens_to_float(tmp_path: Path, budget: int | None) -> None:
    lines = ["id,qty"] + [f"{i},{i}" for i in range(10_000)] + ["10000,1.5", "10001,2e3"]
    frame = ingest_readable(tmp_path, write_lines(tmp_path / "f.csv", lines), budget)
    assert frame.schema == pl.Schema({"id": pl.Int64, "qty": pl.Float64})
    assert frame["qty"].to_list()[-2:] == [1.5, 2000.0]


@BUDGETS
def test_text_after_10000_integers_is_mixed(tmp_path: Path, budget: int | None) -> None:
    lines = ["id,qty"] + [f"{i},{i}" for i in range(10_000)] + ["10000,1.5", "10001,abc"]
    source = write_lines(tmp_path / "m.csv", lines)
    with pytest.raises(InvalidInputError) as caught:
        ingest_file(source, tmp_path / "out" / "x.parquet", memory_budget=budget)
    message = str(caught.value)
    assert "line 10003, column 'qty': mixed types" in message and "'abc'" in message
    assert not (tmp_path / "out" / "x.parquet").exists()


@BUDGETS
def test_column_empty_for_10000_rows_takes_its_later_type(
    tmp_path: Path, budget: int | None
) -> None:
    lines = ["id,late,day,none"] + [f"{i},,," for i in range(10_000)]
    lines += ["10000,7,2024-01-02,", "10001,8,,"]
    frame = ingest_readable(tmp_path, write_lines(tmp_path / "e.csv", lines), budget)
    assert frame.schema == pl.Schema(
        {"id": pl.Int64, "late": pl.Int64, "day": pl.Date, "none": pl.String}
    )
    assert frame["late"].to_list()[-2:] == [7, 8]


MOSTLY_UTF8 = {
    "mu.csv": "id,name\n1,café\n2,naïve\n3,".encode() + b"bad\xff\n",
    "mu.jsonl": '{"name": "café"}\n{"name": "naïve"}\n{"name": "'.encode() + b'\xff"}\n',
}


@pytest.mark.parametrize(("name", "line"), [("mu.csv", 4), ("mu.jsonl", 3)])
def test_invalid_byte_among_utf8_names_the_line(tmp_path: Path, name: str, line: int) -> None:
    source = tmp_path / name
    source.write_bytes(MOSTLY_UTF8[name])
    with pytest.raises(InvalidInputError, match=f"line {line} is not valid UTF-8; pass encoding="):
        ingest_file(source, tmp_path / "out" / "x.parquet")
    assert not (tmp_path / "out" / "x.parquet").exists()


def test_single_byte_accents_are_still_cp1252(tmp_path: Path) -> None:
    source = tmp_path / "legacy.csv"
    source.write_bytes("id,name\n1,café\n2,naïve\n3,Zürich\n".encode("cp1252"))
    dest = tmp_path / "x.parquet"
    assert ingest_file(source, dest)["encoding"] == "cp1252"
    assert pl.read_parquet(dest)["name"].to_list() == ["café", "naïve", "Zürich"]


@BUDGETS
def test_dates_in_two_formats_stay_text(tmp_path: Path, budget: int | None) -> None:
    lines = ["d,x", "31/01/2024,1", "2024-02-01,2"]
    frame = ingest_readable(tmp_path, write_lines(tmp_path / "d.csv", lines), budget)
    assert frame.schema == pl.Schema({"d": pl.String, "x": pl.Int64})
    assert frame["d"].to_list() == ["31/01/2024", "2024-02-01"]


def test_all_null_json_keys_are_stored_as_text(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "n.jsonl", ['{"a": 1, "b": null}', '{"a": 2, "b": null}'])
    frame = ingest_readable(tmp_path, source)
    assert frame.schema == pl.Schema({"a": pl.Int64, "b": pl.String})


def test_json_lines_without_keys_are_refused(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "e.jsonl", ["{}", "{}"])
    with pytest.raises(InvalidInputError, match="no columns"):
        ingest_file(source, tmp_path / "out" / "e.parquet")


def test_nan_in_json_lines_names_the_line(tmp_path: Path) -> None:
    source = write_lines(tmp_path / "nan.jsonl", ['{"a": 1.5}', '{"a": NaN}'])
    with pytest.raises(InvalidInputError, match=r"line 2 is not valid JSON: NaN"):
        ingest_file(source, tmp_path / "out" / "nan.parquet")
