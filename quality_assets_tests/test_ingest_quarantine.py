"""Quarantine codes on DuckDB's reader and on the record-by-record reader."""

from __future__ import annotations

import pytest
from conftest import (
    assert_quarantine_row,
    simple_dataset,
)
from ingest_support import ORDERS, check, csv_records, values

from quality_assets.ingest import ERROR_CODES

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
