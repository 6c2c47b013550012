"""The command line end to end, as a user runs it: the installed `quality-assets` script."""

import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest

from quality_assets.warehouse import Warehouse, exclusive_lock

SCRIPT = shutil.which("quality-assets") or str(Path(sys.executable).with_name("quality-assets"))


def run_cli(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "DAGSTER_HOME"))}
    environ.update(env or {})
    return subprocess.run([SCRIPT, *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    root = tmp_path_factory.mktemp("demo")
    result = run_cli("demo", "--dir", str(root / "quality_demo"), cwd=root)
    return root / "quality_demo", result


def test_demo_runs_the_pipeline_and_says_where_to_look(demo):
    root, result = demo
    assert result.returncode == 0, result.stderr
    table = result.stdout
    assert "orders_20261103.csv" in table and "loaded_with_errors" in table
    # the last orders file has a currency nobody agreed on: an error rule keeps it out of published
    assert "5 file(s): 2 clean, 2 with warnings, 1 failed an error check" in table
    assert "not published: blocked by accepted_values_currency" in table
    assert f"warehouse:  {root / 'warehouse' / 'quality.duckdb'}" in table
    assert "dagster dev" in table
    report = root / "output" / "orders" / "orders_20261103.csv" / "report.html"
    assert f"a report:   {report}  (open it in a browser; 5 written)" in table and report.is_file()
    assert "Traceback" not in result.stderr and "Stack Trace" not in result.stderr  # failures are in the table
    assert "[########################] 5/5" in result.stderr  # progress was shown
    with duckdb.connect(str(root / "warehouse" / "quality.duckdb"), read_only=True) as con:
        codes = dict(con.execute(
            "SELECT error_code, count(*) FROM qa.quarantine WHERE dataset = 'orders' GROUP BY 1"
        ).fetchall())
        assert codes == {"E_COLUMN_COUNT": 1, "E_NUMERIC_FORMAT": 1, "E_DATE_FORMAT": 1, "E_ENCODING": 1}
        for dataset, loaded, quarantined, read in con.execute(
            "SELECT dataset, sum(rows_loaded), sum(rows_quarantined), sum(rows_read) FROM qa.files GROUP BY 1"
        ).fetchall():
            raw_rows = con.execute(f'SELECT count(*) FROM raw."{dataset}"').fetchone()[0]
            assert raw_rows == loaded and loaded + quarantined == read
        assert con.execute('SELECT count(*) FROM raw."customers"').fetchone()[0] == 500


def test_run_again_is_a_noop_then_picks_up_a_changed_file(demo):
    root, _ = demo
    env = {"QA_CONTRACTS": str(root / "quality.yaml")}
    again = run_cli("run", cwd=root, env=env)
    assert again.returncode == 0
    assert "nothing to do" in again.stderr
    changed = root / "landing" / "orders" / "orders_20261101.csv"
    changed.write_text(changed.read_text() + "999999,1,2026-11-01,1.00,EUR,paid,true\n")
    result = run_cli("run", cwd=root, env=env)
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("orders ")]
    assert len(rows) == 1 and "orders_20261101.csv" in rows[0] and "2,001" in rows[0]


def test_error_check_failure_exits_1_and_names_the_file(demo, tmp_path):
    root, _ = demo
    blob = tmp_path / "blob.csv"
    blob.write_bytes(b"\x00\xff\x00binary" * 50)
    result = run_cli("--contracts", str(root / "quality.yaml"), "run", "--dataset", "orders", str(blob), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "landed" in result.stderr and (root / "landing" / "orders" / "blob.csv").exists()
    line = next(line for line in result.stdout.splitlines() if "blob.csv" in line)
    assert "file_parsed(error)" in line and "rejected" in line


def test_bad_contract_exits_2_with_file_and_line(tmp_path):
    contract = tmp_path / "quality.yaml"
    contract.write_text("datasets:\n  orders:\n    columns:\n      amount: dubble\n    colour: red\n")
    result = run_cli("validate", cwd=tmp_path)
    assert result.returncode == 2
    assert f"{contract}:4: dataset 'orders', columns.amount.type: unknown type 'dubble'" in result.stderr
    assert f"{contract}:5: dataset 'orders': unknown key 'colour'" in result.stderr
    assert "Traceback" not in result.stderr


def test_validate_prints_the_datasets(demo):
    root, _ = demo
    result = run_cli("validate", cwd=root)
    assert result.returncode == 0, result.stderr
    assert "valid, 3 dataset(s)" in result.stdout and "orders: auto files '*.csv'" in result.stdout


def test_bad_usage_exits_2(tmp_path):
    assert run_cli(cwd=tmp_path).returncode == 2
    result = run_cli("run", str(tmp_path / "missing.csv"), cwd=tmp_path,
                     env={"QA_CONTRACTS": str(tmp_path / "none.yaml")})
    assert result.returncode == 2 and "contract file not found" in result.stderr


def test_concurrent_runs_of_different_partitions_queue_on_the_warehouse(tmp_path):
    """Three processes load three files into one DuckDB file at the same time; none fails."""
    (tmp_path / "quality.yaml").write_text(
        "datasets:\n  big:\n    landing: {path: landing, glob: '*.csv'}\n"
        "    columns: {id: bigint, value: double, label: string}\n"
    )
    landing = tmp_path / "landing"
    landing.mkdir()
    with duckdb.connect() as con:
        for n in range(3):
            con.execute(
                f"COPY (SELECT i AS id, i * 0.5 AS value, 'label ' || i AS label FROM range({n * 1000}, {n * 1000} + 300000) t(i)) "
                f"TO '{landing / f'part{n}.csv'}' (HEADER)"
            )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "DAGSTER_HOME"))}
    env["QA_CONTRACTS"] = str(tmp_path / "quality.yaml")
    warehouse = Warehouse(tmp_path / "warehouse" / "quality.duckdb")
    # Hold the warehouse while the three start, so that all three are surely waiting for it at once
    # (on a busy machine their start-up alone can take longer than a load).
    with exclusive_lock(warehouse.lock_path, timeout_s=10):
        procs = [
            subprocess.Popen([SCRIPT, "run", str(landing / f"part{n}.csv")], cwd=tmp_path, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for n in range(3)
        ]
        time.sleep(15)
        assert [p.poll() for p in procs] == [None, None, None]  # all three waiting at once
        released = dt.datetime.now()
    outputs = [p.communicate(timeout=300) for p in procs]
    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, out + err
    with duckdb.connect(str(tmp_path / "warehouse" / "quality.duckdb"), read_only=True) as con:
        counts = dict(con.execute('SELECT _partition_key, count(*) FROM raw."big" GROUP BY 1').fetchall())
        assert counts == {"part0.csv": 300000, "part1.csv": 300000, "part2.csv": 300000}
        finished = [row[0] for row in con.execute("SELECT finished FROM qa.files").fetchall()]
    assert len(finished) == 3 and all(at > released for at in finished), (released, finished)


def test_run_waits_for_a_process_holding_the_warehouse(tmp_path):
    (tmp_path / "quality.yaml").write_text("datasets:\n  small:\n    landing: {path: landing}\n")
    (tmp_path / "landing").mkdir()
    (tmp_path / "landing" / "a.csv").write_text("x,y\n1,2\n")
    env = {"QA_CONTRACTS": str(tmp_path / "quality.yaml")}
    holder = subprocess.Popen([
        sys.executable, "-c",
        "import sys, time; from quality_assets.warehouse import Warehouse\n"
        f"w = Warehouse({str(tmp_path / 'warehouse' / 'quality.duckdb')!r})\n"
        "with w.connect():\n    print('held', flush=True); time.sleep(3)\n",
    ], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    started = time.monotonic()
    result = run_cli("run", cwd=tmp_path, env=env)
    waited = time.monotonic() - started
    holder.wait(timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "small" in result.stdout and "loaded" in result.stdout
    assert waited > 1.0  # it queued behind the holder instead of failing on DuckDB's lock
