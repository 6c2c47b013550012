"""Publishing: idempotent reloads, rollbacks, other partitions untouched, schema evolution."""

from __future__ import annotations

import duckdb
import pytest
from conftest import (
    simple_dataset,
)
from ingest_support import ORDERS, check, counts, values

from quality_assets import ingest
from quality_assets.ingest import (
    commit,
)
from quality_assets.warehouse import Warehouse


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

    monkeypatch.setattr(commit, "insert_audit", failing_audit)
    with pytest.raises(RuntimeError, match="disk full"):
        harness.load(path, dataset, partition="p1", force=True)
    after = harness.fetch("ds", "p1")
    assert values(after, "_source_row", "id", "name") == values(before, "_source_row", "id", "name")
    assert counts(harness, "p1") == (3, 0, 1)
    columns = [row[0] for row in harness.query('DESCRIBE raw."ds"')]
    assert "added" not in columns  # the schema change went with the transaction
    staging = harness.warehouse.path.parent / ".staging"
    assert not staging.exists() or not list(staging.iterdir())  # nothing staged is left behind


def test_failed_publish_after_the_parse_leaves_neither_loaded_rows_nor_a_new_table(harness, tmp_path, monkeypatch):
    """A reload that fails after its rows were parsed into raw and numbered (some under the
    pending key of not-whole integers) leaves none of them: the partition keeps its own rows. A
    first load that fails there leaves no raw table behind."""
    dataset = simple_dataset(tmp_path, ORDERS)
    path = harness.write("orders.csv", "id,name,amount\n1,a,1.5\n2,b,x\n3,c,3.5\n")
    before = check(harness.load(path, dataset, partition="p1"), 3)
    path.write_text("id,name,amount\n10,x,1.0\n1.5,y,2.0\n12,z,q\n13,w,4.0\n")

    def failing_audit(con, audit):
        raise RuntimeError("disk full while writing qa.files")

    monkeypatch.setattr(commit, "insert_audit", failing_audit)
    with pytest.raises(RuntimeError, match="disk full"):
        harness.load(path, dataset, partition="p1", force=True)
    after = harness.fetch("ds", "p1")
    assert values(after, "_source_row", "id") == values(before, "_source_row", "id") == [(1, 1), (3, 3)]
    assert harness.query('SELECT count(*) FROM raw."ds"')[0][0] == 2  # no loading or pending rows left
    assert counts(harness, "p1") == (2, 1, 1)
    with pytest.raises(RuntimeError, match="disk full"):
        harness.load(harness.write("other.csv", "id,name,amount\n1,a,1.5\n"), simple_dataset(tmp_path, ORDERS,
                                                                                               name="fresh"))
    assert harness.query("SELECT count(*) FROM information_schema.tables WHERE table_name = 'fresh'")[0][0] == 0


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


def test_extra_column_in_a_later_file_is_added(harness, tmp_path):
    dataset = simple_dataset(tmp_path, {"id": "bigint"})
    check(harness.load(harness.write("day1.csv", "id,name\n1,a\n2,b\n"), dataset), 2)
    later = check(harness.load(harness.write("day2.csv", "id,name,channel\n3,c,web\n"), dataset), 1)
    assert "added channel VARCHAR" in later.audit.message
    rows = harness.query('SELECT _partition_key, id, name, channel FROM raw."ds" ORDER BY id')
    assert rows == [("day1.csv", 1, "a", None), ("day1.csv", 2, "b", None), ("day2.csv", 3, "c", "web")]


@pytest.mark.parametrize("first, second, kept, expected, misfits", [
    ("10\n20\n", "abc\n40\n", "BIGINT", [10, 20, 40], [("abc", "E_NUMERIC_FORMAT")]),
    ("abc\n20\n", "30\n40\n", "VARCHAR", ["abc", "20", "30", "40"], []),
    ("10\n20\n", "2.5\n40\n", "BIGINT", [10, 20, 40], [("2.5", "E_NUMERIC_FORMAT")]),
    ("10\n20\n", "99999999999999999999\n40\n", "BIGINT", [10, 20, 40], [("99999999999999999999", "E_NUMERIC_RANGE")]),
    ("2024-01-01\n", "2024-01-02 10:30:00\n2024-01-03\n", "DATE", None, [("2024-01-02 10:30:00", "E_DATE_FORMAT")]),
], ids=["bigint_then_text", "text_then_bigint", "bigint_then_double", "bigint_then_overflow", "date_then_timestamp"])
@pytest.mark.parametrize("encoding", ["utf-8", "cp1252"], ids=["straight", "staged"])
def test_undeclared_column_keeps_the_type_of_the_first_file(harness, tmp_path, first, second, kept, expected, misfits,
                                                            encoding):
    """One schema per dataset: later files are read with the first file's types, never widening
    them; a value that does not fit is quarantined with its code."""
    dataset = simple_dataset(tmp_path, csv={"encoding": encoding})
    check(harness.load(harness.write("day1.csv", "v\n" + first), dataset), first.count("\n"))
    later = check(harness.load(harness.write("day2.csv", "v\n" + second), dataset), second.count("\n"))
    types = dict((row[0], row[1]) for row in harness.query('DESCRIBE raw."ds"'))
    assert types["v"] == kept
    assert harness.query("SELECT column_name, column_type, origin, partition_key FROM qa.dataset_columns") == [
        ("v", kept, "inferred", "day1.csv")]
    stored = [row[0] for row in harness.query('SELECT v FROM raw."ds" ORDER BY _partition_key, _source_row')]
    if expected is not None:
        assert stored == expected
    assert [(q["raw_value"], q["error_code"]) for q in later.quarantine] == misfits
    assert later.audit.column_types["v"] == kept
