"""The daily scorecard: computed from the warehouse tables, written to qa.scorecard and files,
and as a Dagster asset; later stages' tables slot in."""

import datetime as dt
import json
from pathlib import Path

import dagster as dg
import pytest

from quality_assets.config import settings_from_env
from quality_assets.contract import load_contract
from quality_assets.defs.definitions import build_definitions
from quality_assets.defs.scorecard import SCORECARD_KEY, scorecard_start
from quality_assets.ingest import LoadAudit, insert_audit
from quality_assets.scorecard import compute_scorecard, markdown, write_files, write_scorecard
from quality_assets.warehouse import Warehouse

pytestmark = pytest.mark.clock  # date-sensitive: `make test-future` runs it a year ahead too

DAY = "2026-11-03"
NOW = dt.datetime(2026, 11, 5, 8, 0)


def at(day: str, hour: int) -> dt.datetime:
    return dt.datetime.fromisoformat(day) + dt.timedelta(hours=hour)


def audit(dataset, partition, finished, status="loaded", loaded=10, quarantined=0, run="r1", path=None) -> LoadAudit:
    return LoadAudit(
        dataset=dataset, partition_key=partition, run_id=run, source_path=path or f"/landing/{partition}",
        status=status, rows_read=loaded + quarantined, rows_loaded=loaded, rows_quarantined=quarantined,
        started=finished, finished=finished,
    )


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    wh = Warehouse(tmp_path / "w.duckdb", lock_timeout_s=30, memory_limit="256MB")
    with wh.connect() as con:
        for row in [
            # orders (one partition per file): files loaded on DAY count, others do not
            audit("orders", "a.csv", at(DAY, 9)),
            audit("orders", "b.csv", at(DAY, 10), status="loaded_with_errors", loaded=8, quarantined=2),
            audit("orders", "b.csv", at(DAY, 11), status="unchanged", loaded=8, quarantined=2),  # a no-op
            audit("orders", "blob.csv", at(DAY, 12), status="rejected", loaded=0),
            audit("orders", "old.csv", at("2026-11-02", 9)),
            audit("orders", "next.csv", at("2026-11-04", 9)),
            # sales (daily): the partition's files, as its latest load left them
            audit("sales", DAY, at("2026-11-04", 1), run="s1", path="/l/sales_a"),
            audit("sales", DAY, at("2026-11-04", 1), run="s1", path="/l/sales_b", loaded=5),
            audit("sales", DAY, at("2026-11-04", 2), run="s2", path="/l/sales_a", loaded=12),
        ]:
            insert_audit(con, row)
    return wh


def compute(warehouse: Warehouse, day: str = DAY, now: dt.datetime = NOW):
    with warehouse.connect() as con:
        return {r.dataset: r for r in compute_scorecard(
            con, [("orders", "file"), ("sales", "daily"), ("customers", "file"), ("events", "daily")], day, now)}


def test_scorecard_counts_files_rows_quarantine_and_checks(warehouse):
    rows = compute(warehouse)
    orders = rows["orders"]
    assert (orders.files, orders.files_rejected, orders.rows_loaded, orders.rows_quarantined) == (3, 1, 18, 2)
    assert orders.partitions == ["a.csv", "b.csv", "blob.csv"]
    assert (orders.checks_passed, orders.checks_failed, orders.checks_failed_error) == (1, 2, 1)
    assert orders.status == "error"  # a rejected file
    assert orders.last_load == at(DAY, 12) and orders.freshness_hours == 12.0  # at the end of the day
    sales = rows["sales"]  # only the latest load (run s2) of the day's partition
    assert (sales.files, sales.rows_loaded, sales.partitions, sales.status) == (1, 12, [DAY], "ok")
    assert (sales.checks_passed, sales.checks_failed) == (1, 0)
    assert rows["customers"].status == "no data" and rows["customers"].freshness_hours is None
    assert rows["events"].status == "warn"  # a daily dataset without its day's file
    assert orders.anomalies is None and orders.drifted_columns is None  # stages not built yet


def test_scorecard_freshness_for_today_is_measured_now(warehouse):
    rows = compute(warehouse, day="2026-11-04", now=at("2026-11-04", 15))
    assert rows["orders"].files == 1 and rows["orders"].freshness_hours == 6.0


def test_later_stages_slot_in_through_their_tables(warehouse):
    with warehouse.connect() as con:
        con.execute("CREATE TABLE qa.check_results (dataset VARCHAR, partition_key VARCHAR, run_id VARCHAR, "
                    "check_name VARCHAR, passed BOOLEAN, severity VARCHAR)")
        con.execute("INSERT INTO qa.check_results VALUES ('orders', 'a.csv', 'r1', 'not_null', true, 'error'), "
                    "('orders', 'a.csv', 'r1', 'unique', false, 'error'), ('orders', 'b.csv', 'r1', 'range', false, 'warn'), "
                    "('orders', 'old.csv', 'r1', 'unique', false, 'error')")
        con.execute("CREATE TABLE qa.row_anomalies (dataset VARCHAR, partition_key VARCHAR, score DOUBLE)")
        con.execute("INSERT INTO qa.row_anomalies VALUES ('orders', 'a.csv', 0.9), ('orders', 'b.csv', 0.8), ('sales', 'x', 1)")
        con.execute("CREATE TABLE qa.drift (dataset VARCHAR, partition_key VARCHAR, column_name VARCHAR, drifted BOOLEAN)")
        con.execute("INSERT INTO qa.drift VALUES ('sales', ?, 'total', true), ('sales', ?, 'id', false)", [DAY, DAY])
    rows = compute(warehouse)
    orders = rows["orders"]
    assert (orders.checks_passed, orders.checks_failed, orders.checks_failed_error) == (2, 4, 2)
    assert orders.anomalies == 2 and orders.drifted_columns == 0  # the tables exist now: counts, not NULL
    assert rows["sales"].drifted_columns == 1 and rows["sales"].anomalies == 0
    assert rows["sales"].status == "warn"


def test_write_scorecard_replaces_the_day_and_writes_files(warehouse, tmp_path):
    rows = list(compute(warehouse).values())
    with warehouse.connect() as con:
        write_scorecard(con, rows, DAY, "run-1")
        write_scorecard(con, rows, DAY, "run-2")
        stored = con.execute("SELECT dataset, status, files, run_id FROM qa.scorecard ORDER BY dataset").fetchall()
    assert stored == [("customers", "no data", 0, "run-2"), ("events", "warn", 0, "run-2"),
                      ("orders", "error", 3, "run-2"), ("sales", "ok", 1, "run-2")]
    folder = write_files(rows, DAY, tmp_path / "out")
    payload = json.loads((folder / "scorecard.json").read_text())
    assert payload["day"] == DAY and {d["dataset"] for d in payload["datasets"]} == {"orders", "sales", "customers", "events"}
    assert (folder / "scorecard.md").read_text().startswith(f"Scorecard for {DAY}")


def test_markdown_escapes_names():
    from quality_assets.scorecard import ScorecardRow

    text = markdown([ScorecardRow(day=DAY, dataset="a|b<script>", partitioning="file")], DAY)
    assert "a\\|b\\<script\\>" in text and "<script>" not in text


def test_scorecard_asset_materializes_a_day(tmp_path, monkeypatch):
    (tmp_path / "quality.yaml").write_text(
        "datasets:\n  orders: {landing: landing/orders}\n  sales:\n    partitioning: daily\n"
        "    daily: {start: 2026-10-01, file_pattern: 's_(\\d{8})'}\n")
    settings = settings_from_env({"QA_CONTRACTS": str(tmp_path / "quality.yaml"), "QA_OUTPUT_DIR": str(tmp_path / "out"),
                                  "QA_DUCKDB_PATH": str(tmp_path / "w.duckdb")})
    contract = load_contract(tmp_path / "quality.yaml")
    assert scorecard_start(contract, settings) == "2026-10-01"
    with Warehouse(tmp_path / "w.duckdb").connect() as con:
        insert_audit(con, audit("orders", "a.csv", at(DAY, 9)))
    defs = build_definitions(contract, settings)
    monkeypatch.setenv("QA_OUTPUT_DIR", str(tmp_path / "out"))  # read when the run starts
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def("scorecard_job").execute_in_process(partition_key=DAY, instance=instance)
        [mat] = result.asset_materializations_for_node("scorecard")
        assert mat.asset_key == SCORECARD_KEY and mat.partition == DAY
        assert mat.metadata["files"].value == 1 and mat.metadata["datasets_warn"].value == 1  # sales had no file
        assert "| orders | ok | 1 |" in mat.metadata["scorecard"].value
    assert json.loads((tmp_path / "out" / "scorecard" / DAY / "scorecard.json").read_text())["day"] == DAY
