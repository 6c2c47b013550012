"""The DuckLake backend: chosen by QA_WAREHOUSE, every stage and table on a real lake (a fresh
PostgreSQL catalog and data folder per test), results equal to the embedded DuckDB file on the
same files, commit conflicts turned into a clear, retried error."""

from __future__ import annotations

import datetime as dt
import math
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from lake_support import Lake

from quality_assets.config import settings_from_env
from quality_assets.demo import write_demo
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
    assert default_data.data_path == str(tmp_path / "lake")
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


def contents(con: duckdb.DuckDBPyConnection, table: str, columns: list[str], strip: list[str]) -> list[tuple]:
    """The table's rows without the columns that differ between any two runs, sorted; text with
    a run's own folders in it made comparable."""
    kept = [c for c in columns if c not in VOLATILE]
    rows = con.execute(f"SELECT {', '.join(chr(34) + c + chr(34) for c in kept)} FROM {table}").fetchall()

    def norm(value):
        if isinstance(value, str):
            for prefix in strip:
                value = value.replace(prefix, "<root>")
            return value
        if isinstance(value, float):
            return None if math.isnan(value) else round(value, 9)
        if isinstance(value, (dt.datetime, dt.date)):
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
        for table, columns in sorted(file_tables.items()):
            expected = contents(file_con, table, columns, [str(tmp_path / "embedded")])
            found = contents(lake_con, table, columns, [str(tmp_path / "lake")])
            assert found == expected, table
        loaded = lake_con.execute("SELECT sum(rows_loaded), sum(rows_quarantined) FROM qa.files").fetchone()
        assert loaded[0] > 0 and loaded[1] > 0

    again = run_cli(project, lake_env, "run")  # nothing new: every file unchanged, nothing reloaded
    assert again.returncode == 0, again.stderr[-2000:]
    with lake.warehouse().connect(read_only=True) as con:
        assert con.execute("SELECT count(*) FROM qa.files WHERE status NOT IN ('unchanged')").fetchone()[0] == \
            len(list((project / "landing").rglob("*.*")))
