"""The same stages on two DuckDB versions: profile, ingest and rules, each interpreter in turn.

    .venv/bin/python benchmarks/versions.py --python .venv/bin/python /tmp/venv155/bin/python
    .venv/bin/python benchmarks/versions.py --python A B --rows 1000000 --repeat 3

Why: the DuckLake extensions ship as wheels for DuckDB 1.5.5 only, while the default install
takes DuckDB 2.0.x; this measures what staying on one version for both backends would cost.
Each interpreter (a virtualenv with quality_assets installed and its own DuckDB) builds its own
copy of the benchmarks' data (DuckDB files are not always readable by an older DuckDB), under
benchmarks/data/duckdb-<version>/. Then every measurement runs in its own process through the
benchmarks' `--child` modes, the interpreters alternating within each round (the order flips
every round) so that load on the machine hits both alike; the table shows the best wall time of
each and the ratio second / first (and the CPU-time ratio, steadier on a busy machine):

- ingest load / bare: benchmarks/ingest.py (load_file of the 20-column CSV; a bare read_csv);
- rules / scan: benchmarks/rules.py (30 rules in one evaluation; one aggregate scan);
- profile / summarize: benchmarks/profile.py on the CSV- and the Parquet-loaded table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent

PREPARE = """
import sys
sys.path.insert(0, {here!r})
import ingest, profile, rules
rows = {rows}
csv = ingest.generate(rows)
rules.prepare(rows)
dbs = [str(profile.warehouse_for(profile.generate(rows, fmt))) for fmt in ("csv", "parquet")]
import json, duckdb
print(json.dumps({{"version": duckdb.__version__, "csv": str(csv), "profile": dbs}}))
"""


def run_json(command: list[str], env: dict) -> dict:
    """The child's JSON line; a child that fails is an error entry (its last line), not the end."""
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    if out.returncode:
        lines = out.stderr.strip().splitlines()
        return {"error": lines[-1] if lines else f"exit {out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def version_of(python: str) -> str:
    return subprocess.run([python, "-c", "import duckdb; print(duckdb.__version__)"], capture_output=True,
                          text=True, check=True).stdout.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--python", nargs=2, required=True, metavar=("FIRST", "SECOND"),
                        help="two interpreters, each with quality_assets and its own DuckDB")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    setups = []
    for python in args.python:
        version = version_of(python)
        env = {**os.environ, "QA_BENCH_DATA": str(HERE / "data" / f"duckdb-{version}")}
        print(f"preparing data for DuckDB {version} ({python}) ...", file=sys.stderr, flush=True)
        prepared = run_json([python, "-c", PREPARE.format(here=str(HERE), rows=args.rows)], env)
        if "error" in prepared:
            raise SystemExit(f"preparing the data on {python} failed: {prepared['error']}")
        setups.append((python, version, env, prepared))

    def cases(prepared: dict) -> dict[str, list[str]]:
        rows = str(args.rows)
        return {
            "ingest load": ["ingest.py", "--child", "load", prepared["csv"]],
            "ingest bare": ["ingest.py", "--child", "bare", prepared["csv"]],
            "rules (30)": ["rules.py", "--child", "rules", rows],
            "rules scan": ["rules.py", "--child", "scan", rows],
            "profile csv": ["profile.py", "--child", "profile", prepared["profile"][0], rows],
            "summarize csv": ["profile.py", "--child", "summarize", prepared["profile"][0], rows],
            "profile parquet": ["profile.py", "--child", "profile", prepared["profile"][1], rows],
            "summarize parquet": ["profile.py", "--child", "summarize", prepared["profile"][1], rows],
        }

    names = list(cases(setups[0][3]))
    best: dict[tuple[str, int], dict] = {}
    errors: dict[tuple[str, int], str] = {}
    for round_ in range(args.repeat):
        order = list(range(len(setups))) if round_ % 2 == 0 else list(reversed(range(len(setups))))
        for name in names:
            for index in order:
                python, version, env, prepared = setups[index]
                script, *rest = cases(prepared)[name]
                print(f"round {round_ + 1}/{args.repeat}: {name} on {version} ...", file=sys.stderr, flush=True)
                result = run_json([python, str(HERE / script), *rest], env)
                if "error" in result:
                    errors.setdefault((name, index), result["error"])
                    continue
                cpu = result.get("cpu_seconds", result.get("cpu"))
                kept = best.get((name, index))
                if kept is None or result["seconds"] < kept["seconds"]:
                    best[(name, index)] = {"seconds": result["seconds"], "cpu": cpu}
                elif cpu is not None and cpu < kept["cpu"]:
                    kept["cpu"] = cpu

    first, second = setups[0][1], setups[1][1]
    header = ("measurement", f"{first} s", f"{second} s", f"{second}/{first}", "CPU ratio")
    lines = [header]
    for name in names:
        a, b = best.get((name, 0)), best.get((name, 1))
        if a is None or b is None:
            lines.append((name, f"{a['seconds']:.2f}" if a else "error", f"{b['seconds']:.2f}" if b else "error", "-", "-"))
            continue
        cpu = f"{b['cpu'] / a['cpu']:.2f}" if a.get("cpu") and b.get("cpu") else "-"
        lines.append((name, f"{a['seconds']:.2f}", f"{b['seconds']:.2f}", f"{b['seconds'] / a['seconds']:.2f}", cpu))
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    print()
    for line in lines:
        print("  ".join(cell.rjust(w) if i else cell.ljust(w) for i, (cell, w) in enumerate(zip(line, widths, strict=True))))
    for (name, index), error in sorted(errors.items()):
        print(f"{name} on DuckDB {setups[index][1]} failed: {error}")
    print(f"\n{args.rows:,} rows, best of {args.repeat} rounds (interpreters alternating); load average "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
