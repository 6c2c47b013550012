"""Several files in one run (a range of the dataset's file partitions): every file keeps its own
partition, materializations, checks, audit row and report; a file whose blocking check fails
holds back only itself, the others of the range run alone for what they missed (in the CLI at
once, in the deployment through the follow-up sensor); the landing sensor requests neighbouring
new files as one run."""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from quality_assets.batches import contiguous_batches, unfinished
from quality_assets.cli.execute import execute
from quality_assets.config import settings_from_env
from quality_assets.contract import load_contract
from quality_assets.defs.batching import range_tags
from quality_assets.defs.definitions import build_definitions
from quality_assets.landing import LandedFile

CONTRACT = """\
datasets:
  orders:
    landing: {path: landing/orders, glob: "*.csv"}
    columns: {order_id: bigint, amount: double, currency: string}
    rules:
      - accepted_values: {column: currency, values: [EUR, USD]}
"""
GOOD = "order_id,amount,currency\n{a},5,EUR\n{b},7,USD\n"
BLOB = b"\x00\x01binary\x00" * 64
STAGES = ["raw", "validation", "published", "profile", "anomalies", "report"]


def test_contiguous_batches_follow_partition_order_cap_and_gaps():
    order = ["a", "b", "c", "d", "e", "f", "g"]
    assert contiguous_batches(order, ["b", "c", "d", "e", "f"], 2) == [["b", "c"], ["d", "e"], ["f"]]
    assert contiguous_batches(order, ["g", "a", "b", "d"], 10) == [["a", "b"], ["d"], ["g"]]
    assert contiguous_batches(order, ["c", "a"], 1) == [["a"], ["c"]]
    with pytest.raises(ValueError, match="not partitions"):
        contiguous_batches(order, ["x"], 5)


def test_unfinished_leaves_out_done_stages_and_what_a_file_held_back_itself():
    done = {("raw", "a"), ("raw", "b"), ("raw", "c"), ("validation", "c")}
    left = unfinished(["a", "b", "c"], STAGES, done, {"b": STAGES[1:], "c": ["published"]})
    assert left == {"a": STAGES[1:], "c": ["profile", "anomalies", "report"]}


@pytest.fixture
def project(tmp_path: Path, monkeypatch) -> Path:
    (tmp_path / "quality.yaml").write_text(CONTRACT)
    (tmp_path / "landing" / "orders").mkdir(parents=True)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    (tmp_path / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    return tmp_path


def land(project: Path, name: str, content: str | bytes, age_s: float = 0.0) -> LandedFile:
    path = project / "landing" / "orders" / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    mtime = time.time_ns() - int(age_s * 1e9)
    os.utime(path, ns=(mtime, mtime))
    stat = path.stat()
    return LandedFile(name, path, stat.st_size, stat.st_mtime_ns)


def settings_for(project: Path, **env: str):
    return settings_from_env({"QA_CONTRACTS": str(project / "quality.yaml"), **env})


def query(project: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(project / "warehouse" / "quality.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def runs(instance: dg.DagsterInstance) -> list[dg.DagsterRun]:
    return list(reversed(instance.get_runs()))  # oldest first


def materialized(instance: dg.DagsterInstance, run_id: str) -> set[tuple[str, str]]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
    return {(r.event_log_entry.dagster_event.asset_key.path[-1], r.event_log_entry.dagster_event.partition)
            for r in records}


def evaluations(instance: dg.DagsterInstance, run_id: str) -> dict[tuple[str, str, str | None], bool]:
    records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    found = {}
    for record in records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        found[(evaluation.asset_key.path[-1], evaluation.check_name, evaluation.partition)] = evaluation.passed
    return found


def test_good_files_run_together_each_with_its_own_partition_checks_audit_and_report(project):
    work_files = [land(project, f"f{n}.csv", GOOD.format(a=2 * n, b=2 * n + 1)) for n in range(3)]
    contract = load_contract(project / "quality.yaml")
    ds = contract.datasets[0]
    outcomes = execute(contract, settings_for(project), [(ds, f) for f in work_files], force=False)

    assert [(o.key, o.outcome, o.published, o.rows) for o in outcomes] == [
        (f"f{n}.csv", "passed", True, 2) for n in range(3)]
    instance = dg.DagsterInstance.get()
    (run,) = runs(instance)  # one run for the three files
    assert run.tags["dagster/asset_partition_range_start"] == "f0.csv"
    assert run.tags["dagster/asset_partition_range_end"] == "f2.csv"
    assert materialized(instance, run.run_id) == {(stage, f"f{n}.csv") for stage in STAGES for n in range(3)}
    checks = evaluations(instance, run.run_id)
    for n in range(3):  # each file's checks landed on its own partition
        assert checks[("raw", "file_parsed", f"f{n}.csv")] is True
        assert checks[("validation", "accepted_values_currency", f"f{n}.csv")] is True
        assert (project / "output" / "orders" / f"f{n}.csv" / "report.html").exists()
    assert query(project, "SELECT partition_key, count(*) FROM qa.files GROUP BY ALL ORDER BY 1") == [
        (f"f{n}.csv", 1) for n in range(3)]
    assert query(project, "SELECT DISTINCT partition_key FROM qa.check_results ORDER BY 1") == [
        (f"f{n}.csv",) for n in range(3)]
    assert query(project, "SELECT _partition_key, count(*) FROM published.orders GROUP BY ALL ORDER BY 1") == [
        (f"f{n}.csv", 2) for n in range(3)]


def test_a_rejected_and_a_blocked_file_hold_back_only_themselves(project):
    files = [land(project, "a.csv", GOOD.format(a=1, b=2)), land(project, "b.csv", BLOB),
             land(project, "c.csv", "order_id,amount,currency\n5,1,BTC\n"), land(project, "d.csv", GOOD.format(a=3, b=4))]
    contract = load_contract(project / "quality.yaml")
    ds = contract.datasets[0]
    outcomes = {o.key: o for o in execute(contract, settings_for(project), [(ds, f) for f in files], force=False)}

    assert {key: (o.outcome, o.published) for key, o in outcomes.items()} == {
        "a.csv": ("passed", True), "b.csv": ("rejected", False), "c.csv": ("blocked", False), "d.csv": ("passed", True)
    }, {key: o.failure or o.message for key, o in outcomes.items()}  # once, under load 9-17, d.csv failed: say why
    assert outcomes["b.csv"].failed_checks == ["file_parsed(error)"]
    assert outcomes["c.csv"].blocked_by == ["accepted_values_currency"]
    assert not outcomes["a.csv"].failed_checks and not outcomes["a.csv"].failure
    instance = dg.DagsterInstance.get()
    first, *alone = runs(instance)
    assert first.tags["dagster/asset_partition_range_start"] == "a.csv" and not first.is_success
    # raw ran for all four in the range; the rejected file blocked the range's later steps, so the
    # three others ran alone without raw (one audit row each), the rejected one did not run again
    assert [(r.tags["dagster/partition"], r.is_success) for r in alone] == [
        ("a.csv", True), ("c.csv", False), ("d.csv", True)]
    assert all(stage != "raw" for r in alone for stage, _ in materialized(instance, r.run_id))
    assert query(project, "SELECT partition_key, status FROM qa.files ORDER BY 1") == [
        ("a.csv", "loaded"), ("b.csv", "rejected"), ("c.csv", "loaded"), ("d.csv", "loaded")]
    assert query(project, "SELECT DISTINCT _partition_key FROM published.orders ORDER BY 1") == [("a.csv",), ("d.csv",)]
    for key in "abcd":
        assert (project / "output" / "orders" / f"{key}.csv" / "report.html").exists()


def test_the_follow_up_sensor_runs_each_other_file_of_a_failed_range_alone(project):
    for key, content in [("a.csv", GOOD.format(a=1, b=2)), ("b.csv", BLOB), ("c.csv", GOOD.format(a=3, b=4))]:
        land(project, key, content)
    settings = settings_for(project)
    defs = build_definitions(load_contract(project / "quality.yaml"), settings)
    job = defs.resolve_job_def("orders_job")
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("orders_files", ["a.csv", "b.csv", "c.csv"])
        result = job.execute_in_process(instance=instance, raise_on_error=False,
                                        tags={"quality_assets/dataset": "orders", **range_tags(["a.csv", "c.csv"])})
        assert not result.success
        failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
        sensor = defs.resolve_sensor_def("orders_range_followup_sensor")
        context = dg.build_run_status_sensor_context(
            sensor_name=sensor.name, dagster_event=failure, dagster_instance=instance,
            dagster_run=result.dagster_run).for_run_failure()
        requests = list(sensor._run_status_sensor_fn(context))  # noqa: SLF001 (the sensor's body, as the daemon calls it)
    assert [(r.partition_key, sorted(k.path[-1] for k in r.asset_selection), r.run_key) for r in requests] == [
        (key, sorted(STAGES[1:]), f"{result.run_id}:{key}") for key in ("a.csv", "c.csv")]


def test_the_landing_sensor_requests_neighbouring_new_files_as_one_run(project):
    settings = settings_for(project, QA_FILES_PER_RUN="2")
    defs = build_definitions(load_contract(project / "quality.yaml"), settings)
    sensor = defs.resolve_sensor_def("orders_landing_sensor")
    landed = [land(project, f"f{n}.csv", GOOD.format(a=2 * n, b=2 * n + 1), age_s=3600 - n) for n in range(3)]
    with dg.DagsterInstance.ephemeral() as instance:
        result = sensor(dg.build_sensor_context(instance=instance))
    (add,) = result.dynamic_partitions_requests
    assert add.partition_keys == ["f0.csv", "f1.csv", "f2.csv"]
    first, second = result.run_requests
    assert first.partition_key is None and first.tags["dagster/asset_partition_range_start"] == "f0.csv"
    assert first.tags["dagster/asset_partition_range_end"] == "f1.csv"
    assert first.tags["quality_assets/file_versions"] == (
        f'{{"f0.csv":"{landed[0].version}","f1.csv":"{landed[1].version}"}}')
    assert first.run_key.startswith("orders:range:")
    # the last one alone, with the run key a file has always had
    assert (second.partition_key, second.run_key) == ("f2.csv", f"orders:f2.csv:{landed[2].version}")


def test_a_held_warehouse_is_opened_once_for_every_connect_inside(tmp_path):
    from quality_assets.warehouse import Warehouse

    warehouse = Warehouse(tmp_path / "w.duckdb")
    with warehouse.held() as held:
        with held.connect() as first:
            first.execute("CREATE TABLE t AS SELECT 1 AS x")
        with held.connect() as second:
            assert second is first and second.execute("SELECT x FROM t").fetchall() == [(1,)]
        with held.released():  # let go for a while: the lock is free, then taken again
            from quality_assets.warehouse import exclusive_lock

            with exclusive_lock(warehouse.lock_path, 0.0):
                pass
            with warehouse.connect() as other:
                assert other is not first and other.execute("SELECT x FROM t").fetchall() == [(1,)]
        with held.connect() as third:
            assert third is not first and third.execute("SELECT x FROM t").fetchall() == [(1,)]
    with warehouse.connect() as after:  # released: a new connection, the data committed
        assert after is not third and after.execute("SELECT x FROM t").fetchall() == [(1,)]
    with warehouse.released():  # outside held(): nothing to let go
        pass


def test_a_range_loads_through_one_connection_and_renders_its_reports_after_letting_go(project, monkeypatch):
    import traceback

    import quality_assets.ingest.load as load_module
    import quality_assets.report as report_module
    from quality_assets.warehouse import Warehouse, exclusive_lock

    lock_path = Warehouse(project / "warehouse" / "quality.duckdb").lock_path
    raw_opens, rendered_unlocked = [], []
    open_file, render = Warehouse._open, report_module.render_report

    def counting_open(self, *args, **kwargs):
        raw_opens.extend(1 for frame in traceback.extract_stack()[-12:] if frame.filename.endswith("defs/raw.py"))
        return open_file(self, *args, **kwargs)

    def render_after_letting_go(data):
        with exclusive_lock(lock_path, 0.0):  # raises WarehouseBusy while this process still holds it
            rendered_unlocked.append(data.partition_key)
        return render(data)

    def stage_after_letting_go(*args, **kwargs):
        with exclusive_lock(lock_path, 0.0):
            staged.append(args[3])  # the partition key
        return stage(*args, **kwargs)

    stage, staged = load_module.stage_with_scan, []
    monkeypatch.setattr(Warehouse, "_open", counting_open)
    monkeypatch.setattr(report_module, "render_report", render_after_letting_go)
    monkeypatch.setattr(load_module, "stage_with_scan", stage_after_letting_go)
    files = [land(project, f"f{n}.csv", GOOD.format(a=2 * n, b=2 * n + 1).encode("utf-16" if n == 1 else "utf-8"))
             for n in range(3)]
    contract = load_contract(project / "quality.yaml")
    outcomes = execute(contract, settings_for(project), [(contract.datasets[0], f) for f in files], force=False)

    assert [(o.key, o.outcome) for o in outcomes] == [(f"f{n}.csv", "passed") for n in range(3)], \
        [o.failure for o in outcomes]
    # the loads shared one connection (it was two a file), let go while the UTF-16 file was staged
    assert len(raw_opens) == 2 and staged == ["f1.csv"]
    assert rendered_unlocked == ["f0.csv", "f1.csv", "f2.csv"]
    assert query(project, "SELECT partition_key, status, rows_loaded FROM qa.files ORDER BY 1") == [
        (f"f{n}.csv", "loaded", 2) for n in range(3)]


def test_a_range_that_finds_the_warehouse_busy_leaves_an_audit_row_for_each_file(project):
    import subprocess
    import sys

    from quality_assets.warehouse import Warehouse

    land(project, "a.csv", GOOD.format(a=1, b=2))
    keys = [land(project, f"b{n}.csv", GOOD.format(a=10 + 2 * n, b=11 + 2 * n)).key for n in range(3)]
    defs = build_definitions(load_contract(project / "quality.yaml"), settings_for(project, QA_DUCKDB_LOCK_TIMEOUT="0.5"))
    job = defs.resolve_job_def("orders_job")
    path = project / "warehouse" / "quality.duckdb"
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions("orders_files", ["a.csv", *keys])
        assert job.execute_in_process(instance=instance, partition_key="a.csv").success
        # a user's read-only DuckDB session keeps the file open until told to close it
        reader = subprocess.Popen([sys.executable, "-c", "import duckdb, sys; con = duckdb.connect(sys.argv[1], "
                                   "read_only=True); print('open', flush=True); sys.stdin.readline()", str(path)],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert reader.stdout.readline().strip() == "open"
            result = job.execute_in_process(instance=instance, raise_on_error=False,
                                            tags={"quality_assets/dataset": "orders", **range_tags(keys)})
        finally:
            reader.communicate("close\n", timeout=30)
    assert not result.success
    with Warehouse(path).connect():
        pass  # the next connection writes the audit rows kept while the warehouse was busy
    rows = query(project, "SELECT partition_key, status, error_codes FROM qa.files ORDER BY 1")
    assert [(key, status, codes) for key, status, codes in rows] == [("a.csv", "loaded", {})] + [
        (key, "failed", {"E_WAREHOUSE_BUSY": 1}) for key in keys]
