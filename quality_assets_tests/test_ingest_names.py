"""Hostile column, file and key names load verbatim and never reach SQL unquoted."""

from __future__ import annotations

import json

import pytest
from conftest import (
    Harness,
    dataset_from_yaml,
    simple_dataset,
)
from ingest_support import check, csv_text, values

HOSTILE = ['we"ird', "semi;colon", '"; DROP TABLE x; --', "ünï ćødé ✓", "it's", "Robert'); DROP TABLE qa.files;--"]


def hostile_setup(harness: Harness) -> None:
    harness.query("CREATE TABLE IF NOT EXISTS main.x (keep INTEGER)")
    harness.query("INSERT INTO main.x VALUES (1)")


def assert_nothing_executed(harness: Harness) -> None:
    assert harness.query("SELECT count(*) FROM main.x") == [(1,)]
    tables = {(s, t) for s, t in harness.query("SELECT schema_name, table_name FROM duckdb_tables()")}
    assert tables == {("main", "x"), ("raw", "ds"), ("qa", "files"), ("qa", "quarantine"), ("qa", "dataset_columns")}


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
