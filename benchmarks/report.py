"""Report generation time and size for wide partitions (20, 200 and 1,000 columns).

    /work/venv/bin/python benchmarks/report.py                       # 20, 200, 1000 columns
    /work/venv/bin/python benchmarks/report.py --columns 200 --history 30 --repeat 3

For each width it builds a warehouse in a temporary folder: a real load of a small file with that
many columns (qa.files, qa.quarantine), then profiles in qa.column_profiles (written with
profile.write_profile) for `--history` partitions, each describing a 10M-row partition with the
profile stage's full set of metrics (20-bin histogram, 10 top values, shapes, normality, alerts,
correlations over 50 columns). Then it times `build_report` end to end (gather under the lock,
render, write the five files) and reports its parts:

  gather s    reading everything the report shows from the warehouse
  render s    turning it into HTML
  total s     gather + render + atomic writes of all five files
  report MB   size of report.html
  baseline s  the same invocation's `read_profile` of the partition plus `json.dumps` of it: the
              least any report must do (read the profile back, serialise it)
  ratio       total / baseline

Targets: under 5 MB and under 10 s at 200 columns.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from quality_assets.contract import parse_contract  # noqa: E402
from quality_assets.ingest import load_file  # noqa: E402
from quality_assets.profile import read_profile, write_profile  # noqa: E402
from quality_assets.report import build_report  # noqa: E402
from quality_assets.warehouse import Warehouse  # noqa: E402

ROWS_DESCRIBED = 10_000_000


def profile_dict(columns: int, rng: random.Random, partition: str) -> dict:
    cols = []
    for i in range(columns):
        numeric = i % 3 != 2
        metrics = {"row_count": ROWS_DESCRIBED, "null_count": rng.randint(0, 1000), "distinct_count": rng.randint(10, 10**6)}
        metrics["null_share"] = metrics["null_count"] / ROWS_DESCRIBED
        metrics["uniqueness"] = metrics["distinct_count"] / ROWS_DESCRIBED
        if numeric:
            mean = rng.uniform(10, 1000)
            metrics.update(min=0.0, max=mean * 5, mean=mean, std=mean / 4, sum=mean * ROWS_DESCRIBED, zeros=10,
                           negatives=0, skewness=0.3, kurtosis=0.1, iqr=mean / 3, mad=mean / 5,
                           **{f"p{q}": mean * q / 50 for q in (1, 5, 25, 50, 75, 95, 99)})
        else:
            metrics.update(length_min=3, length_mean=12.5, length_max=40, top_value_share=0.12)
        counts = [int(ROWS_DESCRIBED * rng.random() / 10) for _ in range(20)]
        cols.append({
            "name": f"column_{i:04d}_{'amount' if numeric else 'label'}", "index": i, "metrics": metrics,
            "semantic_type": {"type": "float" if numeric else "categorical", "storage_type": "DOUBLE" if numeric else "VARCHAR",
                              "stored_as_text": False, "mixed_types": None},
            "distinct_method": "hll",
            "histogram": {"edges": [float(e * 50) for e in range(21)], "counts": counts} if numeric else None,
            "top_values": [{"value": f"{'value' if not numeric else ''}{v} {'x' * rng.randint(0, 30)}", "count": 10**6 - v * 1000}
                           for v in range(10)],
            "shapes": [{"shape": "9.9", "share": 0.9}, {"shape": "99.9", "share": 0.1}] if numeric else
                      [{"shape": "Aa", "share": 0.8}, {"shape": "Aa Aa", "share": 0.2}],
            "normality": {"test": "dagostino", "statistic": 3.2, "p_value": 0.2, "sample": 5000} if numeric else None,
            "monotonicity": None,
            "alerts": [{"alert": "skewed", "detail": "skewness 2.1"}] if i % 10 == 0 else [],
        })
    numeric_names = [c["name"] for c in cols if c["histogram"]][:50]
    return {"dataset": "wide", "partition_key": partition,
            "metrics": {"row_count": ROWS_DESCRIBED, "column_count": columns, "duplicate_rows": 0, "bytes": 2e9,
                        "alert_count": sum(len(c["alerts"]) for c in cols), "max_null_share": 0.0001},
            "correlations": {"pearson": {a: {b: round(rng.uniform(-1, 1), 3) for b in numeric_names} for a in numeric_names},
                             "spearman": {}, "columns_capped_at": 50},
            "alerts": [], "columns": cols}


def build_warehouse(root: Path, columns: int, history: int) -> Warehouse:
    rng = random.Random(columns)
    (root / "landing").mkdir(parents=True)
    dataset = parse_contract("datasets:\n  wide:\n    landing: landing\n", root / "quality.yaml").dataset("wide")
    warehouse = Warehouse(root / "wh.duckdb", lock_timeout_s=60)
    header = ",".join(f"column_{i:04d}_{'amount' if i % 3 != 2 else 'label'}" for i in range(columns))
    body = "\n".join(",".join(str(r * i % 97) if i % 3 != 2 else f"v{r % 7}" for i in range(columns)) for r in range(200))
    for n in range(history):
        key = f"part_{n:03d}.csv"
        (root / "landing" / key).write_text(header + "\n" + body + "\n")
        load_file(warehouse, root / "landing" / key, dataset, key, f"run-{n}")
        with warehouse.connect() as con:
            write_profile(con, "wide", key, f"run-{n}", profile_dict(columns, rng, key))
    return warehouse


def measure(columns: int, history: int, repeat: int) -> dict:
    root = Path(tempfile.mkdtemp(prefix=f"qa-bench-report-{columns}-"))
    try:
        print(f"  {columns} columns: building a warehouse with {history} profiled partitions ...", file=sys.stderr, flush=True)
        warehouse = build_warehouse(root, columns, history)
        key = f"part_{history - 1:03d}.csv"
        totals, gathers, renders, baselines, size = [], [], [], [], 0
        for _ in range(repeat):
            started = time.perf_counter()
            with warehouse.connect() as con:
                profile = read_profile(con, "wide", key)
            json.dumps(profile, default=str)
            baselines.append(time.perf_counter() - started)
            started = time.perf_counter()
            result = build_report(warehouse, "wide", key, root / "output")
            totals.append(time.perf_counter() - started)
            gathers.append(result.gather_s)
            renders.append(result.render_s)
            size = result.report_bytes
        return {"columns": columns, "gather": statistics.median(gathers), "render": statistics.median(renders),
                "total": statistics.median(totals), "mb": size / 1e6, "baseline": statistics.median(baselines)}
    finally:
        shutil.rmtree(root, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--columns", type=int, nargs="+", default=[20, 200, 1000])
    parser.add_argument("--history", type=int, default=10, help="profiled partitions (the trend charts' history)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = [measure(c, args.history, args.repeat) for c in args.columns]
    print(f"{'columns':>8} {'gather s':>9} {'render s':>9} {'total s':>8} {'report MB':>10} {'baseline s':>11} {'ratio':>6}")
    for r in rows:
        print(f"{r['columns']:>8} {r['gather']:>9.3f} {r['render']:>9.3f} {r['total']:>8.3f} {r['mb']:>10.2f} "
              f"{r['baseline']:>11.3f} {r['total'] / r['baseline']:>6.1f}")
    at_200 = next((r for r in rows if r["columns"] == 200), None)
    if at_200:
        ok = at_200["mb"] < 5 and at_200["total"] < 10
        print(f"\n200 columns: {at_200['mb']:.2f} MB in {at_200['total']:.2f} s "
              f"({'meets' if ok else 'MISSES'} the target of < 5 MB and < 10 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
