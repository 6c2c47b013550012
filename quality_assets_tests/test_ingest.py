"""Loading one landed file: formats and dialects, quarantine codes, file-level outcomes, the
conservation invariant, source row numbers, idempotent reloads, schema evolution, hostile names,
and the warehouse's writer queue. Every test has its own DuckDB file under tmp_path."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import json
import multiprocessing
import random
import re
import threading
import time
from pathlib import Path

import duckdb
import pytest
from conftest import (
    Harness,
    Loaded,
    assert_conserved,
    assert_quarantine_row,
    assert_source_rows_complete,
    dataset_from_yaml,
    simple_dataset,
)

from quality_assets import ingest
from quality_assets.ingest import ERROR_CODES, FILE_ERRORS, is_temporary_name, sniff_dialect
from quality_assets.warehouse import Warehouse, WarehouseBusy

ORDERS = {"id": "bigint", "name": "string", "amount": "double"}


def csv_text(rows: list[list], delimiter: str = ",", lineterminator: str = "\n") -> str:
    buffer = io.StringIO()
    csv.writer(buffer, delimiter=delimiter, lineterminator=lineterminator).writerows(rows)
    return buffer.getvalue()


def csv_records(text: str, delimiter: str = ",", header: bool = True) -> list[list[str]]:
    """The data records of a CSV text as Python's csv module reads them (blank lines skipped)."""
    records = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if r]
    return records[1:] if header else records


def check(loaded: Loaded, expected_records: int) -> Loaded:
    """The conservation invariant and gap-free source row numbers, for every fixture."""
    assert_conserved(loaded, expected_records)
    assert_source_rows_complete(loaded)
    return loaded


def values(loaded: Loaded, *columns: str) -> list[tuple]:
    return [tuple(row[c] for c in columns) for row in loaded.raw]


# ---------------------------------------------------------------------------------------------
# 2. Formats and dialects


@pytest.mark.parametrize("delimiter", [",", "\t", "|", ";"], ids=["comma", "tab", "pipe", "semicolon"])
def test_delimiter_is_sniffed_without_a_contract_hint(harness, tmp_path, delimiter):
    rows = [["id", "name", "amount"]] + [[i, f"name {i}", f"{i}.25"] for i in range(1, 8)]
    text = csv_text(rows, delimiter)
    loaded = check(harness.load(harness.write("orders.txt", text), simple_dataset(tmp_path)), 7)
    assert loaded.audit.delimiter == delimiter
    assert loaded.audit.header is True
    assert loaded.audit.parser == "duckdb"
    assert loaded.audit.columns == ["id", "name", "amount"]
    assert values(loaded, "id", "name", "amount") == [(i, f"name {i}", i + 0.25) for i in range(1, 8)]
    assert loaded.audit.column_types == {"id": "BIGINT", "name": "VARCHAR", "amount": "DOUBLE"}


@pytest.mark.parametrize("header", [True, False], ids=["header", "no_header"])
def test_header_is_sniffed_and_declared_names_apply_positionally(harness, tmp_path, header):
    body = [[1, "alpha", "2.5"], [2, "beta", "3.5"], [3, "gamma", "4.5"]]
    text = csv_text(([["id", "name", "amount"]] if header else []) + body)
    loaded = check(harness.load(harness.write("orders.csv", text), simple_dataset(tmp_path, ORDERS)), 3)
    assert loaded.audit.header is header
    assert values(loaded, "id", "name", "amount") == [(1, "alpha", 2.5), (2, "beta", 3.5), (3, "gamma", 4.5)]


def test_no_header_and_no_declared_columns_gets_positional_names(harness, tmp_path):
    text = "1,alpha,2.5\n2,beta,3.5\n"
    loaded = check(harness.load(harness.write("orders.csv", text), simple_dataset(tmp_path)), 2)
    assert loaded.audit.header is False
    assert loaded.audit.columns == ["column1", "column2", "column3"]


def test_aliases_map_source_headers_to_contract_names(harness, tmp_path):
    dataset = dataset_from_yaml("""\
        datasets:
          ds:
            columns:
              order_id: {type: bigint, aliases: [OrderID]}
              amount: {type: double, aliases: [Amount EUR]}
    """, tmp_path)
    text = "OrderID,Amount EUR,comment\n1,2.5,ok\n2,3.5,fine\n"
    loaded = check(harness.load(harness.write("orders.csv", text), dataset), 2)
    assert loaded.audit.columns == ["order_id", "amount", "comment"]
    assert values(loaded, "order_id", "amount", "comment") == [(1, 2.5, "ok"), (2, 3.5, "fine")]


@pytest.mark.parametrize("lineterminator", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_quoted_fields_with_delimiters_newlines_and_quotes(harness, tmp_path, lineterminator):
    rows = [
        ["id", "name", "amount"],
        [1, "Smith, John", "1.5"],
        [2, "two\nlines", "2.5"],
        [3, 'he said "hi"', "3.5"],
        [4, "a,\nb,\"c\"", "4.5"],
        [5, "plain", "5.5"],
    ]
    text = csv_text(rows, lineterminator=lineterminator)
    expected = csv_records(text)
    loaded = check(harness.load(harness.write("orders.csv", text), simple_dataset(tmp_path, ORDERS)), len(expected))
    assert values(loaded, "id", "name") == [(r[0], r[1]) for r in rows[1:]]
    assert [r[1] for r in expected] == [r[1] for r in rows[1:]]  # the fixture means what it says


def test_gzip_compressed_csv(harness, tmp_path):
    text = csv_text([["id", "name", "amount"]] + [[i, f"n{i}", i * 1.5] for i in range(1, 101)])
    loaded = check(harness.load(harness.write("orders.csv.gz", gzip.compress(text.encode())),
                                simple_dataset(tmp_path, ORDERS)), 100)
    assert loaded.audit.compression == "gzip"
    assert loaded.audit.format == "csv"
    assert values(loaded, "id", "amount")[-1] == (100, 150.0)


def test_gzip_json_lines(harness, tmp_path):
    lines = [json.dumps({"id": i, "name": f"n{i}", "amount": i / 4}) for i in range(1, 21)]
    path = harness.write("events.jsonl.gz", gzip.compress(("\n".join(lines) + "\n").encode()))
    loaded = check(harness.load(path, simple_dataset(tmp_path)), 20)
    assert (loaded.audit.format, loaded.audit.compression) == ("json", "gzip")
    assert values(loaded, "id", "name", "amount") == [(i, f"n{i}", i / 4) for i in range(1, 21)]
    assert loaded.audit.column_types["amount"] == "DOUBLE"  # 0.25 .. 5.0, not rounded to integers


def test_parquet(harness, tmp_path):
    path = harness.landing / "orders.parquet"
    with duckdb.connect() as con:
        con.execute(
            f"COPY (SELECT range::BIGINT AS id, 'n' || range AS name, range * 0.5 AS amount, "
            f"DATE '2024-01-01' + range::INTEGER AS day FROM range(1, 51)) TO '{path}' (FORMAT parquet)"
        )
    loaded = check(harness.load(path, simple_dataset(tmp_path, ORDERS)), 50)
    assert (loaded.audit.format, loaded.audit.parser) == ("parquet", "duckdb-parquet")
    assert [row["_source_row"] for row in loaded.raw] == list(range(1, 51))
    assert values(loaded, "id", "name", "amount")[:2] == [(1, "n1", 0.5), (2, "n2", 1.0)]
    assert loaded.audit.column_types["day"] == "DATE"


def test_parquet_value_that_does_not_fit_the_declared_type_is_quarantined(harness, tmp_path):
    path = harness.landing / "orders.parquet"
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT * FROM (VALUES (1, '10'), (2, 'ten'), (3, '30')) t(id, qty)) TO '{path}' (FORMAT parquet)")
    loaded = check(harness.load(path, simple_dataset(tmp_path, {"id": "bigint", "qty": "bigint"})), 3)
    assert values(loaded, "id", "qty") == [(1, 10), (3, 30)]
    assert_quarantine_row(loaded, loaded.quarantine[0], source_row=2, code="E_NUMERIC_FORMAT", column="qty", value="ten")


def test_json_lines_with_nested_values(harness, tmp_path):
    records = [
        {"id": 1, "user": {"name": "Ana", "tags": ["a", "b"]}, "flag": True, "score": None},
        {"id": 2, "user": {"name": "Bo"}, "flag": False, "score": 2.5, "extra": [1, {"x": 2}]},
    ]
    text = "\n".join(json.dumps(r) for r in records) + "\n"
    loaded = check(harness.load(harness.write("events.jsonl", text), simple_dataset(tmp_path)), 2)
    assert loaded.audit.format == "json"
    assert [json.loads(u) for u in loaded.column("user")] == [r["user"] for r in records]
    assert loaded.column("flag") == [True, False]
    assert loaded.column("score") == [None, 2.5]
    assert loaded.column("extra")[0] is None and json.loads(loaded.column("extra")[1]) == [1, {"x": 2}]


@pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])
def test_declared_single_byte_encoding_is_decoded(harness, tmp_path, encoding):
    names = ["café", "naïve", "Ærø"] + (["€ 5"] if encoding == "cp1252" else [])
    text = "id,name\n" + "".join(f"{i},{n}\n" for i, n in enumerate(names, start=1))
    dataset = simple_dataset(tmp_path, {"id": "bigint", "name": "string"}, csv={"encoding": encoding})
    loaded = check(harness.load(harness.write("names.csv", text, encoding=encoding), dataset), len(names))
    assert loaded.column("name") == names
    assert loaded.audit.encoding == encoding
    assert loaded.audit.utf8_valid is False


@pytest.mark.parametrize("codec", ["utf-16-le", "utf-16-be"])
def test_utf16_with_bom_is_detected(harness, tmp_path, codec):
    text = "\ufeffid,name\n1,café\n2,straße\n"
    loaded = check(harness.load(harness.write("names.csv", text.encode(codec)), simple_dataset(tmp_path)), 2)
    assert loaded.column("name") == ["café", "straße"]
    assert loaded.audit.encoding == "utf-16"


def test_utf8_bom_does_not_end_up_in_the_first_column_name(harness, tmp_path):
    loaded = check(harness.load(harness.write("orders.csv", "\ufeffid,name\n1,a\n"), simple_dataset(tmp_path)), 1)
    assert loaded.audit.columns == ["id", "name"]
    assert loaded.column("id") == [1]


def test_null_values_and_date_format_from_the_contract(harness, tmp_path):
    dataset = simple_dataset(tmp_path, {"id": "bigint", "day": "date", "note": "string"},
                             csv={"null_values": ["NA", ""], "date_format": "%d.%m.%Y"})
    text = "id,day,note\n1,31.01.2024,NA\n2,NA,x\n3,01.02.2024,\n"
    loaded = check(harness.load(harness.write("d.csv", text), dataset), 3)
    assert values(loaded, "id", "day", "note") == [
        (1, dt.date(2024, 1, 31), None), (2, None, "x"), (3, dt.date(2024, 2, 1), None)]


# ---------------------------------------------------------------------------------------------
# 3. Quarantine codes

QUARANTINE_CASES = {
    "too_few_fields": (
        "id,name,amount\n1,a,1.5\n2,b\n3,c,3.5\n", ORDERS, {},
        [(2, "E_COLUMN_COUNT", "2,b", None, None)]),
    "too_many_fields": (
        "id,name,amount\n1,a,1.5\n2,b,2.5,surplus\n3,c,3.5\n", ORDERS, {},
        [(2, "E_COLUMN_COUNT", "2,b,2.5,surplus", None, None)]),
    "numeric": (
        "id,name,amount\n1,a,1.5\n2,b,12O.5\n3,c,3.5\n", ORDERS, {},
        [(2, "E_NUMERIC_FORMAT", "2,b,12O.5", "amount", "12O.5")]),
    "date": (
        "id,day\n1,2024-01-31\n2,2024-02-30\n3,2024-03-01\n", {"id": "bigint", "day": "date"}, {},
        [(2, "E_DATE_FORMAT", "2,2024-02-30", "day", "2024-02-30")]),
    "timestamp": (
        "id,at\n1,2024-01-31 10:00:00\n2,yesterday\n", {"id": "bigint", "at": "timestamp"}, {},
        [(2, "E_DATE_FORMAT", "2,yesterday", "at", "yesterday")]),
    "boolean": (
        "id,paid\n1,true\n2,maybe\n3,false\n", {"id": "bigint", "paid": "boolean"}, {},
        [(2, "E_BOOLEAN_FORMAT", "2,maybe", "paid", "maybe")]),
    "several": (
        "id,name,amount\n1,a,1.5\nx,b,2.5\n3,c\n4,d,4.5\n5,e,five\n", ORDERS, {},
        [(2, "E_NUMERIC_FORMAT", "x,b,2.5", "id", "x"), (3, "E_COLUMN_COUNT", "3,c", None, None),
         (5, "E_NUMERIC_FORMAT", "5,e,five", "amount", "five")]),
}


@pytest.mark.parametrize("case", list(QUARANTINE_CASES), ids=list(QUARANTINE_CASES))
def test_quarantine_code_on_the_duckdb_path(harness, tmp_path, case):
    text, columns, csv_options, expected = QUARANTINE_CASES[case]
    records = csv_records(text)
    loaded = check(harness.load(harness.write(f"{case}.csv", text), simple_dataset(tmp_path, columns, csv_options),
                                run_id="run-42"), len(records))
    assert loaded.audit.parser == "duckdb"
    assert loaded.audit.status == "loaded_with_errors"
    assert len(loaded.quarantine) == len(expected)
    for row, (source_row, code, raw_line, column, value) in zip(loaded.quarantine, expected, strict=True):
        assert_quarantine_row(loaded, row, source_row=source_row, code=code, raw_line=raw_line, column=column, value=value)
        assert row["run_id"] == "run-42" and row["partition_key"] == f"{case}.csv" and row["dataset"] == "ds"
        assert row["message"]
    codes = {}
    for _, code, *_ in expected:
        codes[code] = codes.get(code, 0) + 1
    assert loaded.audit.error_codes == codes
    assert set(codes) <= set(ERROR_CODES)


def test_invalid_utf8_byte_is_quarantined_as_an_encoding_error(harness, tmp_path):
    content = b"id,name\n1,ok\n2,caf\xe9\n3,fine\n"
    loaded = check(harness.load(harness.write("enc.csv", content), simple_dataset(tmp_path, {"id": "bigint", "name": "string"})), 3)
    assert loaded.audit.encoding == "utf-8" and loaded.audit.utf8_valid is False
    assert values(loaded, "id", "name") == [(1, "ok"), (3, "fine")]
    row = loaded.quarantine[0]
    assert_quarantine_row(loaded, row, source_row=2, code="E_ENCODING")
    assert row["raw_line"].startswith("2,caf") and row["line"] == 3


def test_unterminated_quote_hands_over_to_the_python_reader(harness, tmp_path):
    text = 'id,name,amount\n1,a,1.5\n2,"never closed,2.5\n3,c,3.5\n4,d,4.5\n5,e,five\n'
    loaded = check(harness.load(harness.write("quote.csv", text), simple_dataset(tmp_path, ORDERS), run_id="r1"), 5)
    assert loaded.audit.parser == "python"
    assert values(loaded, "_source_row", "id", "name") == [(1, 1, "a"), (3, 3, "c"), (4, 4, "d")]
    quote, cast = loaded.quarantine
    assert_quarantine_row(loaded, quote, source_row=2, code="E_QUOTE", raw_line='2,"never closed,2.5')
    assert quote["line"] == 3
    assert_quarantine_row(loaded, cast, source_row=5, code="E_NUMERIC_FORMAT", raw_line="5,e,five",
                          column="amount", value="five")
    assert loaded.audit.error_codes == {"E_QUOTE": 1, "E_NUMERIC_FORMAT": 1}


def test_python_reader_keeps_the_escape_character_after_a_quote_error(harness, tmp_path):
    text = 'id,name,amount\n1,"a \\"q\\" b",1.5\n2,"never closed,2.5\n3,c \\"x\\" d,3.5\n'
    dataset = simple_dataset(tmp_path, ORDERS, csv={"escape": "\\"})
    loaded = check(harness.load(harness.write("escaped.csv", text), dataset), 3)
    assert loaded.audit.parser == "python"
    assert values(loaded, "_source_row", "name") == [(1, 'a "q" b'), (3, 'c "x" d')]
    assert_quarantine_row(loaded, loaded.quarantine[0], source_row=2, code="E_QUOTE", raw_line='2,"never closed,2.5')


def test_enormous_field_beyond_max_line_bytes(harness, tmp_path):
    huge = "x" * 50_000
    text = f"id,name,amount\n1,a,1.5\n2,{huge},2.5\n3,c,3.5\n"
    dataset = simple_dataset(tmp_path, ORDERS, csv={"max_line_bytes": 4096})
    loaded = check(harness.load(harness.write("big.csv", text), dataset), 3)
    assert values(loaded, "id", "name") == [(1, "a"), (3, "c")]
    row = loaded.quarantine[0]
    assert_quarantine_row(loaded, row, source_row=2, code="E_LINE_SIZE")
    assert row["raw_line"].startswith("2,xxxx")
    assert row["raw_line_bytes"] >= 50_000


def test_json_line_that_is_not_an_object(harness, tmp_path):
    text = '{"id": 1}\n{"id": 2,\n[1, 2]\n\n{"id": 4}\n'
    loaded = check(harness.load(harness.write("events.jsonl", text), simple_dataset(tmp_path)), 4)
    assert values(loaded, "_source_row", "id") == [(1, 1), (4, 4)]
    broken, array = loaded.quarantine
    assert_quarantine_row(loaded, broken, source_row=2, code="E_JSON", raw_line='{"id": 2,')
    assert_quarantine_row(loaded, array, source_row=3, code="E_JSON", raw_line="[1, 2]")
    assert "JSON object" in array["message"]


def test_json_value_that_does_not_fit_the_declared_type(harness, tmp_path):
    text = '{"id": 1, "at": "2024-01-01"}\n{"id": "two", "at": "2024-01-02"}\n{"id": 3, "at": "soon"}\n'
    dataset = simple_dataset(tmp_path, {"id": "bigint", "at": "date"})
    loaded = check(harness.load(harness.write("events.jsonl", text), dataset), 3)
    assert loaded.column("id") == [1]
    assert_quarantine_row(loaded, loaded.quarantine[0], source_row=2, code="E_NUMERIC_FORMAT", column="id", value="two",
                          raw_line='{"id": "two", "at": "2024-01-02"}')
    assert_quarantine_row(loaded, loaded.quarantine[1], source_row=3, code="E_DATE_FORMAT", column="at", value="soon")


def test_every_code_on_the_python_path(harness, tmp_path):
    """Once the python reader has taken over, it reports the same codes with the same fields."""
    lines = [
        "id,name,amount,paid,day",
        "1,a,1.5,true,2024-01-01",
        '2,"unterminated,2.5,true,2024-01-02',
        "3,c,3.5,true",
        "4,d,4.5,true,2024-01-04,surplus",
        "5,e,5x,true,2024-01-05",
        "6,f,6.5,maybe,2024-01-06",
        "7,g,7.5,false,2024-13-07",
        "8,h,8.5,false,2024-01-08",
    ]
    content = ("\n".join(lines) + "\n").encode() + b"9,caf\xe9,9.5,true,2024-01-09\n10,j,10.5,true,2024-01-10\n"
    dataset = simple_dataset(tmp_path, {"id": "bigint", "name": "string", "amount": "double", "paid": "boolean", "day": "date"})
    loaded = check(harness.load(harness.write("mixed.csv", content), dataset), 10)
    assert loaded.audit.parser == "python"
    assert loaded.column("id") == [1, 8, 10]
    expected = [
        (2, "E_QUOTE", None, None), (3, "E_COLUMN_COUNT", None, None), (4, "E_COLUMN_COUNT", None, None),
        (5, "E_NUMERIC_FORMAT", "amount", "5x"), (6, "E_BOOLEAN_FORMAT", "paid", "maybe"),
        (7, "E_DATE_FORMAT", "day", "2024-13-07"), (9, "E_ENCODING", None, None),
    ]
    assert len(loaded.quarantine) == len(expected)
    for row, (source_row, code, column, value) in zip(loaded.quarantine, expected, strict=True):
        assert_quarantine_row(loaded, row, source_row=source_row, code=code, column=column, value=value)
        assert row["line"] == source_row + 1
    assert loaded.quarantine[0]["raw_line"] == lines[2]
    assert loaded.quarantine[3]["raw_line"] == lines[5]


def test_line_size_limit_on_the_python_path(harness, tmp_path):
    text = 'id,name,amount\n1,"open,1.5\n2,' + "y" * 20_000 + ",2.5\n3,c,3.5\n"
    dataset = simple_dataset(tmp_path, ORDERS, csv={"max_line_bytes": 4096})
    loaded = check(harness.load(harness.write("big.csv", text), dataset), 3)
    assert loaded.audit.parser == "python"
    assert [q["error_code"] for q in loaded.quarantine] == ["E_QUOTE", "E_LINE_SIZE"]
    assert loaded.column("id") == [3]


# ---------------------------------------------------------------------------------------------
# 4. File-level outcomes


def file_audit(harness: Harness, partition: str) -> dict:
    (audit,) = harness.audits("ds", partition)
    return audit


@pytest.mark.parametrize("content", [b"", b"\n\n  \n", b"\xef\xbb\xbf"], ids=["zero_bytes", "whitespace", "bom_only"])
def test_empty_file(harness, tmp_path, content):
    loaded = check(harness.load(harness.write("empty.csv", content), simple_dataset(tmp_path, ORDERS)), 0)
    assert loaded.audit.status == "empty"
    assert loaded.audit.error_codes == {"E_EMPTY_FILE": 1}
    assert file_audit(harness, "empty.csv")["status"] == "empty"


@pytest.mark.parametrize("columns", [ORDERS, None], ids=["declared", "undeclared"])
def test_header_only_file(harness, tmp_path, columns):
    loaded = check(harness.load(harness.write("header.csv", "id,name,amount\n"), simple_dataset(tmp_path, columns)), 0)
    assert loaded.audit.status == "loaded"
    assert loaded.audit.rows_read == 0
    assert "header only" in loaded.audit.message
    assert file_audit(harness, "header.csv")["status"] == "loaded"


def test_binary_file_is_rejected(harness, tmp_path):
    loaded = check(harness.load(harness.write("image.csv", bytes(range(256)) * 64), simple_dataset(tmp_path, ORDERS)), 0)
    assert loaded.audit.status == "rejected"
    assert loaded.audit.error_codes == {"E_BINARY": 1}
    assert file_audit(harness, "image.csv")["status"] == "rejected"
    assert set(FILE_ERRORS) >= {"E_BINARY", "E_EMPTY_FILE", "E_UNREADABLE"}


def corrupt_parquet_bytes(tmp_path: Path, where: str) -> bytes:
    path = tmp_path / "good.parquet"
    with duckdb.connect() as con:
        con.execute(f"COPY (SELECT range AS id, 'name-' || range AS name FROM range(20000)) TO '{path}' "
                    "(FORMAT parquet, COMPRESSION uncompressed)")
    data = bytearray(path.read_bytes())
    if where == "footer":
        return bytes(data[: len(data) // 2])
    middle = len(data) // 2
    data[middle:middle + 4000] = b"\xff" * 4000
    return bytes(data)


@pytest.mark.parametrize("where", ["footer", "data_page"])
def test_corrupt_parquet_is_rejected(harness, tmp_path, where):
    path = harness.write("broken.parquet", corrupt_parquet_bytes(tmp_path, where))
    loaded = check(harness.load(path, simple_dataset(tmp_path)), 0)
    assert loaded.audit.status == "rejected"
    assert loaded.audit.error_codes == {"E_UNREADABLE": 1}
    assert "Parquet" in loaded.audit.message


@pytest.mark.parametrize("damage", ["truncated", "bad_header"])
def test_corrupt_gzip_is_rejected(harness, tmp_path, damage):
    text = "id,name,amount\n" + "".join(f"{i},n{i},{i}.5\n" for i in range(50_000))
    packed = gzip.compress(text.encode())
    content = packed[: len(packed) // 2] if damage == "truncated" else b"\x1f\x8b" + b"not gzip at all" * 10
    loaded = check(harness.load(harness.write("orders.csv.gz", content), simple_dataset(tmp_path, ORDERS)), 0)
    assert loaded.audit.status == "rejected"
    assert loaded.audit.error_codes == {"E_UNREADABLE": 1}
    assert "gzip" in loaded.audit.message


def test_same_content_under_two_partitions_is_flagged_as_duplicate(harness, tmp_path):
    dataset = simple_dataset(tmp_path, ORDERS)
    text = "id,name,amount\n1,a,1.5\n2,b,2.5\n"
    first = check(harness.load(harness.write("orders_day1.csv", text), dataset), 2)
    second = check(harness.load(harness.write("orders_day1_copy.csv", text), dataset), 2)
    assert first.audit.duplicate_of is None
    assert second.audit.duplicate_of == "orders_day1.csv"
    assert "same content as partition 'orders_day1.csv'" in second.audit.message
    assert file_audit(harness, "orders_day1_copy.csv")["duplicate_of"] == "orders_day1.csv"
    assert first.audit.sha256 == second.audit.sha256 == ingest.sha256_file(harness.landing / "orders_day1.csv")


def test_audit_row_records_the_file(harness, tmp_path):
    text = "id;name;amount\n1;a;1,5\n"
    path = harness.write("orders.csv", text)
    dataset = simple_dataset(tmp_path, {"id": "bigint", "name": "string", "amount": "string"})
    loaded = check(harness.load(path, dataset, run_id="run-7"), 1)
    audit = file_audit(harness, "orders.csv")
    assert audit["run_id"] == "run-7" and audit["source_path"] == str(path)
    assert audit["bytes"] == len(text) and audit["sha256"] == ingest.sha256_file(path)
    assert (audit["rows_read"], audit["rows_loaded"], audit["rows_quarantined"]) == (1, 1, 0)
    assert audit["delimiter"] == ";" and audit["encoding"] == "utf-8" and audit["utf8_valid"] is True
    assert audit["columns"] == ["id", "name", "amount"]
    assert audit["finished"] >= audit["started"] and audit["duration_s"] >= 0
    assert audit["contract_fingerprint"] == loaded.audit.contract_fingerprint != ""


# ---------------------------------------------------------------------------------------------
# 6. Source row numbers


def test_source_rows_on_the_duckdb_path_with_multiline_records(harness, tmp_path):
    text = 'id,name,amount\n1,"a\nb\nc",1.5\n2,b,x\n3,"c\nd",3.5\n4,d\n5,e,5.5\n'
    loaded = check(harness.load(harness.write("m.csv", text), simple_dataset(tmp_path, ORDERS)), 5)
    assert loaded.audit.parser == "duckdb"
    assert values(loaded, "_source_row", "id") == [(1, 1), (3, 3), (5, 5)]
    assert [q["source_row"] for q in loaded.quarantine] == [2, 4]


@pytest.mark.parametrize("lineterminator", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_blank_lines_do_not_shift_source_rows(harness, tmp_path, lineterminator):
    lines = ["id,name,amount", "1,a,1.5", "", "2,b,x", "3,c,3.5", "", "", "4,d", "5,e,5.5", ""]
    text = lineterminator.join(lines) + lineterminator
    loaded = check(harness.load(harness.write("blank.csv", text), simple_dataset(tmp_path, ORDERS)), 5)
    assert values(loaded, "_source_row", "id") == [(1, 1), (3, 3), (5, 5)]
    assert [(q["source_row"], q["raw_line"]) for q in loaded.quarantine] == [(2, "2,b,x"), (4, "4,d")]


@pytest.mark.parametrize("parser", ["duckdb", "python"])
def test_old_mac_line_breaks(harness, tmp_path, parser):
    """A lone CR ends a line (old Excel for Mac exports): nothing is read as one giant line."""
    second = '2,"b,x' if parser == "python" else "2,b,x"
    text = "\r".join(["id,name,amount", "1,a,1.5", second, "3,c,3.5", "4,d", "5,e,5.5"]) + "\r"
    loaded = check(harness.load(harness.write("mac.csv", text), simple_dataset(tmp_path, ORDERS)), 5)
    assert loaded.audit.parser == parser
    assert values(loaded, "_source_row", "id") == [(1, 1), (3, 3), (5, 5)]
    assert [(q["source_row"], q["raw_line"]) for q in loaded.quarantine] == [(2, second), (4, "4,d")]


@pytest.mark.parametrize("text, loaded_rows, quarantined_rows", [
    ("id,name,amount\n1,a,1.5\r\n2,b,x\n3,c,3.5\n4,d\n5,e,5.5\n", [1, 3, 5], [(2, "2,b,x"), (4, "4,d")]),
    ("id,name,amount\n|\n,\r\n;2.5", [], [(1, "|"), (2, ","), (3, ";2.5")]),  # DuckDB counted 1, 2, 4
], ids=["crlf_in_lf_file", "only_rejects"])
def test_mixed_line_breaks_do_not_shift_source_rows(harness, tmp_path, text, loaded_rows, quarantined_rows):
    expected = len(loaded_rows) + len(quarantined_rows)
    loaded = check(harness.load(harness.write("mixed.csv", text), simple_dataset(tmp_path, ORDERS)), expected)
    assert [row["_source_row"] for row in loaded.raw] == loaded_rows
    assert [(q["source_row"], q["raw_line"]) for q in loaded.quarantine] == quarantined_rows


def test_crlf_raw_lines_carry_no_line_breaks(harness, tmp_path):
    text = "id,name,amount\r\n1,a,1.5\r\n2,b\r\n3,c,x\r\n"
    loaded = check(harness.load(harness.write("crlf.csv", text), simple_dataset(tmp_path, ORDERS)), 3)
    assert [q["raw_line"] for q in loaded.quarantine] == ["2,b", "3,c,x"]
    assert loaded.quarantine[1]["raw_value"] == "x"


def test_skip_rows_before_the_header(harness, tmp_path):
    text = "exported by shop v2\nat 2024-01-01\nid,name,amount\n1,a,1.5\n2,b,x\n3,c,3.5\n"
    dataset = simple_dataset(tmp_path, ORDERS, csv={"skip_rows": 2})
    loaded = check(harness.load(harness.write("s.csv", text), dataset), 3)
    assert values(loaded, "_source_row", "id") == [(1, 1), (3, 3)]
    assert (loaded.quarantine[0]["source_row"], loaded.quarantine[0]["line"]) == (2, 5)


@pytest.mark.parametrize("parser", ["duckdb", "python"])
def test_source_rows_of_a_larger_file_follow_the_file_order(harness, tmp_path, parser):
    n = 60_000
    lines = ["id,name,amount"]
    for i in range(1, n + 1):
        lines.append(f"{i},n{i}" if i % 7919 == 0 else f"{i},n{i},{'bad' if i % 10007 == 0 else i}")
    quote_error = n // 2
    if parser == "python":
        lines[quote_error] = f'{quote_error},"unterminated,1'  # lines[k] is record k
    text = "\n".join(lines) + "\n"
    harness.warehouse.threads = 4
    loaded = check(harness.load(harness.write("big.csv", text), simple_dataset(tmp_path, ORDERS)), n)
    assert loaded.audit.parser == parser
    assert all(row["_source_row"] == row["id"] for row in loaded.raw)
    bad = {q["source_row"] for q in loaded.quarantine}
    expected = {i for i in range(1, n + 1) if i % 7919 == 0 or i % 10007 == 0}
    if parser == "python":
        expected.add(quote_error)
    assert bad == expected


# ---------------------------------------------------------------------------------------------
# 7. Idempotent reloads


def counts(harness: Harness, partition: str) -> tuple[int, int, int]:
    """(raw rows, quarantined rows, audit rows) held for a partition."""
    raw = harness.query('SELECT count(*) FROM raw."ds" WHERE _partition_key = ?', [partition])[0][0]
    quarantined = harness.query("SELECT count(*) FROM qa.quarantine WHERE partition_key = ?", [partition])[0][0]
    audits = harness.query("SELECT count(*) FROM qa.files WHERE partition_key = ?", [partition])[0][0]
    return raw, quarantined, audits


def test_reload_replaces_the_partition(harness, tmp_path):
    dataset = simple_dataset(tmp_path, ORDERS)
    path = harness.write("orders.csv", "id,name,amount\n1,a,1.5\n2,b,x\n3,c,3.5\n")
    first = check(harness.load(path, dataset, partition="p1"), 3)
    assert counts(harness, "p1") == (2, 1, 1)
    for attempt in (2, 3):
        again = check(harness.load(path, dataset, partition="p1", force=True), 3)
        assert again.audit.status == "loaded_with_errors"
        assert counts(harness, "p1") == (2, 1, attempt)  # replaced, not doubled; one audit row per load
    unchanged = check(harness.load(path, dataset, partition="p1"), 3)
    assert unchanged.audit.status == "unchanged"
    assert "nothing to do" in unchanged.audit.message
    assert (unchanged.audit.rows_read, unchanged.audit.rows_loaded) == (first.audit.rows_read, first.audit.rows_loaded)
    assert counts(harness, "p1") == (2, 1, 4)
    assert harness.query("SELECT list(status ORDER BY started) FROM qa.files")[0][0] == [
        "loaded_with_errors", "loaded_with_errors", "loaded_with_errors", "unchanged"]
    path.write_text("id,name,amount\n1,a,1.5\n2,b,2.5\n3,c,3.5\n4,d,4.5\n")
    changed = check(harness.load(path, dataset, partition="p1"), 4)
    assert changed.audit.status == "loaded"
    assert counts(harness, "p1") == (4, 0, 5)


def test_last_load_is_the_newest_load_that_changed_the_partition(harness, tmp_path):
    dataset = simple_dataset(tmp_path, ORDERS)
    path = harness.write("orders.csv", "id,name,amount\n1,a,1.5\n")
    harness.load(path, dataset, partition="p1", run_id="first")
    harness.load(path, dataset, partition="p1", run_id="second", force=True)
    harness.load(path, dataset, partition="p1", run_id="third")  # unchanged: not a load that counts
    with harness.warehouse.connect() as con:
        last = ingest.last_load(con, "ds", "p1")
        assert ingest.last_load(con, "ds", "p2") is None
    assert (last["run_id"], last["status"], last["rows_loaded"]) == ("second", "loaded", 1)


def test_staging_needs_no_warehouse_lock_and_publishing_uses_the_callers(harness, tmp_path):
    """The heavy parse runs while another writer holds the warehouse; only the publish needs it."""
    dataset = simple_dataset(tmp_path, ORDERS)
    path = harness.write("orders.csv", "id,name,amount\n1,a,1.5\n2,b,x\n")
    warehouse = Warehouse(harness.warehouse.path, lock_timeout_s=0.2)
    workdir = tmp_path / "stage"
    workdir.mkdir()
    with warehouse.connect() as con:
        staged = ingest.stage_file(warehouse, path, dataset, "p1", "run-1", workdir)  # would raise WarehouseBusy
        audit = ingest.publish_stage(con, staged)
    assert (audit.rows_read, audit.rows_loaded, audit.rows_quarantined) == (2, 1, 1)
    assert counts(harness, "p1") == (1, 1, 1)


def test_other_partitions_are_left_alone(harness, tmp_path):
    dataset = simple_dataset(tmp_path, ORDERS)
    check(harness.load(harness.write("a.csv", "id,name,amount\n1,a,1.5\n2,b,x\n"), dataset), 2)
    check(harness.load(harness.write("b.csv", "id,name,amount\n3,c,3.5\n"), dataset), 1)
    check(harness.load(harness.landing / "a.csv", dataset, force=True), 2)
    assert counts(harness, "a.csv")[:2] == (1, 1) and counts(harness, "b.csv")[:2] == (1, 0)


def test_contract_change_reloads_identical_content(harness, tmp_path):
    path = harness.write("orders.csv", "id,name,amount\n1,a,1.5\n")
    check(harness.load(path, simple_dataset(tmp_path, ORDERS), partition="p1"), 1)
    again = check(harness.load(path, simple_dataset(tmp_path, {**ORDERS, "amount": "string"}), partition="p1"), 1)
    assert again.audit.status == "loaded"
    assert again.column("amount") == ["1.5"]


def test_failed_publish_rolls_back_and_keeps_the_previous_data(harness, tmp_path, monkeypatch):
    dataset = simple_dataset(tmp_path)
    path = harness.write("orders.csv", "id,name\n1,a\n2,b\n3,c\n")
    before = check(harness.load(path, dataset, partition="p1"), 3)
    path.write_text("id,name,added\n10,x,new\n11,y,new\n")

    def failing_audit(con, audit):
        raise RuntimeError("disk full while writing qa.files")

    monkeypatch.setattr(ingest, "insert_audit", failing_audit)
    with pytest.raises(RuntimeError, match="disk full"):
        harness.load(path, dataset, partition="p1", force=True)
    after = harness.fetch("ds", "p1")
    assert values(after, "_source_row", "id", "name") == values(before, "_source_row", "id", "name")
    assert counts(harness, "p1") == (3, 0, 1)
    columns = [row[0] for row in harness.query('DESCRIBE raw."ds"')]
    assert "added" not in columns  # the schema change went with the transaction
    staging = harness.warehouse.path.parent / ".staging"
    assert not staging.exists() or not list(staging.iterdir())  # nothing staged is left behind


def test_incompatible_raw_column_fails_the_publish_without_losing_data(harness, tmp_path):
    dataset = simple_dataset(tmp_path, {"id": "bigint", "amount": "double"})
    check(harness.load(harness.write("a.csv", "id,amount\n1,1.5\n"), dataset), 1)
    # Someone tightened the published raw table by hand: the next load cannot fit.
    harness.query('ALTER TABLE raw."ds" ALTER COLUMN amount SET NOT NULL')
    with pytest.raises(duckdb.Error):
        harness.load(harness.write("a.csv", "id,amount\n2,\n3,3.5\n"), dataset, force=True)
    after = harness.fetch("ds", "a.csv")
    assert values(after, "id", "amount") == [(1, 1.5)]
    assert counts(harness, "a.csv") == (1, 0, 1)


# ---------------------------------------------------------------------------------------------
# 8. Schema evolution


def test_extra_column_in_a_later_file_is_added(harness, tmp_path):
    dataset = simple_dataset(tmp_path, {"id": "bigint"})
    check(harness.load(harness.write("day1.csv", "id,name\n1,a\n2,b\n"), dataset), 2)
    later = check(harness.load(harness.write("day2.csv", "id,name,channel\n3,c,web\n"), dataset), 1)
    assert "added channel VARCHAR" in later.audit.message
    rows = harness.query('SELECT _partition_key, id, name, channel FROM raw."ds" ORDER BY id')
    assert rows == [("day1.csv", 1, "a", None), ("day1.csv", 2, "b", None), ("day2.csv", 3, "c", "web")]


@pytest.mark.parametrize("first, second, widened, expected", [
    ("10\n20\n", "abc\n40\n", "VARCHAR", ["10", "20", "abc", "40"]),
    ("abc\n20\n", "30\n40\n", "VARCHAR", ["abc", "20", "30", "40"]),
    ("10\n20\n", "2.5\n40\n", "DOUBLE", [10.0, 20.0, 2.5, 40.0]),
    ("2024-01-01\n", "2024-01-02 10:30:00\n", "TIMESTAMP", None),
], ids=["bigint_to_text", "text_then_bigint", "bigint_to_double", "date_to_timestamp"])
def test_undeclared_column_type_change_widens_without_losing_values(harness, tmp_path, first, second, widened, expected):
    dataset = simple_dataset(tmp_path)
    check(harness.load(harness.write("day1.csv", "v\n" + first), dataset), first.count("\n"))
    later = check(harness.load(harness.write("day2.csv", "v\n" + second), dataset), second.count("\n"))
    types = dict((row[0], row[1]) for row in harness.query('DESCRIBE raw."ds"'))
    assert types["v"] == widened
    stored = [row[0] for row in harness.query('SELECT v FROM raw."ds" ORDER BY _partition_key, _source_row')]
    if expected is not None:
        assert stored == expected
    else:
        assert [str(v) for v in stored] == ["2024-01-01 00:00:00", "2024-01-02 10:30:00"]
    assert later.audit.rows_quarantined == 0


# ---------------------------------------------------------------------------------------------
# 9. Hostile names

HOSTILE = ['we"ird', "semi;colon", '"; DROP TABLE x; --', "ünï ćødé ✓", "it's", "Robert'); DROP TABLE qa.files;--"]


def hostile_setup(harness: Harness) -> None:
    harness.query("CREATE TABLE IF NOT EXISTS main.x (keep INTEGER)")
    harness.query("INSERT INTO main.x VALUES (1)")


def assert_nothing_executed(harness: Harness) -> None:
    assert harness.query("SELECT count(*) FROM main.x") == [(1,)]
    tables = {(s, t) for s, t in harness.query("SELECT schema_name, table_name FROM duckdb_tables()")}
    assert tables == {("main", "x"), ("raw", "ds"), ("qa", "files"), ("qa", "quarantine")}


@pytest.mark.parametrize("parser", ["duckdb", "python"])
def test_hostile_column_and_file_names_load_verbatim(harness, tmp_path, parser):
    hostile_setup(harness)
    rows = [HOSTILE, [1, 2, 3, 4, 5, 6], ["a'b", 'c"d', "e;f", "g", "h", "i"], [7, 8, 9, 10, 11, "x"]]
    text = csv_text(rows)
    if parser == "python":
        text += '12,"unclosed,1,2,3,4\n'
    declared = {HOSTILE[0]: "bigint", HOSTILE[5]: "bigint"}
    path = harness.write("it's a file; DROP TABLE x.csv", text)
    loaded = check(harness.load(path, simple_dataset(tmp_path, declared)), 3 + (parser == "python"))
    assert loaded.audit.parser == parser
    assert loaded.audit.columns == HOSTILE
    assert loaded.audit.partition_key == "it's a file; DROP TABLE x.csv"
    assert values(loaded, "_source_row", *HOSTILE) == [(1, 1, "2", "3", "4", "5", 6)]
    cast_failures = [q for q in loaded.quarantine if q["error_code"] == "E_NUMERIC_FORMAT"]
    assert {(q["source_row"], q["column_name"], q["raw_value"]) for q in cast_failures} == {
        (2, HOSTILE[0], "a'b"), (3, HOSTILE[5], "x")}
    assert_nothing_executed(harness)


def test_hostile_json_keys(harness, tmp_path):
    hostile_setup(harness)
    record = {name: i for i, name in enumerate(HOSTILE)} | {"_source_row": "spoofed"}
    loaded = check(harness.load(harness.write("o'brien; --.jsonl", json.dumps(record) + "\n"), simple_dataset(tmp_path)), 1)
    assert loaded.raw[0]["_source_row"] == 1
    assert loaded.raw[0]["_source_row_source"] == "spoofed"  # a source column never overwrites the meta column
    assert [loaded.raw[0][name] for name in HOSTILE] == list(range(len(HOSTILE)))
    assert_nothing_executed(harness)


def test_json_keys_that_differ_only_in_case_get_their_own_columns(harness, tmp_path):
    text = '{"id": 1, "Id": "one"}\n{"ID": "uno"}\n{"id": 3}\n'
    loaded = check(harness.load(harness.write("e.jsonl", text), simple_dataset(tmp_path)), 3)
    assert loaded.audit.columns == ["id", "Id_1", "ID_2"]
    assert values(loaded, "id", "Id_1", "ID_2") == [(1, "one", None), (None, None, "uno"), (3, None, None)]


def test_json_keys_in_another_case_or_aliased_land_in_the_contract_column(harness, tmp_path):
    dataset = dataset_from_yaml("""\
        datasets:
          ds:
            columns:
              order_id: {type: bigint, aliases: [OrderID]}
    """, tmp_path)
    text = '{"order_id": 1}\n{"OrderID": 2}\n{"ORDER_ID": 3}\n'
    loaded = check(harness.load(harness.write("e.jsonl", text), dataset), 3)
    assert loaded.audit.columns == ["order_id"]
    assert loaded.column("order_id") == [1, 2, 3]


def test_duplicate_header_names_are_made_unique(harness, tmp_path):
    loaded = check(harness.load(harness.write("d.csv", "id,ID,name,name\n1,2,a,b\n"), simple_dataset(tmp_path)), 1)
    assert loaded.audit.columns == ["id", "ID_1", "name", "name_1"]


# ---------------------------------------------------------------------------------------------
# 10. Temporary names and the dialect sniffer


@pytest.mark.parametrize("name, temporary", [
    ("orders.csv", False), ("orders.csv.gz", False), ("data/orders_2024.parquet", False), ("my.file.tmp.csv", False),
    ("orders.csv.part", True), ("orders.csv.tmp", True), ("orders.CSV.PART", True), ("orders.csv.crdownload", True),
    ("orders.csv.partial", True), ("orders.csv.filepart", True), (".orders.csv.swp", True), ("orders.csv~", True),
    (".hidden.csv", True), ("~$orders.xlsx", True), ("_COPYING_orders.csv", True), ("landing/.orders.csv", True),
])
def test_is_temporary_name(name, temporary):
    assert is_temporary_name(name) is temporary


def sniff(tmp_path: Path, sample: str, columns: dict | None = None, csv_options: dict | None = None):
    return sniff_dialect(sample, simple_dataset(tmp_path, columns, csv_options))


@pytest.mark.parametrize("delimiter", [",", "\t", "|", ";"])
def test_sniff_delimiter(tmp_path, delimiter):
    sample = csv_text([["a", "b", "c"], [1, "x,y" if delimiter != "," else "x;y", 3], [4, 5, 6]], delimiter)
    dialect = sniff(tmp_path, sample)
    assert (dialect.delimiter, dialect.header, dialect.names) == (delimiter, True, ["a", "b", "c"])


def test_sniff_prefers_the_consistent_delimiter_over_the_frequent_one(tmp_path):
    sample = "name;note\nSmith, John;a, b, c\nDoe, Jane;x\nRoe;y, z\n"
    assert sniff(tmp_path, sample).delimiter == ";"


@pytest.mark.parametrize("sample, header", [
    ("id,name\n1,a\n2,b\n", True),
    ("1,a\n2,b\n", False),
    ("2024-01-01,a\n2024-01-02,b\n", False),
    ("name,city\nAna,Lisbon\nBo,Oslo\n", True),
    ("Ana,Lisbon\nBo,Oslo\n", True),  # all text, distinct and not recurring: taken as a header (ambiguous)
    ("Ana,Lisbon\nBo,Lisbon\n", False),  # a first-row value recurs in its column: data
    ("yes,no\nyes,no\n", False),  # first row recurs in the body: data
    ("id,name\n", True),
])
def test_sniff_header(tmp_path, sample, header):
    assert sniff(tmp_path, sample).header is header


def test_sniff_header_from_declared_names(tmp_path):
    dialect = sniff(tmp_path, "name,city\nid,name\n", {"name": "string", "city": "string"})
    assert dialect.header is True and dialect.names == ["name", "city"]


def test_sniff_without_header_uses_declared_names_then_positions(tmp_path):
    dialect = sniff(tmp_path, "1,a,x,y\n2,b,x,z\n", {"id": "bigint", "name": "string"})
    assert dialect.header is False
    assert dialect.names == ["id", "name", "column3", "column4"]


def test_sniff_contract_options_win(tmp_path):
    dialect = sniff(tmp_path, "a|b\n1|2\n", None, {"delimiter": ",", "header": False, "quote": "'", "escape": "\\"})
    assert (dialect.delimiter, dialect.header, dialect.quote, dialect.escape) == (",", False, "'", "\\")
    assert dialect.names == ["column1"]


def test_sniff_skips_preamble_rows(tmp_path):
    dialect = sniff(tmp_path, "report of 2024-01-01\n\nid;name\n1;a\n", None, {"skip_rows": 2})
    assert (dialect.delimiter, dialect.names) == (";", ["id", "name"])


def test_sniff_ignores_a_record_cut_off_by_the_sample(tmp_path):
    dialect = sniff(tmp_path, 'a,b,c\n1,2,3\n4,"5\n6', None)
    assert (dialect.delimiter, dialect.names) == (",", ["a", "b", "c"])


def test_sniff_blank_header_names_and_duplicates(tmp_path):
    assert sniff(tmp_path, "id,,id,Id\n1,2,3,4\n").names == ["id", "column2", "id_1", "Id_2"]


@pytest.mark.parametrize("values_, fmt", [
    (["31/01/2024", "15/02/2024", "01/03/2024"], "%d/%m/%Y"),
    (["01/31/2024", "02/15/2024", "03/01/2024"], "%m/%d/%Y"),
    (["2024-01-31", "2024-02-15"], "%Y-%m-%d"),
    (["31.01.2024", "oops", "01.02.2024"], "%d.%m.%Y"),
])
def test_sniff_votes_the_date_format_of_declared_date_columns(tmp_path, values_, fmt):
    sample = "id,day\n" + "".join(f"{i},{v}\n" for i, v in enumerate(values_))
    assert sniff(tmp_path, sample, {"id": "bigint", "day": "date"}).date_format == fmt


def test_voted_date_format_also_applies_on_the_python_path(harness, tmp_path):
    text = 'id,day\n1,31/01/2024\n2,"15/02/2024\n3,01/03/2024\n4,02/03/2024\n'
    loaded = check(harness.load(harness.write("d.csv", text), simple_dataset(tmp_path, {"id": "bigint", "day": "date"})), 4)
    assert loaded.audit.parser == "python"
    assert loaded.codes() == ["E_QUOTE"]
    assert [str(d) for d in loaded.column("day")] == ["2024-01-31", "2024-03-01", "2024-03-02"]


@pytest.mark.parametrize("parser", ["duckdb", "python", "python-json"])
def test_inferred_types_never_lose_information(harness, tmp_path, parser):
    """Undeclared columns: 1.5 is not rounded into an integer column, '01234' keeps its zero."""
    rows = [["id", "ratio", "flag", "zip"], [1, "1.5", "true", "01234"], [2, "2", "false", "00501"], [3, "0.25", "true", "10115"]]
    if parser == "python-json":
        name, text = "r.jsonl", "".join(json.dumps(dict(zip(rows[0], r, strict=True))) + "\n" for r in rows[1:])
    else:
        name, text = "r.csv", csv_text(rows) + ('4,"x,1,1\n' if parser == "python" else "")
    loaded = check(harness.load(harness.write(name, text), simple_dataset(tmp_path)), 3 + (parser == "python"))
    assert loaded.audit.parser == parser
    assert values(loaded, "id", "ratio", "flag", "zip") == [
        (1, 1.5, True, "01234"), (2, 2.0, False, "00501"), (3, 0.25, True, "10115")]
    assert loaded.audit.column_types == {"id": "BIGINT", "ratio": "DOUBLE", "flag": "BOOLEAN", "zip": "VARCHAR"}


# ---------------------------------------------------------------------------------------------
# 11. The warehouse's writer queue


def hold_warehouse(path: str, acquired, release, timeout_s: float) -> None:
    """Child process: open the warehouse, write a marker row, hold it until told to let go."""
    with Warehouse(path, lock_timeout_s=timeout_s).connect() as con:
        con.execute("CREATE TABLE IF NOT EXISTS main.marker (pid INTEGER)")
        con.execute("INSERT INTO main.marker VALUES (?)", [multiprocessing.current_process().pid])
        acquired.set()
        release.wait(timeout=60)


def test_a_second_process_queues_behind_the_writer(tmp_path):
    path = tmp_path / "wh" / "warehouse.duckdb"
    ctx = multiprocessing.get_context("spawn")
    acquired, release = ctx.Event(), ctx.Event()
    child = ctx.Process(target=hold_warehouse, args=(str(path), acquired, release, 30))
    child.start()
    try:
        assert acquired.wait(timeout=60), "the child never opened the warehouse"
        started = time.monotonic()
        with pytest.raises(WarehouseBusy) as info:
            with Warehouse(path, lock_timeout_s=0.3).connect():
                pass
        assert time.monotonic() - started >= 0.3
        message = str(info.value)
        assert str(path) in message and f"pid {child.pid}" in message and "QA_DUCKDB_LOCK_TIMEOUT" in message

        releaser = threading.Timer(0.5, release.set)
        releaser.start()
        started = time.monotonic()
        with Warehouse(path, lock_timeout_s=30).connect() as con:
            waited = time.monotonic() - started
            assert release.is_set()  # it got in only after the holder was told to let go
            assert con.execute("SELECT pid FROM main.marker").fetchall() == [(child.pid,)]
        assert waited >= 0.4
    finally:
        release.set()
        child.join(timeout=60)
    assert child.exitcode == 0


def test_threads_queue_on_the_same_warehouse(tmp_path):
    warehouse = Warehouse(tmp_path / "warehouse.duckdb", lock_timeout_s=30)
    inside, overlaps, errors = [0], [], []
    guard = threading.Lock()

    def writer(n: int) -> None:
        try:
            with warehouse.connect() as con:
                with guard:
                    inside[0] += 1
                    overlaps.append(inside[0])
                con.execute("CREATE TABLE IF NOT EXISTS main.t (n INTEGER)")
                con.execute("INSERT INTO main.t VALUES (?)", [n])
                time.sleep(0.05)
                with guard:
                    inside[0] -= 1
        except Exception as exc:  # noqa: BLE001 - collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    assert max(overlaps) == 1  # never two holders at once
    with warehouse.connect() as con:
        assert sorted(r[0] for r in con.execute("SELECT n FROM main.t").fetchall()) == [0, 1, 2, 3]


@pytest.mark.parametrize("path_kind", ["duckdb", "python", "json"])
def test_declared_integer_column_quarantines_non_whole_numbers(harness, tmp_path, path_kind):
    """DuckDB's own cast rounds '1.5' to 2 and reads '1_000' and '0x10': a declared bigint must not."""
    values_in = ["1", "1.5", "1_000", " 7 ", "", "0x10", "-3"]
    if path_kind == "json":
        text = "".join(json.dumps({"id": v or None, "n": i}) + "\n" for i, v in enumerate(values_in))
        name = "ids.jsonl"
    else:
        text = "id,n\n" + "".join(f"{v},{i}\n" for i, v in enumerate(values_in))
        if path_kind == "python":
            text += '99,"unterminated\n'  # sends the whole file to the record-by-record reader
        name = "ids.csv"
    records = len(values_in) + (1 if path_kind == "python" else 0)
    loaded = check(harness.load(harness.write(name, text), simple_dataset(tmp_path, {"id": "bigint", "n": "bigint"})), records)
    assert loaded.audit.parser == {"duckdb": "duckdb", "python": "python", "json": "python-json"}[path_kind]
    assert values(loaded, "id") == [(1,), (7,), (None,), (-3,)]
    bad = {row["raw_value"]: row for row in loaded.quarantine if row["error_code"] == "E_NUMERIC_FORMAT"}
    assert sorted(bad) == ["0x10", "1.5", "1_000"]
    assert all(row["column_name"] == "id" for row in bad.values())
    assert bad["1.5"]["source_row"] == 2


@pytest.mark.parametrize("encoding", ["utf-8", "cp1252"], ids=["straight", "staged"])
def test_undeclared_column_sniffed_as_integer_never_rounds_a_later_fraction(harness, tmp_path, encoding):
    """DuckDB types `n` BIGINT from its sample and would store the late '1.5' as 2: it is quarantined."""
    text = "n,label\n" + "".join(f"{i},x\n" for i in range(30_000)) + "1.5,late\n"
    dataset = simple_dataset(tmp_path, csv={"encoding": encoding})
    loaded = check(harness.load(harness.write("late.csv", text, encoding=encoding), dataset), 30_001)
    assert loaded.audit.column_types["n"] == "BIGINT" and loaded.raw_count == 30_000
    assert (loaded.audit.phases.get("insert_s") is not None) == (encoding == "utf-8")  # which path ran
    assert "late" not in loaded.column("label")
    [bad] = loaded.quarantine
    assert (bad["error_code"], bad["raw_value"], bad["source_row"], bad["column_name"]) == ("E_NUMERIC_FORMAT", "1.5", 30_001, "n")
    assert bad["raw_line"] == "1.5,late"


# ---------------------------------------------------------------------------------------------
# 12. The straight CSV load: pending rows, record numbers, line-break scan, type inference


def test_json_iso_timestamps_are_inferred_as_timestamps_not_dates(harness, tmp_path):
    """TRY_CAST('2026-01-02T03:04:05' AS DATE) succeeds by dropping the time: not a date."""
    records = [{"id": 1, "at": "2026-01-02T03:04:05", "day": "2026-01-02", "mixed": "2026-01-02"},
               {"id": 2, "at": "2026-01-03 10:30:00", "day": "2026-01-03", "mixed": "2026-01-03T08:00:00"}]
    text = "".join(json.dumps(r) + "\n" for r in records)
    loaded = check(harness.load(harness.write("times.jsonl", text), simple_dataset(tmp_path)), 2)
    assert loaded.audit.column_types == {"id": "BIGINT", "at": "TIMESTAMP", "day": "DATE", "mixed": "TIMESTAMP"}
    assert values(loaded, "at", "day", "mixed") == [
        (dt.datetime(2026, 1, 2, 3, 4, 5), dt.date(2026, 1, 2), dt.datetime(2026, 1, 2)),
        (dt.datetime(2026, 1, 3, 10, 30), dt.date(2026, 1, 3), dt.datetime(2026, 1, 3, 8)),
    ]


def pending_keys(harness: Harness) -> list[str]:
    return [r[0] for r in harness.query('SELECT DISTINCT _partition_key FROM raw."ds" WHERE contains(_partition_key, chr(0))')]


def test_csv_rows_are_loaded_straight_into_raw_without_staging(harness, tmp_path):
    dataset = simple_dataset(tmp_path, ORDERS)
    loaded = check(harness.load(harness.write("orders.csv", "id,name,amount\n1,a,1.5\n2,b,x\n3,c,3.5\n"), dataset), 3)
    assert loaded.audit.parser == "duckdb"
    assert set(loaded.audit.phases) >= {"prepare_s", "insert_s", "number_s", "commit_s"}
    assert not (harness.warehouse.path.parent / ".staging").exists()
    assert pending_keys(harness) == []
    assert [r["_run_id"] for r in loaded.raw] == [loaded.audit.run_id] * 2


def test_failed_load_keeps_the_previous_partition_and_leaves_no_pending_rows(harness, tmp_path, monkeypatch):
    """Rows with a non-whole integer wait under a pending key until the commit; a failure rolls them back."""
    dataset = simple_dataset(tmp_path, ORDERS)
    path = harness.write("orders.csv", "id,name,amount\n1,a,1.5\n2,b,x\n")
    before = check(harness.load(path, dataset, partition="p1"), 2)
    path.write_text("id,name,amount\n10,x,1\n11.5,y,2\n12,z,3\n")

    def failing_audit(con, audit):
        raise RuntimeError("disk full while writing qa.files")

    with monkeypatch.context() as patch:
        patch.setattr(ingest, "insert_audit", failing_audit)
        with pytest.raises(RuntimeError, match="disk full"):
            harness.load(path, dataset, partition="p1", force=True)
    after = harness.fetch("ds", "p1")
    assert values(after, "_source_row", "id") == values(before, "_source_row", "id") == [(1, 1)]
    assert counts(harness, "p1") == (1, 1, 1)
    assert pending_keys(harness) == []
    again = check(harness.load(path, dataset, partition="p1", force=True), 3)
    assert values(again, "_source_row", "id") == [(1, 10), (3, 12)]
    assert [(q["source_row"], q["raw_value"]) for q in again.quarantine] == [(2, "11.5")]
    assert pending_keys(harness) == []  # removed right after the commit


def test_pending_rows_of_a_crashed_load_are_removed_by_the_next_load(harness, tmp_path):
    dataset = simple_dataset(tmp_path, ORDERS)
    check(harness.load(harness.write("a.csv", "id,name,amount\n1,a,1.5\n"), dataset), 1)
    # What a process killed between the two transactions leaves: rows under a pending key.
    harness.query("""INSERT INTO raw."ds" (_partition_key, _source_row, _run_id, id)
                      VALUES ('a.csv' || chr(0) || 'pending dead', NULL, 'r0', 99),
                             ('b.csv' || chr(0) || 'pending dead', NULL, 'r0', 98)""")
    check(harness.load(harness.write("a.csv", "id,name,amount\n2,b,2.5\n"), dataset, force=True), 1)
    assert pending_keys(harness) == ["b.csv\x00pending dead"]  # only the reloaded partition's are cleared
    assert values(harness.fetch("ds", "a.csv"), "id") == [(2,)]


@pytest.mark.parametrize("branches", [1024, 2], ids=["case_tree", "asof_join"])
def test_record_numbers_around_many_rejected_records(harness, tmp_path, monkeypatch, branches):
    """Record numbers come from the loaded rows' order plus the rejected records before each."""
    monkeypatch.setattr(ingest, "MAX_SHIFT_BRANCHES", branches)
    bad = {1, 2, 5, 9, 10, 11, 40, 41, 97, 100}
    lines = ["id,name,amount"] + [f"{i},n{i}" if i in bad else f"{i},n{i},{i}.5" for i in range(1, 101)]
    loaded = check(harness.load(harness.write("gaps.csv", "\n".join(lines) + "\n"), simple_dataset(tmp_path, ORDERS)), 100)
    assert loaded.audit.parser == "duckdb"
    assert [row["_source_row"] for row in loaded.raw] == [row["id"] for row in loaded.raw]
    assert [q["source_row"] for q in loaded.quarantine] == sorted(bad)


def test_record_numbers_follow_the_file_order_across_parallel_scans(harness, tmp_path):
    """~20 MB: DuckDB splits the file between threads, and the insert keeps the file's order."""
    n = 400_000
    bad = {3, 123_457, 250_001, 399_999}
    pad = "x" * 30
    lines = ["id,name,amount"] + [
        f"{i},{pad}" if i in bad else f"{i},{pad}{i % 97},{i}.25" for i in range(1, n + 1)]
    harness.warehouse.threads = 4
    path = harness.write("wide.csv", "\n".join(lines) + "\n")
    audit = load_only(harness, path, simple_dataset(tmp_path, ORDERS))
    assert (audit.parser, audit.rows_loaded, audit.rows_quarantined) == ("duckdb", n - len(bad), len(bad))
    out_of_place = harness.query('SELECT count(*) FROM raw."ds" WHERE _source_row <> id')[0][0]
    assert out_of_place == 0
    assert harness.query("SELECT list(source_row ORDER BY source_row) FROM qa.quarantine")[0][0] == sorted(bad)


def load_only(harness: Harness, path: Path, dataset) -> ingest.LoadAudit:
    return ingest.load_file(harness.warehouse, path, dataset, path.name, "run-1")


def test_staged_integer_failures_keep_record_numbers_when_the_stage_is_compacted(harness, tmp_path):
    """Deleting many staged rows lets DuckDB's checkpoint renumber rowids: the numbers survive."""
    n = 300_000
    lines = ["id,n"] + [f"{i}.5,{i}" if i <= 200_000 and i % 2 else f"{i},{i}" for i in range(1, n + 1)]
    path = harness.write("halves.csv", "\n".join(lines) + "\n")
    dataset = simple_dataset(tmp_path, {"id": "bigint", "n": "bigint"})
    workdir = tmp_path / "stage"
    workdir.mkdir()
    staged = ingest.stage_file(harness.warehouse, path, dataset, "p1", "run-1", workdir)
    with harness.warehouse.connect() as con:
        audit = ingest.publish_stage(con, staged)
    assert (audit.rows_loaded, audit.rows_quarantined) == (200_000, 100_000)
    assert harness.query('SELECT count(*) FROM raw."ds" WHERE _source_row <> n')[0][0] == 0
    assert harness.query("SELECT count(*) FROM qa.quarantine WHERE source_row <> CAST(raw_value AS DOUBLE) - 0.5")[0][0] == 0


def reference_irregular(data: bytes) -> int | None:
    """Line by line: the offset of the first empty line or line break of another kind than the first."""
    kind, pos = None, 0
    for match in re.finditer(rb"\r\n|\n|\r", data):
        brk, start = match.group(), match.start()
        if start == pos and start > 0:
            return start  # nothing between two line breaks: an empty line
        if kind is None:
            kind = brk
        elif brk != kind:
            return start
        pos = match.end()
    return None


@pytest.mark.parametrize("seed", range(40))
def test_line_break_scan_finds_the_first_irregular_break(seed):
    rng = random.Random(seed)
    style = rng.choice([b"\n", b"\r\n", b"\r"])
    lines = [b"ab,c" * rng.randint(0, 3) + b"x" for _ in range(rng.randint(1, 60))]
    data = bytearray(style.join(lines) + style)
    if seed % 4:  # spoil it at a random place
        where = rng.randrange(len(data))
        data[where:where] = rng.choice([b"\n", b"\r", b"\r\n", style + style])
    data = bytes(data)
    expected = reference_irregular(data)
    for chunk in (1, 2, 3, 7, len(data) + 1):
        scan = ingest._LineBreaks()
        for i in range(0, len(data), chunk):
            scan.feed(data[i:i + chunk])
        scan.feed(b"", final=True)
        found = scan.first
        assert (found is None) == (expected is None), (data, chunk, found, expected)
        if expected is not None:
            assert abs(found - expected) <= 1, (data, chunk, found, expected)


def test_scan_file_hashes_and_scans_in_one_read(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(b"a,b\n1,2\n\n3,4\n")
    scan = ingest.scan_file(path)
    assert scan.sha256 == ingest.sha256_file(path)
    assert (scan.irregular_from, scan.line_breaks_known) == (7, True)
    gz = tmp_path / "f.csv.gz"
    gz.write_bytes(gzip.compress(path.read_bytes()))
    assert ingest.scan_file(gz).line_breaks_known is False
