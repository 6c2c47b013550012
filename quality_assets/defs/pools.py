"""The warehouse pool follows the backend. On the DuckDB file it is the instance's to set (2 slots
in dagster.yaml: one writer at a time, its lock serialises the rest). On a DuckLake nothing needs
serialising, so a sensor keeps the pool as wide as the run queue: one slot per run worker.

A step waiting for a slot must sleep between its tries: see sleep_while_waiting_for_a_slot."""

import time

import dagster as dg
from dagster._core.execution.plan import instance_concurrency_context

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


def _seconds_to_next_try(self: instance_concurrency_context.InstanceConcurrencyContext) -> float:
    """Seconds until a step waiting for a slot may try again, never below 0 (from the private
    fields the method it replaces reads)."""
    if not self._pending_claims:
        return 0.0
    return max(0.0, min(self._pending_timeouts.values(), default=0.0) - time.time())


def sleep_while_waiting_for_a_slot() -> bool:
    """Make a run whose step waits for a pool slot sleep until its next try; True when patched.

    Dagster 1.13's `interval_to_next_pending_claim_check` returns `min(0, ...)`, never above 0, so
    the in-process executor never sleeps and loops until the slot frees: 1.5 million turns and
    most of a core in a 25-file run of the deployment benchmark, waiting on `duckdb_warehouse`
    (cProfile of the run workers). The tries are timed as before (every 1 s, growing to 15 s);
    only the spinning in between goes. Patched only while Dagster's own method still returns 0 for
    a try that is due later, so a fixed Dagster is left alone."""
    context = instance_concurrency_context.InstanceConcurrencyContext
    probe = object.__new__(context)
    probe._pending_claims, probe._pending_timeouts = {"step"}, {"step": time.time() + 60}
    if context.interval_to_next_pending_claim_check(probe) > 0:
        return False
    context.interval_to_next_pending_claim_check = _seconds_to_next_try
    return True


sleep_while_waiting_for_a_slot()  # at import: the run worker imports this code location
