"""`run`, `validate` and `demo`: which landed files are new or changed (or the files given), run
through the pipeline in-process; a contract checked; the sample landing folder."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from quality_assets.cli.errors import EXIT_CHECK_FAILED, EXIT_OK, UsageError, dataset_named
from quality_assets.cli.execute import execute, print_results, where_to_look
from quality_assets.config import settings_from_env
from quality_assets.contract import Contract, Dataset, load_contract
from quality_assets.daily import file_day, is_partition_day
from quality_assets.demo import write_demo
from quality_assets.lake import open_warehouse
from quality_assets.landing import LandedFile, list_landed, missing_landing, partition_key
from quality_assets.retention import removed_versions


def cmd_validate(args) -> int:
    settings = settings_from_env()
    contract = load_contract(settings.contracts)
    refuse_missing_landing(contract.datasets)
    print(f"{contract.path}: valid, {len(contract.datasets)} dataset(s)")
    for ds in contract.datasets:
        print(
            f"  {ds.name}: {ds.format} files '{ds.glob}' in {ds.landing_dir}, "
            f"{len(ds.columns)} column(s), {len(ds.rules)} rule(s), "
            + (f"partitioned daily from {ds.daily.start}" if ds.daily else f"partitioned per {ds.partitioning}")
        )
    return EXIT_OK


def cmd_demo(args) -> int:
    root = args.dir.resolve()
    if (root / "quality.yaml").exists():
        print(f"refreshing the demo in {root}", file=sys.stderr)
        for folder in ("landing", "warehouse", "output"):
            shutil.rmtree(root / folder, ignore_errors=True)
    write_demo(root)
    os.environ["QA_CONTRACTS"] = str(root / "quality.yaml")
    for name in ("QA_DUCKDB_PATH", "QA_OUTPUT_DIR"):
        os.environ.pop(name, None)  # the demo keeps everything inside its folder
    print(f"wrote a sample contract and landing folder to {root}", file=sys.stderr)
    status = cmd_run(argparse.Namespace(files=[], dataset=None, force=False))
    if status == EXIT_CHECK_FAILED:  # the demo's last orders file breaks an error rule on purpose
        print("\nA file failed an error rule, as the demo intends: its rows stay out of published.*; "
              "its report and qa.failing_rows say which rows and why.")
        return EXIT_OK
    return status


def cmd_run(args) -> int:
    settings = settings_from_env()
    contract = load_contract(settings.contracts)
    work = _select_work(contract, args.files, args.dataset)
    if not work:
        print("nothing to do: no new or changed files in the landing folders", file=sys.stderr)
        return EXIT_OK
    outcomes = execute(contract, settings, work, force=args.force)
    print_results(outcomes)
    print()
    print("\n".join(where_to_look(settings, outcomes)))
    return EXIT_CHECK_FAILED if any(o.error_failed for o in outcomes) else EXIT_OK


def refuse_missing_landing(datasets: list[Dataset]) -> None:
    problems = [problem for ds in datasets if (problem := missing_landing(ds))]
    if problems:
        raise UsageError("\n  ".join([f"{len(problems)} landing folder(s) missing: create them, or fix landing.path "
                                       "in the contract", *problems]))


def _select_work(contract: Contract, files: list[Path], only: str | None) -> list[tuple[Dataset, LandedFile]]:
    datasets = [dataset_named(contract, only)] if only else list(contract.datasets)
    if not (files and only):  # (files given with --dataset are copied into its folder, created if need be)
        refuse_missing_landing(datasets)
    if files:
        return _by_day([_landed_for(datasets, path.resolve(), only) for path in files])
    work = []
    loaded = _loaded_versions(contract)
    for ds in datasets:
        landed, unusable = list_landed(ds)
        for relative in unusable:
            print(f"skipping {ds.name}/{relative!r}: the name cannot be a partition key", file=sys.stderr)
        for item in landed:
            if not _same_version(loaded.get((ds.name, str((ds.landing_dir / item.key).resolve()))), item, ds.fingerprint()):
                work.append((ds, item))
    return _by_day(work)


def _same_version(previous: tuple | None, item: LandedFile, fingerprint: str) -> bool:
    if previous is None:
        return False
    size, mtime_us, loaded_fingerprint = previous
    # qa.files keeps mtime in microseconds (UTC); allow for float rounding.
    return size == item.size and loaded_fingerprint == fingerprint and abs(mtime_us - item.mtime_ns / 1000) <= 2


def _landed_for(datasets: list[Dataset], path: Path, only: str | None) -> tuple[Dataset, LandedFile]:
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    for ds in datasets:
        root = ds.landing_dir.resolve()
        if root in path.parents:
            relative = path.relative_to(root).as_posix()
            return ds, _landed(relative, path)
    if only is None:
        raise UsageError(f"{path} is not in any dataset's landing folder; name the dataset with --dataset")
    ds = datasets[0]
    target = ds.landing_dir / path.name
    ds.landing_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, target)
    print(f"landed {path} as {ds.name}/{path.name}", file=sys.stderr)
    return ds, _landed(path.name, target)


def _landed(relative: str, path: Path) -> LandedFile:
    key = partition_key(relative)
    if key is None:
        raise UsageError(f"{relative!r} cannot be a partition key (control characters or '...'); rename the file")
    stat = path.stat()
    return LandedFile(key, path, stat.st_size, stat.st_mtime_ns)


def _loaded_versions(contract: Contract) -> dict[tuple[str, str], tuple]:
    """(dataset, source path) -> (bytes, mtime in µs, contract fingerprint) of the last load, or of
    the file's last load before retention removed its partition."""
    settings = settings_from_env()
    warehouse = open_warehouse(settings)
    if not warehouse.exists():
        return {}
    with warehouse.connect() as con:
        rows = con.execute(
            "SELECT dataset, source_path, bytes, epoch_us(mtime), contract_fingerprint FROM qa.files "
            "WHERE status <> 'unchanged' QUALIFY row_number() OVER (PARTITION BY dataset, source_path ORDER BY finished DESC) = 1"
        ).fetchall()
        removed = removed_versions(con)
    versions = {(d, path): (b, m, f) for d, _key, path, b, m, f in removed}
    versions.update({(d, path): (b, m, f) for d, path, b, m, f in rows})
    return versions


def _by_day(work: list[tuple[Dataset, LandedFile]]) -> list[tuple[Dataset, LandedFile]]:
    """Daily datasets run per day: their files become one work item per closed day."""
    result: list[tuple[Dataset, LandedFile]] = []
    days: dict[tuple[str, str], tuple[Dataset, list[LandedFile]]] = {}
    for ds, item in work:
        if ds.partitioning != "daily":
            result.append((ds, item))
        elif ds.daily.column:
            print(f"skipping {ds.name}/{item.key}: {ds.name} takes its days from column {ds.daily.column!r}; "
                  "its days run on its schedule or as a backfill", file=sys.stderr)
        elif (day := file_day(ds, item.key)) is None:
            print(f"skipping {ds.name}/{item.key}: no date matching {ds.daily.file_pattern!r} in the name", file=sys.stderr)
        elif not is_partition_day(ds, day):
            print(f"skipping {ds.name}/{item.key}: day {day} is before {ds.daily.start} or has not closed yet", file=sys.stderr)
        else:
            days.setdefault((ds.name, day), (ds, []))[1].append(item)
    for (_, day), (ds, items) in sorted(days.items()):
        result.append((ds, LandedFile(day, items[0].path, sum(i.size for i in items), max(i.mtime_ns for i in items))))
    return result
