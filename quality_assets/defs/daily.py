"""Daily-partitioned datasets: `<dataset>/raw` per day (its landing sensor is in sensors.py, its
schedule in schedules.py)."""

import dagster as dg

from quality_assets.contract import Dataset
from quality_assets.daily import DayLoad, load_days
from quality_assets.defs.common import (
    RAW,
    markdown_table,
    partition_check,
    partition_results,
    stage_asset,
    stage_key,
)
from quality_assets.defs.raw import FILE_PARSED_CHECK, RawLoadConfig
from quality_assets.defs.resources import WarehouseResource


def daily_partitions(dataset: Dataset) -> dg.DailyPartitionsDefinition:
    spec = dataset.daily
    return dg.DailyPartitionsDefinition(start_date=spec.start, timezone=spec.timezone)


def build_daily_raw_asset(dataset: Dataset, partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    key = stage_key(dataset, RAW)
    spec = dataset.daily
    source = f"files named like {spec.file_pattern!r}" if spec.file_pattern else f"rows by their {spec.column!r} day"

    @stage_asset(
        dataset, RAW, partitions,
        kinds={"duckdb", "csv"},
        description=(
            f"One day of {dataset.name} ({source} in {dataset.landing_dir}) loaded into raw.\"{dataset.name}\"; "
            "unparseable rows go to qa.quarantine. A backfill loads its whole date range in one run."
        ),
        check_specs=[
            partition_check(
                FILE_PARSED_CHECK, key, partitions, blocking=True,
                description="Every day of the run had its files, all readable (error if one was rejected) and every row parsed (warn otherwise).",
            )
        ],
        metadata={"dataset": dataset.name, "landing_dir": str(dataset.landing_dir), "glob": dataset.glob,
                  "partitioning": "daily", "day_from": "file name" if spec.file_pattern else f"column {spec.column}"},
    )
    def raw(context: dg.AssetExecutionContext, config: RawLoadConfig, warehouse: WarehouseResource) -> dg.MaterializeResult:
        days = list(context.partition_keys)
        loads = load_days(warehouse.get(), dataset, days, context.run.run_id, force=config.force)
        for load in loads:
            context.log.info(f"{dataset.name}/{load.day}: {load.status}: {load.message}")
        return partition_results(context, key, loads, lambda load: load.day, day_metadata,
                                 lambda some: [days_parsed_result(some)], range_metadata, blocking=lambda check: True)

    return raw


def day_metadata(load: DayLoad) -> dict:
    metadata = {
        "dagster/row_count": load.rows_loaded,
        "status": load.status,
        "message": load.message,
        "rows_read": load.rows_read,
        "rows_quarantined": load.rows_quarantined,
        "quarantined_by_code": dg.MetadataValue.json(load.error_codes),
        "files": dg.MetadataValue.json([a.source_path for a in load.audits]),
        "bytes": sum(a.bytes for a in load.audits),
        "duration_s": round(sum(a.duration_s for a in load.audits), 3),
    }
    types = next((a.column_types for a in load.audits if a.column_types), None)
    if types:
        metadata["dagster/column_schema"] = dg.TableSchema(
            columns=[dg.TableColumn(name, type_) for name, type_ in types.items()]
        )
    preview = next((a.preview for a in load.audits if a.preview), None)
    if preview:
        metadata["preview"] = dg.MetadataValue.md(markdown_table(preview))
    return metadata


def range_metadata(loads: list[DayLoad]) -> dict:
    return {
        "days": len(loads),
        "rows_loaded": sum(load.rows_loaded for load in loads),
        "rows_quarantined": sum(load.rows_quarantined for load in loads),
        "by_day": dg.MetadataValue.md(markdown_table([
            {"day": load.day, "status": load.status, "rows": load.rows_loaded, "quarantined": load.rows_quarantined}
            for load in loads
        ])),
    }


def days_parsed_result(loads: list[DayLoad]) -> dg.AssetCheckResult:
    failed = [load for load in loads if not load.passed]
    rejected = [load.day for load in loads if load.status == "rejected"]
    return dg.AssetCheckResult(
        check_name=FILE_PARSED_CHECK,
        passed=not failed,
        severity=dg.AssetCheckSeverity.ERROR if rejected else dg.AssetCheckSeverity.WARN,
        metadata={
            "days": len(loads),
            "failed_days": dg.MetadataValue.json({load.day: load.status for load in failed}),
            "message": "; ".join(f"{load.day}: {load.message}" for load in failed)[:2000] or "all days parsed",
            "rows_read": sum(load.rows_read for load in loads),
            "rows_quarantined": sum(load.rows_quarantined for load in loads),
            "error_codes": dg.MetadataValue.json(_merge_codes(loads)),
        },
    )


def _merge_codes(loads: list[DayLoad]) -> dict[str, int]:
    codes: dict[str, int] = {}
    for load in loads:
        for code, count in load.error_codes.items():
            codes[code] = codes.get(code, 0) + count
    return codes
