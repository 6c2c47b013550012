"""All contract rules of a partition against one DuckDB full scan of the same table.

    /work/venv/bin/python benchmarks/rules.py                  # 10M rows, 30 rules
    /work/venv/bin/python benchmarks/rules.py --rows 1000000 --repeat 1

The data is the ingest benchmark's CSV (20 mixed columns, made with DuckDB COPY from range()),
copied once into a warehouse with the shape the raw stage gives it (`raw."bench"`, one partition,
`_source_row`, an audit row in qa.files) and cached under benchmarks/data/. Each measurement runs
in its own process, which reports its wall time, CPU time and its own peak RSS:

- scan:     SELECT count(*) plus one aggregate per column (max) over the table, the baseline;
- rules:    quality_assets.rules.evaluate_partition with 30 rules of 15 kinds: evaluated,
            failing rows captured (up to 1,000 per rule) and recorded in qa.check_results,
            qa.failing_rows and qa.validations;
- per_rule: the same 30 rules as 30 separate queries (one count per rule), to show what the
            single aggregate scan saves.

Target: rules <= 3x scan, peak RSS < 2 GB.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest import COLUMNS, DATA_DIR, generate  # noqa: E402  (the same data as the ingest benchmark)

MEMORY_LIMIT = "1GB"  # the warehouse's default QA_DUCKDB_MEMORY_LIMIT
RULES = """
  - not_null: id
  - not_null: customer
  - not_null: discount          # 10% nulls: fails, 1,000 failing rows kept
    severity: warn
  - not_null: created_at
  - not_null: sku
  - unique: id
  - unique: {columns: [customer, order_date, store]}
    severity: warn
  - accepted_values: {column: region, values: [EU, US, APAC, LATAM]}
  - accepted_values: {column: segment, values: [consumer, corporate]}   # fails a third
    severity: warn
  - accepted_values: {column: status, values: [paid, shipped, refunded]}
  - range: {column: price, min: 0, max: 1000}
  - range: {column: qty, min: 0, max: 100, inclusive: false}
    mostly: 0.95
  - range: {column: order_date, min: 2020-01-01, max: 2030-12-31}
  - range: {column: score, min: 0, max: 1}
  - regex: {column: sku, pattern: "^SKU-[0-9]{5}$"}
  - regex: {column: city, pattern: "^[A-Z][a-z]+$"}
  - length: {column: note, min: 10, max: 80}
  - length: {column: comment, max: 40}
  - type: {column: sku, type: string}
  - row_count: {min: 1}
  - freshness: {column: created_at, max_age: 5000d}
  - freshness: {max_age: 3650d}
  - schema: {}
  - sql: "price >= 0 OR discount IS NULL"
  - sql: "items BETWEEN 1 AND 12"
  - assert: "sum(price) > 0"
  - assert: "count(DISTINCT region) = 4"
  - compare: {left: discount, op: "<", right: 1}
  - conditional: {when: "is_gift", then: "items >= 1"}
  - references: {column: store, dataset: stores}
"""


def warehouse_path(rows: int) -> Path:
    return DATA_DIR / f"rules_{rows}.duckdb"


def contract_text() -> str:
    columns = "\n".join(f"      {name}: {kind}" for name, kind in COLUMNS.items())
    rules = textwrap.indent(RULES.strip("\n"), "    ")
    return (f"datasets:\n  bench:\n    columns:\n{columns}\n    primary_key: [id]\n    rules:\n{rules}\n"
            "  stores:\n    columns: {store: bigint}\n")


def prepare(rows: int) -> Path:
    """The warehouse with raw."bench" (cached), built from the ingest benchmark's CSV."""
    import duckdb

    from quality_assets.rules import ensure_tables
    from quality_assets.vocabulary import duckdb_type
    from quality_assets.warehouse import QA_TABLES_DDL

    path = warehouse_path(rows)
    if path.exists():
        return path
    csv = generate(rows)
    print(f"building {path.name} ...", file=sys.stderr, flush=True)
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    types = ", ".join(f"'{name}': '{duckdb_type(kind)}'" for name, kind in COLUMNS.items())
    with duckdb.connect(str(tmp), config={"memory_limit": "4GB"}) as con:
        con.execute("SET enable_progress_bar = false")  # a connection setting: DuckDB 2 refuses it in config
        for ddl in QA_TABLES_DDL:
            con.execute(ddl)
        ensure_tables(con)
        names = ", ".join(COLUMNS)
        con.execute(f"""
            CREATE TABLE raw.bench AS
            SELECT 'bench.csv' AS _partition_key, CAST(row_number() OVER () AS BIGINT) AS _source_row,
                   'bench' AS _run_id, {names}
            FROM read_csv('{csv}', header = true, columns = {{{types}}}, ignore_errors = true)""")
        con.execute("CREATE SCHEMA published")
        con.execute("CREATE TABLE published.stores AS SELECT range AS store FROM range(300)")
        con.execute(
            "INSERT INTO qa.files (dataset, partition_key, run_id, source_path, rows_read, rows_loaded, "
            "rows_quarantined, columns, status, started, finished, mtime) "
            "SELECT 'bench', 'bench.csv', 'bench', ?, count(*), count(*), 0, ?, 'loaded', now(), now(), now() "
            "FROM raw.bench", [str(csv), list(COLUMNS)])
        con.execute("CHECKPOINT")
    tmp.rename(path)
    return path


def child(mode: str, rows: int) -> dict:
    """Runs in its own process: one measurement, its wall time and this process's peak RSS."""
    import duckdb

    from quality_assets.catalog import table_types
    from quality_assets.contract import parse_contract
    from quality_assets.rules import evaluate_partition
    from quality_assets.rules.evaluate import plan_rule
    from quality_assets.warehouse import Warehouse

    path = warehouse_path(rows)
    dataset = parse_contract(contract_text(), path.parent / "quality.yaml").dataset("bench")
    assert len(dataset.rules) == 30, len(dataset.rules)
    result: dict = {"rules": len(dataset.rules), "kinds": len({r.kind for r in dataset.rules})}
    warehouse = Warehouse(path, lock_timeout_s=60, memory_limit=MEMORY_LIMIT)
    with warehouse.connect() as con:
        started = time.perf_counter()
        if mode == "scan":
            aggregates = ", ".join(f"max({name})" for name in COLUMNS)
            con.execute(f"SELECT count(*), {aggregates} FROM raw.bench").fetchone()
        elif mode == "rules":
            evaluation = evaluate_partition(con, dataset, "bench.csv", f"bench-{time.time_ns()}")
            result.update(failed=len(evaluation.failed), scans=evaluation.scans,
                          errors=[r.error for r in evaluation.results if r.error],
                          stored=sum(r.stored for r in evaluation.results))
        else:  # per_rule: one count query per rule
            types = table_types(con, "raw", "bench")
            published = {"stores": {"store": "BIGINT"}}
            for index, rule in enumerate(dataset.rules):
                plan = plan_rule(rule, index, types, published)
                if plan.fail:
                    con.execute(f"SELECT count(*) FILTER (WHERE {plan.fail}) FROM raw.bench "
                                "WHERE _partition_key = ?", ["bench.csv"]).fetchone()
                elif plan.aggregate:
                    con.execute(f"SELECT {plan.aggregate} FROM raw.bench WHERE _partition_key = ?",
                                ["bench.csv"]).fetchone()
                elif rule.kind == "unique":
                    cols = ", ".join(rule.params["columns"])
                    con.execute(f"SELECT count(*) FROM (SELECT {cols} FROM raw.bench WHERE _partition_key = ? "
                                f"GROUP BY ALL HAVING count(*) > 1)", ["bench.csv"]).fetchone()
                else:
                    con.execute("SELECT count(*) FROM raw.bench WHERE _partition_key = ?", ["bench.csv"]).fetchone()
        result["seconds"] = time.perf_counter() - started
    del duckdb
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    result["peak_rss_mb"] = usage.ru_maxrss / 1024
    return result


def measure(mode: str, rows: int) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(rows)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", default="10000000", help="comma-separated row counts")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement; the best counts")
    parser.add_argument("--child", nargs=2, metavar=("MODE", "ROWS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return
    results = []
    for rows in [int(r) for r in args.rows.split(",")]:
        prepare(rows)
        best: dict[str, dict] = {}
        for attempt in range(args.repeat):
            for mode in ("scan", "rules", "per_rule"):  # alternate, so drift hits all alike
                print(f"{rows:,} rows: {mode} run {attempt + 1}/{args.repeat} ...", file=sys.stderr, flush=True)
                result = measure(mode, rows)
                if mode not in best or result["seconds"] < best[mode]["seconds"]:
                    best[mode] = result
        results.append((rows, best))
    print()
    header = ("rows", "rules", "kinds", "scan s", "rules s", "rules/scan", "per-rule s", "per-rule/scan",
              "scans", "rules failed", "rows kept", "scan RSS MB", "rules RSS MB", "target")
    table = [header]
    for rows, best in results:
        scan, rules, per_rule = best["scan"], best["rules"], best["per_rule"]
        ratio = rules["seconds"] / scan["seconds"]
        ok = ratio <= 3 and rules["peak_rss_mb"] < 2048 and not rules["errors"]
        table.append((
            f"{rows:,}", str(rules["rules"]), str(rules["kinds"]), f"{scan['seconds']:.2f}", f"{rules['seconds']:.2f}",
            f"{ratio:.2f}x", f"{per_rule['seconds']:.2f}", f"{per_rule['seconds'] / scan['seconds']:.2f}x",
            str(rules["scans"]), str(rules["failed"]), f"{rules['stored']:,}",
            f"{scan['peak_rss_mb']:,.0f}", f"{rules['peak_rss_mb']:,.0f}", "pass" if ok else "FAIL",
        ))
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
    print(f"\nscan = SELECT count(*), max(<col>) x {len(COLUMNS)} FROM raw.bench; rules = evaluate_partition "
          "(30 rules, failing rows kept and recorded); per-rule = one query per rule. Best of "
          f"{args.repeat}, each in its own process, DuckDB memory_limit {MEMORY_LIMIT}. "
          "Target: rules/scan <= 3x, rules RSS < 2048 MB.")
    for rows, best in results:
        if best["rules"]["errors"]:
            print(f"rule errors at {rows:,} rows: {best['rules']['errors']}")


if __name__ == "__main__":
    main()
