"""Latency and throughput of the deployment, through the real processes.

Starts the gRPC code server, dagster-webserver and dagster-daemon as plain processes on a fresh
PostgreSQL database (as the deployment test does), with the sensor interval at 1 s, then:

- latency: files land one at a time; from the moment a file is complete in the landing folder to
  its `<dataset>/raw` materialization event, to its report being written (the `<dataset>/report`
  materialization, with report.html on disk) and to the end of its run, per file;
- throughput: N small files land at once; files per minute from the landing to the last run's
  end, and a check that every file was processed exactly once (one run, one audit row, its rows).

Usage: python benchmarks/deployment.py [--latency-files 5] [--files 100]
Needs PostgreSQL (QA_TEST_PG_HOST/PORT/USER, default 127.0.0.1:5432 postgres).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "quality_assets_tests"))

from deployment_support import Deployment, fresh_database, wait_for  # noqa: E402

CONTRACT = """\
datasets:
  events:
    landing: {path: landing/events, glob: "*.csv"}
    columns: {event_id: bigint, amount: double, day: date}
"""
ROWS_PER_FILE = 50


def land(folder: Path, name: str, first_id: int) -> None:
    """Write a small CSV under a temporary name, then rename it: the file appears complete."""
    lines = ["event_id,amount,day"] + [f"{first_id + i},{i * 1.5},2026-11-01" for i in range(ROWS_PER_FILE)]
    tmp = folder / f".{name}.part"
    tmp.write_text("\n".join(lines) + "\n")
    os.replace(tmp, folder / name)


def materialized_at(deployment: Deployment, partition: str, stage: str) -> float | None:
    rows = deployment.sql(
        "SELECT extract(epoch from timestamp) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
        "AND partition = %s AND asset_key = %s ORDER BY id LIMIT 1", [partition, json.dumps(["events", stage])])
    return float(rows[0][0]) if rows else None


def run_of(deployment: Deployment, partition: str) -> dict | None:
    return next((r for r in deployment.runs() if r["tags"].get("dagster/partition") == partition), None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-files", type=int, default=5)
    parser.add_argument("--files", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qa-bench-") as tmp, fresh_database("qa_bench") as database:
        root = Path(tmp)
        project = root / "project"
        landing = project / "landing" / "events"
        landing.mkdir(parents=True)
        (project / "quality.yaml").write_text(CONTRACT)
        deployment = Deployment(root, database, project)
        try:
            started = time.monotonic()
            deployment.start("code", f"dagster code-server start -m quality_assets.defs --location-name quality_assets -h 127.0.0.1 -p {deployment.code_port}")
            deployment.start("webserver", f"dagster-webserver -h 127.0.0.1 -p {deployment.web_port} -w workspace.yaml")
            deployment.start("daemon", "dagster-daemon run -w workspace.yaml")
            deployment.wait_ready()
            startup = time.monotonic() - started

            latencies, report_latencies, run_ends = [], [], []
            for i in range(args.latency_files):
                name = f"latency_{i:03d}.csv"
                landed = time.time()
                land(landing, name, i * 1000)
                at = wait_for(lambda n=name: materialized_at(deployment, n, "raw"), 120, f"{name} materialized",
                              interval=0.1, on_timeout=deployment.diagnostics)
                reported = wait_for(lambda n=name: materialized_at(deployment, n, "report"), 120, f"{name} report",
                                    interval=0.1, on_timeout=deployment.diagnostics)
                if not (deployment.output / "events" / name / "report.html").is_file():
                    raise SystemExit(f"{name}: the report materialized but report.html is missing")
                run = wait_for(lambda n=name: (r := run_of(deployment, n)) and r["end"] and r, 60, f"{name} run end",
                               interval=0.1)
                latencies.append(at - landed)
                report_latencies.append(reported - landed)
                run_ends.append(run["end"] - landed)

            names = [f"bulk_{i:04d}.csv" for i in range(args.files)]
            for i, name in enumerate(names):
                tmp_path = landing / f".{name}.part"
                lines = ["event_id,amount,day"] + [f"{10**6 + i * 1000 + j},{j},2026-11-02" for j in range(ROWS_PER_FILE)]
                tmp_path.write_text("\n".join(lines) + "\n")
            landed = time.time()
            for name in names:  # all at once
                os.replace(landing / f".{name}.part", landing / name)

            def finished():
                runs = [r for r in deployment.runs() if r["tags"].get("dagster/partition", "").startswith("bulk_")]
                done = [r for r in runs if r["status"] in ("SUCCESS", "FAILURE", "CANCELED")]
                return runs if len(done) >= args.files else None

            runs = wait_for(finished, 120 + 30 * args.files, f"{args.files} runs", interval=1,
                            on_timeout=deployment.diagnostics)
            elapsed = max(r["end"] for r in runs) - landed
            created = [r["created"].timestamp() for r in runs]
            queued = [r["start"] - r["created"].timestamp() for r in runs]  # until the worker starts
            running = [r["end"] - r["start"] for r in runs]
            per_partition = {}
            for r in runs:
                per_partition.setdefault(r["tags"]["dagster/partition"], []).append(r["status"])
        finally:
            deployment.stop_all()
        with duckdb.connect(str(deployment.warehouse), read_only=True) as con:
            audits = dict(con.execute(
                "SELECT partition_key, count(*) FROM qa.files WHERE starts_with(partition_key, 'bulk_') GROUP BY 1"
            ).fetchall())
            raw_rows = dict(con.execute(
                "SELECT _partition_key, count(*) FROM raw.events WHERE starts_with(_partition_key, 'bulk_') GROUP BY 1"
            ).fetchall())
    once = (
        sorted(per_partition) == names
        and all(statuses == ["SUCCESS"] for statuses in per_partition.values())
        and all(audits.get(n) == 1 for n in names)
        and all(raw_rows.get(n) == ROWS_PER_FILE for n in names)
    )
    print(f"deployment benchmark: {os.cpu_count()} cores, sensor interval 1 s, settle 0 s, "
          f"{ROWS_PER_FILE} rows per file, start-up of the three processes {startup:.1f} s")
    print()
    print(f"{'measure':<44} {'value':>12}")
    print(f"{'-' * 44} {'-' * 12}")
    print(f"{'latency landing -> raw materialized, median':<44} {statistics.median(latencies):>10.1f} s")
    print(f"{'latency landing -> raw materialized, min/max':<44} {min(latencies):>5.1f}/{max(latencies):<4.1f} s")
    print(f"{'latency landing -> report written, median':<44} {statistics.median(report_latencies):>10.1f} s")
    print(f"{'latency landing -> report written, min/max':<44} "
          f"{min(report_latencies):>5.1f}/{max(report_latencies):<4.1f} s")
    print(f"{'latency landing -> run finished, median':<44} {statistics.median(run_ends):>10.1f} s")
    print(f"{f'throughput, {args.files} files landing at once':<44} {args.files / elapsed * 60:>6.1f} files/min")
    print(f"{'  time from landing to the last run end':<44} {elapsed:>10.1f} s")
    print(f"{'  last run created (sensor) after landing':<44} {max(created) - landed:>10.1f} s")
    print(f"{'  run queued+launching, median':<44} {statistics.median(queued):>10.1f} s")
    print(f"{'  run worker start to end, median':<44} {statistics.median(running):>10.1f} s")
    print(f"{'  runs / audit rows / raw rows per file':<44} {'1 / 1 / ' + str(ROWS_PER_FILE) if once else 'NOT exactly once':>12}")
    if not once:
        bad = {n: (per_partition.get(n), audits.get(n), raw_rows.get(n)) for n in names
               if per_partition.get(n) != ["SUCCESS"] or audits.get(n) != 1 or raw_rows.get(n) != ROWS_PER_FILE}
        print(f"files not processed exactly once: {dict(list(bad.items())[:10])}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
