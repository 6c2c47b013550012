"""File-arrival sensors, one per dataset, on by default: per file for file-partitioned datasets,
per closed day for daily ones."""

import hashlib
import json
import time

import dagster as dg

from quality_assets.batches import contiguous_batches
from quality_assets.config import Settings
from quality_assets.contract import Dataset
from quality_assets.daily import file_day, is_partition_day
from quality_assets.defs.batching import FILE_VERSIONS_TAG, left_to_run, range_of, range_tags
from quality_assets.defs.common import stage_key
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
        # Partitions are read only on ticks that run something: a quiet tick stays a folder listing.
        order = context.instance.get_dynamic_partitions(partitions.name) if plan.to_run else []
        known = set(order)
        new_keys = [key for key in plan.new_keys if key not in known]
        partition_requests = [partitions.build_add_request(new_keys)] if new_keys else []
        to_run = plan.to_run
        if plan.cursor_reset:  # files that ran in a range have no run key of their own
            ran = ran_in_ranges(context.instance, dataset.name)
            to_run = [landed for landed in to_run if ran.get(landed.key) != landed.version]
        # Neighbouring partitions run together, up to files_per_run a run (each file its own
        # partition, checks and report); after a cursor reset, one run each, so run keys deduplicate.
        size = 1 if plan.cursor_reset else settings.files_per_run
        by_key = {landed.key: landed for landed in to_run}
        requests = [file_run_request(dataset, [by_key[key] for key in batch])
                    for batch in contiguous_batches([*order, *new_keys], list(by_key), size)]
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


def file_run_request(dataset: Dataset, files: list) -> dg.RunRequest:
    """One file's run (its run key as ever), or a run over neighbouring files (a partition range)
    whose run key and tags name every file's version."""
    tags = {"quality_assets/dataset": dataset.name}
    if len(files) == 1:
        return dg.RunRequest(run_key=run_key(dataset.name, files[0]), partition_key=files[0].key,
                             tags={**tags, "quality_assets/file_version": files[0].version})
    versions = {landed.key: landed.version for landed in files}
    digest = hashlib.sha256(json.dumps(versions, sort_keys=True).encode()).hexdigest()[:16]
    return dg.RunRequest(run_key=f"{dataset.name}:range:{digest}",
                         tags={**tags, **range_tags([landed.key for landed in files]),
                               FILE_VERSIONS_TAG: json.dumps(versions, separators=(",", ":"))})


def ran_in_ranges(instance: dg.DagsterInstance, dataset: str) -> dict[str, str]:
    """file -> the last version a range run of the dataset's sensor was requested for."""
    ran: dict[str, str] = {}
    runs = instance.get_runs(filters=dg.RunsFilter(tags={"quality_assets/dataset": dataset}))
    for run in reversed(runs):  # oldest first: later versions win
        if FILE_VERSIONS_TAG in run.tags:
            ran.update(json.loads(run.tags[FILE_VERSIONS_TAG]))
    return ran


def build_range_followup_sensor(dataset: Dataset, job, partitions: dg.DynamicPartitionsDefinition,
                                stages: dict[str, list[str]], settings: Settings) -> dg.SensorDefinition:
    """When a run over several files failed (one file's blocking check stops the range's later
    steps for all), each other file runs alone for the stages it is missing."""

    @dg.run_failure_sensor(
        name=f"{dataset.name}_range_followup_sensor", monitored_jobs=[job], request_job=job,
        minimum_interval_seconds=settings.sensor_interval_s, default_status=dg.DefaultSensorStatus.RUNNING,
        description=(f"After a run over several {dataset.name} files failed, runs each file that did not fail "
                     "its own blocking checks alone, for the stages it is missing."))
    def range_followup(context: dg.RunFailureSensorContext):
        run = context.dagster_run
        bounds = range_of(run.tags)
        if bounds is None or run.tags.get("quality_assets/dataset") != dataset.name:
            return
        order = context.instance.get_dynamic_partitions(partitions.name)
        keys = order[order.index(bounds[0]):order.index(bounds[1]) + 1]
        events = [record.event_log_entry.dagster_event for event_type in
                  (dg.DagsterEventType.ASSET_MATERIALIZATION, dg.DagsterEventType.ASSET_CHECK_EVALUATION)
                  for record in context.instance.get_records_for_run(run.run_id, of_type=event_type, limit=100_000).records]
        for key, missing in left_to_run(stages, keys, events).items():
            yield dg.RunRequest(
                run_key=f"{run.run_id}:{key}", partition_key=key,
                asset_selection=[stage_key(dataset, stage) for stage in missing],
                tags={"quality_assets/dataset": dataset.name, "quality_assets/after_range_run": run.run_id},
            )

    return range_followup


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
