"""One schema per dataset, kept in qa.dataset_columns: declared types, or types inferred from the
whole first file that has values; later files are cast to it on every reader, misfits quarantined."""

from __future__ import annotations

import json

import pytest
from conftest import simple_dataset
from ingest_support import check, values


def schema(harness) -> list[tuple]:
    return harness.query("SELECT column_name, column_type, origin FROM qa.dataset_columns ORDER BY ordinal")


def test_declared_and_inferred_columns_are_kept_with_their_origin(harness, tmp_path):
    dataset = simple_dataset(tmp_path, {"id": "bigint"})
    check(harness.load(harness.write("a.csv", "id,amount,note\n1,1.5,x\n2,2,y\n"), dataset), 2)
    assert schema(harness) == [("id", "BIGINT", "declared"), ("amount", "DOUBLE", "inferred"), ("note", "VARCHAR", "inferred")]


@pytest.mark.parametrize("later", ["csv_python", "json"])
def test_later_files_on_other_readers_are_cast_to_the_kept_types(harness, tmp_path, later):
    dataset = simple_dataset(tmp_path)
    check(harness.load(harness.write("a.csv", "id,amount\n1,1.5\n2,2.5\n"), dataset), 2)
    if later == "json":
        name, text = "b.jsonl", "".join(json.dumps(r) + "\n" for r in [{"id": 3, "amount": 3}, {"id": "x4", "amount": 4}])
    else:  # the unterminated quote sends the file to the record-by-record reader
        name, text = "b.csv", 'id,amount\n3,3\nx4,4\n5,"open\n'
    loaded = harness.load(harness.write(name, text), dataset)
    assert values(loaded, "id", "amount") == [(3, 3.0)]
    assert [(q["raw_value"], q["error_code"]) for q in loaded.quarantine if q["error_code"] != "E_QUOTE"] == [
        ("x4", "E_NUMERIC_FORMAT")]
    assert loaded.audit.column_types == {"id": "BIGINT", "amount": "DOUBLE"}


def test_a_header_only_first_file_keeps_no_type(harness, tmp_path):
    dataset = simple_dataset(tmp_path)
    check(harness.load(harness.write("a.csv", "id,amount\n"), dataset), 0)
    assert schema(harness) == []
    check(harness.load(harness.write("b.csv", "id,amount\n1,1.5\n"), dataset), 1)
    assert schema(harness) == [("id", "BIGINT", "inferred"), ("amount", "DOUBLE", "inferred")]
    assert dict(harness.query('SELECT column_name, column_type FROM (DESCRIBE raw."ds")')) == {
        "_partition_key": "VARCHAR", "_source_row": "BIGINT", "_run_id": "VARCHAR", "id": "BIGINT", "amount": "DOUBLE"}


def test_a_new_column_in_a_later_file_is_inferred_from_that_file_and_kept(harness, tmp_path):
    dataset = simple_dataset(tmp_path)
    check(harness.load(harness.write("a.csv", "id\n1\n"), dataset), 1)
    check(harness.load(harness.write("b.csv", "id,score\n2,0.5\n"), dataset), 1)
    third = check(harness.load(harness.write("c.csv", "id,score\n3,high\n4,0.25\n"), dataset), 2)
    assert schema(harness) == [("id", "BIGINT", "inferred"), ("score", "DOUBLE", "inferred")]
    assert [(q["raw_value"], q["error_code"]) for q in third.quarantine] == [("high", "E_NUMERIC_FORMAT")]


def test_reloading_the_first_file_keeps_the_schema(harness, tmp_path):
    dataset = simple_dataset(tmp_path)
    path = harness.write("a.csv", "v\n1\n2\n")
    check(harness.load(path, dataset), 2)
    path.write_text("v\n1\nx\n")
    again = check(harness.load(path, dataset, force=True), 2)  # same partition, new content: same schema
    assert schema(harness) == [("v", "BIGINT", "inferred")]
    assert [(q["raw_value"], q["error_code"]) for q in again.quarantine] == [("x", "E_NUMERIC_FORMAT")]
