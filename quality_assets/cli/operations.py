"""Operations commands: `cleanup` (retention), `backup` and `restore` of the warehouse (the DuckDB
file or the DuckLake), and `migrate` of the file into a lake."""

from __future__ import annotations

import datetime as dt
import os

from quality_assets.backup import export_warehouse, import_warehouse
from quality_assets.cli.errors import EXIT_OK, UsageError, dataset_named
from quality_assets.config import settings_from_env
from quality_assets.contract import load_contract
from quality_assets.lake import LakeUnavailable, LakeWarehouse, is_lake, open_warehouse
from quality_assets.lake_ops import backup_lake, migrate_into_lake, reclaim_space, restore_lake
from quality_assets.retention import find_old_partitions, parse_age, remove_partitions
from quality_assets.vocabulary import parse_duration
from quality_assets.warehouse import Warehouse, exclusive_lock


def _warehouse(settings):
    return open_warehouse(settings)


def cmd_cleanup(args) -> int:
    try:
        age = parse_age(args.older_than)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    settings = settings_from_env()
    contract = load_contract(settings.contracts)
    if args.dataset:
        dataset_named(contract, args.dataset)
    keep_s = parse_duration(args.keep_snapshots)
    if keep_s is None or keep_s < 0:
        raise UsageError(f"--keep-snapshots {args.keep_snapshots!r}: expected a duration such as 7d, 12h or 0s")
    keep = dt.timedelta(seconds=keep_s)
    cutoff = dt.datetime.now() - age
    instance = _instance()
    dagster_keys = {}
    if instance is not None:
        # lazy, as Dagster is slow to import: only when an instance is set
        from quality_assets.defs.maintenance import dynamic_partition_keys

        dagster_keys = dynamic_partition_keys(instance, contract)
    with _warehouse(settings).connect() as con:
        old = find_old_partitions(con, contract, cutoff, dagster_keys, only=args.dataset)
        removal = remove_partitions(con, old, settings.output_dir, dry_run=args.dry_run,
                                    delete_landing=args.delete_landing)
        reclaimed = reclaim_space(con, keep, dry_run=args.dry_run) if is_lake(settings.warehouse) else None
    verb = "would remove" if args.dry_run else "removed"
    print(f"cleanup: partitions older than {args.older_than} (before {cutoff:%Y-%m-%d %H:%M}){' — dry run' if args.dry_run else ''}")
    if not old:
        print("nothing to remove")
    by_dataset: dict[str, list] = {}
    for part in old:
        by_dataset.setdefault(part.dataset, []).append(part)
    for name, parts in by_dataset.items():
        keys = [p.partition_key for p in parts]
        shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
        print(f"  {name}: {verb} {len(keys)} partition(s): {shown}")
    for table, rows in sorted(removal.rows.items()):
        if rows:
            print(f"  {verb} {rows:,} row(s) from {table}")
    print(f"  {verb} {len(removal.output_dirs)} output folder(s) under {settings.output_dir}")
    if reclaimed is not None:
        print(f"  lake: {'would expire' if args.dry_run else 'expired'} {len(reclaimed.snapshots)} snapshot(s) older than "
              f"{args.keep_snapshots}; {'would delete' if args.dry_run else 'deleted'} {len(reclaimed.files)} data file(s) "
              "no remaining snapshot uses")
    if args.delete_landing:
        print(f"  {verb} {len(removal.landing_files)} landed file(s)")
    else:
        kept = sum(len(p.landing_files) for p in old)
        print(f"  kept {kept} landed file(s) (pass --delete-landing to delete them)")
    if instance is None:
        print("  Dagster: DAGSTER_HOME is not set, no instance to clean (partition keys are kept by `dagster dev`'s own instance)")
        return EXIT_OK
    keys_by_dataset = {name: [p.partition_key for p in parts] for name, parts in by_dataset.items()}
    if args.dry_run:
        dynamic = sum(len(set(keys) & dagster_keys.get(name, set())) for name, keys in keys_by_dataset.items())
        print(f"  Dagster: {verb} {dynamic} dynamic partition key(s)")
        return EXIT_OK
    # lazy, as Dagster is slow to import: only to clean it
    from quality_assets.defs.definitions import build_definitions
    from quality_assets.defs.maintenance import remove_from_dagster

    deleted, wiped = remove_from_dagster(instance, build_definitions(contract, settings), contract, keys_by_dataset)
    history = (f"wiped the materialization history of {wiped} partition(s)" if wiped else
               "materialization history kept (this Dagster storage cannot wipe single partitions)")
    print(f"  Dagster: {verb} {deleted} dynamic partition key(s); {history}")
    return EXIT_OK


def _instance():
    if not os.environ.get("DAGSTER_HOME"):
        return None
    import dagster as dg  # slow to import: only for commands that use the instance

    return dg.DagsterInstance.get()


def cmd_backup(args) -> int:
    settings = settings_from_env()
    warehouse = _warehouse(settings)
    if isinstance(warehouse, LakeWarehouse):
        try:
            manifest = backup_lake(warehouse.spec, warehouse.data_path, args.target)
        except (FileExistsError, ValueError, RuntimeError) as exc:
            raise UsageError(str(exc)) from None
        print(f"backed up the lake {manifest['lake']} to {args.target.resolve()}: its catalog (pg_dump) and "
              f"{manifest['data_files']} data file(s)")
        return EXIT_OK
    if not settings.duckdb_path.exists():
        raise UsageError(f"no warehouse at {settings.duckdb_path} (QA_DUCKDB_PATH)")
    try:
        manifest = export_warehouse(warehouse, args.target)
    except FileExistsError as exc:
        raise UsageError(str(exc)) from None
    print(f"exported {settings.duckdb_path} to {args.target.resolve()} ({len(manifest['tables'])} tables)")
    return EXIT_OK


def cmd_restore(args) -> int:
    settings = settings_from_env()
    warehouse = _warehouse(settings)
    if isinstance(warehouse, LakeWarehouse):
        try:
            result = restore_lake(args.source, warehouse.spec, warehouse.data_path, force=args.force)
        except (FileExistsError, FileNotFoundError, ValueError, RuntimeError) as exc:
            raise UsageError(str(exc)) from None
        kept = result["previous_data_kept_at"]
        print(f"restored the lake from {args.source.resolve()}: catalog and data path {result['data_path']}"
              + (f" (the previous data kept at {kept})" if kept else ""))
        return EXIT_OK
    try:
        result = import_warehouse(warehouse, args.source, force=args.force)
    except (FileExistsError, FileNotFoundError) as exc:
        raise UsageError(str(exc)) from None
    rows = sum(result["tables"].values())
    print(f"restored {settings.duckdb_path} from {args.source.resolve()} ({len(result['tables'])} tables, {rows:,} rows)")
    return EXIT_OK


def cmd_migrate(args) -> int:
    settings = settings_from_env()
    if not is_lake(args.to):
        raise UsageError(f"--to {args.to!r}: expected ducklake:postgres:<connection string>")
    source = Warehouse(settings.duckdb_path, lock_timeout_s=settings.lock_timeout_s)
    if not settings.duckdb_path.exists():
        raise UsageError(f"no warehouse at {settings.duckdb_path} (QA_DUCKDB_PATH): nothing to migrate")
    lake = LakeWarehouse(args.to, args.data_path or settings.lake_data_path, settings.duckdb_path.parent,
                         memory_limit=settings.memory_limit)
    try:
        # the file's writer lock: no run changes it while it is copied
        with exclusive_lock(source.lock_path, source.lock_timeout_s), lake.connect() as con:
            copied = migrate_into_lake(con, settings.duckdb_path)
    except (FileExistsError, LakeUnavailable) as exc:
        raise UsageError(str(exc)) from None
    print(f"migrated {settings.duckdb_path} into {lake.describe()}: {len(copied)} table(s), "
          f"{sum(copied.values()):,} row(s)")
    for table, rows in copied.items():
        print(f"  {table}: {rows:,}")
    print(f"now set QA_WAREHOUSE={args.to!r} and QA_LAKE_DATA_PATH={lake.data_path!r} for every process")
    return EXIT_OK
