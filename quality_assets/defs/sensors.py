"""File-arrival sensor: one per dataset, on by default."""


import time

import dagster as dg

from quality_assets.config import Settings
from quality_assets.contract import Dataset
from quality_assets.landing import plan_tick, run_key


def build_landing_sensor(
    dataset: Dataset,
    job,
    partitions: dg.DynamicPartitionsDefinition,
    settings: Settings,
) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{dataset.name}_landing_sensor",
        job=job,
        minimum_interval_seconds=settings.sensor_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Watches {dataset.landing_dir} for '{dataset.glob}': adds a partition per new file and "
            "runs it once the file stops changing; a changed file runs again, a touched one does not."
        ),
    )
    def landing_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        known = set(context.instance.get_dynamic_partitions(partitions.name))
        plan = plan_tick(
            dataset, context.cursor, time.time_ns(), known,
            settle_s=settings.sensor_settle_s,
            hash_max_bytes=settings.sensor_hash_max_bytes,
            max_runs=settings.sensor_max_runs_per_tick,
        )
        for relative in plan.unusable:
            context.log.warning(f"skipping {relative!r}: the name cannot be a Dagster partition key")
        if plan.waiting:
            context.log.info(f"waiting for {len(plan.waiting)} file(s) still being written: {plan.waiting[:5]}")
        requests = [
            dg.RunRequest(
                run_key=run_key(dataset.name, landed),
                partition_key=landed.key,
                tags={"quality_assets/dataset": dataset.name, "quality_assets/file_version": landed.version},
            )
            for landed in plan.to_run
        ]
        partition_requests = [partitions.build_add_request(plan.new_keys)] if plan.new_keys else []
        skip = None if requests else f"no new or changed complete files ({len(plan.waiting)} still being written)"
        return dg.SensorResult(
            run_requests=requests,
            dynamic_partitions_requests=partition_requests,
            cursor=plan.cursor,
            skip_reason=skip,
        )

    return landing_sensor
