"""The straight CSV load: pending rows, record numbers around rejected records."""

from __future__ import annotations

import pytest
from conftest import (
    simple_dataset,
)
from ingest_support import ORDERS, check, counts, load_only, pending_keys, values

from quality_assets import ingest
from quality_assets.ingest import (
    commit,
    numbering,
)


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
        patch.setattr(commit, "insert_audit", failing_audit)
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
    monkeypatch.setattr(numbering, "MAX_SHIFT_BRANCHES", branches)
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
