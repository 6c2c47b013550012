"""The deployment's instance storage (quality_assets/instance.py) as dagster.yaml configures it:
on a fresh PostgreSQL database, a process's storage calls, threads and instances share its
connections."""

import shutil
from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import pytest
from deployment_support import (
    PG_HOST,
    PG_PASSWORD,
    PG_PORT,
    PG_USER,
    REPO,
    fresh_database,
    pg_connect,
)

INSTANCES = [REPO / "dagster.yaml", REPO / "deploy" / "docker" / "dagster.yaml"]


@pytest.fixture
def instance(request, tmp_path, monkeypatch):
    with fresh_database("qa_instance") as database:
        shutil.copy(request.param, tmp_path / "dagster.yaml")
        for name, value in {"DAGSTER_PG_HOST": PG_HOST, "DAGSTER_PG_PORT": PG_PORT, "DAGSTER_PG_USER": PG_USER,
                            "DAGSTER_PG_PASSWORD": PG_PASSWORD, "DAGSTER_PG_DB": database}.items():
            monkeypatch.setenv(name, value)
        with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
            yield instance, database


def sessions(database: str) -> int:
    """Connections opened to the database so far (a closed connection's count is flushed at its exit)."""
    with pg_connect("postgres") as con:
        return con.execute("SELECT sessions FROM pg_stat_database WHERE datname = %s", [database]).fetchone()[0]


def open_connections(database: str) -> int:
    with pg_connect("postgres") as con:
        return con.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [database]).fetchone()[0]


@pytest.mark.parametrize("instance", INSTANCES, indirect=True, ids=["dagster.yaml", "docker"])
def test_deployment_storage_reuses_one_connection_per_process(instance):
    instance, database = instance
    run = instance.create_run_for_job(dg.GraphDefinition(name="noop", node_defs=[]).to_job(), run_id=None)
    before = sessions(database)
    for i in range(60):  # what a run worker does per file: events written, runs and events read
        instance.report_engine_event(f"event {i}", run)
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=["events", "raw"], partition=f"f{i}"))
        instance.get_run_by_id(run.run_id)
    assert len(instance.all_logs(run.run_id)) == 60
    # dagster-postgres's own NullPool opens one connection per call: 250 or so here.
    assert sessions(database) - before <= 3


@pytest.mark.parametrize("instance", INSTANCES, indirect=True, ids=["dagster.yaml", "docker"])
def test_deployment_storage_keeps_the_connections_of_concurrent_callers(instance):
    """The daemon's threads (and a run worker's heartbeat beside its step) call at once: with a
    pool of one, every second caller would open and close a connection of its own."""
    instance, database = instance
    run = instance.create_run_for_job(dg.GraphDefinition(name="noop", node_defs=[]).to_job(), run_id=None)

    def caller(i: int) -> None:
        for j in range(40):
            instance.report_engine_event(f"thread {i} event {j}", run)
            instance.get_run_by_id(run.run_id)

    before = sessions(database)
    with ThreadPoolExecutor(4) as threads:
        list(threads.map(caller, range(4)))
    assert len(instance.all_logs(run.run_id)) == 160
    assert sessions(database) - before <= 8


@pytest.mark.parametrize("instance", INSTANCES, indirect=True, ids=["dagster.yaml", "docker"])
def test_deployment_storage_is_shared_by_the_instances_of_a_process(instance, tmp_path):
    """The code server makes an instance for every sensor evaluation, the daemon's run requests
    more: each new instance uses the process's connections and does not check the tables again."""
    instance, database = instance
    instance.get_runs_count()
    before = sessions(database)
    for i in range(20):
        with dg.DagsterInstance.from_ref(instance.get_ref()) as another:
            another.get_runs_count()
            another.report_runless_asset_event(dg.AssetMaterialization(asset_key=["events", "raw"], partition=f"f{i}"))
            another.get_latest_materialization_event(dg.AssetKey(["events", "raw"]))
    assert sessions(database) - before <= 4
    assert open_connections(database) <= 3 * 4  # at most the pool of each storage, idle
