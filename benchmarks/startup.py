"""Start-up: one 50-row file through `quality-assets run`, against `python -c "import dagster"`.

Each round, alternating: the baseline (a fresh interpreter importing dagster, nothing else), then
the whole CLI on a fresh temporary folder (a contract with one dataset, one 50-row CSV given with
`--dataset`, its own warehouse and outputs, Dagster's ephemeral instance). Both run as
subprocesses; wall time from the clock, CPU time (user + system) from `getrusage(RUSAGE_CHILDREN)`
deltas. The best of the rounds is reported for each, with the ratio and the range of the per-round
ratios with their median and range (the machine is shared: read the range, not one number), and the load average.

The package is byte-compiled first (`compileall`), as `pip install` does for an installed package
and as an interpreter without PYTHONDONTWRITEBYTECODE does on the first run: otherwise every run
compiles ~110 modules from source (~0.2 s) and the comparison with dagster, whose bytecode pip
wrote, is unfair.

Each round also times `quality-assets --help`: the parser alone, which imports none of the
stages' libraries (DuckDB, Arrow, NumPy, Dagster).

`--without-pandas` adds a row: the same run with pandas hidden from the interpreter, as in
the deployment's image (pandas is a test dependency only; when installed, pyarrow imports it on
its first `pa.array()`).

`--floor` adds Dagster's own floor: an empty job of the same shape (six partitioned assets with
the pipeline's dependencies and 8 checks, one dynamic partition, in process on an ephemeral
instance): what one run costs before any of our code runs.

Usage: python benchmarks/startup.py [--repeat 5] [--without-pandas] [--floor]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CONTRACT = """\
datasets:
  orders:
    landing: {path: landing/orders, glob: "*.csv"}
    columns:
      order_id: bigint
      customer_id: bigint
      order_date: date
      amount: double
      currency: string
      status: string
    primary_key: [order_id]
    rules:
      - not_null: order_id
      - unique: order_id
      - range: {column: amount, min: 0}
        severity: warn
      - accepted_values: {column: currency, values: [EUR, USD, GBP]}
"""
ROWS = 50
TARGET = 2.0


def write_case(root: Path) -> tuple[Path, Path]:
    """The contract and one 50-row CSV outside the landing folder (the CLI copies it in)."""
    contract = root / "quality.yaml"
    contract.write_text(CONTRACT, encoding="utf-8")
    lines = ["order_id,customer_id,order_date,amount,currency,status"]
    lines += [f"{1000 + i},{i % 17},2026-11-{1 + i % 28:02d},{(i * 7.3) % 200:.2f},{('EUR', 'USD', 'GBP')[i % 3]},"
              f"{('paid', 'shipped', 'refunded')[i % 3]}" for i in range(ROWS)]
    csv = root / "orders_20261101.csv"
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return contract, csv


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one subprocess; it must succeed."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


# The CLI's entry point with pandas unimportable, as where it is not installed.
WITHOUT_PANDAS = """\
import sys
class NoPandas:
    def find_spec(self, name, path=None, target=None):
        if name == "pandas" or name.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoPandas())
from quality_assets.cli.main import main
status = main(sys.argv[1:])
assert "pandas" not in sys.modules
sys.exit(status)
"""


# Dagster's own floor for one run of the pipeline's shape: the same six partitioned assets and
# their dependencies, 8 checks (file_parsed; the contract's rule groups; the anomaly stage's 3),
# one dynamic partition, executed in process on an ephemeral instance, with bodies that do nothing.
FLOOR = """\
import dagster as dg
files = dg.DynamicPartitionsDefinition(name="orders_files")
def stage(name, deps=(), checks=()):
    specs = [dg.AssetCheckSpec(c, asset=name, blocking=name in ("raw", "validation")) for c in checks]
    @dg.asset(name=name, deps=list(deps), partitions_def=files, check_specs=specs)
    def body():
        return dg.MaterializeResult(metadata={"rows": 50}, check_results=[dg.AssetCheckResult(check_name=c, passed=True)
                                                                          for c in checks])
    return body
assets = [stage("raw", checks=["file_parsed"]),
          stage("validation", ["raw"], ["not_null", "unique", "range", "accepted_values"]),
          stage("published", ["raw", "validation"]), stage("profile", ["raw"]),
          stage("anomalies", ["profile"], ["anomaly_rate", "metric_anomalies", "drift"]), stage("report", ["anomalies"])]
defs = dg.Definitions(assets=assets, jobs=[dg.define_asset_job("orders_job", selection="*")],
                      executor=dg.in_process_executor)
instance = dg.DagsterInstance.ephemeral()
instance.add_dynamic_partitions("orders_files", ["orders_20261101.csv"])
result = defs.resolve_job_def("orders_job").execute_in_process(partition_key="orders_20261101.csv", instance=instance)
assert result.success and len(result.get_asset_materialization_events()) == 6
"""


def run_cli(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """One `run` of the 50-row file in a fresh folder; it must write the file's report."""
    root = Path(tempfile.mkdtemp(prefix="qa-startup-"))
    try:
        contract, csv = write_case(root)
        result = timed([*command, "--contracts", str(contract), "run", str(csv), "--dataset", "orders"], env)
        if not any((root / "output" / "orders").rglob("report.html")):
            sys.exit("the run wrote no report: not a real run")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return result


def run_round(cli: str, env: dict[str, str], without_pandas: bool, floor: bool) -> dict[str, tuple[float, float]]:
    times = {"baseline": timed([sys.executable, "-c", "import dagster"], env), "run": run_cli([cli], env),
             "help": timed([cli, "--help"], env)}
    if floor:
        times["floor"] = timed([sys.executable, "-c", FLOOR], env)
    if without_pandas:
        times["run_no_pandas"] = run_cli([sys.executable, "-c", WITHOUT_PANDAS], env)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, help="alternating rounds (best of)")
    parser.add_argument("--without-pandas", action="store_true", help="also time the run with pandas hidden")
    parser.add_argument("--floor", action="store_true",
                        help="also time Dagster's floor: an empty job of the same shape, run the same way")
    args = parser.parse_args()
    cli = str(Path(sys.executable).parent / "quality-assets")
    # Dagster's ephemeral instance and the contract's own folder: nothing from the caller's setup.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "DAGSTER_"))}
    package = Path(__import__("quality_assets").__file__).parent
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True)
    load_before = os.getloadavg()
    rounds = []
    for n in range(args.repeat):
        rounds.append(run_round(cli, env, args.without_pandas, args.floor))
        print(f"round {n + 1}: " + ", ".join(f"{name} {w:.2f}s ({c:.2f} CPU-s)" for name, (w, c) in rounds[-1].items()),
              file=sys.stderr)
    load_after = os.getloadavg()

    labels = {"baseline": 'python -c "import dagster"', "run": f"quality-assets run (1 file, {ROWS} rows)",
              "run_no_pandas": "the same run, pandas not installed",
              "floor": "Dagster's floor: the same job shape, empty bodies",
              "help": "quality-assets --help (the parser alone)"}
    headers = ["what", "wall s", "CPU s", "wall ratio", "median (rounds)", "CPU ratio", "target"]
    rows = []
    for name in rounds[0]:
        wall, cpu = min(r[name][0] for r in rounds), min(r[name][1] for r in rounds)
        base_wall, base_cpu = min(r["baseline"][0] for r in rounds), min(r["baseline"][1] for r in rounds)
        ratios = [r[name][0] / r["baseline"][0] for r in rounds]
        rows.append([labels[name], f"{wall:.2f}", f"{cpu:.2f}", f"{wall / base_wall:.2f}x",
                     f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}x)", f"{cpu / base_cpu:.2f}x",
                     "" if name in ("baseline", "floor", "help") else f"<= {TARGET:.1f}x: " + ("pass" if wall / base_wall <= TARGET else "FAIL")])
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        print("  ".join(cell.ljust(widths[i]) if i in (0, 6) else cell.rjust(widths[i]) for i, cell in enumerate(row)).rstrip())
    print(f"\nbest of {args.repeat} alternating rounds; load average {load_before[0]:.2f} before, "
          f"{load_after[0]:.2f} after (1 min)")


if __name__ == "__main__":
    main()
