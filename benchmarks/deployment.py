"""Latency and throughput of the deployment, through the real processes.

Starts the gRPC code server, dagster-webserver and dagster-daemon as plain processes on a fresh
PostgreSQL database (as the deployment test does), with the sensor interval at 1 s, then:

- latency: files land one at a time; from the moment a file is complete in the landing folder to
  its `<dataset>/raw` materialization event, to its report being written (the `<dataset>/report`
  materialization, with report.html on disk) and to the end of its run, per file;
- throughput: N small files land at once (several counts: one burst after the other, on the
  same deployment); files per minute from the landing to the last run's end, and from the first
  run's start to the last run's end (the steady state, without the first file's wait for the
  sensor tick, the queue and a new process); CPU seconds per file of each process (the code
  server's with its run workers, the daemon's, the webserver's, PostgreSQL's, and the whole
  machine's, other users' included), events written and PostgreSQL connections opened per
  file; and a check that every file was processed exactly once (one run, one audit row, its
  rows, its report).

Both on a baseline deployment with one run per file (QA_FILES_PER_RUN=1, measured first) and on
the candidate with several files per run (the sensor's ranges of neighbouring files), each on
its own fresh database; the ratio of their throughputs is printed.

Usage: python benchmarks/deployment.py [--latency-files 5] [--files 100 [200 ...]] [--files-per-run 25]
       [--baseline-files-per-run 1 | 0 for none] [--baseline-source DIR] [--instance dagster.yaml]
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

from deployment_support import REPO, Deployment, fresh_database, wait_for  # noqa: E402

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
    return next((r for r in deployment.runs() if partition in files_of(r)), None)


def files_of(run: dict) -> list[str]:
    """The files a run covers: its partition, or the files of its range (the sensor's tag)."""
    if "quality_assets/file_versions" in run["tags"]:
        return list(json.loads(run["tags"]["quality_assets/file_versions"]))
    return [run["tags"]["dagster/partition"]] if "dagster/partition" in run["tags"] else []


def measure(files_per_run: int, latency_files: int, files: list[int], instance: Path | None = None,
            source: Path | None = None) -> dict:
    """A fresh deployment with QA_FILES_PER_RUN=files_per_run (and `instance` as its dagster.yaml,
    default the repository's; with `source`, that tree's package and dagster.yaml, through
    PYTHONPATH): latency of single files, then throughput of each count in `files`
    landing at once (one burst after the other), and whether each file was processed exactly once."""
    with tempfile.TemporaryDirectory(prefix="qa-bench-") as tmp, fresh_database("qa_bench") as database:
        root = Path(tmp)
        project = root / "project"
        landing = project / "landing" / "events"
        landing.mkdir(parents=True)
        (project / "quality.yaml").write_text(CONTRACT)
        env = {"QA_FILES_PER_RUN": str(files_per_run)} | ({"PYTHONPATH": str(source)} if source else {})
        deployment = Deployment(root, database, project, instance=instance or (source or REPO) / "dagster.yaml",
                                extra_env=env)
        try:
            started = time.monotonic()
            deployment.start("code", f"dagster code-server start -m quality_assets.defs --location-name quality_assets -h 127.0.0.1 -p {deployment.code_port}")
            deployment.start("webserver", f"dagster-webserver -h 127.0.0.1 -p {deployment.web_port} -w workspace.yaml")
            deployment.start("daemon", "dagster-daemon run -w workspace.yaml")
            deployment.wait_ready()
            startup = time.monotonic() - started

            latencies, report_latencies, run_ends, steps = [], [], [], []
            for i in range(latency_files):
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
                created = run["created"].timestamp()  # landing -> run created (the sensor), -> started (queue, launch)
                steps.append((created - landed, run["start"] - created, reported - run["start"]))

            bursts = [burst(deployment, landing, count, tag) for tag, count in enumerate(files)]
        finally:
            deployment.stop_all()
        with duckdb.connect(str(deployment.warehouse), read_only=True) as con:
            audits = dict(con.execute(
                "SELECT partition_key, count(*) FROM qa.files WHERE starts_with(partition_key, 'bulk_') GROUP BY 1"
            ).fetchall())
            raw_rows = dict(con.execute(
                "SELECT _partition_key, count(*) FROM raw.events WHERE starts_with(_partition_key, 'bulk_') GROUP BY 1"
            ).fetchall())
        for result in bursts:
            names = result.pop("names")
            per_partition = result.pop("per_partition")
            reports = {name for name in names if (deployment.output / "events" / name / "report.html").is_file()}
            result["bad"] = {n: (per_partition.get(n), audits.get(n), raw_rows.get(n), n in reports) for n in names
                             if per_partition.get(n) != ["SUCCESS"] or audits.get(n) != 1
                             or raw_rows.get(n) != ROWS_PER_FILE or n not in reports}
    return {
        "startup": startup, "latency_raw": latencies, "latency_steps": steps, "latency_report": report_latencies,
        "latency_end": run_ends, "bursts": bursts,
    }


def burst(deployment: Deployment, landing: Path, files: int, tag: int) -> dict:
    """`files` files land at once: files/min from the landing to the last run's end, and after
    the first run started (the steady state, without the first file's wait for the sensor, the
    queue and a process); CPU seconds of each process meanwhile, events written per file."""
    names = [f"bulk_{tag}_{i:04d}.csv" for i in range(files)]
    for i, name in enumerate(names):
        lines = ["event_id,amount,day"] + [f"{10**7 * (tag + 1) + i * 1000 + j},{j},2026-11-02" for j in range(ROWS_PER_FILE)]
        (landing / f".{name}.part").write_text("\n".join(lines) + "\n")
    prefix = f"bulk_{tag}_"
    events_before, sessions_before = event_count(deployment), sessions(deployment)
    cpu_before, machine_before = deployment.cpu(), machine_cpu()
    landed = time.time()
    for name in names:  # all at once
        os.replace(landing / f".{name}.part", landing / name)

    def finished():
        runs = [r for r in deployment.runs() if any(f.startswith(prefix) for f in files_of(r))]
        done = [r for r in runs if r["status"] in ("SUCCESS", "FAILURE", "CANCELED")]
        return runs if len(done) == len(runs) and sum(len(files_of(r)) for r in done) >= files else None

    runs = wait_for(finished, 120 + 30 * files, f"{files} files' runs", interval=0.5,
                    on_timeout=deployment.diagnostics)
    cpu_after, machine_after = deployment.cpu(), machine_cpu()
    last_end = max(r["end"] for r in runs)
    first_start = min(r["start"] for r in runs)
    per_partition: dict[str, list[str]] = {}
    for r in runs:
        for name in files_of(r):
            per_partition.setdefault(name, []).append(r["status"])
    return {
        "files": files, "names": names, "per_partition": per_partition,
        "rate": files / (last_end - landed) * 60, "elapsed": last_end - landed,
        "steady": files / (last_end - first_start) * 60, "first_start": first_start - landed,
        "last_created": max(r["created"].timestamp() for r in runs) - landed,
        "queued": statistics.median(r["start"] - r["created"].timestamp() for r in runs),
        "running": statistics.median(r["end"] - r["start"] for r in runs), "runs": len(runs),
        "cpu": {name: (cpu_after.get(name, 0) - spent) / files for name, spent in cpu_before.items()},
        "machine_cpu": (machine_after - machine_before) / files,
        "events": (event_count(deployment) - events_before) / files,
        "sessions": (sessions(deployment) - sessions_before) / files,
    }


def event_count(deployment: Deployment) -> int:
    return deployment.sql("SELECT count(*) FROM event_logs")[0][0]


def sessions(deployment: Deployment) -> int:
    """PostgreSQL connections opened to the deployment's database so far (dagster-postgres opens
    one per storage call outside the webserver)."""
    return deployment.sql("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")[0][0]


def machine_cpu() -> float:
    """CPU seconds the whole machine spent so far (every process, other users' too)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    busy = sum(int(v) for v in fields[:8]) - int(fields[3]) - int(fields[4])  # less idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency-files", type=int, default=5)
    parser.add_argument("--files", type=int, nargs="+", default=[100],
                        help="files landing at once; several counts land one burst after the other")
    parser.add_argument("--files-per-run", type=int, default=25, help="QA_FILES_PER_RUN of the candidate")
    parser.add_argument("--baseline-files-per-run", type=int, default=1,
                        help="QA_FILES_PER_RUN of the baseline deployment, measured first (0: no baseline)")
    parser.add_argument("--instance", type=Path, help="the candidate's dagster.yaml (default: the repository's)")
    parser.add_argument("--baseline-source", type=Path,
                        help="the baseline runs this source tree's package and dagster.yaml (e.g. main before a change)")
    args = parser.parse_args()
    loads = [os.getloadavg()[0]]
    variants = ([("baseline", args.baseline_files_per_run)] if args.baseline_files_per_run else []) + [
        ("candidate", args.files_per_run)]
    results = {}
    for name, per_run in variants:
        candidate = name == "candidate"
        results[name] = measure(per_run, args.latency_files, args.files, args.instance if candidate else None,
                                None if candidate else args.baseline_source)
        loads.append(os.getloadavg()[0])
    print(f"deployment benchmark: {os.cpu_count()} cores, sensor interval 1 s, settle 0 s, {ROWS_PER_FILE} rows per "
          f"file, load average {min(loads):.1f}-{max(loads):.1f}")
    print()
    names = [name for name, _ in variants]
    print(f"{'measure':<46}" + "".join(f"{f'{n} ({p}/run)':>22}" for n, p in variants))
    rows = [
        ("start-up of the three processes, s", lambda r: f"{r['startup']:.1f}"),
        ("latency landing -> raw materialized, median s", lambda r: f"{statistics.median(r['latency_raw']):.1f}"),
        ("latency landing -> report written, median s", lambda r: f"{statistics.median(r['latency_report']):.1f}"),
        ("latency landing -> report written, min/max s",
         lambda r: f"{min(r['latency_report']):.1f}/{max(r['latency_report']):.1f}"),
        ("latency landing -> run finished, median s", lambda r: f"{statistics.median(r['latency_end']):.1f}"),
        ("  of which landing -> run created (sensor), s", lambda r: f"{statistics.median(s[0] for s in r['latency_steps']):.1f}"),
        ("  run created -> started (queue, launch), s", lambda r: f"{statistics.median(s[1] for s in r['latency_steps']):.1f}"),
        ("  run started -> report written, s", lambda r: f"{statistics.median(s[2] for s in r['latency_steps']):.1f}"),
    ]
    for i, count in enumerate(args.files):
        def at(r: dict, i: int = i) -> dict:  # this burst's results
            return r["bursts"][i]

        rows += [
            (f"throughput, {count} files at once, files/min", lambda r, at=at: f"{at(r)['rate']:.1f}"),
            ("  after the first run started (steady), /min", lambda r, at=at: f"{at(r)['steady']:.1f}"),
            ("  landing to the last run end, s", lambda r, at=at: f"{at(r)['elapsed']:.1f}"),
            ("  landing to the first run started, s", lambda r, at=at: f"{at(r)['first_start']:.1f}"),
            ("  runs", lambda r, at=at: str(at(r)["runs"])),
            ("  last run created after landing, s", lambda r, at=at: f"{at(r)['last_created']:.1f}"),
            ("  run queued+launching, median s", lambda r, at=at: f"{at(r)['queued']:.1f}"),
            ("  run worker start to end, median s", lambda r, at=at: f"{at(r)['running']:.1f}"),
            ("  CPU-s a file, whole machine", lambda r, at=at: f"{at(r)['machine_cpu']:.2f}"),
            *[(f"  CPU-s a file, {process}", lambda r, at=at, process=process: f"{at(r)['cpu'][process]:.2f}")
              for process in ("code", "daemon", "webserver", "postgres")],
            ("  events written a file", lambda r, at=at: f"{at(r)['events']:.0f}"),
            ("  PostgreSQL connections opened a file", lambda r, at=at: f"{at(r)['sessions']:.0f}"),
            ("  every file: 1 run, 1 audit row, its rows, report", lambda r, at=at: "yes" if not at(r)["bad"] else "NO"),
        ]
    for label, cell in rows:
        print(f"{label:<46}" + "".join(f"{cell(results[n]):>22}" for n in names))
    if "baseline" in results:
        for i, count in enumerate(args.files):
            ratio = results["candidate"]["bursts"][i]["rate"] / results["baseline"]["bursts"][i]["rate"]
            print(f"\nthroughput ratio candidate / baseline, {count} files: {ratio:.2f}x")
    failed = 0
    for name in names:
        for result in results[name]["bursts"]:
            if result["bad"]:
                print(f"{name}, {result['files']} files: not processed exactly once: {dict(list(result['bad'].items())[:10])}")
                failed = 1
    return failed


if __name__ == "__main__":
    sys.exit(main())
