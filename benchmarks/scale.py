"""Files per minute with 1, 2 and 4 run workers, on the DuckLake and on the embedded DuckDB file.

A worker is one `quality-assets run FILE...` process (the whole chain per file, in-process, as a
Dagster run worker executes it) given its share of the files; all workers start at once on the
same warehouse: the embedded file (its writer lock queues them) or a DuckLake (a fresh PostgreSQL
catalog and data folder per measurement; they write at once). Files are small (50 rows) or medium
(100,000 rows), 8 columns. Every cell is the best of --rounds, the backends and worker counts
alternating inside each round, so that both backends see the same machine load.

Prints files/minute and the workers' CPU-seconds per file per cell, the speed-up of 2 and 4
workers over 1 on each backend (target on 2 cores: 2 workers >= 1.6x one worker on medium files, on
the lake), the speed-up the CPU-seconds allow on idle cores (the wall clock on a shared machine
says how it was shared), the lake's throughput against the file's, and the lake's extra seconds and
CPU-seconds per file with one worker (its per-file overhead: catalog round trips to PostgreSQL,
Parquet files per commit). Each cell also checks that every file was loaded exactly once.
`--threads` sets QA_DUCKDB_THREADS per worker: auto (cores / workers, as OPERATIONS.md advises on a
lake), default (DuckDB's one per core), or a number; several values are measured side by side.

Usage: python benchmarks/scale.py [--rounds 2] [--small-files 16] [--medium-files 8] [--workers 1 2 4]
       [--backends file lake] [--threads auto default]
Needs PostgreSQL (QA_TEST_PG_HOST/PORT/USER, default 127.0.0.1:5432 postgres) and the `lake`
extra (DuckDB 1.5.5 with the ducklake and postgres_scanner extension packages).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "quality_assets_tests"))

from deployment_support import PG_HOST, PG_PASSWORD, PG_PORT, PG_USER, fresh_database  # noqa: E402

CLI = str(Path(sys.executable).parent / "quality-assets")
CONTRACT = """\
version: 1
datasets:
  events:
    landing: {path: landing/events, glob: "*.csv"}
    columns: {event_id: bigint, amount: double, quantity: integer, day: date, country: varchar,
              channel: varchar, status: varchar, note: varchar}
"""
SIZES = {"small": 50, "medium": 100_000}
COUNTRIES = ["DE", "FR", "NL", "BE", "ES", "IT", "PL", "SE"]


def write_file(path: Path, rows: int, seed: int) -> None:
    lines = ["event_id,amount,quantity,day,country,channel,status,note"]
    for i in range(rows):
        n = seed * 1_000_003 + i
        lines.append(f"{n},{(n * 37 % 10_000) / 100},{n % 9 + 1},2026-11-{n % 28 + 1:02d},{COUNTRIES[n % 8]},"
                     f"{'web' if n % 3 else 'shop'},{'ok' if n % 17 else 'late'},order {n % 1000}")
    path.write_text("\n".join(lines) + "\n")


def lake_spec(database: str) -> str:
    password = f" password={PG_PASSWORD}" if PG_PASSWORD else ""
    return f"ducklake:postgres:dbname={database} host={PG_HOST} port={PG_PORT} user={PG_USER}{password}"


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def duckdb_threads(setting: str, workers: int) -> dict[str, str]:
    """QA_DUCKDB_THREADS for each of `workers` workers: `auto` shares the cores among them (as
    OPERATIONS.md advises on a lake), `default` leaves DuckDB one thread per core, else that number."""
    if setting == "default":
        return {}
    return {"QA_DUCKDB_THREADS": str(max(1, (os.cpu_count() or 1) // workers) if setting == "auto" else int(setting))}


def measure(files: list[Path], workers: int, backend: str, threads: str, root: Path) -> tuple[float, float, int]:
    """Seconds from starting the workers to the last one's end, the workers' CPU-seconds and the
    files loaded (from the audit)."""
    project = root / "project"
    landing = project / "landing" / "events"
    landing.mkdir(parents=True)
    (project / "quality.yaml").write_text(CONTRACT)
    for f in files:
        os.link(f, landing / f.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "DAGSTER_"))}
    env.update({"QA_CONTRACTS": str(project / "quality.yaml"), "QA_DUCKDB_PATH": str(root / "warehouse" / "quality.duckdb"),
                "QA_OUTPUT_DIR": str(root / "output"), "QA_DUCKDB_MEMORY_LIMIT": "512MB", **duckdb_threads(threads, workers)})

    def run(extra: dict[str, str]) -> tuple[float, float, int]:
        warehouse_sql({**env, **extra}, "SELECT 1")  # the warehouse exists before the workers start, as deployed
        shares = [sorted(landing.iterdir())[i::workers] for i in range(workers)]
        started, cpu = time.perf_counter(), children_cpu()
        processes = [subprocess.Popen([CLI, "run", *map(str, share)], env={**env, **extra}, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for share in shares if share]
        outputs = [p.communicate() for p in processes]
        seconds, cpu = time.perf_counter() - started, children_cpu() - cpu
        for process, (out, error) in zip(processes, outputs, strict=True):
            if process.returncode != 0:
                raise SystemExit(f"a {backend} worker failed ({process.returncode}): {out[-3000:]}\n{error[-2000:]}")
        loaded = warehouse_sql({**env, **extra}, "SELECT count(DISTINCT partition_key) FROM qa.files WHERE status = 'loaded'")
        return seconds, cpu, int(loaded)

    if backend == "file":
        return run({})
    with fresh_database("qa_bench_scale") as database:
        return run({"QA_WAREHOUSE": lake_spec(database), "QA_LAKE_DATA_PATH": str(root / "lake")})


def warehouse_sql(env: dict[str, str], sql: str) -> str:
    """One value from the warehouse the environment chooses, in a process of its own."""
    code = ("import sys\nfrom quality_assets.config import settings_from_env\nfrom quality_assets.lake import open_warehouse\n"
            "with open_warehouse(settings_from_env()).connect() as con:\n    print(con.execute(sys.argv[1]).fetchone()[0])")
    result = subprocess.run([sys.executable, "-c", code, sql], env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"cannot query the warehouse: {result.stderr[-2000:]}")
    return result.stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--small-files", type=int, default=16)
    parser.add_argument("--medium-files", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    parser.add_argument("--backends", nargs="+", default=["file", "lake"], choices=["file", "lake"])
    parser.add_argument("--threads", nargs="+", default=["auto"],
                        help="QA_DUCKDB_THREADS per worker: auto (cores / workers), default (DuckDB's: every core), or N")
    args = parser.parse_args()
    counts = {"small": args.small_files, "medium": args.medium_files}
    base = Path(tempfile.mkdtemp(prefix="qa_scale_"))
    try:
        data = {}
        for size in args.sizes:
            folder = base / "data" / size
            folder.mkdir(parents=True)
            data[size] = [folder / f"events_{i:03d}.csv" for i in range(counts[size])]
            for i, path in enumerate(data[size]):
                write_file(path, SIZES[size], i)
        setups = [(backend, threads) for threads in args.threads for backend in args.backends]
        best: dict[tuple, tuple[float, float]] = {}  # (size, (backend, threads), workers) -> (seconds, CPU-s)
        cell = 0
        for round_no in range(1, args.rounds + 1):
            for size in args.sizes:
                for workers in args.workers:
                    for setup in (setups if round_no % 2 else setups[::-1]):
                        cell += 1
                        seconds, cpu, loaded = measure(data[size], workers, *setup, base / f"cell{cell}")
                        shutil.rmtree(base / f"cell{cell}", ignore_errors=True)
                        if loaded != len(data[size]):
                            raise SystemExit(f"{setup}, {workers} worker(s), {size}: {loaded} of {len(data[size])} files loaded")
                        key = (size, setup, workers)
                        if seconds < best.get(key, (float("inf"), 0.0))[0]:
                            best[key] = (seconds, cpu)
                        print(f"round {round_no}: {size:6} {label(setup):22} {workers} worker(s): {seconds:6.1f} s, "
                              f"{len(data[size]) * 60 / seconds:6.1f} files/min, {cpu / len(data[size]):5.2f} CPU-s/file, "
                              f"{cpu / seconds:.2f} cores busy (load {os.getloadavg()[0]:.2f})", flush=True)
        report(best, data, args.workers, setups)
        print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


def label(setup: tuple[str, str]) -> str:
    backend, threads = setup
    return f"{backend}, threads {threads}"


def report(best: dict, data: dict[str, list[Path]], workers: list[int], setups: list[tuple[str, str]]) -> None:
    """The table (best of the rounds per cell), the speed-ups, what the CPU allows, the lake against the file."""
    cores = os.cpu_count() or 1
    print()
    print(f"| files | backend | {' | '.join(f'{w} worker(s)' for w in workers)} | "
          f"{' | '.join(f'{w} vs 1' for w in workers[1:])} | CPU-s/file ({', '.join(map(str, workers))}) |")
    print("|---|---|" + "---|" * (2 * len(workers)))
    for size, files in data.items():
        n = len(files)
        for setup in setups:
            rates = [n * 60 / best[(size, setup, w)][0] for w in workers]
            cpu = [best[(size, setup, w)][1] / n for w in workers]
            print(f"| {n} x {SIZES[size]:,} rows | {label(setup)} | {' | '.join(f'{r:.1f}/min' for r in rates)} | "
                  f"{' | '.join(f'{r / rates[0]:.2f}x' for r in rates[1:])} | {', '.join(f'{c:.2f}' for c in cpu)} |")
    print()
    # What the CPU allows on idle cores: one worker keeps about one core busy (0.99-1.03 measured on a
    # quiet machine: the chain is mostly Python), so w workers can go at most min(cores, w) x (CPU-s
    # a file with one worker) / (CPU-s a file with w) times as fast. Under load the wall-clock ratio
    # says how the machine was shared; this one says what the work itself costs.
    for size in data:
        for setup in setups:
            one = best[(size, setup, workers[0])][1]
            print(f"{size}, {label(setup)}: on {cores} idle cores the CPU allows at most " + ", ".join(
                f"{min(cores, w) * one / best[(size, setup, w)][1]:.2f}x with {w} workers" for w in workers[1:]))
    for threads in dict.fromkeys(t for _, t in setups):
        if ("file", threads) not in setups or ("lake", threads) not in setups:
            continue
        file, lake = ("file", threads), ("lake", threads)
        for size, files in data.items():
            n = len(files)
            ratios = ", ".join(f"{w}: {best[(size, file, w)][0] / best[(size, lake, w)][0]:.2f}x" for w in workers)
            line = f"{size}, threads {threads}: lake throughput / file throughput by workers: {ratios}"
            if 1 in workers:
                extra = (best[(size, lake, 1)][0] - best[(size, file, 1)][0]) / n
                extra_cpu = (best[(size, lake, 1)][1] - best[(size, file, 1)][1]) / n
                line += f"; the lake's extra per file with 1 worker: {extra:+.2f} s, {extra_cpu:+.2f} CPU-s"
            print(line)


if __name__ == "__main__":
    main()
