"""Retention (`quality-assets cleanup`) and warehouse backup/restore."""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from quality_assets.contract import load_contract
from quality_assets.ingest import load_file
from quality_assets.retention import (
    find_old_partitions,
    parse_age,
    partition_tables,
    remove_partitions,
)
from quality_assets.warehouse import Warehouse

pytestmark = pytest.mark.clock  # date-sensitive: `make test-future` runs it a year ahead too

SCRIPT = str(Path(sys.executable).with_name("quality-assets"))
OLD_DAY = dt.date.today() - dt.timedelta(days=50)
NEW_DAY = dt.date.today() - dt.timedelta(days=2)
CONTRACT = """\
datasets:
  orders:
    landing: {path: landing/orders, glob: "*.csv"}
    columns: {id: bigint, amount: double}
  sales:
    landing: {path: landing/sales}
    partitioning: daily
    daily: {start: 2020-01-01, file_pattern: 'sales_(\\d{8})'}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "quality.yaml").write_text(CONTRACT)
    for name in ("orders", "sales"):
        (tmp_path / "landing" / name).mkdir(parents=True)
    return tmp_path


def wh(project: Path) -> Warehouse:
    return Warehouse(project / "warehouse" / "quality.duckdb", lock_timeout_s=30, memory_limit="256MB")


def age_loads(project: Path, dataset: str, partition: str, days: int) -> None:
    """Pretend a partition was last loaded `days` ago."""
    with wh(project).connect() as con:
        con.execute("UPDATE qa.files SET finished = finished - INTERVAL (?) DAY WHERE dataset = ? AND partition_key = ?",
                    [days, dataset, partition])


def landed(project: Path, dataset: str, name: str, text: str) -> Path:
    path = project / "landing" / dataset / name
    path.write_text(text)
    return path


@pytest.fixture
def loaded(project: Path) -> Path:
    contract = load_contract(project / "quality.yaml")
    orders = contract.dataset("orders")
    for name, text in {"old.csv": "id,amount\n1,1\n2,x\n", "new.csv": "id,amount\n3,3\n"}.items():
        load_file(wh(project), landed(project, "orders", name, text), orders, name, f"run-{name}")
    from quality_assets.daily import load_days

    landed(project, "sales", f"sales_{OLD_DAY:%Y%m%d}.csv", "id\n1\n")
    landed(project, "sales", f"sales_{NEW_DAY:%Y%m%d}.csv", "id\n2\n")
    load_days(wh(project), contract.dataset("sales"), [OLD_DAY.isoformat(), NEW_DAY.isoformat()], "run-sales")
    age_loads(project, "orders", "old.csv", 40)
    with wh(project).connect() as con:  # a later stage's table, keyed by dataset and partition
        con.execute("CREATE TABLE qa.column_profiles (dataset VARCHAR, partition_key VARCHAR, column_name VARCHAR)")
        con.execute("INSERT INTO qa.column_profiles VALUES ('orders', 'old.csv', 'id'), ('orders', 'new.csv', 'id')")
    for partition in ("orders/old.csv", "orders/new.csv", f"sales/{OLD_DAY}"):
        (project / "output" / partition).mkdir(parents=True)
        (project / "output" / partition / "report.html").write_text("<html/>")
    return project


def test_parse_age():
    assert parse_age("30d") == dt.timedelta(days=30)
    assert parse_age("12h") == dt.timedelta(hours=12)
    for bad in ("30", "thirty days", "0d", "-1d"):
        with pytest.raises(ValueError, match="expected a duration such as 30d"):
            parse_age(bad)


def test_find_old_partitions_by_last_load_and_by_day(loaded):
    contract = load_contract(loaded / "quality.yaml")
    cutoff = dt.datetime.now() - dt.timedelta(days=30)
    with wh(loaded).connect() as con:
        old = find_old_partitions(con, contract, cutoff, {"orders": {"old.csv", "new.csv", "gone.csv"}})
        assert partition_tables(con) == ["column_profiles", "files", "quarantine"]
    found = {(p.dataset, p.partition_key) for p in old}
    # orders: by last load; gone.csv is a Dagster key whose file vanished before it ever loaded
    assert ("orders", "old.csv") in found and ("orders", "gone.csv") in found and ("orders", "new.csv") not in found
    # sales: by the day itself, whenever it was loaded (both were loaded just now)
    assert ("sales", OLD_DAY.isoformat()) in found and ("sales", NEW_DAY.isoformat()) not in found
    old_day = next(p for p in old if p.partition_key == OLD_DAY.isoformat())
    assert old_day.landing_files == [loaded / "landing" / "sales" / f"sales_{OLD_DAY:%Y%m%d}.csv"]


def test_remove_partitions_everywhere_but_the_landing_folder(loaded):
    contract = load_contract(loaded / "quality.yaml")
    with wh(loaded).connect() as con:
        old = [p for p in find_old_partitions(con, contract, dt.datetime.now() - dt.timedelta(days=30))
               if p.dataset == "orders"]
        assert [p.partition_key for p in old] == ["old.csv"]
        dry = remove_partitions(con, old, loaded / "output", dry_run=True)
        assert dry.rows == {'raw."orders"': 1, 'qa."column_profiles"': 1, 'qa."files"': 1, 'qa."quarantine"': 1}
        assert con.execute('SELECT count(*) FROM raw."orders"').fetchone()[0] == 2  # nothing removed
        assert (loaded / "output" / "orders" / "old.csv").is_dir()
        removal = remove_partitions(con, old, loaded / "output")
        assert removal.rows == dry.rows
        assert con.execute('SELECT _partition_key FROM raw."orders"').fetchall() == [("new.csv",)]
        assert con.execute("SELECT partition_key FROM qa.column_profiles").fetchall() == [("new.csv",)]
        assert con.execute("SELECT DISTINCT partition_key FROM qa.files WHERE dataset = 'orders'").fetchall() == [("new.csv",)]
        assert con.execute("SELECT count(*) FROM qa.quarantine WHERE dataset = 'orders'").fetchone()[0] == 0
        [(partition, rows_removed)] = con.execute("SELECT partition_key, rows_removed FROM qa.retention").fetchall()
        assert (partition, rows_removed) == ("old.csv", 2)
    assert not (loaded / "output" / "orders" / "old.csv").exists()
    assert (loaded / "output" / "orders" / "new.csv" / "report.html").exists()
    assert (loaded / "landing" / "orders" / "old.csv").exists()  # never touched unless asked
    with wh(loaded).connect() as con:
        gone = remove_partitions(con, [p for p in find_old_partitions(con, contract, dt.datetime.now() + dt.timedelta(days=1))
                                       if p.partition_key == "new.csv"], loaded / "output", delete_landing=True)
    assert gone.landing_files == [loaded / "landing" / "orders" / "new.csv"]
    assert not (loaded / "landing" / "orders" / "new.csv").exists()


def run_cli(*args: str, project: Path, home: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "DAGSTER_"))}
    env["QA_CONTRACTS"] = str(project / "quality.yaml")
    if home is not None:
        env["DAGSTER_HOME"] = str(home)
    return subprocess.run([SCRIPT, *args], cwd=project, env=env, capture_output=True, text=True, timeout=300)


def test_cleanup_command_with_a_dagster_instance(project):
    home = project / "dagster_home"
    home.mkdir()
    landed(project, "orders", "a.csv", "id,amount\n1,1\n")
    landed(project, "orders", "b.csv", "id,amount\n2,2\n")
    assert run_cli("run", project=project, home=home).returncode == 0  # recorded in the instance at DAGSTER_HOME
    age_loads(project, "orders", "a.csv", 45)

    dry = run_cli("cleanup", "--older-than", "30d", "--dry-run", project=project, home=home)
    assert dry.returncode == 0, dry.stderr
    assert "dry run" in dry.stdout and "orders: would remove 1 partition(s): a.csv" in dry.stdout
    assert "Dagster: would remove 1 dynamic partition key(s)" in dry.stdout
    assert "kept 1 landed file(s)" in dry.stdout

    real = run_cli("cleanup", "--older-than", "30d", project=project, home=home)
    assert real.returncode == 0, real.stderr
    assert "orders: removed 1 partition(s): a.csv" in real.stdout and 'removed 1 row(s) from raw."orders"' in real.stdout
    assert "Dagster: removed 1 dynamic partition key(s)" in real.stdout
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_dynamic_partitions("orders_files") == ["b.csv"]
    # The removed file stays in the landing folder and is not loaded again ...
    again = run_cli("run", project=project, home=home)
    assert again.returncode == 0 and "nothing to do" in again.stderr
    # ... unless it changes.
    landed(project, "orders", "a.csv", "id,amount\n1,1\n9,9\n")
    changed = run_cli("run", project=project, home=home)
    assert changed.returncode == 0 and "a.csv" in changed.stdout

    nothing = run_cli("cleanup", "--older-than", "30d", project=project)  # no DAGSTER_HOME
    assert "nothing to remove" in nothing.stdout and "DAGSTER_HOME is not set" in nothing.stdout
    bad = run_cli("cleanup", "--older-than", "a month", project=project)
    assert bad.returncode == 2 and "expected a duration such as 30d" in bad.stderr
    unknown = run_cli("cleanup", "--older-than", "1d", "--dataset", "nope", project=project)
    assert unknown.returncode == 2 and "no dataset 'nope'" in unknown.stderr


def test_backup_and_restore_commands(project):
    landed(project, "orders", "a.csv", "id,amount\n1,1\n2,x\n")
    assert run_cli("run", project=project).returncode == 0
    backup = run_cli("backup", str(project / "backup"), project=project)
    assert backup.returncode == 0, backup.stderr
    assert (project / "backup" / "schema.sql").exists() and (project / "backup" / "quality_assets_backup.json").exists()
    again = run_cli("backup", str(project / "backup"), project=project)
    assert again.returncode == 2 and "not empty" in again.stderr
    with wh(project).connect() as con:
        con.execute('DELETE FROM raw."orders"')
    refused = run_cli("restore", str(project / "backup"), project=project)
    assert refused.returncode == 2 and "--force" in refused.stderr
    restored = run_cli("restore", str(project / "backup"), "--force", project=project)
    assert restored.returncode == 0, restored.stderr
    with duckdb.connect(str(project / "warehouse" / "quality.duckdb"), read_only=True) as con:
        assert con.execute('SELECT count(*) FROM raw."orders"').fetchone()[0] == 1
        assert con.execute("SELECT count(*) FROM qa.quarantine").fetchone()[0] == 1
    not_a_backup = run_cli("restore", str(project / "landing"), "--force", project=project)
    assert not_a_backup.returncode == 2 and "is not a warehouse backup" in not_a_backup.stderr
