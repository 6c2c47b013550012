"""The warehouse pool follows the backend: on a DuckLake a sensor keeps it one slot per run worker
(the run queue's max_concurrent_runs), on the DuckDB file it stays as the instance sets it. On a
real Dagster instance (SQLite storage, queued runs), its slots claimed as steps claim them."""

from pathlib import Path

import dagster as dg
import pytest

from quality_assets.config import settings_from_env
from quality_assets.contract import load_contract
from quality_assets.defs.common import WAREHOUSE_POOL
from quality_assets.defs.definitions import build_definitions
from quality_assets.defs.pools import POOL_SENSOR

CONTRACT = """\
datasets:
  orders:
    landing: {path: landing/orders, glob: "*.csv"}
"""
LAKE = "ducklake:postgres:dbname=quality_lake host=127.0.0.1"  # never attached: the sensor only sizes the pool


def definitions(tmp_path: Path, warehouse: str | None) -> dg.Definitions:
    (tmp_path / "quality.yaml").write_text(CONTRACT)
    env = {"QA_CONTRACTS": str(tmp_path / "quality.yaml"), **({"QA_WAREHOUSE": warehouse} if warehouse else {})}
    settings = settings_from_env(env)
    return build_definitions(load_contract(settings.contracts), settings)


def queued_instance(max_concurrent_runs: int):
    """An instance like deploy/docker/dagster.yaml's, with the repository's default pool width (2)."""
    return dg.instance_for_test(overrides={
        "run_coordinator": {"module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator"},
        "concurrency": {"runs": {"max_concurrent_runs": max_concurrent_runs},
                        "pools": {"default_limit": 2, "granularity": "op"}},
    })


def tick(defs: dg.Definitions, instance) -> str:
    sensor = defs.get_repository_def().get_sensor_def(POOL_SENSOR)
    result = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, definitions=defs))
    assert result.run_requests == []
    return result.skip_message


def claimed(instance, runs: int) -> list[bool]:
    """Steps of `runs` different runs each claiming a slot of the pool, as running steps do."""
    storage = instance.event_log_storage
    return [storage.claim_concurrency_slot(WAREHOUSE_POOL, f"run-{n}", "orders__raw").is_claimed for n in range(runs)]


def test_on_a_lake_the_pool_is_one_slot_per_run_worker(tmp_path: Path):
    defs = definitions(tmp_path, LAKE)
    with queued_instance(max_concurrent_runs=3) as instance:
        storage = instance.event_log_storage
        storage.initialize_concurrency_limit_to_default(WAREHOUSE_POOL)
        assert storage.get_concurrency_info(WAREHOUSE_POOL).slot_count == 2  # dagster.yaml's default width
        assert tick(defs, instance) == f"pool '{WAREHOUSE_POOL}': 3 slots, one per run worker"
        assert storage.get_concurrency_info(WAREHOUSE_POOL).slot_count == 3
        # Three runs' writing steps hold a slot each at once; a fourth waits.
        assert claimed(instance, 4) == [True, True, True, False]
        # Narrowed by hand, it is widened again on the next tick.
        storage.set_concurrency_slots(WAREHOUSE_POOL, 1)
        tick(defs, instance)
        assert storage.get_concurrency_info(WAREHOUSE_POOL).slot_count == 3


UNQUEUED = [  # runs launched at once (no queue), or a queue without a bound
    {"run_coordinator": {"module": "dagster._core.run_coordinator", "class": "DefaultRunCoordinator"}},
    {"concurrency": {"runs": {"max_concurrent_runs": -1}}},
]


@pytest.mark.parametrize("overrides", UNQUEUED)
def test_without_a_bounded_run_queue_the_pool_is_left_as_set(tmp_path: Path, overrides):
    defs = definitions(tmp_path, LAKE)
    with dg.instance_for_test(overrides=overrides) as instance:
        instance.event_log_storage.set_concurrency_slots(WAREHOUSE_POOL, 2)
        assert "no bounded run queue" in tick(defs, instance)
        assert instance.event_log_storage.get_concurrency_info(WAREHOUSE_POOL).slot_count == 2


@pytest.mark.parametrize("warehouse", [None, ""])
def test_on_the_duckdb_file_the_pool_stays_as_the_instance_sets_it(tmp_path: Path, warehouse):
    defs = definitions(tmp_path, warehouse)
    assert POOL_SENSOR not in {s.name for s in defs.get_repository_def().sensor_defs}


@pytest.mark.parametrize("warehouse", [None, LAKE])
def test_every_asset_writes_in_the_warehouse_pool_whichever_the_backend(tmp_path: Path, warehouse):
    graph = definitions(tmp_path, warehouse).get_repository_def().asset_graph
    pools = {key.to_user_string(): graph.get(key).pools for key in graph.get_all_asset_keys()}
    assert len(pools) == 7 and all(p == {WAREHOUSE_POOL} for p in pools.values()), pools  # 6 stages + scorecard


def test_a_step_waiting_for_a_slot_sleeps_between_its_tries_instead_of_spinning(monkeypatch):
    """Dagster 1.13's executor never slept while a step waited for a pool slot: a run queued
    behind the warehouse's writers turned its loop ~10,000 times a second, a core per waiting run
    (cProfile of the deployment's run workers). Here a run waits 3 s for a slot another run holds."""
    import threading
    import time

    from dagster._core.execution.plan.active import ActiveExecution

    turns = []
    get_next_step = ActiveExecution.get_next_step
    monkeypatch.setattr(ActiveExecution, "get_next_step", lambda self: turns.append(1) or get_next_step(self))

    @dg.op(pool=WAREHOUSE_POOL)
    def write():
        return 1

    @dg.job
    def writer():
        write()

    with dg.instance_for_test(overrides={"concurrency": {"pools": {"default_limit": 1, "granularity": "op"}}}) as instance:
        storage = instance.event_log_storage
        storage.set_concurrency_slots(WAREHOUSE_POOL, 1)
        assert storage.claim_concurrency_slot(WAREHOUSE_POOL, "other-run", "its_step").is_claimed
        results = []
        run = threading.Thread(target=lambda: results.append(writer.execute_in_process(instance=instance)))
        run.start()
        time.sleep(3)
        waited = len(turns)
        storage.free_concurrency_slot_for_step("other-run", "its_step")
        run.join(timeout=60)
    assert results and results[0].success  # it got the slot once freed
    assert 1 <= waited <= 20, f"{waited} turns of the executor's loop in 3 s of waiting"
