"""File-arrival sensors, one per dataset, on by default: per file for file-partitioned datasets,
per closed day for daily ones."""

import hashlib
import json
import time

import dagster as dg

from quality_assets.config import Settings
from quality_assets.contract import Dataset
from quality_assets.daily import file_day, is_partition_day
from quality_assets.landing import missing_landing, plan_tick, run_key


def _landing_sensor(dataset: Dataset, job, settings: Settings, description: str):
    return dg.sensor(name=f"{dataset.name}_landing_sensor", job=job, minimum_interval_seconds=settings.sensor_interval_s,
                     default_status=dg.DefaultSensorStatus.RUNNING, description=description)


def _tick(context: dg.SensorEvaluationContext, dataset: Dataset, settings: Settings):
    """This tick's plan of the landing folder, or the tick's result when the folder is missing
    (said on every tick, in the log and the UI)."""
    if (problem := missing_landing(dataset)) is not None:
        context.log.error(f"{problem}: create it, or fix landing.path in the contract")
        return dg.SensorResult(skip_reason=problem, cursor=context.cursor)
    return plan_tick(dataset, context.cursor, time.time_ns(), set(), settle_s=settings.sensor_settle_s,
                     hash_max_bytes=settings.sensor_hash_max_bytes, max_runs=settings.sensor_max_runs_per_tick)


def build_landing_sensor(
    dataset: Dataset,
    job,
    partitions: dg.DynamicPartitionsDefinition,
    settings: Settings,
) -> dg.SensorDefinition:
    @_landing_sensor(dataset, job, settings, (
        f"Watches {dataset.landing_dir} for '{dataset.glob}': adds a partition per new file and "
        "runs it once the file stops changing; a changed file runs again, a touched one does not."))
    def landing_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        plan = _tick(context, dataset, settings)
        if isinstance(plan, dg.SensorResult):
            return plan
        if plan.cursor_reset:
            context.log.warning(
                "the cursor was unreadable (corrupt or from another version): state rebuilt from the folder; "
                "files that already ran keep their run keys, so Dagster does not launch them again"
            )
        for relative in plan.unusable:
            context.log.warning(
                f"skipping {relative!r}: the name cannot be a Dagster partition key "
                "(it contains '...' or a control character, is not UTF-8, or is too long); rename the file"
            )
        if plan.waiting:
            context.log.info(f"waiting for {len(plan.waiting)} file(s) still being written: {plan.waiting[:5]}")
        if plan.unchanged_touched:
            context.log.info(f"{len(plan.unchanged_touched)} file(s) touched with identical content, not run again: "
                             f"{plan.unchanged_touched[:5]}")
        if plan.deferred:
            context.log.info(f"{plan.deferred} complete file(s) left for the next tick "
                             f"(at most {settings.sensor_max_runs_per_tick} runs per tick)")
        requests = [
            dg.RunRequest(
                run_key=run_key(dataset.name, landed),
                partition_key=landed.key,
                tags={"quality_assets/dataset": dataset.name, "quality_assets/file_version": landed.version},
            )
            for landed in plan.to_run
        ]
        # Partitions are read only on ticks that run something: a quiet tick stays a folder listing.
        known = set(context.instance.get_dynamic_partitions(partitions.name)) if plan.new_keys else set()
        new_keys = [key for key in plan.new_keys if key not in known]
        partition_requests = [partitions.build_add_request(new_keys)] if new_keys else []
        skip = None if requests else (
            f"no new or changed complete files ({len(plan.waiting)} still being written, "
            f"{len(plan.unchanged_touched)} touched without changes, {len(plan.unusable)} with unusable names)"
        )
        return dg.SensorResult(
            run_requests=requests,
            dynamic_partitions_requests=partition_requests,
            cursor=plan.cursor,
            skip_reason=skip,
        )

    return landing_sensor


def build_daily_landing_sensor(dataset: Dataset, job, settings: Settings) -> dg.SensorDefinition:
    """Runs a day as soon as a file for it lands (once the day has closed); a day gets one run per tick."""

    @_landing_sensor(dataset, job, settings, (
        f"Watches {dataset.landing_dir} for '{dataset.glob}': runs the day named in a new or changed "
        "file once the file stops changing and the day has closed (the whole day is reloaded)."))
    def landing_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        plan = _tick(context, dataset, settings)
        if isinstance(plan, dg.SensorResult):
            return plan
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
