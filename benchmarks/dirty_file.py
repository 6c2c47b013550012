"""One dirty file through `quality-assets run`: a 50,000-row CSV with N ragged lines (a field too
many), against a baseline source tree run the same way in the same invocation.

Each round, alternating baseline and candidate: a fresh temporary folder with the contract of
`startup.py` and the file in its landing folder, then one `quality-assets run` (a new process).
Wall time from the clock, CPU time (user + system) of the child. Every run is checked after the
clock: the file's audit row (read = loaded + quarantined) and its quarantined lines, which must
be the same lines with the same codes and text in both source trees. The best round of each is
reported, and the candidate's speed-up over the baseline with the range of the per-round ratios.

Usage: python benchmarks/dirty_file.py [--ragged 5000] [--repeat 3] [--baseline /tmp/qa-base]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent))
from many_files import run_cli  # noqa: E402
from startup import CONTRACT  # noqa: E402

ROWS = 50_000


def write_case(root: Path, ragged: int) -> Path:
    contract = root / "quality.yaml"
    contract.write_text(CONTRACT)
    landing = root / "landing" / "orders"
    landing.mkdir(parents=True)
    every = max(1, ROWS // max(ragged, 1))
    lines = ["order_id,customer_id,order_date,amount,currency,status"]
    lines += [f"{i},{i % 17},2026-11-{1 + i % 28:02d},{i % 200}.5,EUR,paid" + (",extra" if ragged and i % every == 0 else "")
              for i in range(ROWS)]
    (landing / "orders.csv").write_text("\n".join(lines) + "\n")
    return contract


def run_once(ragged: int, source: Path | None) -> tuple[float, float, tuple]:
    with tempfile.TemporaryDirectory(prefix="qa_dirty_") as tmp:
        root = Path(tmp)
        wall, cpu = run_cli(root, write_case(root, ragged), source)
        return wall, cpu, outcome(root)


def outcome(root: Path) -> tuple:
    """The audit row's counts and every quarantined line (run ids aside)."""
    con = duckdb.connect(str(root / "warehouse" / "quality.duckdb"), read_only=True)
    try:
        audit = con.execute("SELECT rows_read, rows_loaded, rows_quarantined FROM qa.files").fetchall()
        lines = con.execute("SELECT source_row, line, column_name, error_code, message, raw_value, raw_line "
                            "FROM qa.quarantine ORDER BY source_row").fetchall()
    finally:
        con.close()
    return audit, lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ragged", type=int, default=5000, help="lines with a field too many")
    parser.add_argument("--repeat", type=int, default=3, help="alternating rounds (best of)")
    parser.add_argument("--baseline", type=Path, help="a source tree to compare with (put on PYTHONPATH)")
    args = parser.parse_args()
    candidate = Path(__file__).resolve().parents[1]
    variants = ([("baseline", args.baseline.resolve())] if args.baseline else []) + [("candidate", candidate)]
    times: dict[str, list[tuple[float, float]]] = {name: [] for name, _ in variants}
    outcomes: dict[str, tuple] = {}
    loads = [os.getloadavg()[0]]
    for _ in range(args.repeat):
        for name, source in variants:
            wall, cpu, seen = run_once(args.ragged, source)
            times[name].append((wall, cpu))
            outcomes.setdefault(name, seen)
            loads.append(os.getloadavg()[0])
    audit, lines = outcomes["candidate"]
    [(read, loaded, quarantined)] = audit
    if read != ROWS or loaded + quarantined != read or len(lines) != quarantined or quarantined != args.ragged:
        raise SystemExit(f"rows not conserved: audit {audit}, {len(lines)} quarantined lines")
    if args.baseline and outcomes["baseline"] != outcomes["candidate"]:
        raise SystemExit("the baseline and the candidate quarantined different lines")
    print(f"{ROWS:,} rows, {args.ragged:,} ragged, {args.repeat} round(s), load average {min(loads):.1f}-{max(loads):.1f}")
    print(f"{'':10} {'best s':>8} {'CPU s':>8}")
    for name, _ in variants:
        print(f"{name:10} {min(t[0] for t in times[name]):8.2f} {min(t[1] for t in times[name]):8.2f}")
    if args.baseline:
        ratios = [b[0] / c[0] for b, c in zip(times["baseline"], times["candidate"], strict=True)]
        best = min(times["baseline"])[0] / min(times["candidate"])[0]
        cpu = min(t[1] for t in times["baseline"]) / min(t[1] for t in times["candidate"])
        print(f"speed-up (baseline / candidate): wall {best:.2f}x (rounds {min(ratios):.2f}-{max(ratios):.2f}x, "
              f"median {statistics.median(ratios):.2f}x), CPU {cpu:.2f}x")
    print(f"candidate: {read:,} rows read = {loaded:,} loaded + {quarantined:,} quarantined, "
          f"{'the same lines as the baseline' if args.baseline else 'no baseline'}")


if __name__ == "__main__":
    main()
