"""Daily-partitioned datasets: `<dataset>/raw` per day, its landing sensor and its schedule."""

import hashlib
import json
import time

import dagster as dg

from quality_assets.config import Settings
from quality_assets.contract import Dataset
from quality_assets.daily import DayLoad, file_day, is_partition_day, load_days
from quality_assets.defs.raw import (
    FILE_PARSED_CHECK,
    WAREHOUSE_POOL,
    RawLoadConfig,
    accepting_preview_apis,
    markdown_table,
)
from quality_assets.defs.resources import WarehouseResource
from quality_assets.landing import missing_landing, plan_tick


def daily_partitions(dataset: Dataset) -> dg.DailyPartitionsDefinition:
    spec = dataset.daily
    return dg.DailyPartitionsDefinition(start_date=spec.start, timezone=spec.timezone)


def build_daily_raw_asset(dataset: Dataset, partitions: dg.DailyPartitionsDefinition) -> dg.AssetsDefinition:
    key = dg.AssetKey([dataset.name, "raw"])
    spec = dataset.daily
    source = f"files named like {spec.file_pattern!r}" if spec.file_pattern else f"rows by their {spec.column!r} day"

    with accepting_preview_apis():
        return _daily_raw_asset(dataset, partitions, key, source)


def _daily_raw_asset(dataset: Dataset, partitions: dg.DailyPartitionsDefinition, key: dg.AssetKey,
                     source: str) -> dg.AssetsDefinition:
    spec = dataset.daily

    @dg.asset(
        key=key,
        partitions_def=partitions,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=dataset.name,
        kinds={"duckdb", "csv"},
        pool=WAREHOUSE_POOL,
        description=(
            f"One day of {dataset.name} ({source} in {dataset.landing_dir}) loaded into raw.\"{dataset.name}\"; "
            "unparseable rows go to qa.quarantine. A backfill loads its whole date range in one run."
        ),
        check_specs=[
            dg.AssetCheckSpec(
                FILE_PARSED_CHECK, asset=key, blocking=True,
                # partitioned like the asset, so a day's result lands on that day
                partitions_def=partitions,
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
        if len(loads) == 1:
            return dg.MaterializeResult(metadata=day_metadata(loads[0]), check_results=[days_parsed_result(loads)])
        for load in loads:
            context.add_asset_metadata(day_metadata(load), partition_key=load.day)
            # each day's own check result, so every partition shows its outcome; the result
            # returned below is the run's (blocking) verdict over the whole range
            result = days_parsed_result([load])
            context.log_event(dg.AssetCheckEvaluation(
                asset_key=key, check_name=FILE_PARSED_CHECK, passed=result.passed, severity=result.severity,
                metadata=result.metadata, partition=load.day, blocking=True,
            ))
        return dg.MaterializeResult(metadata=range_metadata(loads), check_results=[days_parsed_result(loads)])

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


def build_daily_landing_sensor(dataset: Dataset, job, settings: Settings) -> dg.SensorDefinition:
    """Runs a day as soon as a file for it lands (once the day has closed); a day gets one run per tick."""

    @dg.sensor(
        name=f"{dataset.name}_landing_sensor",
        job=job,
        minimum_interval_seconds=settings.sensor_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Watches {dataset.landing_dir} for '{dataset.glob}': runs the day named in a new or changed "
            "file once the file stops changing and the day has closed (the whole day is reloaded)."
        ),
    )
    def landing_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        if (problem := missing_landing(dataset)) is not None:  # said on every tick, in the log and the UI
            context.log.error(f"{problem}: create it, or fix landing.path in the contract")
            return dg.SensorResult(skip_reason=problem, cursor=context.cursor)
        plan = plan_tick(
            dataset, context.cursor, time.time_ns(), set(),
            settle_s=settings.sensor_settle_s,
            hash_max_bytes=settings.sensor_hash_max_bytes,
            max_runs=settings.sensor_max_runs_per_tick,
        )
        by_day: dict[str, list] = {}
        not_yet: list[str] = []
        for landed in plan.to_run:
            day = file_day(dataset, landed.key)
            if day is None:
                context.log.warning(f"skipping {landed.key!r}: its name has no date matching {dataset.daily.file_pattern!r}")
            elif day < dataset.daily.start:
                context.log.warning(f"skipping {landed.key!r}: {day} is before the first partition {dataset.daily.start}")
            elif not is_partition_day(dataset, day):
                not_yet.append(landed.key)
            else:
                by_day.setdefault(day, []).append(landed)
        cursor = forget(plan.cursor, not_yet)
        if not_yet:
            context.log.info(f"{len(not_yet)} file(s) for a day that has not closed yet wait: {not_yet[:5]}")
        requests = [
            dg.RunRequest(
                run_key=f"{dataset.name}:{day}:" + hashlib.sha256(
                    "|".join(f"{f.key}@{f.version}" for f in sorted(files, key=lambda f: f.key)).encode()
                ).hexdigest()[:16],
                partition_key=day,
                tags={"quality_assets/dataset": dataset.name, "quality_assets/files": str(len(files))},
            )
            for day, files in sorted(by_day.items())
        ]
        skip = None if requests else f"no new or changed complete files ({len(plan.waiting) + len(not_yet)} waiting)"
        return dg.SensorResult(run_requests=requests, cursor=cursor, skip_reason=skip)

    return landing_sensor


def forget(cursor: str, keys: list[str]) -> str:
    """The landing cursor without `keys`, so those files are considered again on the next tick."""
    if not keys:
        return cursor
    state = json.loads(cursor)
    for key in keys:
        state.get("seen", {}).pop(key, None)
    return json.dumps(state, separators=(",", ":"), sort_keys=True)


def build_daily_schedule(dataset: Dataset, job) -> dg.ScheduleDefinition:
    hour, minute = (int(part) for part in dataset.daily.schedule.split(":"))
    return dg.build_schedule_from_partitioned_job(
        job,
        name=f"{dataset.name}_daily_schedule",
        hour_of_day=hour,
        minute_of_hour=minute,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Loads the previous day of {dataset.name} at {dataset.daily.schedule} ({dataset.daily.timezone}).",
    )
