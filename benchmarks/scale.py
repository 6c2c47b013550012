"""Files per minute with 1, 2 and 4 run workers, on the DuckLake and on the embedded DuckDB file.

A worker is one `quality-assets run FILE...` process (the whole chain per file, in-process, as a
Dagster run worker executes it) given its share of the files; all workers start at once on the
same warehouse: the embedded file (its writer lock queues them) or a DuckLake (a fresh PostgreSQL
catalog and data folder per measurement; they write at once). Files are small (50 rows) or medium
(100,000 rows), 8 columns. Every cell is the best of --rounds, the backends and worker counts
alternating inside each round, so that both backends see the same machine load.

Prints files/minute per cell, the speed-up of 2 and 4 workers over 1 on each backend (target on
2 cores: 2 workers >= 1.6x one worker on medium files, on the lake), the lake's throughput against
the file's, and the lake's extra seconds per file with one worker (its per-file overhead: catalog
round trips to PostgreSQL, Parquet files per commit). Each cell also checks that every file was
loaded exactly once.

Usage: python benchmarks/scale.py [--rounds 2] [--small-files 16] [--medium-files 8] [--workers 1 2 4]
Needs PostgreSQL (QA_TEST_PG_HOST/PORT/USER, default 127.0.0.1:5432 postgres) and the `lake`
extra (DuckDB 1.5.5 with the ducklake and postgres_scanner extension packages).
"""

from __future__ import annotations

import argparse
import os
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


def measure(files: list[Path], workers: int, backend: str, root: Path) -> tuple[float, int]:
    """Seconds from starting the workers to the last one's end; files loaded (from the audit)."""
    project = root / "project"
    landing = project / "landing" / "events"
    landing.mkdir(parents=True)
    (project / "quality.yaml").write_text(CONTRACT)
    for f in files:
        os.link(f, landing / f.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "DAGSTER_"))}
    env.update({"QA_CONTRACTS": str(project / "quality.yaml"), "QA_DUCKDB_PATH": str(root / "warehouse" / "quality.duckdb"),
                "QA_OUTPUT_DIR": str(root / "output"), "QA_DUCKDB_MEMORY_LIMIT": "512MB"})

    def run(extra: dict[str, str]) -> tuple[float, int]:
        warehouse_sql({**env, **extra}, "SELECT 1")  # the warehouse exists before the workers start, as deployed
        shares = [sorted(landing.iterdir())[i::workers] for i in range(workers)]
        started = time.perf_counter()
        processes = [subprocess.Popen([CLI, "run", *map(str, share)], env={**env, **extra}, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True) for share in shares if share]
        outputs = [p.communicate() for p in processes]
        seconds = time.perf_counter() - started
        for process, (out, error) in zip(processes, outputs, strict=True):
            if process.returncode != 0:
                raise SystemExit(f"a {backend} worker failed ({process.returncode}): {out[-3000:]}\n{error[-2000:]}")
        loaded = warehouse_sql({**env, **extra}, "SELECT count(DISTINCT partition_key) FROM qa.files WHERE status = 'loaded'")
        return seconds, int(loaded)

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
        best: dict[tuple[str, str, int], float] = {}
        cell = 0
        for round_no in range(1, args.rounds + 1):
            for size in args.sizes:
                for workers in args.workers:
                    for backend in (("file", "lake") if round_no % 2 else ("lake", "file")):
                        cell += 1
                        seconds, loaded = measure(data[size], workers, backend, base / f"cell{cell}")
                        shutil.rmtree(base / f"cell{cell}", ignore_errors=True)
                        if loaded != len(data[size]):
                            raise SystemExit(f"{backend}, {workers} worker(s), {size}: {loaded} of {len(data[size])} files loaded")
                        key = (size, backend, workers)
                        best[key] = min(best.get(key, float("inf")), seconds)
                        print(f"round {round_no}: {size:6} {backend:4} {workers} worker(s): {seconds:6.1f} s, "
                              f"{len(data[size]) * 60 / seconds:6.1f} files/min (load {os.getloadavg()[0]:.2f})", flush=True)
        print()
        print(f"| files | backend | {' | '.join(f'{w} worker(s)' for w in args.workers)} | "
              f"{' | '.join(f'{w} vs 1' for w in args.workers[1:])} |")
        print("|---|---|" + "---|" * (2 * len(args.workers) - 1))
        for size in args.sizes:
            n = len(data[size])
            for backend in ("file", "lake"):
                rates = [n * 60 / best[(size, backend, w)] for w in args.workers]
                ratios = [rate / rates[0] for rate in rates[1:]]
                print(f"| {n} x {SIZES[size]:,} rows | {backend} | {' | '.join(f'{r:.1f}/min' for r in rates)} | "
                      f"{' | '.join(f'{r:.2f}x' for r in ratios)} |")
        print()
        for size in args.sizes:
            n = len(data[size])
            lake_vs_file = ", ".join(f"{w}: {best[(size, 'file', w)] / best[(size, 'lake', w)]:.2f}x" for w in args.workers)
            line = f"{size}: lake throughput / file throughput by workers: {lake_vs_file}"
            if 1 in args.workers:
                line += f"; lake's extra time per file with 1 worker: {(best[(size, 'lake', 1)] - best[(size, 'file', 1)]) / n:+.2f} s"
            print(line)
        print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
