"""The warehouse pool follows the backend. On the DuckDB file it is the instance's to set (2 slots
in dagster.yaml: one writer at a time, its lock serialises the rest). On a DuckLake nothing needs
serialising, so a sensor keeps the pool as wide as the run queue: one slot per run worker."""

import dagster as dg

from quality_assets.config import Settings
from quality_assets.defs.common import WAREHOUSE_POOL

POOL_SENSOR = "qa_warehouse_pool"


def run_workers(instance: dg.DagsterInstance) -> int | None:
    """How many runs the instance executes at once (its run queue's max_concurrent_runs), or None
    when it has no bounded queue."""
    queue = instance.get_concurrency_config().run_queue_config
    if queue is None or queue.max_concurrent_runs < 1:
        return None
    return queue.max_concurrent_runs


def build_lake_pool_sensor(settings: Settings) -> dg.SensorDefinition:
    @dg.sensor(name=POOL_SENSOR, minimum_interval_seconds=settings.sensor_interval_s,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description=(f"The warehouse is a DuckLake, written by every run at once: keeps the pool "
                            f"'{WAREHOUSE_POOL}' as wide as the run queue (max_concurrent_runs)."))
    def warehouse_pool(context: dg.SensorEvaluationContext) -> dg.SkipReason:
        storage = context.instance.event_log_storage
        if not storage.supports_global_concurrency_limits:
            return dg.SkipReason("this instance's storage has no pools")
        workers = run_workers(context.instance)
        if workers is None:
            return dg.SkipReason(f"no bounded run queue (max_concurrent_runs): pool '{WAREHOUSE_POOL}' left as set")
        slots = storage.get_concurrency_info(WAREHOUSE_POOL).slot_count
        if slots != workers:
            storage.set_concurrency_slots(WAREHOUSE_POOL, workers)
            context.log.info(f"pool '{WAREHOUSE_POOL}': {slots} -> {workers} slots, one per run worker")
        return dg.SkipReason(f"pool '{WAREHOUSE_POOL}': {workers} slots, one per run worker")

    return warehouse_pool
