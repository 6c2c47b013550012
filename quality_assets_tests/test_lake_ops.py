"""Operations on a real DuckLake (a fresh PostgreSQL catalog and data folder per test): retention
deletes the removed partitions' files, backup and restore bring a lost lake back, and `migrate`
copies an embedded warehouse into a lake that then carries on from it. The commands are
OPERATIONS.md's own blocks."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from deployment_support import command_lines, drop_database, operations_blocks, pg_connect
from lake_support import Lake
from test_lake import contents, tables_of

from quality_assets.demo import write_demo
from quality_assets.lake_ops import catalog_dsn

BIN = Path(sys.executable).parent


def env_for(lake: Lake, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "DAGSTER_"))}
    env.update({"PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}", "QA_CONTRACTS": str(tmp_path / "project" / "quality.yaml"),
                "QA_DUCKDB_PATH": str(lake.work_dir / "quality.duckdb"), "QA_OUTPUT_DIR": str(tmp_path / "output"),
                **lake.env(), **extra})
    return env


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "quality-assets"), *args], env=env, capture_output=True, text=True, timeout=900)


def run_block(name: str, env: dict[str, str]) -> list[subprocess.CompletedProcess]:
    results = []
    for line in command_lines(operations_blocks()[name]):
        result = subprocess.run(["bash", "-c", line], env=env, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"{name}: {line}\n{result.stdout}\n{result.stderr}"
        results.append(result)
    return results


def read_lake(lake: Lake, sql: str) -> list[tuple]:
    """A fresh read-only attach (never a cached instance: the catalog may have been replaced)."""
    con = lake.warehouse().attach(read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def referenced_files(lake: Lake) -> set[Path]:
    """Every data and delete file the lake's current snapshot uses."""
    con = lake.warehouse().attach(read_only=True)
    try:
        tables = con.execute("SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'lake'").fetchall()
        found = set()
        for schema, table in tables:
            for data, delete in con.execute(
                    "SELECT data_file, delete_file FROM ducklake_list_files('lake', ?, schema => ?)", [table, schema]).fetchall():
                found |= {Path(p).resolve() for p in (data, delete) if p}
        return found
    finally:
        con.close()


def files_on_disk(lake: Lake) -> set[Path]:
    return {p.resolve() for p in lake.data_path.rglob("*.parquet")}


def demo_on_the_lake(lake: Lake, tmp_path: Path) -> dict[str, str]:
    write_demo(tmp_path / "project")
    env = env_for(lake, tmp_path)
    result = cli(env, "run")
    assert result.returncode == 1, result.stderr[-3000:]  # the demo's blocked file
    return env


@pytest.mark.slow
def test_cleanup_on_the_lake_deletes_the_removed_partitions_files(lake: Lake, tmp_path: Path):
    env = demo_on_the_lake(lake, tmp_path)
    orders = set(read_lake(lake, "SELECT DISTINCT data_file FROM ducklake_list_files('lake', 'orders', schema => 'raw')"))
    customers = read_lake(lake, 'SELECT count(*) FROM raw."customers"')
    assert orders and customers[0][0] > 0
    dry, real = run_block("lake-retention", env)  # nothing is 30 days old: no partition goes
    assert "nothing to remove" in dry.stdout and "lake: would expire" in dry.stdout, dry.stdout
    assert "lake: expired" in real.stdout, real.stdout
    time.sleep(1.1)
    before = files_on_disk(lake)

    preview = cli(env, "cleanup", "--older-than", "1s", "--dataset", "orders", "--keep-snapshots", "0s", "--dry-run")
    assert preview.returncode == 0, preview.stderr
    assert "orders: would remove" in preview.stdout and "lake: would expire" in preview.stdout, preview.stdout
    assert files_on_disk(lake) == before and read_lake(lake, 'SELECT count(*) FROM raw."orders"')[0][0] > 0

    result = cli(env, "cleanup", "--older-than", "1s", "--dataset", "orders", "--keep-snapshots", "0s")
    assert result.returncode == 0, result.stderr
    assert "orders: removed" in result.stdout and "lake: expired" in result.stdout, result.stdout
    assert read_lake(lake, 'SELECT count(*) FROM raw."orders"') == [(0,)]
    assert read_lake(lake, "SELECT count(*) FROM qa.files WHERE dataset = 'orders'") == [(0,)]
    # The removed partitions' files are gone from the data path; every file left is one the lake uses.
    after = files_on_disk(lake)
    assert not {Path(p).resolve() for (p,) in orders} & after
    assert after == referenced_files(lake) and len(after) < len(before)
    # The other dataset is whole.
    assert read_lake(lake, 'SELECT count(*) FROM raw."customers"') == customers
    assert read_lake(lake, "SELECT count(*) FROM lake.snapshots()")[0][0] == 1  # only the newest is kept


@pytest.mark.slow
def test_backup_and_restore_of_the_lake(lake: Lake, tmp_path: Path):
    env = demo_on_the_lake(lake, tmp_path)
    env["BACKUP_DIR"] = str(tmp_path / "backups")
    count_all = ("SELECT (SELECT count(*) FROM raw.\"orders\"), (SELECT count(*) FROM raw.\"customers\"), "
                 "(SELECT count(*) FROM qa.files), (SELECT count(*) FROM qa.column_profiles)")
    before = read_lake(lake, count_all)
    [backup] = run_block("lake-backup", env)
    assert "catalog (pg_dump)" in backup.stdout, backup.stdout
    assert "password" not in backup.stdout or "password=***" in backup.stdout
    # After the backup: a partition removed (so the restore must bring its rows and files back) ...
    time.sleep(1.1)
    removed = cli(env, "cleanup", "--older-than", "1s", "--dataset", "orders", "--keep-snapshots", "0s")
    assert removed.returncode == 0 and read_lake(lake, 'SELECT count(*) FROM raw."orders"') == [(0,)], removed.stdout
    # ... then both halves lost: the catalog database emptied, the data path deleted.
    drop_database(lake.database)
    with pg_connect("postgres") as admin:
        admin.execute(f'CREATE DATABASE "{lake.database}"')
    shutil.rmtree(lake.data_path)

    refused = cli(env, "restore", env["BACKUP_DIR"] + "/lake")  # no --force needed: nothing is there
    assert refused.returncode == 0, refused.stderr
    assert read_lake(lake, count_all) == before
    # Every row reads back from the restored files.
    for (table,) in read_lake(lake, "SELECT schema_name || '.\"' || table_name || '\"' FROM duckdb_tables() "
                                    "WHERE database_name = 'lake'"):
        read_lake(lake, f"SELECT * FROM {table}")

    # A data path holding files is replaced only with --force (OPERATIONS.md's block), and kept aside.
    refused = cli(env, "restore", env["BACKUP_DIR"] + "/lake")
    assert refused.returncode != 0 and "pass --force" in refused.stderr, refused.stderr
    [restored] = run_block("lake-restore", env)
    assert "previous data kept at" in restored.stdout
    assert read_lake(lake, count_all) == before
    assert list(lake.data_path.parent.glob(f"{lake.data_path.name}.before-restore-*"))


@pytest.mark.slow
def test_migrate_copies_the_embedded_warehouse_into_a_lake(lake: Lake, tmp_path: Path):
    write_demo(tmp_path / "project")
    embedded = tmp_path / "embedded" / "quality.duckdb"
    file_env = {**env_for(lake, tmp_path, QA_DUCKDB_PATH=str(embedded))}
    for name in ("QA_WAREHOUSE", "QA_LAKE_DATA_PATH"):
        file_env.pop(name)
    assert cli(file_env, "run").returncode == 1  # the embedded warehouse, with the demo's blocked file

    env = {**file_env, "LAKE": lake.spec, "QA_LAKE_DATA_PATH": str(lake.data_path)}
    [migrated] = run_block("migrate", env)
    assert "migrated" in migrated.stdout and "raw.orders:" in migrated.stdout, migrated.stdout

    with duckdb.connect(str(embedded), read_only=True) as file_con:
        lake_con = lake.warehouse().attach(read_only=True)
        try:
            file_tables = tables_of(file_con)
            assert tables_of(lake_con) == file_tables
            assert {"raw.orders", "published.orders", "qa.files", "qa.column_profiles"} <= set(file_tables)
            for table, columns in sorted(file_tables.items()):
                exact = dt.datetime.max  # a copy: no time is the run's own, nothing made comparable
                assert contents(lake_con, table, columns, [], exact) == contents(file_con, table, columns, [], exact), table
        finally:
            lake_con.close()

    again = cli(env, "migrate", "--to", lake.spec, "--data-path", str(lake.data_path))
    assert again.returncode != 0 and "already holds rows" in again.stderr, again.stderr

    # The lake carries on where the file stopped: the landed files are all known and unchanged.
    lake_env = {**env, "QA_WAREHOUSE": lake.spec}
    by_status = "SELECT status, count(*) FROM qa.files GROUP BY 1"
    before = dict(read_lake(lake, by_status))
    rerun = cli(lake_env, "run")
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    after = dict(read_lake(lake, by_status))
    landed = len([p for p in (tmp_path / "project" / "landing").rglob("*") if p.is_file()])
    # nothing loaded again: one audit row per landed file, as the file had it
    assert after == before and sum(n for status, n in after.items() if status != "unchanged") == landed


def test_catalog_dsn_and_bad_lake_specs():
    assert catalog_dsn("ducklake:postgres:dbname=lake host=db") == "dbname=lake host=db"
    with pytest.raises(ValueError, match="expected ducklake:postgres:"):
        catalog_dsn("ducklake:/tmp/catalog.ducklake")
