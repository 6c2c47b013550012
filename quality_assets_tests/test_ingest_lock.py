"""The warehouse's writer queue: processes and threads wait their turn."""

from __future__ import annotations

import logging
import multiprocessing
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest
from conftest import simple_dataset
from ingest_support import ORDERS, values

from quality_assets.ingest import load_file
from quality_assets.warehouse import Warehouse, WarehouseBusy


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


READER = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
print("open", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def start_reader(path, hold_s: float) -> subprocess.Popen:
    """A read-only DuckDB client in another process (what a user's CLI session or BI tool is)."""
    reader = subprocess.Popen([sys.executable, "-c", READER, str(path), str(hold_s)], stdout=subprocess.PIPE, text=True)
    assert reader.stdout.readline().strip() == "open"
    return reader


def test_a_run_waits_for_a_read_only_client_and_says_for_whom(harness, tmp_path, caplog):
    dataset = simple_dataset(tmp_path, ORDERS)
    harness.load(harness.write("a.csv", "id,name,amount\n1,a,1.5\n"), dataset)  # the warehouse file exists
    reader = start_reader(harness.warehouse.path, 1.5)
    try:
        caplog.set_level(logging.WARNING, logger="quality_assets.warehouse")
        started = time.monotonic()
        loaded = harness.load(harness.write("b.csv", "id,name,amount\n2,b,2.5\n"), dataset)
        assert time.monotonic() - started >= 1.0
    finally:
        reader.wait(timeout=30)
    assert loaded.audit.status == "loaded" and values(loaded, "id") == [(2,)]
    waits = [r.getMessage() for r in caplog.records if "waiting up to" in r.getMessage()]
    assert waits and f"pid {reader.pid}" in waits[0] and "QA_DUCKDB_LOCK_TIMEOUT" in waits[0]


def test_a_run_that_gives_up_on_a_reader_leaves_an_audit_row_with_the_reason(harness, tmp_path):
    dataset = simple_dataset(tmp_path, ORDERS)
    harness.load(harness.write("a.csv", "id,name,amount\n1,a,1.5\n"), dataset)
    impatient = Warehouse(harness.warehouse.path, lock_timeout_s=0.5)
    reader = start_reader(harness.warehouse.path, 3)
    try:
        with pytest.raises(WarehouseBusy) as info:
            load_file(impatient, harness.write("b.csv", "id,name,amount\n2,b,2.5\n"), dataset, "b.csv", "run-busy")
        assert f"pid {reader.pid}" in str(info.value)
    finally:
        reader.wait(timeout=30)
    [row] = [r for r in harness.audits("ds", "b.csv")]  # written at the next connection
    assert (row["status"], row["run_id"], row["error_codes"]) == ("failed", "run-busy", {"E_WAREHOUSE_BUSY": 1})
    assert f"pid {reader.pid}" in row["message"]
    again = harness.load(harness.landing / "b.csv", dataset)
    assert again.audit.status == "loaded" and values(again, "id") == [(2,)]  # the failed row is no previous load
    assert not impatient.deferred_path.exists()


def test_snapshot_recipe_of_operations_md(harness, tmp_path, monkeypatch):
    harness.load(harness.write("a.csv", "id,name,amount\n1,a,1.5\n"), simple_dataset(tmp_path, ORDERS))
    text = (Path(__file__).parents[1] / "OPERATIONS.md").read_text()
    recipe = re.search(r"<!-- snapshot -->\n```python\n(.*?)```", text, re.S).group(1)
    target = tmp_path / "qa_snapshot.duckdb"
    recipe = recipe.replace("/var/lib/quality/warehouse.duckdb", str(harness.warehouse.path))
    recipe = recipe.replace("/tmp/qa_snapshot.duckdb", str(target))
    exec(compile(recipe, "OPERATIONS.md", "exec"), {})
    with duckdb.connect(str(target), read_only=True) as snapshot:
        # Held open while a run writes the warehouse: the run does not wait for it.
        loaded = harness.load(harness.write("b.csv", "id,name,amount\n2,b,2.5\n"), simple_dataset(tmp_path, ORDERS))
        assert loaded.audit.status == "loaded"
        assert snapshot.execute('SELECT id FROM raw."ds"').fetchall() == [(1,)]
