"""Many small files through `quality-assets run` on a folder: files per minute, against a
baseline source tree (e.g. main before a change) run the same way in the same invocation.

Each round, alternating baseline and candidate: a fresh temporary folder with the contract of
`startup.py` (4 rules, a primary key) and N 50-row CSVs in its landing folder, then one
`quality-assets run` (a new process: imports, Dagster's ephemeral instance, every file's whole
chain). Wall time from the clock, CPU time (user + system) of the child. Every run is checked
after the clock: N files in `qa.files`, each with its own report.html, its own check results and
its rows in published. The best round of each is reported: files per minute, seconds and
CPU-seconds per file, and the candidate's speed-up over the baseline with the range of the
per-round ratios.

The baseline is a source tree given with `--baseline DIR` (put first on PYTHONPATH; make one with
`git archive <commit> | tar -x -C DIR`); without it only the candidate runs.

Usage: python benchmarks/many_files.py [--files 50] [--repeat 3] [--baseline /tmp/qa-base]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from startup import CONTRACT  # noqa: E402

ROWS = 50
TARGET_FILES_PER_MIN = 120


def write_case(root: Path, files: int) -> Path:
    contract = root / "quality.yaml"
    contract.write_text(CONTRACT)
    landing = root / "landing" / "orders"
    landing.mkdir(parents=True)
    for n in range(files):
        lines = ["order_id,customer_id,order_date,amount,currency,status"]
        lines += [f"{n * ROWS + i},{i % 7},2026-11-{1 + i % 28:02d},{i * 1.25:.2f},EUR,paid" for i in range(ROWS)]
        (landing / f"orders_{n:04d}.csv").write_text("\n".join(lines) + "\n")
    return contract


def run_cli(root: Path, contract: Path, source: Path | None) -> tuple[float, float]:
    """One `quality-assets run` in `root` (a new process, `source` first on its path): wall
    seconds and the child's CPU seconds; exits with its output when it fails."""
    env = {**os.environ, "QA_CONTRACTS": str(contract)}
    for name in ("QA_DUCKDB_PATH", "QA_OUTPUT_DIR", "DAGSTER_HOME"):
        env.pop(name, None)
    if source is not None:
        env["PYTHONPATH"] = str(source)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "quality_assets.cli.main", "run"], env=env, cwd=root,
                          capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"run failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def run_once(files: int, source: Path | None) -> tuple[float, float]:
    with tempfile.TemporaryDirectory(prefix="qa_many_") as tmp:
        root = Path(tmp)
        timed = run_cli(root, write_case(root, files), source)
        verify(root, files)
        return timed


def verify(root: Path, files: int) -> None:
    """Every file its own partition with its own audit row, check results, report and published rows."""
    con = duckdb.connect(str(root / "warehouse" / "quality.duckdb"), read_only=True)
    try:
        audits = con.execute("SELECT count(DISTINCT partition_key), count(*) FROM qa.files WHERE status = 'loaded'").fetchone()
        checked = con.execute("SELECT count(DISTINCT partition_key) FROM qa.check_results").fetchone()[0]
        published = con.execute("SELECT count(DISTINCT _partition_key), count(*) FROM published.orders").fetchone()
    finally:
        con.close()
    reports = len(list((root / "output" / "orders").glob("*/report.html")))
    problems = []
    if audits != (files, files):
        problems.append(f"audit rows {audits}")
    if checked != files:
        problems.append(f"partitions with check results {checked}")
    if published != (files, files * ROWS):
        problems.append(f"published partitions/rows {published}")
    if reports != files:
        problems.append(f"reports {reports}")
    if problems:
        raise SystemExit(f"expected {files} files each processed once: " + ", ".join(problems))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3, help="alternating rounds (best of)")
    parser.add_argument("--baseline", type=Path, help="a source tree to compare with (put on PYTHONPATH)")
    args = parser.parse_args()
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(Path(__file__).resolve().parents[1] / "quality_assets")],
                   check=True)
    if args.baseline:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(args.baseline / "quality_assets")], check=True)
    candidate = Path(__file__).resolve().parents[1]
    variants = ([("baseline", args.baseline.resolve())] if args.baseline else []) + [("candidate", candidate)]
    times: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in variants}
    loads = [os.getloadavg()[0]]
    for _ in range(args.repeat):
        for name, source in variants:
            times[name].append(run_once(args.files, source))
            loads.append(os.getloadavg()[0])
    print(f"{args.files} files x {ROWS} rows, {args.repeat} round(s), load average {min(loads):.1f}-{max(loads):.1f}")
    print(f"{'':10} {'best s':>8} {'files/min':>10} {'s/file':>8} {'CPU s':>8} {'CPU s/file':>10}")
    for name, _ in variants:
        wall, cpu = min(t[0] for t in times[name]), min(t[1] for t in times[name])  # best of each
        print(f"{name:10} {wall:8.2f} {args.files / wall * 60:10.1f} {wall / args.files:8.3f} {cpu:8.2f} "
              f"{cpu / args.files:10.3f}")
    if args.baseline:
        ratios = [b[0] / c[0] for b, c in zip(times["baseline"], times["candidate"], strict=True)]
        best = min(times["baseline"])[0] / min(times["candidate"])[0]
        cpu = min(t[1] for t in times["baseline"]) / min(t[1] for t in times["candidate"])
        print(f"speed-up (baseline / candidate): wall {best:.2f}x (rounds {min(ratios):.2f}-{max(ratios):.2f}x, "
              f"median {statistics.median(ratios):.2f}x), CPU {cpu:.2f}x")
    rate = args.files / min(times["candidate"])[0] * 60
    print(f"candidate: {rate:.1f} files/min, target >= {TARGET_FILES_PER_MIN}: "
          + ("met" if rate >= TARGET_FILES_PER_MIN else "not met"))


if __name__ == "__main__":
    main()
