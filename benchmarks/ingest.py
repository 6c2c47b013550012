"""Raw-asset load time and peak memory against a bare DuckDB CSV load of the same file.

    /work/venv/bin/python benchmarks/ingest.py                 # 1M and 10M rows, 3 rounds
    /work/venv/bin/python benchmarks/ingest.py --rows 100000 --repeat 1
    /work/venv/bin/python benchmarks/ingest.py --rows 1000000 --staged   # also time the staged path

Generates CSVs with 20 mixed columns (ids, ints, floats with nulls, categoricals, free text,
dates, timestamps, booleans) and three malformed rows spread through the file (a ragged row, a
non-integer in an integer column, an impossible date), cached under benchmarks/data/. Each
measurement runs in its own process and reports its wall time, its CPU time (user + system, from
the start of the load: steadier than wall time on a shared machine) and its peak RSS, so the two
loads' peaks do not mix. Rounds alternate bare and load, so drift hits both alike; the table shows
the best round of each and the range of the per-round ratios.

Columns: `bare s` / `load s` best wall seconds; `load/bare` their ratio, with the range of the
per-round ratios; `CPU load/bare` the ratio of the best CPU times; `RSS MB` peak resident memory;
then where the best load's time went (`quality_assets.ingest.LoadAudit.phases`): `prep` (peek,
dialect sniffing, DuckDB's DESCRIBE; no lock held), `insert` (DuckDB's parallel parse straight into
raw, with the strict integer check), `number` (reading the rejected records, the UPDATE that sets
record numbers), `quar` (quarantine rows, the preview), `commit` (the transaction's commit, where
DuckDB writes the updated record numbers), `other` (the rest: lock wait, sha256 wait, audit row,
closing the warehouse). `staged s` (with --staged): stage_file + publish_stage, the path daily loads
and non-CSV formats take. Targets (issue 17): load <= 1.2x the bare load in wall and CPU, peak RSS <= 1 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA_DIR = Path(os.environ.get("QA_BENCH_DATA") or Path(__file__).parent / "data")  # versions.py: one per DuckDB
MALFORMED = [
    "ragged,row",  # too few fields
    "{id},17,oops,3.5,,EU,b,c,note,2024-01-01,2024-01-01 10:00:00,true,1,2,3.0,4.0,x,y,z,w",  # bad int
    "{id},18,19,3.5,,EU,b,c,note,2024-13-45,2024-01-01 10:00:00,true,1,2,3.0,4.0,x,y,z,w",  # bad date
]
COLUMNS = {
    "id": "bigint", "qty": "bigint", "customer": "bigint", "price": "double", "discount": "double",
    "region": "string", "segment": "string", "channel": "string", "note": "string",
    "order_date": "date", "created_at": "timestamp", "is_gift": "boolean", "store": "bigint",
    "items": "bigint", "weight": "double", "score": "double", "city": "string", "sku": "string",
    "comment": "string", "status": "string",
}
PHASES = (("prep", ("prepare_s",)), ("insert", ("insert_s",)), ("number", ("number_s",)),
          ("quar", ("quarantine_s",)), ("commit", ("commit_s",)))


def generate(rows: int) -> Path:
    """A CSV of `rows` good rows with the malformed ones after rows/4, rows/2 and 3*rows/4 (cached)."""
    import duckdb

    path = DATA_DIR / f"ingest_{rows}_spread.csv"
    if path.exists():
        return path
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    print(f"generating {path.name} ...", file=sys.stderr, flush=True)
    bounds = [0, rows // 4, rows // 2, 3 * rows // 4, rows]
    parts = [path.with_suffix(f".part{n}") for n in range(4)]
    with duckdb.connect() as con:
        con.execute("SET enable_progress_bar = false")
        for n, part in enumerate(parts):
            con.execute(f"""
                COPY (SELECT
                    i AS id, (i * 7) % 100 AS qty, (i * 13) % 50000 AS customer,
                    round(((i * 31) % 100000) / 100.0, 2) AS price,
                    CASE WHEN i % 10 = 0 THEN NULL ELSE ((i * 17) % 30) / 100.0 END AS discount,
                    ['EU', 'US', 'APAC', 'LATAM'][1 + i % 4] AS region,
                    ['consumer', 'corporate', 'home office'][1 + i % 3] AS segment,
                    ['web', 'store', 'phone'][1 + (i // 7) % 3] AS channel,
                    'order note number ' || i || ', handled by team ' || (i % 37) AS note,
                    DATE '2020-01-01' + CAST(i % 1500 AS INTEGER) AS order_date,
                    TIMESTAMP '2020-01-01 00:00:00' + to_seconds(i * 37 % 100000000) AS created_at,
                    i % 9 = 0 AS is_gift, i % 300 AS store, 1 + i % 12 AS items,
                    round(((i * 11) % 5000) / 10.0, 1) AS weight, ((i * 19) % 1000) / 1000.0 AS score,
                    ['Lisbon', 'Oslo', 'Lagos', 'Osaka', 'Lima', 'Perth'][1 + i % 6] AS city,
                    'SKU-' || lpad(CAST(i % 99999 AS VARCHAR), 5, '0') AS sku,
                    CASE WHEN i % 5 = 0 THEN 'fragile, "handle" with care' ELSE 'ok' END AS comment,
                    ['paid', 'shipped', 'refunded'][1 + i % 3] AS status
                FROM range({bounds[n]}, {bounds[n + 1]}) t(i)) TO '{part}' (HEADER {n == 0}, DELIMITER ',')
            """)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as out:
        for n, part in enumerate(parts):
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, 16 * 1024 * 1024)
            part.unlink()
            if n < len(MALFORMED):
                out.write((MALFORMED[n].format(id=rows + n) + "\n").encode())
    tmp.rename(path)
    return path


def child(mode: str, path: Path) -> dict:
    """Runs in its own process: one load, its wall and CPU time and this process's peak RSS."""
    import duckdb

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    if mode != "bare":  # imported before the clock starts, as in a running code server
        from quality_assets.contract import parse_contract
        from quality_assets.ingest import load_file, publish_stage, stage_file
        from quality_assets.warehouse import Warehouse

        columns = "\n".join(f"      {name}: {kind}" for name, kind in COLUMNS.items())
        contract = parse_contract(f"datasets:\n  bench:\n    columns:\n{columns}\n", work / "quality.yaml")
        dataset = contract.dataset("bench")
        warehouse = Warehouse(work / "wh.duckdb")
    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    result: dict = {}
    try:
        if mode == "bare":
            with duckdb.connect(str(work / "bare.duckdb"), config={"memory_limit": "1GB"}) as con:
                con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv('{path}', ignore_errors = true)")
                result["rows_loaded"] = con.execute("SELECT count(*) FROM t").fetchone()[0]
        else:
            if mode == "load":
                audit = load_file(warehouse, path, dataset, path.name, "bench", force=True)
            else:  # "staged": the two-step path daily loads and other formats take
                stage_dir = work / "stage"
                stage_dir.mkdir()
                staged = stage_file(warehouse, path, dataset, path.name, "bench", stage_dir)
                with warehouse.connect() as con:
                    audit = publish_stage(con, staged)
            result.update(rows_loaded=audit.rows_loaded, rows_quarantined=audit.rows_quarantined,
                          rows_read=audit.rows_read, parser=audit.parser, phases=audit.phases)
        result["seconds"] = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_SELF)
        result["cpu_seconds"] = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        result["peak_rss_mb"] = after.ru_maxrss / 1024
        if mode != "bare":  # after the clock: every row carries its record number (malformed rows before it)
            rows = int(path.stem.split("_")[1])
            shift = " + ".join(f"(id >= {rows * q // 4})::INT" for q in (1, 2, 3))
            with warehouse.connect() as con:
                result["misnumbered"] = con.execute(
                    f"SELECT count(*) FROM raw.bench WHERE _source_row <> id + 1 + {shift}").fetchone()[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return result


def measure(mode: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(path)], capture_output=True, text=True)
    if out.returncode:
        raise SystemExit(f"the {mode} run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def phase_cells(load: dict) -> list[str]:
    phases = load.get("phases") or {}
    cells, counted = [], 0.0
    for _, names in PHASES:
        seconds = sum(phases.get(name, 0.0) for name in names)
        counted += seconds
        cells.append(f"{seconds:.2f}")
    cells.append(f"{load['seconds'] - counted:.2f}")
    return cells


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1000000,10000000", help="comma-separated row counts")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per row count; the best counts")
    parser.add_argument("--staged", action="store_true", help="also time stage_file + publish_stage")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]))))
        return
    modes = ("bare", "load", "staged") if args.staged else ("bare", "load")
    results = []
    for rows in [int(r) for r in args.rows.split(",")]:
        path = generate(rows)
        runs: dict[str, list[dict]] = {mode: [] for mode in modes}
        for attempt in range(args.repeat):
            for mode in modes:
                print(f"{rows:,} rows: {mode} round {attempt + 1}/{args.repeat} ...", file=sys.stderr, flush=True)
                result = measure(mode, path)
                runs[mode].append(result)
                print(f"    {result['seconds']:.2f} s wall, {result['cpu_seconds']:.2f} s CPU, "
                      f"{result['peak_rss_mb']:,.0f} MB" + (f", phases {result['phases']}" if result.get("phases") else ""),
                      file=sys.stderr, flush=True)
        for mode in modes[1:]:
            for result in runs[mode]:
                assert result["rows_read"] == rows + len(MALFORMED), result
                assert result["rows_loaded"] + result["rows_quarantined"] == result["rows_read"], result
                assert result["rows_quarantined"] == len(MALFORMED), result
                assert result["misnumbered"] == 0, result
        results.append((rows, path.stat().st_size / 2**20, runs))
    print()
    header = ("rows", "file MB", "bare s", "load s", "load/bare", "(rounds)", "CPU load/bare", "bare RSS MB",
              "load RSS MB", *(name for name, _ in PHASES), "other", *(("staged s",) if args.staged else ()), "target")
    table = [header]
    for rows, size_mb, runs in results:
        bare = min(runs["bare"], key=lambda r: r["seconds"])
        load = min(runs["load"], key=lambda r: r["seconds"])
        ratio = load["seconds"] / bare["seconds"]
        rounds = [lo["seconds"] / ba["seconds"] for lo, ba in zip(runs["load"], runs["bare"], strict=True)]
        cpu = min(r["cpu_seconds"] for r in runs["load"]) / min(r["cpu_seconds"] for r in runs["bare"])
        peak = max(r["peak_rss_mb"] for r in runs["load"])
        ok = ratio <= 1.2 and cpu <= 1.2 and peak <= 1024
        staged = (f"{min(r['seconds'] for r in runs['staged']):.2f}",) if args.staged else ()
        table.append((
            f"{rows:,}", f"{size_mb:,.0f}", f"{bare['seconds']:.2f}", f"{load['seconds']:.2f}", f"{ratio:.2f}x",
            f"{min(rounds):.2f}-{max(rounds):.2f}x", f"{cpu:.2f}x",
            f"{max(r['peak_rss_mb'] for r in runs['bare']):,.0f}", f"{peak:,.0f}", *phase_cells(load), *staged,
            "pass" if ok else "FAIL",
        ))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
    print("\nload = quality_assets.ingest.load_file (parse, quarantine, record numbers, sha256, audit, one "
          "partition switch); bare = CREATE TABLE AS SELECT * FROM read_csv(...).\nTarget (issue 17): load/bare "
          "<= 1.2x in wall and CPU (best rounds), load RSS <= 1024 MB.")


if __name__ == "__main__":
    main()
