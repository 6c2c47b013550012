"""Raw-asset load time and peak memory against a bare DuckDB CSV load of the same file.

    /work/venv/bin/python benchmarks/ingest.py                 # 1M and 10M rows
    /work/venv/bin/python benchmarks/ingest.py --rows 100000 --repeat 1

Generates CSVs with 20 mixed columns (ids, ints, floats with nulls, categoricals, free text,
dates, timestamps, booleans) plus a few malformed rows, cached under benchmarks/data/. Each
measurement runs in its own process, which reports its wall time and its own peak RSS, so the
two loads' peaks do not mix. Targets: load <= 1.5x the bare load, peak RSS < 2 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA_DIR = Path(__file__).parent / "data"
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


def generate(rows: int) -> Path:
    """A CSV of `rows` good rows plus the malformed ones (cached)."""
    import duckdb

    path = DATA_DIR / f"ingest_{rows}.csv"
    if path.exists():
        return path
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    print(f"generating {path.name} ...", file=sys.stderr, flush=True)
    tmp = path.with_suffix(".tmp")
    with duckdb.connect() as con:
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
            FROM range({rows}) t(i)) TO '{tmp}' (HEADER, DELIMITER ',')
        """)
    with open(tmp, "a") as out:
        for n, line in enumerate(MALFORMED):
            out.write(line.format(id=rows + n) + "\n")
    tmp.rename(path)
    return path


def child(mode: str, path: Path) -> dict:
    """Runs in its own process: one load, its wall time and this process's peak RSS."""
    import duckdb

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    if mode != "bare":  # imported before the clock starts, as in a running code server
        import quality_assets.ingest  # noqa: F401
    started = time.perf_counter()
    result: dict = {}
    if mode == "bare":
        with duckdb.connect(str(work / "bare.duckdb"), config={"memory_limit": "1GB"}) as con:
            con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv('{path}', ignore_errors = true)")
            result["rows_loaded"] = con.execute("SELECT count(*) FROM t").fetchone()[0]
    else:
        from quality_assets.contract import parse_contract
        from quality_assets.ingest import load_file, publish_stage, stage_file
        from quality_assets.warehouse import Warehouse

        columns = "\n".join(f"      {name}: {kind}" for name, kind in COLUMNS.items())
        contract = parse_contract(f"datasets:\n  bench:\n    columns:\n{columns}\n", work / "quality.yaml")
        dataset = contract.dataset("bench")
        warehouse = Warehouse(work / "wh.duckdb")
        if mode == "load":
            audit = load_file(warehouse, path, dataset, path.name, "bench", force=True)
        else:  # "split": the two halves timed apart
            stage_dir = work / "stage"
            stage_dir.mkdir()
            staged = stage_file(warehouse, path, dataset, path.name, "bench", stage_dir)
            result["stage_s"] = time.perf_counter() - started
            with warehouse.connect() as con:
                audit = publish_stage(con, staged)
        result.update(rows_loaded=audit.rows_loaded, rows_quarantined=audit.rows_quarantined,
                      rows_read=audit.rows_read, parser=audit.parser)
    result["seconds"] = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime  # steadier than wall time on a busy machine
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def measure(mode: str, path: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(path)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="1000000,10000000", help="comma-separated row counts")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement; the best counts")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]))))
        return
    results = []
    for rows in [int(r) for r in args.rows.split(",")]:
        path = generate(rows)
        best: dict[str, dict] = {}
        for attempt in range(args.repeat):
            for mode in ("bare", "load", "split"):  # alternate, so drift hits both alike
                print(f"{rows:,} rows: {mode} run {attempt + 1}/{args.repeat} ...", file=sys.stderr, flush=True)
                result = measure(mode, path)
                if mode not in best or result["seconds"] < best[mode]["seconds"]:
                    best[mode] = result
        load = best["load"]
        assert load["rows_read"] == rows + len(MALFORMED), load
        assert load["rows_loaded"] + load["rows_quarantined"] == load["rows_read"]
        results.append((rows, path.stat().st_size / 2**20, best))
    print()
    header = ("rows", "file MB", "bare s", "load s", "load/bare", "CPU load/bare", "stage s", "publish s",
              "bare RSS MB", "load RSS MB", "quarantined", "target")
    table = [header]
    for rows, size_mb, best in results:
        bare, load, split = best["bare"], best["load"], best["split"]
        ratio = load["seconds"] / bare["seconds"]
        ok = ratio <= 1.5 and load["peak_rss_mb"] < 2048
        table.append((
            f"{rows:,}", f"{size_mb:,.0f}", f"{bare['seconds']:.2f}", f"{load['seconds']:.2f}", f"{ratio:.2f}x",
            f"{load['cpu_seconds'] / bare['cpu_seconds']:.2f}x",
            f"{split['stage_s']:.2f}", f"{split['seconds'] - split['stage_s']:.2f}",
            f"{bare['peak_rss_mb']:,.0f}", f"{load['peak_rss_mb']:,.0f}", f"{load['rows_quarantined']}",
            "pass" if ok else "FAIL",
        ))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
    print("\nload = quality_assets.ingest.load_file (stage + publish, sha256, audit);"
          " bare = CREATE TABLE AS SELECT * FROM read_csv(...). Target: load/bare <= 1.5x, load RSS < 2048 MB.")


if __name__ == "__main__":
    main()
