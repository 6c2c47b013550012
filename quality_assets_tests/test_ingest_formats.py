"""Formats and dialects: delimiters, headers, aliases, quoting, gzip, Parquet, JSON lines, encodings."""

from __future__ import annotations

import datetime as dt
import gzip
import json

import duckdb
import pytest
from conftest import (
    assert_quarantine_row,
    dataset_from_yaml,
    simple_dataset,
)
from ingest_support import ORDERS, check, csv_records, csv_text, values


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
