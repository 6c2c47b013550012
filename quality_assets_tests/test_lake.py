"""The DuckLake backend: chosen by QA_WAREHOUSE, every stage and table on a real lake (a fresh
PostgreSQL catalog and data folder per test), results equal to the embedded DuckDB file on the
same files, commit conflicts turned into a clear, retried error."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from lake_support import CONTRACT, READER, Lake, write_csv

from quality_assets.config import settings_from_env
from quality_assets.contract import load_contract
from quality_assets.defs.common import retried_on_conflict
from quality_assets.demo import write_demo
from quality_assets.ingest import commit, load
from quality_assets.ingest.load import load_file
from quality_assets.ingest.stage import stage_with_scan
from quality_assets.lake import (
    LakeUnavailable,
    LakeWarehouse,
    extension_file,
    open_warehouse,
    retry_conflicts,
)
from quality_assets.warehouse import Warehouse, WarehouseConflict, transaction

CLI = [str(Path(sys.executable).parent / "quality-assets")]
# differ between any two runs, whatever the backend
VOLATILE = {"run_id", "_run_id", "started", "finished", "duration_s", "recorded", "evaluated_at", "created", "computed_at",
            "at", "generated", "validation_run", "mtime", "loaded_at", "published_at", "elapsed_s"}


def test_setting_chooses_the_backend(tmp_path: Path):
    base = {"QA_CONTRACTS": str(tmp_path / "quality.yaml")}
    embedded = open_warehouse(settings_from_env(base))
    assert type(embedded) is Warehouse and embedded.path == tmp_path / "warehouse" / "quality.duckdb"
    spec = "ducklake:postgres:dbname=somewhere host=127.0.0.1"
    chosen = open_warehouse(settings_from_env({**base, "QA_WAREHOUSE": spec, "QA_LAKE_DATA_PATH": "s3://bucket/lake/"}))
    assert isinstance(chosen, LakeWarehouse)
    assert (chosen.spec, chosen.data_path, chosen.work_dir) == (spec, "s3://bucket/lake/", tmp_path / "warehouse")
    default_data = open_warehouse(settings_from_env({**base, "QA_WAREHOUSE": spec}))
    assert default_data.data_path == str(tmp_path / "lake") and default_data.threads is None
    assert open_warehouse(settings_from_env({**base, "QA_WAREHOUSE": spec, "QA_DUCKDB_THREADS": "1"})).threads == 1
    with pytest.raises(LakeUnavailable, match="QA_WAREHOUSE='postgres://x'.*ducklake:postgres:"):
        open_warehouse(settings_from_env({**base, "QA_WAREHOUSE": "postgres://x"}))


def test_a_missing_extension_package_says_what_to_install():
    with pytest.raises(LakeUnavailable, match=r"duckdb-extension-ducklake.*not installed|not installed.*lake"):
        extension_file("no_such_extension")


def test_an_unreachable_catalog_is_a_clear_error(lake: Lake):
    broken = LakeWarehouse("ducklake:postgres:dbname=qa_no_such_database host=127.0.0.1", lake.data_path, lake.work_dir)
    with pytest.raises(LakeUnavailable, match="cannot attach the lake ducklake:postgres:dbname=qa_no_such_database"):
        with broken.connect():
            pass


def test_a_conflicting_commit_rolls_back_and_is_a_warehouse_conflict(lake: Lake):
    warehouse = lake.warehouse()
    with warehouse.connect() as con:
        con.execute("CREATE TABLE qa.counter AS SELECT 1 AS n")
    with warehouse.connect() as first, warehouse.connect() as second:
        first.execute("BEGIN TRANSACTION")
        first.execute("DELETE FROM qa.counter")
        first.execute("INSERT INTO qa.counter VALUES (2)")
        with pytest.raises(WarehouseConflict, match="conflicted with another writer"):
            with transaction(second):
                second.execute("DELETE FROM qa.counter")
                second.execute("INSERT INTO qa.counter VALUES (3)")
                first.execute("COMMIT")  # lands first: the second's delete of the same row loses
        assert second.execute("SELECT n FROM qa.counter").fetchall() == [(2,)]
    attempts = []

    def always_conflicting():
        attempts.append(1)
        raise WarehouseConflict("the commit conflicted with another writer's: Transaction conflict")

    with pytest.raises(WarehouseConflict, match="replacing x: still conflicting with other writers after 3 attempts"):
        retry_conflicts(always_conflicting, 3, "replacing x", wait_s=0.001)
    assert len(attempts) == 3


def run_cli(project: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, "--contracts", str(project / "quality.yaml"), *args], capture_output=True,
                          text=True, env={**os.environ, **env}, timeout=900)


def tables_of(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    return {f"{s}.{t}": [c for c in cols] for s, t, cols in con.execute(
        "SELECT table_schema, table_name, list(column_name ORDER BY ordinal_position) FROM information_schema.columns "
        "WHERE table_catalog = current_database() AND table_schema IN ('raw', 'published', 'qa') GROUP BY ALL").fetchall()}


def contents(con: duckdb.DuckDBPyConnection, table: str, columns: list[str], strip: list[str],
             since: dt.datetime) -> list[tuple]:
    """The table's rows without the columns that differ between any two runs, sorted; text with
    a run's own folders in it, and times of the runs themselves (after `since`), made comparable."""
    kept = [c for c in columns if c not in VOLATILE and not c.endswith("run_id")]
    rows = con.execute(f"SELECT {', '.join(chr(34) + c + chr(34) for c in kept)} FROM {table}").fetchall()

    def norm(value):
        if isinstance(value, str):
            for prefix in strip:
                value = value.replace(prefix, "<root>")
            return value
        if isinstance(value, float):
            return None if math.isnan(value) else round(value, 9)
        if isinstance(value, dt.datetime):
            now = since if value.tzinfo is None else since.astimezone()
            return "<during the runs>" if value >= now else value.isoformat()
        if isinstance(value, dt.date):
            return value.isoformat()
        if isinstance(value, (list, tuple)):
            return tuple(norm(v) for v in value)
        if isinstance(value, dict):
            return tuple(sorted((str(k), norm(v)) for k, v in value.items()))
        return value

    return sorted((tuple(norm(v) for v in row) for row in rows), key=repr)


@pytest.mark.slow
def test_the_pipeline_on_the_lake_equals_the_embedded_file(lake: Lake, tmp_path: Path):
    project = tmp_path / "project"
    write_demo(project)
    since = dt.datetime.now() - dt.timedelta(seconds=1)
    embedded_env = {"QA_DUCKDB_PATH": str(tmp_path / "embedded" / "quality.duckdb"),
                    "QA_OUTPUT_DIR": str(tmp_path / "embedded" / "output")}
    lake_env = {**lake.env(), "QA_DUCKDB_PATH": str(lake.work_dir / "unused.duckdb"),
                "QA_OUTPUT_DIR": str(tmp_path / "lake" / "output")}
    on_file = run_cli(project, embedded_env, "run")
    on_lake = run_cli(project, lake_env, "run")
    assert on_file.returncode == on_lake.returncode == 1, on_lake.stderr[-3000:]  # the demo's blocked file
    assert not (lake.work_dir / "unused.duckdb").exists()
    assert list(lake.data_path.rglob("*.parquet")), "the lake keeps its data as Parquet under QA_LAKE_DATA_PATH"

    with duckdb.connect(embedded_env["QA_DUCKDB_PATH"], read_only=True) as file_con, \
            lake.warehouse().connect(read_only=True) as lake_con:
        file_tables, lake_tables = tables_of(file_con), tables_of(lake_con)
        assert lake_tables == file_tables
        assert {"raw.orders", "published.orders", "qa.files", "qa.quarantine", "qa.column_profiles",
                "qa.check_results", "qa.row_anomalies", "qa.drift"} <= set(file_tables)
        differing = {}
        for table, columns in sorted(file_tables.items()):
            expected = contents(file_con, table, columns, [str(tmp_path / "embedded")], since)
            found = contents(lake_con, table, columns, [str(tmp_path / "lake")], since)
            if found != expected:
                first = next((i for i, (a, b) in enumerate(zip(found, expected, strict=False)) if a != b), None)
                differing[table] = (len(found), len(expected), columns,
                                    None if first is None else (found[first], expected[first]))
        assert differing == {}
        loaded = lake_con.execute("SELECT sum(rows_loaded), sum(rows_quarantined) FROM qa.files").fetchone()
        assert loaded[0] > 0 and loaded[1] > 0

    again = run_cli(project, lake_env, "run")  # nothing new: every file unchanged, nothing reloaded
    assert again.returncode == 0, again.stderr[-2000:]
    with lake.warehouse().connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM qa.files WHERE status NOT IN ('unchanged')").fetchone()[0] == \
            len(list((project / "landing").rglob("*.*")))


@pytest.mark.slow
def test_concurrent_runs_write_the_lake_at_once_and_a_reader_never_sees_half_a_partition(lake: Lake, tmp_path: Path):
    project = tmp_path / "project"
    project.mkdir()
    (project / "quality.yaml").write_text(CONTRACT)
    files = {}
    for n in range(8):
        ds = ("alpha", "beta")[n % 2]
        path = tmp_path / "incoming" / ds / f"{ds}_{n:02d}.csv"
        write_csv(path, 20_000 + 1000 * n, seed=n + 3)
        files[path] = ds
    env = {**os.environ, **lake.env(), "QA_DUCKDB_PATH": str(tmp_path / "work" / "unused.duckdb"),
           "QA_OUTPUT_DIR": str(tmp_path / "output"), "QA_CONTRACTS": str(project / "quality.yaml")}
    stop = tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", READER, lake.spec, str(lake.data_path), str(tmp_path / "reader"),
                               str(stop)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    paths = sorted(files)
    # 4 workers at once (alpha and beta files), and a fifth reloading alpha_00 against the first
    batches = [paths[0:2], paths[2:4], paths[4:6], paths[6:8], [paths[0]]]
    workers = []
    for i, batch in enumerate(batches):
        extra = ["--force"] if i in (0, 4) else []
        for_ds = files[batch[0]]
        workers.append(subprocess.Popen(
            [*CLI, "run", "--dataset", for_ds, *extra, *map(str, [p for p in batch if files[p] == for_ds])],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
        other = [p for p in batch if files[p] != for_ds]
        if other:
            workers.append(subprocess.Popen(
                [*CLI, "run", "--dataset", files[other[0]], *map(str, other)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env))
    outputs = [w.communicate(timeout=900) for w in workers]
    stop.touch()
    seen, reader_err = reader.communicate(timeout=120)
    raced = {0, len(workers) - 1}  # both reload alpha_00
    for index, (worker, (out, err)) in enumerate(zip(workers, outputs, strict=True)):
        assert not re.search(r"\block\b|E_WAREHOUSE_BUSY", out + err, re.IGNORECASE), err[-2000:]
        # Of two runs reloading one partition at once, the one whose validation another's reload
        # overtook is refused by the publish gate (write-audit-publish), as on the file
        overtaken = index in raced and "an older load of the partition than raw holds now" in out
        assert worker.returncode == 0 or overtaken, out[-2000:] + err[-3000:]
    assert any(workers[i].returncode == 0 for i in raced)
    assert reader.returncode == 0, reader_err[-3000:]
    report = json.loads(seen.strip().splitlines()[-1])
    assert report["torn"] == [] and report["checks"] > 0

    with lake.warehouse().connect(read_only=True) as con:
        for path, ds in files.items():
            rows = con.execute(f"SELECT count(*), count(DISTINCT _source_row) FROM raw.{ds} WHERE _partition_key = ?",
                               [path.name]).fetchone()
            loads = con.execute("SELECT rows_read, rows_loaded, rows_quarantined FROM qa.files WHERE dataset = ? "
                                "AND partition_key = ? AND status LIKE 'loaded%' ORDER BY finished",
                                [ds, path.name]).fetchall()
            read, loaded, quarantined = loads[-1]
            written = len(path.read_text().splitlines()) - 1
            assert (read, loaded + quarantined, rows) == (written, written, (loaded, loaded)), path.name
            assert len(loads) == (2 if path == paths[0] else 1)  # the raced partition: loaded twice, held once
            published = con.execute(f"SELECT count(*) FROM published.{ds} WHERE _partition_key = ?",
                                    [path.name]).fetchone()[0]
            assert published == loaded


def test_a_load_that_loses_the_race_to_create_its_table_commits_again_without_staging_again(
        lake: Lake, tmp_path: Path, monkeypatch):
    """Two workers loading a new dataset's first files at once both create its raw table; the
    loser's commit conflicts. Its staged rows are published again at once, not the whole step rerun."""
    (tmp_path / "quality.yaml").write_text(CONTRACT)
    alpha = load_contract(tmp_path / "quality.yaml").dataset("alpha")
    first, second = tmp_path / "a1.csv", tmp_path / "a2.csv"
    write_csv(first, 300, seed=4)
    write_csv(second, 200, seed=5)
    other_worker = lake.warehouse(memory_limit="900MB")  # a DuckDB instance of its own: another worker
    evolve, attempts = commit.evolve_raw_table, []

    def racing(con, table, staged):
        changes = evolve(con, table, staged)  # raw.alpha created, uncommitted ...
        if staged.audit.partition_key == "a1.csv":
            attempts.append(changes)
            if len(attempts) == 1:  # ... while another worker creates and commits it first
                assert load_file(other_worker, second, alpha, "a2.csv", "other-run").status == "loaded_with_errors"
        return changes

    monkeypatch.setattr(commit, "evolve_raw_table", racing)
    staged = []
    monkeypatch.setattr(load, "stage_with_scan", lambda *a, **k: staged.append(a[3]) or stage_with_scan(*a, **k))
    audit = load_file(lake.warehouse(), first, alpha, "a1.csv", "this-run")
    assert (audit.status, audit.rows_read, audit.rows_loaded) == ("loaded", 300, 300)
    assert len(attempts) == 2 and staged == ["a1.csv", "a2.csv"]  # committed twice, staged once
    with lake.warehouse().connect(read_only=True) as con:
        assert con.execute("SELECT _partition_key, count(*), any_value(_run_id) FROM raw.alpha GROUP BY 1 ORDER BY 1"
                           ).fetchall() == [("a1.csv", 300, "this-run"), ("a2.csv", 200, "other-run")]
        assert con.execute("SELECT partition_key, rows_loaded FROM qa.files ORDER BY 1").fetchall() == [
            ("a1.csv", 300), ("a2.csv", 200)]


def test_a_step_whose_commit_conflicts_runs_again_then_fails_with_the_conflict(monkeypatch):
    monkeypatch.setenv("QA_LAKE_RETRIES", "2")
    calls = []

    def build(fail_times: int):
        @dg.asset(name=f"conflicted_{fail_times}")
        @retried_on_conflict
        def conflicted(context: dg.AssetExecutionContext) -> int:
            calls.append(context.retry_number)
            if len(calls) <= fail_times:
                raise duckdb.TransactionException(
                    "TransactionContext Error: Failed to commit: Failed to commit DuckLake transaction. "
                    "Exceeded the maximum retry count of 20")
            return len(calls)
        return conflicted

    with dg.instance_for_test() as instance:
        result = dg.materialize([build(2)], instance=instance)
        assert result.success and calls == [0, 1, 2]
        calls.clear()
        failed = dg.materialize([build(5)], instance=instance, raise_on_error=False)
        assert not failed.success and calls == [0, 1, 2]  # QA_LAKE_RETRIES=2: three attempts, then the error
        failure = failed.failure_data_for_node("conflicted_5")
        assert "Failed to commit DuckLake transaction" in str(failure.error)


def test_make_test_runs_the_lake_tests_in_a_venv_with_the_lake_extra():
    dry_run = subprocess.run(["make", "-n", "test", "VENV=/tmp/qa-venv"], cwd=Path(__file__).parent.parent,
                             capture_output=True, text=True, timeout=60)
    assert dry_run.returncode == 0, dry_run.stderr
    assert "make --no-print-directory test-lake VENV=/tmp/qa-venv" in dry_run.stdout
    lake_run = subprocess.run(["make", "-n", "test-lake", "VENV=/tmp/qa-venv"], cwd=Path(__file__).parent.parent,
                              capture_output=True, text=True, timeout=60).stdout
    assert "/tmp/qa-venv-lake/bin/pip install --quiet -e '.[dev,lake]'" in lake_run
    assert "QA_LAKE_TESTS=1 /tmp/qa-venv-lake/bin/pytest quality_assets_tests/test_lake.py" in lake_run


def test_an_object_store_data_path_loads_httpfs_from_its_package(lake: Lake):
    """No object store here: the lake attaches with its data path on S3 (httpfs LOADed from the
    wheel, nothing downloaded) and says so when asked where its files go."""
    remote = LakeWarehouse(lake.spec, "s3://qa-test-bucket/lake/", lake.work_dir)
    with remote.connect() as con:
        loaded = {name for name, on in con.execute(
            "SELECT extension_name, loaded FROM duckdb_extensions()").fetchall() if on}
        assert {"ducklake", "postgres_scanner", "httpfs"} <= loaded
        assert con.execute("SELECT value FROM lake.options() WHERE option_name = 'data_path'").fetchone()[0] \
            == "s3://qa-test-bucket/lake/"
