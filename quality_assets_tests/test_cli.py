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
    assert "5 file(s): 2 passed, 2 warnings, 1 blocked; 4 published" in table
    assert "  orders/orders_20261103.csv: not published: blocked by accepted_values_currency; 4 row(s) quarantined (" in table
    assert f"warehouse:  {root / 'warehouse' / 'quality.duckdb'}" in table
    report = root / "output" / "orders" / "orders_20261103.csv" / "report.html"
    assert f"a report:   {report}  (open it in a browser; 5 written by this run)" in table and report.is_file()
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


def outcome_column(table: str) -> dict[str, str]:
    """file -> its outcome, from the summary table."""
    lines = table.split("\n\n")[0].splitlines()
    start = lines[0].index("outcome")
    return {line.split()[1]: line[start:].strip() for line in lines[2:]}


def test_demo_words_agree_with_the_reports_and_its_hints_work_as_printed(demo):
    root, result = demo
    outcomes = outcome_column(result.stdout)
    assert outcomes == {"orders_20261101.csv": "passed, published", "orders_20261102.csv": "passed, published",
                        "orders_20261103.csv": "blocked", "customers_2026w45.txt.gz": "warnings, published",
                        "events_20261103.jsonl": "warnings, published"}
    headline = {"passed": "Pass: ", "warnings": "Warnings: ", "blocked": "Fail: "}
    for dataset in ("orders", "customers", "events"):
        for folder in (root / "output" / dataset).iterdir():
            page = (folder / "report.html").read_text()
            assert headline[outcomes[folder.name].split(",")[0]] in page, folder.name
    hints = dict(line.strip().split(":", 1) for line in result.stdout.split("Where to look:")[1].splitlines()
                 if line.startswith("  ") and ":" in line)
    assert "duckdb " not in hints["query it"].split(" -c ")[0]  # no DuckDB CLI assumed: the venv's Python
    query = subprocess.run(["bash", "-c", hints["query it"].strip()], capture_output=True, text=True, timeout=120)
    assert query.returncode == 0 and "orders_20261103.csv" in query.stdout and "loaded_with_errors" in query.stdout
    ui = hints["the UI"].strip().split("  (")[0]
    assert ui == f"{SCRIPT} --contracts {root / 'quality.yaml'} ui"
    assert subprocess.run(["bash", "-c", ui + " --help"], capture_output=True, timeout=60).returncode == 0


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


def test_run_says_why_for_every_file_that_is_not_simply_published(tmp_path):
    (tmp_path / "quality.yaml").write_text(
        "datasets:\n  orders:\n    landing: {path: landing}\n    columns: {id: bigint, amount: double}\n"
        "    rules:\n      - range: {column: amount, min: 0}\n")
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "a_good.csv").write_text("id,amount\n1,2\n2,3\n")
    (landing / "b_blob.csv").write_bytes(b"\x00\x01binary\x00" * 64)
    (landing / "c_empty.csv").write_text("")
    (landing / "d_header.csv").write_text("id,amount\n")
    (landing / "e_bad.csv").write_text("id,amount\n1,x\n2,-5\n3,1\n4,y\n5,1,extra\n")
    result = run_cli("run", cwd=tmp_path, env={"QA_CONTRACTS": str(tmp_path / "quality.yaml")})
    assert result.returncode == 1, result.stdout + result.stderr  # rejected and blocked files
    out = result.stdout
    assert outcome_column(out) == {"a_good.csv": "passed, published", "b_blob.csv": "rejected", "c_empty.csv": "empty",
                                   "d_header.csv": "empty", "e_bad.csv": "blocked"}
    output = tmp_path / "output" / "orders"
    assert ("  orders/b_blob.csv: rejected: the file is binary, not text in a supported format (33% control bytes in the first 576 bytes)\n"
            f"      report: {output / 'b_blob.csv' / 'report.html'}\n") in out
    assert "Fail: the file was rejected: the file is binary" in (output / "b_blob.csv" / "report.html").read_text()
    assert "  orders/c_empty.csv: empty: the file is empty\n" in out
    assert "  orders/d_header.csv: empty: header only: no data rows\n" in out
    assert "Empty: the file is empty" in (output / "c_empty.csv" / "report.html").read_text()
    assert ("  orders/e_bad.csv: not published: blocked by range_amount; "
            "3 row(s) quarantined (E_NUMERIC_FORMAT 2, E_COLUMN_COUNT 1)\n") in out
    assert "5 file(s): 1 passed, 1 blocked, 1 rejected, 2 empty; 1 published" in out
    assert "clean" not in out
    where = out.split("Where to look:")[1]
    assert f"a report:   {output / 'b_blob.csv' / 'report.html'}" in where
    assert "qa.quarantine" in where and f"{SCRIPT} --contracts {tmp_path / 'quality.yaml'} ui" in where


def test_run_names_the_anomaly_causes_of_each_file(tmp_path):
    (tmp_path / "quality.yaml").write_text("datasets:\n  sales:\n    landing: {path: landing}\n")
    landing = tmp_path / "landing"
    landing.mkdir()
    rng = __import__("random").Random(4)
    for month in range(1, 6):
        rows = [f"{month},{rng.choice(['north', 'south', 'east'])},{rng.lognormvariate(3.5, 0.4):.2f}" for _ in range(300)]
        if month == 5:  # ten amounts in thousands of cents
            rows = [r if i % 30 else r.rsplit(",", 1)[0] + ",40000.00" for i, r in enumerate(rows)]
        (landing / f"sales_{month:02d}.csv").write_text("period,store,amount\n" + "\n".join(rows) + "\n")
    result = run_cli("run", cwd=tmp_path, env={"QA_CONTRACTS": str(tmp_path / "quality.yaml")})
    assert result.returncode == 0, result.stdout + result.stderr
    line = next(x for x in result.stdout.splitlines() if x.startswith("  sales/sales_05.csv:"))
    assert "anomaly (10 row(s)): amount above its usual range" in line, result.stdout


def test_a_first_small_file_runs_without_importing_scipy_or_scikit_learn(tmp_path):
    """Start-up (issue 17): scipy costs about a second to import; a file's run pays it only when a
    stage needs it (drift against history, a non-default normality test), not for a first file."""
    (tmp_path / "quality.yaml").write_text(
        "datasets:\n  orders:\n    landing: {path: landing}\n    columns: {id: bigint, amount: double, day: date}\n")
    rows = [f"{i},{(i * 7.3) % 200:.2f},2026-11-{1 + i % 28:02d}" for i in range(50)]
    (tmp_path / "orders.csv").write_text("id,amount,day\n" + "\n".join(rows) + "\n")
    code = ("import sys; from quality_assets.cli.main import main; "
            f"status = main(['--contracts', {str(tmp_path / 'quality.yaml')!r}, 'run', {str(tmp_path / 'orders.csv')!r}, "
            "'--dataset', 'orders']); "
            "print('heavy:', sorted(m for m in ('scipy', 'sklearn') if m in sys.modules)); sys.exit(status)")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "DAGSTER_HOME"))}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=environ, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 file(s): 1 passed; 1 published" in result.stdout
    assert (tmp_path / "output" / "orders" / "orders.csv" / "report.html").is_file()
    assert result.stdout.strip().splitlines()[-1] == "heavy: []"


HEAVY = ("numpy", "pyarrow", "duckdb", "dagster", "pandas", "scipy", "sklearn")


def _modules_after(args: list[str], cwd: Path) -> tuple[int, list[str], str]:
    """Run the console script with `args` in a fresh interpreter: its exit status, the heavy
    libraries it had imported by then, and its output."""
    code = ("import runpy, sys\n"
            f"sys.argv = [{SCRIPT!r}, *{args!r}]\n"
            "try:\n"
            "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
            "    status = 0\n"
            "except SystemExit as exc:\n"
            "    status = exc.code or 0\n"
            f"print('heavy:', status, ','.join(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr)\n")
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "DAGSTER_HOME"))}
    result = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=environ, capture_output=True, text=True,
                            timeout=120)
    _, status, loaded = [line for line in result.stderr.splitlines() if line.startswith("heavy: ")][-1].split(" ")
    return int(status), [m for m in loaded.split(",") if m], result.stdout + result.stderr


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["cleanup", "--help"], ["--no-such-option"], []])
def test_help_and_usage_errors_load_no_stage_library(tmp_path, args):
    """Start-up (issue 17): `quality-assets --help` answers from the parser alone; DuckDB, Arrow,
    NumPy and Dagster are imported by the command that needs them."""
    status, loaded, output = _modules_after(args, tmp_path)
    assert status == (0 if "--help" in args else 2), output
    assert "usage: quality-assets" in output
    assert loaded == [], output


def test_a_command_that_reads_the_contract_does_load_duckdb(tmp_path):
    """The check above can see an import: `validate` parses the contract, whose rules load DuckDB."""
    (tmp_path / "landing").mkdir()
    (tmp_path / "quality.yaml").write_text("datasets:\n  orders:\n    landing: {path: landing}\n")
    status, loaded, output = _modules_after(["--contracts", str(tmp_path / "quality.yaml"), "validate"], tmp_path)
    assert status == 0, output
    assert "duckdb" in loaded


def test_a_missing_landing_folder_is_refused_naming_the_dataset_and_folder(tmp_path):
    (tmp_path / "quality.yaml").write_text(
        "datasets:\n  orders:\n    landing: {path: landing/ordres}\n  customers:\n    landing: {path: landing/customers}\n")
    (tmp_path / "landing" / "customers").mkdir(parents=True)
    (tmp_path / "landing" / "customers" / "c.csv").write_text("id\n1\n")
    env = {"QA_CONTRACTS": str(tmp_path / "quality.yaml")}
    problem = f"dataset 'orders': the landing folder {tmp_path / 'landing' / 'ordres'} does not exist"
    for args in (["validate"], ["run"], ["run", "--dataset", "orders"]):
        result = run_cli(*args, cwd=tmp_path, env=env)
        assert result.returncode == 2 and problem in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "warehouse").exists()  # nothing ran
    # the other dataset alone still runs
    assert run_cli("run", "--dataset", "customers", cwd=tmp_path, env=env).returncode == 0


@pytest.mark.parametrize("command", ["validate", "run"])
def test_global_options_before_or_after_the_command(demo, tmp_path, command):
    root, _ = demo
    contract = str(root / "quality.yaml")
    before = run_cli("--contracts", contract, command, cwd=tmp_path)
    after = run_cli(command, "--contracts", contract, cwd=tmp_path)
    assert before.returncode == after.returncode == 0, before.stderr + after.stderr
    assert before.stdout == after.stdout and before.stderr == after.stderr


def test_a_closed_pipe_ends_quietly(demo, tmp_path):
    root, _ = demo
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "DAGSTER_HOME"))}
    process = subprocess.Popen([SCRIPT, "--contracts", str(root / "quality.yaml"), "validate"], cwd=tmp_path,
                               env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # as `| head` does once it has its lines
    stderr = process.communicate(timeout=120)[1].decode()
    assert process.returncode == 141 and stderr == ""


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
