"""The whole chain on one big file against a bare DuckDB load + SUMMARIZE of the same file (issue 17, item 6).

    .venv/bin/python benchmarks/chain.py                     # 1M rows, 3 alternating rounds
    .venv/bin/python benchmarks/chain.py --rows 100000 --repeat 1
    .venv/bin/python benchmarks/chain.py --stages            # and each stage alone, in its own process

The file is benchmarks/ingest.py's (20 mixed columns, three malformed records spread through it),
declared in a contract with four rules (not_null, unique, accepted_values, a range). Each round
runs, in fresh processes and alternating:

- `bare`: `CREATE TABLE t AS SELECT * FROM read_csv(...)` then `SUMMARIZE t` in a new DuckDB file;
- `chain`: `quality-assets run` on a landing folder holding the file, in a new temporary folder
  (raw, validation, published, profile, anomalies, report; Dagster's in-process instance).

Wall seconds, CPU seconds (user + system of the process and its children) and peak RSS per run;
the table shows the best of each and the ratio of the bests, with the range of the per-round
ratios (the machine is shared: read the CPU ratio and the range). With --stages, each stage runs
alone in its own process on one warehouse, in the chain's order, so each has its own seconds
(`published` included: the gate and the copy of the partition into published."<dataset>").
Target (issue 17): the chain <= 2x the bare load + SUMMARIZE.
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

sys.path.insert(0, str(Path(__file__).parent))
from ingest import COLUMNS, generate  # noqa: E402  (the ingest benchmark's file and columns)

DATASET = "bench"
RULES = """    rules:
      - not_null: id
      - unique: id
      - accepted_values: {column: region, values: [EU, US, APAC, LATAM]}
      - range: {column: qty, min: 0, max: 100}
"""
STAGES = ("load", "rules", "published", "profile", "anomalies", "report")


def contract_text(landing: str) -> str:
    columns = "\n".join(f"      {name}: {kind}" for name, kind in COLUMNS.items())
    return f"datasets:\n  {DATASET}:\n    landing: {landing}\n    columns:\n{columns}\n{RULES}"


def cpu_seconds(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def child(mode: str, path: Path) -> dict:
    """One measurement in this process (and its children): wall, CPU, peak RSS, and what it did."""
    import duckdb

    work = Path(os.environ.get("QA_BENCH_WORK") or tempfile.mkdtemp(prefix="bench-chain-"))
    started, cpu_started = time.perf_counter(), cpu_seconds(resource.RUSAGE_SELF)
    result: dict = {}
    if mode == "bare":
        with duckdb.connect(str(work / "bare.duckdb"), config={"memory_limit": "1GB"}) as con:
            con.execute(f"CREATE TABLE t AS SELECT * FROM read_csv('{path}', ignore_errors = true)")
            result["status"] = f"{len(con.execute('SUMMARIZE t').fetchall())} columns summarized"
    elif mode == "chain":
        landing = work / "landing"
        landing.mkdir()
        (landing / path.name).symlink_to(path)
        (work / "quality.yaml").write_text(contract_text("landing"))
        env = {"QA_CONTRACTS": str(work / "quality.yaml"), "QA_DUCKDB_PATH": str(work / "wh.duckdb"),
               "QA_OUTPUT_DIR": str(work / "out"), "PATH": "/usr/bin:/bin"}
        run = subprocess.run([str(Path(sys.executable).with_name("quality-assets")), "run"], env=env, cwd=work,
                             capture_output=True, text=True, timeout=3600, check=False)
        outcome = [line.strip() for line in run.stdout.splitlines() if line.startswith(f"{DATASET} ")]
        result["status"] = f"exit {run.returncode}: " + (outcome[-1] if outcome else run.stderr[-300:])
    else:
        result["status"] = run_stage(mode.split(":", 1)[1], path, work)
    result["seconds"] = time.perf_counter() - started
    result["cpu"] = cpu_seconds(resource.RUSAGE_SELF) - cpu_started + cpu_seconds(resource.RUSAGE_CHILDREN)
    result["rss_mb"] = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                           resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    if "QA_BENCH_WORK" not in os.environ:
        shutil.rmtree(work, ignore_errors=True)
    return result


def run_stage(stage: str, path: Path, work: Path) -> str:
    """One stage of the chain on the warehouse in `work` (the stages before it already ran)."""
    from quality_assets.contract import parse_contract
    from quality_assets.warehouse import Warehouse

    contract = work / "quality.yaml"
    if not contract.exists():
        contract.write_text(contract_text("."))
    dataset = parse_contract(contract.read_text(), contract).dataset(DATASET)
    warehouse = Warehouse(work / "wh.duckdb")
    key, run_id = path.name, "bench"
    if stage == "load":
        from quality_assets.ingest import load_file

        audit = load_file(warehouse, path, dataset, key, run_id)
        return f"{audit.status} {audit.rows_loaded}+{audit.rows_quarantined}"
    if stage == "rules":
        from quality_assets.rules import validate

        (evaluation,) = validate(warehouse, dataset, [key], run_id)
        return f"{len(evaluation.failed)} failed"
    if stage == "published":
        from quality_assets.publish import gate, publish_partition

        with warehouse.connect() as con:
            passed = gate(con, dataset, key)
            if not passed.ok:
                return f"blocked: {passed.summary()}"
            return f"{publish_partition(con, dataset, key).rows} rows"
    if stage == "profile":
        from quality_assets.profile import profile_partition, write_profile

        with warehouse.connect() as con:
            profile = profile_partition(con, dataset, key)
            write_profile(con, dataset.name, key, run_id, profile)
        return f"{len(profile.columns)} columns"
    if stage == "anomalies":
        from quality_assets.anomalies.stage import AnomalyOptions, detect_anomalies

        result = detect_anomalies(warehouse, dataset, key, run_id, AnomalyOptions())
        return f"{result.rows_flagged} flagged"
    from quality_assets.report import build_report

    report = build_report(warehouse, dataset.name, key, work / "out", "")
    return f"{report.data.verdict.level}"


def measure(mode: str, path: Path, env: dict | None = None) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(path)], capture_output=True, text=True,
                         env=env, check=False)
    if out.returncode != 0:
        raise SystemExit(f"the {mode} run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def stages(path: Path) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-chain-stages-"))
    env = {**os.environ, "QA_BENCH_WORK": str(work)}
    print(f"\neach stage alone (its own process, one warehouse), load average {os.getloadavg()[0]:.2f}")
    print(f"{'stage':>10} {'s':>7} {'CPU s':>7} {'RSS MB':>7}  outcome")
    total = 0.0
    try:
        for stage in STAGES:
            result = measure(f"stage:{stage}", path, env)
            total += result["seconds"]
            print(f"{stage:>10} {result['seconds']:7.2f} {result['cpu']:7.2f} {result['rss_mb']:7.0f}  {result['status']}",
                  flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'total':>10} {total:7.2f}  (each in a fresh process: its imports and opening the warehouse included)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="alternating rounds; the best counts")
    parser.add_argument("--stages", action="store_true", help="also each stage alone, in its own process")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]))))
        return
    path = generate(args.rows)
    loads = [os.getloadavg()[0]]
    runs: dict[str, list[dict]] = {"bare": [], "chain": []}
    for n in range(args.repeat):
        for mode in runs:
            print(f"{mode} {n + 1}/{args.repeat} ...", file=sys.stderr, flush=True)
            result = measure(mode, path)
            runs[mode].append(result)
            print(f"    {result['seconds']:.2f} s, {result['cpu']:.2f} CPU-s, {result['rss_mb']:.0f} MB: {result['status']}",
                  file=sys.stderr, flush=True)
            loads.append(os.getloadavg()[0])
    bare = min(runs["bare"], key=lambda r: r["seconds"])
    chain = min(runs["chain"], key=lambda r: r["seconds"])
    rounds = [c["seconds"] / b["seconds"] for b, c in zip(runs["bare"], runs["chain"], strict=True)]
    cpu = min(r["cpu"] for r in runs["chain"]) / min(r["cpu"] for r in runs["bare"])
    print(f"\n{args.rows:,} rows x 20 columns ({path.stat().st_size / 2**20:,.0f} MB), load average "
          f"{min(loads):.1f}-{max(loads):.1f}")
    print(f"{'':>6} {'s':>7} {'CPU s':>7} {'RSS MB':>7}  outcome")
    for name, r in (("bare", bare), ("chain", chain)):
        print(f"{name:>6} {r['seconds']:7.2f} {r['cpu']:7.2f} {r['rss_mb']:7.0f}  {r['status']}")
    ratio = chain["seconds"] / bare["seconds"]
    print(f"chain / (bare load + SUMMARIZE): {ratio:.2f}x wall (rounds {min(rounds):.2f}-{max(rounds):.2f}x), "
          f"{cpu:.2f}x CPU; target <= 2x: {'met' if ratio <= 2 else 'not met'}")
    if args.stages:
        stages(path)


if __name__ == "__main__":
    main()
