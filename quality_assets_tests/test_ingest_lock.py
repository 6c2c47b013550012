"""The warehouse's writer queue: processes and threads wait their turn."""

from __future__ import annotations

import multiprocessing
import threading
import time

import pytest

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
