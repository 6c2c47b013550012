"""`compare`: two partitions of a dataset, or two files, side by side in an HTML page."""

from __future__ import annotations

import sys
from pathlib import Path

from quality_assets.cli.errors import EXIT_OK, UsageError, dataset_for_file, dataset_named
from quality_assets.config import settings_from_env
from quality_assets.contract import load_contract
from quality_assets.lake import open_warehouse
from quality_assets.report.compare import pct, render_comparison
from quality_assets.report.compare_sources import compare_files, compare_partitions
from quality_assets.report.html import fmt_number
from quality_assets.report.outputs import atomic_write, partition_dir_name, to_json
from quality_assets.warehouse import Warehouse


def default_output(output_dir: Path, dataset: str, a: str, b: str) -> Path:
    name = f"{partition_dir_name(a).replace('/', '%2F')}__vs__{partition_dir_name(b).replace('/', '%2F')}"
    return output_dir / "compare" / dataset / (name[:200] + ".html")



def cmd_compare(args) -> int:
    settings = settings_from_env()
    path_a, path_b = Path(args.a), Path(args.b)
    if path_a.is_file() and path_b.is_file():
        template = None
        if settings.contracts.is_file():
            contract = load_contract(settings.contracts)
            template = dataset_for_file(contract, path_a.resolve(), args.dataset)
        comparison = compare_files(path_a.resolve(), path_b.resolve(), template)
    else:
        if path_a.is_file() != path_b.is_file():
            raise UsageError("give two files or two partition keys, not one of each")
        contract = load_contract(settings.contracts)
        warehouse = open_warehouse(settings)
        if not warehouse.exists():
            raise UsageError(f"no warehouse at {settings.duckdb_path}: run the pipeline first")
        dataset = args.dataset or _dataset_of_keys(warehouse, [d.name for d in contract.datasets], args.a, args.b)
        dataset_named(contract, dataset)
        try:
            comparison = compare_partitions(warehouse, dataset, args.a, args.b)
        except LookupError as exc:
            raise UsageError(str(exc)) from None
    output = args.output or default_output(settings.output_dir, comparison.dataset, comparison.a.label, comparison.b.label)
    size = atomic_write(output.resolve(), render_comparison(comparison))
    s = comparison.summary()
    print(f"{comparison.dataset}: {comparison.a.label} -> {comparison.b.label}: {s['added']} added, {s['removed']} removed, "
          f"{s['retyped']} retyped, {s['moved']} moved column(s); {s['notable_changes']} notable metric change(s); "
          f"{s['drifted']} drifted column(s)")
    for delta in comparison.top_changes(5):
        print(f"  {delta.column or '(dataset)'}.{delta.metric}: {fmt_number(delta.a, delta.metric)} -> "
              f"{fmt_number(delta.b, delta.metric)} ({pct(delta)})")
    if args.json:
        print(to_json(s), end="")
    print(f"wrote {output} ({size:,} bytes)", file=sys.stderr)
    return EXIT_OK


def _dataset_of_keys(warehouse: Warehouse, datasets: list[str], a: str, b: str) -> str:
    with warehouse.connect() as con:
        found = [r[0] for r in con.execute(
            "SELECT dataset FROM qa.files WHERE partition_key IN (?, ?) AND dataset = ANY(?) GROUP BY dataset "
            "HAVING count(DISTINCT partition_key) = 2 ORDER BY dataset", [a, b, datasets]).fetchall()]
    if len(found) == 1:
        return found[0]
    if not found:
        raise UsageError(f"no dataset has both partitions {a!r} and {b!r} (and they are not files)")
    raise UsageError(f"partitions {a!r} and {b!r} exist in {', '.join(found)}: name one with --dataset")
