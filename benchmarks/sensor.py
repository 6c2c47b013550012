"""Cost of a landing-sensor tick against a bare directory listing of the same folder.

For each folder size, N settled CSV files land in a temporary folder; the real
`<dataset>_landing_sensor` from build_definitions is evaluated (as in quality_assets_tests/test_sensor.py)
with default settings except the per-tick cap, raised to N:

- first tick: no cursor, every file is new: N run requests and one partition request for N keys
  (small files are hashed here, once, to recognise later touches);
- quiet tick: the cursor of the first tick and its N partitions in the instance, nothing changed:
  no requests, no hashing;
- scandir: `[e.name for e in os.scandir(folder)]` on the same folder, the floor for any listing;
  and scandir+stat, the floor for a listing that sees sizes and mtimes (what a tick needs).

Times are the best of --repeat runs, measured in this invocation. The ratio columns divide a tick
by the scandir time.

Usage: python benchmarks/sensor.py [--files 1000 5000 20000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import dagster as dg
from dagster import DagsterInstance

from quality_assets.config import settings_from_env
from quality_assets.contract import load_contract
from quality_assets.defs.definitions import build_definitions

CONTRACT = 'datasets:\n  events:\n    landing: {path: landing/events, glob: "*.csv"}\n'
SENSOR = "events_landing_sensor"


def make_project(root: Path, files: int) -> tuple[dg.SensorDefinition, Path]:
    (root / "quality.yaml").write_text(CONTRACT)
    folder = root / "landing" / "events"
    folder.mkdir(parents=True)
    old = time.time_ns() - 3600 * 10**9
    for n in range(files):
        path = folder / f"events_{n:06}.csv"
        path.write_text(f"event_id,amount\n{n},{n * 1.5}\n{n + 1},{n * 2.5}\n")
        os.utime(path, ns=(old, old))
    settings = settings_from_env({"QA_CONTRACTS": str(root / "quality.yaml"),
                                  "QA_SENSOR_MAX_RUNS_PER_TICK": str(files)})
    defs = build_definitions(load_contract(settings.contracts), settings)
    return defs.resolve_sensor_def(SENSOR), folder


def tick(sensor: dg.SensorDefinition, cursor: str | None, partitions: list[str] = ()) -> tuple[float, dg.SensorResult]:
    with DagsterInstance.ephemeral() as instance:
        if partitions:
            instance.add_dynamic_partitions("events_files", list(partitions))
        context = dg.build_sensor_context(instance=instance, cursor=cursor)
        started = time.perf_counter()
        result = sensor(context)
        return time.perf_counter() - started, result


def best(repeat: int, fn):
    return min(fn() for _ in range(repeat))


def scandir_seconds(folder: Path) -> float:
    started = time.perf_counter()
    names = [entry.name for entry in os.scandir(folder)]
    elapsed = time.perf_counter() - started
    assert names
    return elapsed


def scandir_stat_seconds(folder: Path) -> float:
    started = time.perf_counter()
    stats = [os.stat(entry.path) for entry in os.scandir(folder)]
    elapsed = time.perf_counter() - started
    assert stats
    return elapsed


def measure(files: int, repeat: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="sensor-bench-") as tmp:
        sensor, folder = make_project(Path(tmp), files)
        first_s, first = min((tick(sensor, None) for _ in range(repeat)), key=lambda r: r[0])
        assert len(first.run_requests) == files, len(first.run_requests)
        assert sum(len(r.partition_keys) for r in first.dynamic_partitions_requests) == files
        added = [key for r in first.dynamic_partitions_requests for key in r.partition_keys]
        quiet_s, quiet = min((tick(sensor, first.cursor, added) for _ in range(repeat)), key=lambda r: r[0])
        assert not quiet.run_requests and quiet.cursor == first.cursor
        listing_s = best(repeat, lambda: scandir_seconds(folder))
        stat_s = best(repeat, lambda: scandir_stat_seconds(folder))
    return {
        "files": files,
        "first": first_s,
        "quiet": quiet_s,
        "cursor_kb": len(first.cursor.encode()) / 1024,
        "scandir": listing_s,
        "scandir_stat": stat_s,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    header = (f"{'files':>7} {'first tick s':>13} {'quiet tick s':>13} {'cursor KB':>10} "
              f"{'scandir s':>10} {'+stat s':>8} {'first/scandir':>14} {'quiet/scandir':>14} {'quiet/+stat':>12}")
    print(header)
    print("-" * len(header))
    for files in args.files:
        row = measure(files, args.repeat)
        print(f"{row['files']:>7} {row['first']:>13.3f} {row['quiet']:>13.3f} {row['cursor_kb']:>10.0f} "
              f"{row['scandir']:>10.4f} {row['scandir_stat']:>8.4f} {row['first'] / row['scandir']:>13.0f}x "
              f"{row['quiet'] / row['scandir']:>13.0f}x {row['quiet'] / row['scandir_stat']:>11.1f}x")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
