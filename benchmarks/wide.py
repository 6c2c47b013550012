"""Wide files through the raw stage: 200, 2,000 and 10,000 columns x 10,000 rows, DuckDB at 1 GB.

    .venv/bin/python benchmarks/wide.py                        # 200, 2,000, 10,000 columns
    .venv/bin/python benchmarks/wide.py --columns 2000 --chain  # and the whole chain (quality-assets run)
    .venv/bin/python benchmarks/wide.py --columns 2000 --stages # each stage of the chain alone

Each file mixes integer, floating-point and text columns (a third each, no column declared, so
every type is inferred from the whole file) and has two malformed records. Each load runs in its
own process (peak RSS is that process's). The baseline is a bare `CREATE TABLE AS SELECT * FROM
read_csv(...)` of the same file in the same invocation. With --chain, the file also goes
through `quality-assets run` (raw, validation, profile, anomalies, report) with a one-rule
contract; the table shows whether it finished, its time and peak RSS. With --stages, each stage
of the chain (load, rules, profile, anomalies, report) runs alone in its own process on one
warehouse, in order, so each has its own seconds and peak RSS (Python and DuckDB together).
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

DATA_DIR = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]


def generate(columns: int, rows: int) -> Path:
    path = DATA_DIR / f"wide_{columns}x{rows}.csv"
    if path.exists():
        return path
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    names = [f"{'ifs'[c % 3]}{c}" for c in range(columns)]
    with open(path.with_suffix(".tmp"), "w") as out:
        out.write(",".join(names) + "\n")
        for r in range(rows):
            values = [str((r * 7 + c) % 1000) if c % 3 == 0 else f"{((r + c) % 997) / 10:.1f}" if c % 3 == 1
                      else f"t{(r + c) % 50}" for c in range(columns)]
            if r == rows // 2:
                values = values[:-1]  # a field short
            if r == rows // 3:
                values[0] = "1.5"  # a fraction in an integer-looking column: DOUBLE, not quarantined
            out.write(",".join(values) + "\n")
    path.with_suffix(".tmp").rename(path)
    return path


def child(mode: str, path: Path) -> dict:
    import duckdb

    work = Path(tempfile.mkdtemp(prefix="bench-wide-"))
    started = time.perf_counter()
    result: dict = {}
    if mode == "bare":
        with duckdb.connect(str(work / "bare.duckdb"), config={"memory_limit": "1GB"}) as con:
            con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv('{path}', ignore_errors = true)")
    elif mode == "load":
        from quality_assets.contract import parse_contract
        from quality_assets.ingest import load_file
        from quality_assets.warehouse import Warehouse

        dataset = parse_contract("datasets:\n  wide:\n    landing: .\n", work / "quality.yaml").dataset("wide")
        audit = load_file(Warehouse(work / "wh.duckdb", memory_limit="1GB"), path, dataset, path.name, "bench")
        result = {"status": audit.status, "loaded": audit.rows_loaded, "quarantined": audit.rows_quarantined}
    elif mode.startswith("stage:"):
        result = run_stage(mode.split(":", 1)[1], path, Path(os.environ["QA_BENCH_WORK"]))
    else:  # chain
        landing = work / "landing"
        landing.mkdir()
        (landing / path.name).symlink_to(path)
        (work / "quality.yaml").write_text("datasets:\n  wide:\n    landing: landing\n    rules:\n      - row_count: {min: 1}\n")
        env = {"QA_CONTRACTS": str(work / "quality.yaml"), "QA_DUCKDB_PATH": str(work / "wh.duckdb"),
               "QA_OUTPUT_DIR": str(work / "out"), "QA_DUCKDB_MEMORY_LIMIT": "1GB", "PATH": "/usr/bin:/bin"}
        run = subprocess.run([str(Path(sys.executable).with_name("quality-assets")), "run"], env=env, cwd=work,
                             capture_output=True, text=True, timeout=1800)
        row = [line.split("  ")[-1].strip() for line in run.stdout.splitlines() if line.startswith("wide ")]  # outcome
        result = {"status": f"exit {run.returncode}", "tail": row[-1:] or run.stderr[-300:]}
    result["seconds"] = round(time.perf_counter() - started, 2)
    result["rss_mb"] = round(max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                                 resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024)
    return result


STAGES = ("load", "rules", "profile", "anomalies", "report")


def run_stage(stage: str, path: Path, work: Path) -> dict:
    """One stage of the chain on the warehouse in `work` (the stages before it already ran)."""
    from quality_assets.contract import parse_contract
    from quality_assets.warehouse import Warehouse

    contract = work / "quality.yaml"
    if not contract.exists():
        contract.write_text("datasets:\n  wide:\n    landing: .\n    rules:\n      - row_count: {min: 1}\n")
    dataset = parse_contract(contract.read_text(), contract).dataset("wide")
    warehouse = Warehouse(work / "wh.duckdb", memory_limit=os.environ.get("QA_DUCKDB_MEMORY_LIMIT", "1GB"))
    key, run_id = path.name, "bench"
    if stage == "load":
        from quality_assets.ingest import load_file

        audit = load_file(warehouse, path, dataset, key, run_id)
        return {"status": f"{audit.status} {audit.rows_loaded}+{audit.rows_quarantined}"}
    if stage == "rules":
        from quality_assets.rules import validate

        (evaluation,) = validate(warehouse, dataset, [key], run_id)
        return {"status": f"{len(evaluation.failed)} failed"}
    if stage == "profile":
        from quality_assets.profile import profile_partition, write_profile

        with warehouse.connect() as con:
            profile = profile_partition(con, dataset, key)
            write_profile(con, dataset.name, key, run_id, profile)
        return {"status": f"{len(profile.columns)} columns"}
    if stage == "anomalies":
        from quality_assets.anomalies.stage import AnomalyOptions, detect_anomalies

        result = detect_anomalies(warehouse, dataset, key, run_id, AnomalyOptions())
        return {"status": f"{result.rows_flagged} flagged, {len(result.features)} features"}
    from quality_assets.report import build_report

    report = build_report(warehouse, dataset.name, key, work / "out", "")
    return {"status": f"{report.data.verdict.level}, {report.report_bytes / 1e6:.1f} MB"}


def measure(mode: str, path: Path, env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(path)], capture_output=True, text=True,
                         env=env)
    if out.returncode != 0:
        return {"status": f"failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}",
                "seconds": float("nan"), "rss_mb": 0}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--columns", default="200,2000,10000")
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--chain", action="store_true", help="also run the whole chain (quality-assets run)")
    parser.add_argument("--stages", action="store_true", help="each stage of the chain alone, in its own process")
    parser.add_argument("--memory", default="1GB", help="DuckDB memory_limit of --stages (default 1GB)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        sys.path.insert(0, str(ROOT))
        print(json.dumps(child(args.child[0], Path(args.child[1])), default=str))
        return
    if args.stages:
        stage_table([int(c) for c in args.columns.split(",")], args.rows, args.memory)
        return
    print(f"{'columns':>7} {'rows':>6} {'MB':>5} {'bare s':>7} {'load s':>7} {'load/bare':>9} {'RSS MB':>6}  load outcome"
          + ("   chain s  chain RSS  chain outcome" if args.chain else ""))
    for columns in [int(c) for c in args.columns.split(",")]:
        print(f"{columns} columns ...", file=sys.stderr, flush=True)
        path = generate(columns, args.rows)
        bare, load = measure("bare", path), measure("load", path)
        outcome = f"{load.get('status')} {load.get('loaded', '')}+{load.get('quarantined', '')}"
        line = (f"{columns:7} {args.rows:6} {path.stat().st_size / 1e6:5.0f} {bare['seconds']:7.2f} {load['seconds']:7.2f} "
                f"{load['seconds'] / bare['seconds']:8.2f}x {load['rss_mb']:6}  {outcome}")
        if args.chain:
            chain = measure("chain", path)
            line += f"   {chain['seconds']:7.1f}  {chain['rss_mb']:9}  {chain['status']} {chain.get('tail', '')}"
        print(line, flush=True)
    print("\nload = quality_assets.ingest.load_file (types inferred from every row, quarantine, audit); "
          "bare = CREATE TABLE AS SELECT * FROM read_csv(...). DuckDB memory_limit 1 GB.")


def stage_table(widths: list[int], rows: int, memory: str) -> None:
    print(f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'columns':>7} " + " ".join(f"{s + ' s':>11} {'MB':>5}" for s in STAGES) + f" {'total s':>8} {'peak MB':>7}")
    for columns in widths:
        print(f"{columns} columns ...", file=sys.stderr, flush=True)
        path = generate(columns, rows)
        work = Path(tempfile.mkdtemp(prefix="bench-wide-stages-"))
        env = {**os.environ, "QA_BENCH_WORK": str(work), "QA_DUCKDB_MEMORY_LIMIT": memory}
        cells, total, peak, notes = [], 0.0, 0, []
        for stage in STAGES:
            result = measure(f"stage:{stage}", path, env)
            cells.append(f"{result['seconds']:11.1f} {result['rss_mb']:5}")
            total += result["seconds"]
            peak = max(peak, result["rss_mb"])
            notes.append(f"{stage}: {result['status']}")
        print(f"{columns:7} " + " ".join(cells) + f" {total:8.1f} {peak:7}   " + "; ".join(notes), flush=True)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nEach stage in its own process on one warehouse (DuckDB memory_limit {memory}); MB = that process's "
          f"peak RSS. load average {os.getloadavg()[0]:.2f} at the end.")


if __name__ == "__main__":
    main()
