"""Daily partitions: the contract, the day of a file, loading days (by file name and by column),
the raw asset for a day and for a range (one run), the landing sensor, the schedule and the CLI."""

import datetime as dt
import json
import os
import textwrap
import time
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from quality_assets import daily
from quality_assets.config import settings_from_env
from quality_assets.contract import ContractError, load_contract, parse_contract
from quality_assets.daily import E_PARTITION_DATE, file_day, is_partition_day, load_days
from quality_assets.defs.definitions import build_definitions
from quality_assets.defs.raw import FILE_PARSED_CHECK
from quality_assets.defs.sensors import forget
from quality_assets.warehouse import Warehouse

pytestmark = pytest.mark.clock  # date-sensitive: `make test-future` runs it a year ahead too

CONTRACT = """\
datasets:
  sales:
    landing: {path: landing/sales, glob: "*.csv"}
    partitioning: daily
    daily:
      start: 2026-11-01
      file_pattern: 'sales_(?P<date>\\d{8})'
    columns: {id: bigint, total: double}
  events:
    landing: {path: landing/events}
    partitioning: daily
    daily: {start: 2026-11-01, column: ts, timezone: Europe/Paris}
    columns: {ts: timestamptz, v: bigint}
  orders:
    landing: {path: landing/orders}
"""
NOW = dt.datetime(2026, 11, 10, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "quality.yaml").write_text(CONTRACT)
    for name in ("sales", "events", "orders"):
        (tmp_path / "landing" / name).mkdir(parents=True)
    return tmp_path


def contract(project: Path):
    return load_contract(project / "quality.yaml")


def write(project: Path, dataset: str, name: str, text: str, mtime: dt.datetime | None = None) -> Path:
    path = project / "landing" / dataset / name
    path.write_text(text)
    if mtime is not None:
        os.utime(path, (mtime.timestamp(), mtime.timestamp()))
    return path


def warehouse(project: Path) -> Warehouse:
    return Warehouse(project / "wh" / "w.duckdb", lock_timeout_s=30, memory_limit="256MB")


def rows(project: Path, sql: str, params: list | None = None) -> list[tuple]:
    with warehouse(project).connect() as con:
        return con.execute(sql, params or []).fetchall()


# ---------------------------------------------------------------------------------------------
# Contract


def test_contract_daily_block_is_parsed(project):
    sales = contract(project).dataset("sales")
    assert sales.partitioning == "daily"
    assert sales.daily.start == "2026-11-01" and sales.daily.file_pattern and sales.daily.column is None
    assert (sales.daily.timezone, sales.daily.schedule) == ("UTC", "01:00")
    events = contract(project).dataset("events")
    assert events.daily.column == "ts" and events.daily.timezone == "Europe/Paris"
    assert contract(project).dataset("orders").daily is None


@pytest.mark.parametrize("daily_yaml, message", [
    ("", "required with 'partitioning: daily'"),
    ("daily: {file_pattern: 'x_(\\d+)'}", "daily.start: expected the first day as YYYY-MM-DD"),
    ("daily: {start: 2026-11-01}", "give exactly one of 'file_pattern'"),
    ("daily: {start: 2026-11-01, file_pattern: 'x', column: d}", "give exactly one of 'file_pattern'"),
    ("daily: {start: 2026-11-01, file_pattern: 'x_\\d+'}", "needs a group around the date"),
    ("daily: {start: 2026-11-01, file_pattern: 'x_(\\d+'}", "invalid regular expression"),
    ("daily: {start: 2026-11-01, column: nope}", "unknown column 'nope'"),
    ("daily: {start: 2026-11-01, column: amount}", "column 'amount' is DOUBLE, expected a date or timestamp"),
    ("daily: {start: 2026-11-01, column: d, timezone: Mars/Olympus}", "unknown time zone 'Mars/Olympus'"),
    ("daily: {start: 2026-11-01, column: d, schedule: '25:00'}", "expected a time of day HH:MM"),
    ("daily: {start: 2026-11-01, column: d, colour: red}", "unknown key 'colour'"),
])
def test_contract_daily_block_errors_name_file_line_and_field(tmp_path, daily_yaml, message):
    text = textwrap.dedent(f"""\
        datasets:
          sales:
            partitioning: daily
            columns: {{d: date, amount: double}}
            {daily_yaml}
        """)
    with pytest.raises(ContractError) as err:
        parse_contract(text, tmp_path / "quality.yaml")
    assert any(message in p and "dataset 'sales'" in p and "quality.yaml:" in p for p in err.value.problems), err.value.problems


def test_contract_daily_block_without_daily_partitioning_is_an_error(tmp_path):
    text = "datasets:\n  s:\n    daily: {start: 2026-11-01, column: d}\n"
    with pytest.raises(ContractError) as err:
        parse_contract(text, tmp_path / "quality.yaml")
    assert "only used with 'partitioning: daily'" in err.value.problems[0]


# ---------------------------------------------------------------------------------------------
# Days


def test_file_day_from_pattern_formats_and_named_parts(project, tmp_path):
    sales = contract(project).dataset("sales")
    assert file_day(sales, "sales_20261103.csv") == "2026-11-03"
    assert file_day(sales, "sub/sales_20261103_late.csv") == "2026-11-03"
    assert file_day(sales, "sales_20261332.csv") is None  # not a date
    assert file_day(sales, "notes.csv") is None
    iso = parse_contract(
        "datasets:\n  s:\n    partitioning: daily\n    daily: {start: 2026-01-01, file_pattern: 'export-(.+)\\.csv'}\n",
        tmp_path / "q.yaml").dataset("s")
    assert file_day(iso, "export-2026-02-03.csv") == "2026-02-03"
    custom = parse_contract(
        "datasets:\n  s:\n    partitioning: daily\n    daily: {start: 2026-01-01, file_pattern: '_(\\d+\\.\\d+\\.\\d+)', date_format: '%d.%m.%Y'}\n",
        tmp_path / "q.yaml").dataset("s")
    assert file_day(custom, "x_03.02.2026.csv") == "2026-02-03"
    parts = parse_contract(
        "datasets:\n  s:\n    partitioning: daily\n    daily: {start: 2026-01-01, file_pattern: '(?P<year>\\d{4})/(?P<month>\\d\\d)/(?P<day>\\d\\d)/'}\n",
        tmp_path / "q.yaml").dataset("s")
    assert file_day(parts, "2026/02/03/data.csv") == "2026-02-03"


def test_a_day_is_a_partition_from_start_until_it_has_ended(project):
    events = contract(project).dataset("events")  # Europe/Paris: UTC+1 in November
    late = dt.datetime(2026, 11, 9, 23, 30, tzinfo=dt.timezone.utc)  # already the 10th in Paris
    assert is_partition_day(events, "2026-11-09", late)
    assert not is_partition_day(events, "2026-11-10", late)
    assert not is_partition_day(events, "2026-10-31", late)
    assert not is_partition_day(events, "not a day", late)
    assert daily.day_range("2026-11-29", "2026-12-02") == ["2026-11-29", "2026-11-30", "2026-12-01", "2026-12-02"]


# ---------------------------------------------------------------------------------------------
# Loading days by file name


def test_load_days_by_file_name_replaces_each_day_with_all_its_files(project):
    sales = contract(project).dataset("sales")
    write(project, "sales", "sales_20261103.csv", "id,total\n1,10\n2,x\n")
    write(project, "sales", "sales_20261103_b.csv", "id,total\n3,30\n")
    write(project, "sales", "sales_20261104.csv", "id,total\n4,40\n")
    loads = load_days(warehouse(project), sales, ["2026-11-04", "2026-11-03", "2026-11-05"], "run-1")
    assert [(x.day, x.status, x.rows_loaded, x.rows_quarantined) for x in loads] == [
        ("2026-11-03", "loaded_with_errors", 2, 1), ("2026-11-04", "loaded", 1, 0), ("2026-11-05", "missing", 0, 0)]
    assert loads[0].error_codes == {"E_NUMERIC_FORMAT": 1} and not loads[0].passed and loads[1].passed
    assert "no file for 2026-11-05" in loads[2].message
    assert rows(project, 'SELECT _partition_key, _source_file, _source_row, id FROM raw."sales" ORDER BY id') == [
        ("2026-11-03", "sales_20261103.csv", 1, 1), ("2026-11-03", "sales_20261103_b.csv", 1, 3),
        ("2026-11-04", "sales_20261104.csv", 1, 4)]
    # A quarantined row of a day with several files says which file it came from.
    [(partition, row, message)] = rows(project, "SELECT partition_key, source_row, message FROM qa.quarantine")
    assert (partition, row) == ("2026-11-03", 2) and message.startswith("sales_20261103.csv: ")
    audits = rows(project, "SELECT partition_key, source_path, rows_read, status FROM qa.files ORDER BY source_path")
    assert [(a[0], Path(a[1]).name, a[2], a[3]) for a in audits] == [
        ("2026-11-03", "sales_20261103.csv", 2, "loaded_with_errors"), ("2026-11-03", "sales_20261103_b.csv", 1, "loaded"),
        ("2026-11-04", "sales_20261104.csv", 1, "loaded")]

    # Identical files: a no-op recorded as 'unchanged'; a changed file reloads its whole day.
    again = load_days(warehouse(project), sales, ["2026-11-03"], "run-2")
    assert again[0].status == "unchanged" and again[0].passed is False  # still the quarantined row
    write(project, "sales", "sales_20261103.csv", "id,total\n1,10\n2,20\n")
    fixed = load_days(warehouse(project), sales, ["2026-11-03"], "run-3")
    assert (fixed[0].status, fixed[0].rows_loaded, fixed[0].passed) == ("loaded", 3, True)
    assert rows(project, "SELECT count(*), list(DISTINCT _run_id) FROM raw.\"sales\" WHERE _partition_key = '2026-11-03'") == [(3, ["run-3"])]
    assert rows(project, "SELECT count(*) FROM qa.quarantine") == [(0,)]
    forced = load_days(warehouse(project), sales, ["2026-11-04"], "run-4", force=True)
    assert forced[0].status == "loaded"


def test_a_rejected_file_makes_its_day_rejected(project):
    sales = contract(project).dataset("sales")
    (project / "landing" / "sales" / "sales_20261106.csv").write_bytes(b"\x00\x01\x02binary" * 50)
    [load] = load_days(warehouse(project), sales, ["2026-11-06"], "run-1")
    assert load.status == "rejected" and load.error_codes == {"E_BINARY": 1}
    assert "rejected: sales_20261106.csv" in load.message


def test_a_failed_publish_leaves_every_day_as_it_was(project, monkeypatch):
    """One transaction for the whole range: a failure in the middle writes nothing."""
    sales = contract(project).dataset("sales")
    write(project, "sales", "sales_20261103.csv", "id,total\n1,10\n")
    write(project, "sales", "sales_20261104.csv", "id,total\n2,20\n")
    load_days(warehouse(project), sales, ["2026-11-03", "2026-11-04"], "run-1")
    write(project, "sales", "sales_20261103.csv", "id,total\n1,11\n5,50\n")
    write(project, "sales", "sales_20261104.csv", "id,total\n2,22\n6,60\n")
    calls = []
    real = daily.insert_audit

    def failing(con, audit):
        calls.append(audit.partition_key)
        if audit.partition_key == "2026-11-04":
            raise OSError("disk full")
        real(con, audit)

    monkeypatch.setattr(daily, "insert_audit", failing)
    with pytest.raises(OSError, match="disk full"):
        load_days(warehouse(project), sales, ["2026-11-03", "2026-11-04"], "run-2")
    assert calls == ["2026-11-03", "2026-11-04"]  # the first day was written, then rolled back
    assert rows(project, 'SELECT _partition_key, id, total, _run_id FROM raw."sales" ORDER BY id') == [
        ("2026-11-03", 1, 10.0, "run-1"), ("2026-11-04", 2, 20.0, "run-1")]
    assert rows(project, "SELECT DISTINCT run_id FROM qa.files") == [("run-1",)]


def test_a_process_killed_in_the_middle_of_a_publish_leaves_no_half_written_day(project):
    """SIGKILL while the publish transaction has replaced one day but not the next: after the
    crash the warehouse holds the previous content of both days."""
    import signal
    import subprocess
    import sys

    sales = contract(project).dataset("sales")
    write(project, "sales", "sales_20261103.csv", "id,total\n1,10\n")
    write(project, "sales", "sales_20261104.csv", "id,total\n2,20\n")
    load_days(warehouse(project), sales, ["2026-11-03", "2026-11-04"], "run-1")
    write(project, "sales", "sales_20261103.csv", "id,total\n1,11\n5,50\n")
    write(project, "sales", "sales_20261104.csv", "id,total\n2,22\n6,60\n")
    marker = project / "in-transaction"
    script = textwrap.dedent(f"""
        import time
        from pathlib import Path
        from quality_assets import daily
        from quality_assets.contract import load_contract
        from quality_assets.warehouse import Warehouse
        real = daily.insert_audit
        def slow(con, audit):
            real(con, audit)
            if audit.partition_key == "2026-11-04":
                Path({str(marker)!r}).write_text("x")
                time.sleep(60)
        daily.insert_audit = slow
        sales = load_contract({str(project / "quality.yaml")!r}).dataset("sales")
        wh = Warehouse({str(project / "wh" / "w.duckdb")!r}, lock_timeout_s=30, memory_limit="256MB")
        daily.load_days(wh, sales, ["2026-11-03", "2026-11-04"], "run-2")
        """)
    child = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert child.poll() is None and time.monotonic() < deadline, "the publish never started"
            time.sleep(0.05)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert rows(project, 'SELECT _partition_key, id, total, _run_id FROM raw."sales" ORDER BY id') == [
        ("2026-11-03", 1, 10.0, "run-1"), ("2026-11-04", 2, 20.0, "run-1")]
    assert rows(project, "SELECT DISTINCT run_id FROM qa.files") == [("run-1",)]
    # and the next run publishes both days
    load_days(warehouse(project), sales, ["2026-11-03", "2026-11-04"], "run-3")
    assert rows(project, 'SELECT count(*), list(DISTINCT _run_id) FROM raw."sales"') == [(4, ["run-3"])]


# ---------------------------------------------------------------------------------------------
# Loading days by column


def test_load_days_by_column_splits_rows_by_day_in_the_time_zone(project):
    events = contract(project).dataset("events")
    landed = dt.datetime(2026, 11, 5, 9, 0, tzinfo=dt.timezone.utc)
    write(project, "events", "a.csv", textwrap.dedent("""\
        ts,v
        2026-11-03 10:00:00+00,1
        2026-11-03 23:30:00+00,2
        2026-11-04 12:00:00+00,3
        ,4
        2025-01-01 00:00:00+00,5
        bad,6
        """), mtime=landed)
    write(project, "events", "b.csv", "ts,v\n2026-11-04 08:00:00+00,7\n", mtime=landed)
    loads = load_days(warehouse(project), events, ["2026-11-03", "2026-11-04", "2026-11-05"], "run-1")
    # 23:30 UTC on the 3rd is the 4th in Paris; rows with no valid day stay with the day the file landed
    assert [(x.day, x.status, x.rows_loaded, x.rows_quarantined) for x in loads] == [
        ("2026-11-03", "loaded", 1, 0), ("2026-11-04", "loaded", 3, 0), ("2026-11-05", "loaded_with_errors", 0, 3)]
    assert rows(project, 'SELECT _partition_key, v, _source_file FROM raw."events" ORDER BY v') == [
        ("2026-11-03", 1, "a.csv"), ("2026-11-04", 2, "a.csv"), ("2026-11-04", 3, "a.csv"), ("2026-11-04", 7, "b.csv")]
    quarantine = rows(project, "SELECT partition_key, source_row, error_code FROM qa.quarantine ORDER BY source_row")
    assert quarantine == [("2026-11-05", 4, E_PARTITION_DATE), ("2026-11-05", 5, E_PARTITION_DATE),
                          ("2026-11-05", 6, "E_DATE_FORMAT")]
    # Loading one day again replaces that day only.
    load_days(warehouse(project), events, ["2026-11-04"], "run-2")
    assert rows(project, 'SELECT _partition_key, count(*), list(DISTINCT _run_id) FROM raw."events" GROUP BY 1 ORDER BY 1') == [
        ("2026-11-03", 1, ["run-1"]), ("2026-11-04", 3, ["run-2"])]


# ---------------------------------------------------------------------------------------------
# Dagster: the raw asset for a day and for a range


def definitions(project: Path) -> dg.Definitions:
    settings = settings_from_env({"QA_CONTRACTS": str(project / "quality.yaml"),
                                  "QA_DUCKDB_PATH": str(project / "wh" / "w.duckdb")})
    return build_definitions(contract(project), settings)


def test_daily_definitions(project):
    defs = definitions(project)
    repo = defs.get_repository_def()
    raw = repo.assets_defs_by_key[dg.AssetKey(["sales", "raw"])]
    assert isinstance(raw.partitions_def, dg.DailyPartitionsDefinition)
    assert raw.partitions_def.start.date() == dt.date(2026, 11, 1)
    assert raw.backfill_policy == dg.BackfillPolicy.single_run()
    events = repo.assets_defs_by_key[dg.AssetKey(["events", "raw"])]
    assert events.partitions_def.timezone == "Europe/Paris"
    sensors = {s.name for s in repo.sensor_defs}
    assert "sales_landing_sensor" in sensors and "orders_landing_sensor" in sensors
    assert "events_landing_sensor" not in sensors  # by column: schedule and backfills only
    schedules = {s.name: s for s in repo.schedule_defs}
    assert set(schedules) == {"sales_daily_schedule", "events_daily_schedule", "scorecard_schedule"}
    assert schedules["sales_daily_schedule"].cron_schedule == "0 1 * * *"
    assert schedules["events_daily_schedule"].execution_timezone == "Europe/Paris"
    assert schedules["sales_daily_schedule"].default_status == dg.DefaultScheduleStatus.RUNNING


def test_schedule_processes_the_previous_day(project):
    schedule = definitions(project).get_repository_def().get_schedule_def("sales_daily_schedule")
    context = dg.build_schedule_context(scheduled_execution_time=dt.datetime(2026, 11, 10, 1, 0, tzinfo=dt.timezone.utc))
    [request] = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2026-11-09"


def test_materialize_one_day_records_metadata_and_the_days_check(project):
    write(project, "sales", "sales_20261103.csv", "id,total\n1,10\n2,20\n")
    job = definitions(project).resolve_job_def("sales_job")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(partition_key="2026-11-03", instance=instance)
        assert result.success
        [mat] = result.asset_materializations_for_node("sales__raw")
        assert mat.partition == "2026-11-03"
        assert mat.metadata["dagster/row_count"].value == 2 and mat.metadata["status"].value == "loaded"
        assert [c.name for c in mat.metadata["dagster/column_schema"].schema.columns] == ["id", "total"]
        [check] = [c for c in result.get_asset_check_evaluations() if c.asset_key == dg.AssetKey(["sales", "raw"])]
        assert check.check_name == FILE_PARSED_CHECK and check.passed and check.partition == "2026-11-03"


def test_a_backfill_of_a_range_is_one_run_with_each_days_result(project):
    write(project, "sales", "sales_20261101.csv", "id,total\n1,10\n")
    write(project, "sales", "sales_20261103.csv", "id,total\n3,30\n4,x\n")
    job = definitions(project).resolve_job_def("sales_job")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(
            instance=instance, raise_on_error=False,
            tags={"dagster/asset_partition_range_start": "2026-11-01", "dagster/asset_partition_range_end": "2026-11-03"})
        assert result.success  # warn-level check failures do not fail the run
        assert len(instance.get_runs()) == 1
        materialized = instance.get_materialized_partitions(dg.AssetKey(["sales", "raw"]))
        assert materialized == {"2026-11-01", "2026-11-02", "2026-11-03"}
        by_day = {m.partition: m.metadata for m in result.asset_materializations_for_node("sales__raw")}
        assert by_day["2026-11-01"]["status"].value == "loaded"
        assert by_day["2026-11-02"]["status"].value == "missing"
        assert by_day["2026-11-03"]["rows_quarantined"].value == 1
        checks = {c.partition: c.passed for c in result.get_asset_check_evaluations()
                  if c.asset_key == dg.AssetKey(["sales", "raw"])}
        assert checks == {"2026-11-01": True, "2026-11-02": False, "2026-11-03": False, None: False}
    assert rows(project, 'SELECT _partition_key, count(*) FROM raw."sales" GROUP BY 1 ORDER BY 1') == [
        ("2026-11-01", 1), ("2026-11-03", 1)]


# ---------------------------------------------------------------------------------------------
# The landing sensor of a daily dataset


def evaluate(sensor, instance, repo, cursor=None):
    context = dg.build_sensor_context(instance=instance, cursor=cursor, repository_def=repo)
    return sensor.evaluate_tick(context)


def test_daily_landing_sensor_runs_closed_days_once_and_waits_for_today(project):
    repo = definitions(project).get_repository_def()
    sensor = repo.get_sensor_def("sales_landing_sensor")  # files older than the settle time run at once
    old = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    write(project, "sales", "sales_20261103.csv", "id,total\n1,10\n", mtime=old)
    write(project, "sales", "sales_20261103_b.csv", "id,total\n2,20\n", mtime=old)
    write(project, "sales", "sales_20261104.csv", "id,total\n3,30\n", mtime=old)
    today = dt.date.today()
    write(project, "sales", f"sales_{today:%Y%m%d}.csv", "id,total\n4,40\n", mtime=old)
    write(project, "sales", "sales_20251231.csv", "id,total\n5,50\n", mtime=old)  # before start
    write(project, "sales", "readme.csv", "id,total\n", mtime=old)  # no date
    with dg.instance_for_test() as instance:
        first = evaluate(sensor, instance, repo)
        assert [(r.partition_key, r.tags["quality_assets/files"]) for r in first.run_requests] == [
            ("2026-11-03", "2"), ("2026-11-04", "1")]
        seen = json.loads(first.cursor)["seen"]
        assert f"sales_{today:%Y%m%d}.csv" not in seen  # considered again next tick
        assert "sales_20251231.csv" in seen and "readme.csv" in seen  # skipped for good
        second = evaluate(sensor, instance, repo, first.cursor)
        assert second.run_requests == [] and "waiting" in second.skip_message
        # A changed file runs its day again, under a new run key.
        time.sleep(0.01)
        write(project, "sales", "sales_20261103_b.csv", "id,total\n2,21\n", mtime=old + dt.timedelta(seconds=1))
        third = evaluate(sensor, instance, repo, second.cursor)
        assert [r.partition_key for r in third.run_requests] == ["2026-11-03"]
        assert third.run_requests[0].run_key != first.run_requests[0].run_key


def test_daily_landing_sensor_reports_a_missing_landing_folder(project):
    (project / "landing" / "sales").rmdir()
    repo = definitions(project).get_repository_def()
    with dg.instance_for_test() as instance:
        result = evaluate(repo.get_sensor_def("sales_landing_sensor"), instance, repo)
    assert result.run_requests == []
    assert result.skip_message == f"dataset 'sales': the landing folder {project / 'landing' / 'sales'} does not exist"


def test_forget_drops_keys_from_the_cursor():
    cursor = json.dumps({"version": 1, "seen": {"a": {"v": "1:1", "h": None}, "b": {"v": "1:2", "h": None}}, "pending": {}})
    assert json.loads(forget(cursor, ["a"]))["seen"] == {"b": {"v": "1:2", "h": None}}
    assert forget(cursor, []) == cursor


# ---------------------------------------------------------------------------------------------
# The command line


def test_cli_run_loads_daily_files_per_closed_day(project, monkeypatch, capsys):
    from quality_assets.cli import main

    monkeypatch.setenv("QA_CONTRACTS", str(project / "quality.yaml"))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    write(project, "sales", "sales_20261103.csv", "id,total\n1,10\n")
    write(project, "sales", "sales_20261103_b.csv", "id,total\n2,20\n")
    write(project, "sales", f"sales_{dt.date.today():%Y%m%d}.csv", "id,total\n3,30\n")
    write(project, "events", "e.csv", "ts,v\n2026-11-03 10:00:00+00,1\n")
    assert main(["run"]) == 0
    out, err = capsys.readouterr()
    assert [line.split()[:3] for line in out.splitlines() if line.startswith("sales")] == [["sales", "2026-11-03", "2"]]
    assert "has not closed yet" in err and "takes its days from column 'ts'" in err
    assert main(["run"]) == 0  # nothing new
    assert "nothing to do" in capsys.readouterr().err
    with duckdb.connect(str(project / "warehouse" / "quality.duckdb"), read_only=True) as con:
        assert con.execute('SELECT count(*) FROM raw."sales"').fetchone()[0] == 2


# ---------------------------------------------------------------------------------------------
# One automation mechanism


def test_one_automation_mechanism(project):
    """Runs come only from run requests (sensors, schedules, backfills): no asset has an automation
    condition, and a dataset's job covers raw and every stage after it, so one request runs the
    whole chain once; the scorecard is in no dataset's job."""

    @dg.asset(key=["orders", "later_stage"], deps=[dg.AssetKey(["orders", "raw"])],
              partitions_def=dg.DynamicPartitionsDefinition(name="orders_files"))
    def later_stage() -> None:
        """A stage added after raw by a later change."""

    defs = dg.Definitions.merge(definitions(project), dg.Definitions(assets=[later_stage]))
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    assert all(graph.get(key).automation_condition is None for key in graph.get_all_asset_keys())
    assert not any(s.sensor_type.name == "AUTOMATION" for s in repo.sensor_defs)
    orders_job = repo.get_job("orders_job")
    assert orders_job.asset_layer.selected_asset_keys == {dg.AssetKey(["orders", stage]) for stage in (
        "raw", "later_stage", "validation", "published", "profile", "anomalies", "report")}
    for name in ("orders_job", "sales_job", "events_job"):
        assert dg.AssetKey(["scorecard"]) not in repo.get_job(name).asset_layer.selected_asset_keys
    assert repo.get_job("scorecard_job").asset_layer.selected_asset_keys == {dg.AssetKey(["scorecard"])}


def test_daily_files_keep_the_schema_of_the_first_file(project):
    """An undeclared column is typed by the first day's file and kept: a later day's misfit is
    quarantined, the column not widened (qa.dataset_columns)."""
    sales = contract(project).dataset("sales")
    write(project, "sales", "sales_20261101.csv", "id,total,store\n1,1.5,10\n2,2.5,11\n")
    write(project, "sales", "sales_20261102.csv", "id,total,store\n3,3.5,twelve\n4,4.5,13\n")
    first, second = load_days(warehouse(project), sales, ["2026-11-01", "2026-11-02"], "run-1")
    assert rows(project, "SELECT column_name, column_type, origin FROM qa.dataset_columns ORDER BY ordinal") == [
        ("id", "BIGINT", "declared"), ("total", "DOUBLE", "declared"), ("store", "BIGINT", "inferred")]
    assert rows(project, "SELECT raw_value, error_code FROM qa.quarantine") == [("twelve", "E_NUMERIC_FORMAT")]
    assert rows(project, 'SELECT id, store FROM raw."sales" ORDER BY id') == [(1, 10), (2, 11), (4, 13)]
