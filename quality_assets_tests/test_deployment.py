"""The deployment, for real: PostgreSQL storage, the gRPC code server, dagster-webserver and
dagster-daemon as plain processes (the same commands docker-compose.yml runs), files landing,
a backfill, the daemon killed during a run, and every command of OPERATIONS.md.

The tests of this module run in order against one deployment (a fresh PostgreSQL database,
dropped at the end); each waits with a bound and prints the processes' logs when it times out.
"""

import datetime as dt
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from deployment_support import (
    BIN,
    REPO,
    Deployment,
    cmdline,
    command_lines,
    drop_database,
    free_port,
    fresh_database,
    operations_blocks,
    pg_connect,
    wait_for,
)

from quality_assets.alerts import read_alerts
from quality_assets.config import VARIABLES
from quality_assets.warehouse import Warehouse

CONTRACT = """\
version: 1
datasets:
  orders:
    landing: {path: landing/orders, glob: "*.csv"}
    columns: {order_id: bigint, amount: double, day: date}
  sales:
    landing: {path: landing/sales, glob: "*.csv"}
    partitioning: daily
    daily: {start: FIRST_DAY, file_pattern: 'sales_(?P<date>\\d{8})'}
    columns: {id: bigint, total: double}
"""
BIG_ROWS = 1_500_000
TERMINAL = ("SUCCESS", "FAILURE", "CANCELED")
# Blocks of OPERATIONS.md and the test that runs each one.
BLOCKS_RUN = {
    "local": "test_local_dagster_dev_serves_the_demo",
    "compose": "test_compose_agrees_with_dagster_yaml_and_workspace (static: no Docker engine in CI)",
    "processes": "the deployment fixture",
    "compose-docker-launcher": "test_run_launchers.py (static, and its processes run without Docker)",
    "helm": "test_run_launchers.py::test_operations_blocks_use_these_files (static: no cluster in CI)",
    "backfill": "test_backfill_of_a_date_range_is_one_run",
    "health": "test_operations_commands",
    "pools": "test_operations_commands",
    "alerts": "test_operations_commands",
    "lock": "test_operations_commands",
    "sensors": "test_operations_commands",
    "disk": "test_operations_commands",
    "contract": "test_operations_commands",
    "postgres": "test_operations_commands",
    "retention": "test_retention_removes_old_partitions_everywhere",
    "backup": "test_backup_and_restore",
    "restore": "test_backup_and_restore",
    "lake-backup": "test_lake_ops.py::test_backup_and_restore_of_the_lake",
    "lake-restore": "test_lake_ops.py::test_backup_and_restore_of_the_lake",
    "lake-retention": "test_lake_ops.py::test_cleanup_on_the_lake_deletes_the_removed_partitions_files",
    "migrate": "test_lake_ops.py::test_migrate_copies_the_embedded_warehouse_into_a_lake",
}


def today() -> dt.date:
    return dt.date.today()


# The daily files' days, derived from today so that the test means the same on any date: closed,
# and well inside the 30-day retention of OPERATIONS.md. Day n stands for its example day 2026-11-0n.
FIRST = today() - dt.timedelta(days=10)


def day(n: int, fmt: str = "%Y-%m-%d") -> str:
    return (FIRST + dt.timedelta(days=n - 1)).strftime(fmt)


def sales_file(n: int, suffix: str = "") -> str:
    return f"sales_{day(n, '%Y%m%d')}{suffix}.csv"


def with_test_days(text: str) -> str:
    """OPERATIONS.md's example days (2026-11-01..09) replaced by the test's days."""
    return re.sub(r"2026-11-0(\d)", lambda m: day(int(m.group(1))), text)


def land(folder: Path, name: str, text: str | bytes) -> Path:
    """Write under a temporary name, then rename: the sensor only ever sees complete files."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.part"
    tmp.write_bytes(text if isinstance(text, bytes) else text.encode())
    os.replace(tmp, folder / name)
    return folder / name


def run_block(deployment: Deployment, name: str, **kwargs) -> list[subprocess.CompletedProcess]:
    """Run every command of an OPERATIONS.md block in the deployment's folder and environment."""
    results = []
    for line in command_lines(with_test_days(operations_blocks()[name])):
        result = subprocess.run(["bash", "-c", line], cwd=deployment.workdir, env=deployment.env,
                                capture_output=True, text=True, timeout=300, **kwargs)
        assert result.returncode == 0, f"{name}: {line}\nstdout: {result.stdout}\nstderr: {result.stderr}"
        results.append(result)
    return results


def runs_for(deployment: Deployment, partition: str) -> list[dict]:
    return [r for r in deployment.runs() if r["tags"].get("dagster/partition") == partition]


def wait_runs_done(deployment: Deployment, partitions: list[str], timeout: float = 240) -> dict[str, list[dict]]:
    def done():
        by_partition = {p: runs_for(deployment, p) for p in partitions}
        finished = all(runs and all(r["status"] in TERMINAL for r in runs) for runs in by_partition.values())
        return by_partition if finished else None

    return wait_for(done, timeout, f"runs of {partitions}", interval=1, on_timeout=deployment.diagnostics)


def check_executions(deployment: Deployment, asset: list[str]) -> dict[str | None, list[str]]:
    """file_parsed outcomes by the partition of the run that evaluated them."""
    rows = deployment.sql(
        "SELECT t.value, c.execution_status FROM asset_check_executions c "
        "LEFT JOIN run_tags t ON t.run_id = c.run_id AND t.key = 'dagster/partition' "
        "WHERE c.asset_key = %s AND c.check_name = 'file_parsed' ORDER BY c.id",
        [json.dumps(asset)],
    )
    result: dict[str | None, list[str]] = {}
    for partition, status in rows:
        result.setdefault(partition, []).append(status)
    return result


def warehouse_rows(deployment: Deployment, sql: str, params: list | None = None) -> list[tuple]:
    with Warehouse(deployment.warehouse, lock_timeout_s=120).connect() as con:
        return con.execute(sql, params or []).fetchall()


# ---------------------------------------------------------------------------------------------
# Static: the documents and the deployment files agree


def test_every_command_block_of_operations_md_is_run():
    text = (REPO / "OPERATIONS.md").read_text()
    fences = re.findall(r"^```(\w*)$", text, re.M)
    openings = fences[::2]  # fences alternate: opening (with its language), closing
    shell_blocks = [f for f in openings if f in ("bash", "sh", "shell", "console", "")]
    blocks = operations_blocks()
    assert len(blocks) == len(shell_blocks), "every shell block needs a <!-- test: name --> line above it"
    assert set(blocks) == set(BLOCKS_RUN), set(blocks) ^ set(BLOCKS_RUN)
    for variable in [*VARIABLES, "DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER",
                     "DAGSTER_PG_PASSWORD", "DAGSTER_PG_DB", "DAGSTER_CODE_HOST", "DAGSTER_CODE_PORT"]:
        assert f"| `{variable}` |" in text, f"OPERATIONS.md does not document {variable}"


def env_vars(node) -> set[str]:
    """Every `env: NAME` in a parsed dagster.yaml / workspace.yaml."""
    found = set()
    if isinstance(node, dict):
        if set(node) == {"env"}:
            found.add(node["env"])
        for value in node.values():
            found |= env_vars(value)
    elif isinstance(node, list):
        for value in node:
            found |= env_vars(value)
    return found


def test_compose_agrees_with_dagster_yaml_and_workspace():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    instance = yaml.safe_load((REPO / "dagster.yaml").read_text())
    workspace = yaml.safe_load((REPO / "workspace.yaml").read_text())
    dockerfile = (REPO / "Dockerfile").read_text()
    pyproject = (REPO / "pyproject.toml").read_text()
    module_name = re.search(r'^module_name = "(.+)"', pyproject, re.M).group(1)
    location_name = re.search(r'^code_location_name = "(.+)"', pyproject, re.M).group(1)
    services = compose["services"]
    assert set(services) == {"postgres", "code", "webserver", "daemon"}
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no health check"
        assert service.get("restart") == "unless-stopped"

    # Every variable dagster.yaml and workspace.yaml read is set for every Dagster process.
    needed = env_vars(instance) | env_vars(workspace)
    assert needed == {"DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD",
                      "DAGSTER_PG_DB", "DAGSTER_CODE_HOST", "DAGSTER_CODE_PORT"}
    for name in ("code", "webserver", "daemon"):
        assert needed <= set(services[name]["environment"]), name
    env = services["code"]["environment"]

    # PostgreSQL: the storage points at the postgres service, with its user, password and database.
    pg = services["postgres"]
    assert instance["storage"]["custom"]["module"] == "quality_assets.instance"  # dagster-postgres, pooled
    assert instance["storage"]["custom"]["config"]["postgres_db"]["scheme"] == "postgresql+psycopg2"
    assert env["DAGSTER_PG_HOST"] == "postgres" and env["DAGSTER_PG_PORT"] == "5432"
    assert pg["environment"]["POSTGRES_USER"] == env["DAGSTER_PG_USER"]
    assert pg["environment"]["POSTGRES_PASSWORD"] == env["DAGSTER_PG_PASSWORD"]
    assert pg["environment"]["POSTGRES_DB"] == env["DAGSTER_PG_DB"]
    assert "pgdata:/var/lib/postgresql/data" in pg["volumes"]
    assert "pg_isready" in " ".join(pg["healthcheck"]["test"])

    # The code server serves the module and location workspace.yaml loads, on the port it names.
    [location] = workspace["load_from"]
    assert location["grpc_server"]["location_name"] == location_name
    code_cmd = services["code"]["command"].split()
    assert code_cmd[:3] == ["dagster", "code-server", "start"]
    assert code_cmd[code_cmd.index("-m") + 1] == module_name
    assert code_cmd[code_cmd.index("--location-name") + 1] == location["grpc_server"]["location_name"]
    assert env["DAGSTER_CODE_HOST"] == "code"
    assert code_cmd[code_cmd.index("-p") + 1] == env["DAGSTER_CODE_PORT"]
    assert services["code"]["healthcheck"]["test"][-2:] == ["-p", env["DAGSTER_CODE_PORT"]]

    # The webserver and the daemon read workspace.yaml where the Dockerfile puts it, next to dagster.yaml.
    home = re.search(r"DAGSTER_HOME=(\S+)", dockerfile).group(1)
    assert re.search(rf"COPY dagster.yaml workspace.yaml {home}/", dockerfile)
    for name in ("webserver", "daemon"):
        assert f"-w {home}/workspace.yaml" in services[name]["command"]
    web_cmd = services["webserver"]["command"].split()
    assert f"localhost:{web_cmd[web_cmd.index('-p') + 1]}/server_info" in " ".join(services["webserver"]["healthcheck"]["test"])
    assert services["daemon"]["healthcheck"]["test"][1:] == ["dagster-daemon", "liveness-check"]

    # Start order by health.
    healthy = {"condition": "service_healthy"}
    assert services["code"]["depends_on"] == {"postgres": healthy}
    assert services["webserver"]["depends_on"] == {"postgres": healthy, "code": healthy}
    assert services["daemon"]["depends_on"] == {"postgres": healthy, "code": healthy}

    # Runs execute in the code server: the contract, landing, warehouse and output are mounted there.
    mounts = {m.rsplit(":", 1)[1]: m.rsplit(":", 1)[0] for m in services["code"]["volumes"]}
    contracts = Path(env["QA_CONTRACTS"])
    assert str(contracts.parent) in mounts  # quality.yaml and the landing folders below it
    assert mounts[str(Path(env["QA_DUCKDB_PATH"]).parent)] == "warehouse"
    assert mounts[env["QA_OUTPUT_DIR"]] == "output"
    storage = f"{home}/storage"
    for name in ("code", "webserver", "daemon"):  # compute logs written by runs, read by the UI
        assert f"dagster_storage:{storage}" in services[name]["volumes"], name
    assert set(compose["volumes"]) == {"pgdata", "dagster_storage", "warehouse", "output"}

    # Every variable compose requires is in .env.example, and every one it offers is known.
    example = dict(line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    required = set(re.findall(r"\$\{(\w+):\?", (REPO / "docker-compose.yml").read_text()))
    assert required <= set(example)
    assert {k for k in example if k.startswith("QA_")} <= set(VARIABLES) | {"QA_PROJECT_DIR", "QA_PROJECT_DIR_ABSOLUTE", "QA_BACKUP_DIR"}

    # The instance: queued runs with a limit, the warehouse pool, monitoring, retries, no telemetry.
    assert instance["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert instance["concurrency"]["runs"]["max_concurrent_runs"] >= 1
    assert instance["concurrency"]["pools"]["default_limit"] >= 1
    assert instance["run_monitoring"]["enabled"] is True
    assert instance["run_retries"] == {"enabled": True, "max_retries": 1, "retry_on_asset_or_op_failure": False}
    assert instance["telemetry"] == {"enabled": False}


# ---------------------------------------------------------------------------------------------
# The running deployment


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    root = tmp_path_factory.mktemp("deployment")
    project = root / "project"
    for folder in ("landing/orders", "landing/sales"):
        (project / folder).mkdir(parents=True)
    (project / "quality.yaml").write_text(CONTRACT.replace("FIRST_DAY", day(1)))
    with fresh_database() as database:
        # one run per file here, so that these tests can name each file's run; files sharing a run:
        # test_files_ready_together_share_a_run
        deployment = Deployment(root, database, project, extra_env={"BACKUP_DIR": str(root / "backups"),
                                                                     "QA_FILES_PER_RUN": "1"})
        try:
            for name, line in zip(("code", "webserver", "daemon"), command_lines(operations_blocks()["processes"]),
                                  strict=True):
                deployment.start(name, line)
            deployment.wait_ready()
            yield deployment
        finally:
            deployment.stop_all()


@pytest.mark.slow
def test_landed_files_are_processed_through_the_real_processes(deployment):
    orders = deployment.project / "landing" / "orders"
    sales = deployment.project / "landing" / "sales"
    land(orders, "good.csv", "order_id,amount,day\n1,2.5,2026-11-01\n2,3.5,2026-11-01\n3,1,2026-11-02\n")
    land(orders, "bad.csv", "order_id,amount,day\n4,x,2026-11-01\n5,2,2026-11-02\n")
    land(orders, "blob.csv", b"\x00\x01binary\x00" * 64)
    land(sales, sales_file(1), "id,total\n1,10\n2,20\n")
    land(sales, sales_file(3), "id,total\n3,30\n")
    land(sales, sales_file(5), "id,total\n4,40\n5,50\n")
    land(sales, sales_file(5, "_late"), "id,total\n6,60\n")
    land(sales, f"sales_{today():%Y%m%d}.csv", "id,total\n7,70\n")  # today has not ended: waits
    land(sales, "notes.csv", "id,total\n8,80\n")  # no date in the name: skipped

    runs = wait_runs_done(deployment, ["good.csv", "bad.csv", "blob.csv", day(1), day(3), day(5)])
    statuses = {p: [r["status"] for r in rs] for p, rs in runs.items()}
    assert statuses == {
        "good.csv": ["SUCCESS"], "bad.csv": ["SUCCESS"],
        "blob.csv": ["FAILURE"],  # the blocking file_parsed check failed with error severity
        day(1): ["SUCCESS"], day(3): ["SUCCESS"], day(5): ["SUCCESS"],  # one run per day
    }
    for rs in runs.values():
        assert rs[0]["tags"]["dagster/sensor_name"] in ("orders_landing_sensor", "sales_landing_sensor")
    assert not runs_for(deployment, today().isoformat())
    assert not any("notes" in json.dumps(r["tags"]) for r in deployment.runs())

    # Check results in PostgreSQL.
    assert check_executions(deployment, ["orders", "raw"]) == {
        "good.csv": ["SUCCEEDED"], "bad.csv": ["FAILED"], "blob.csv": ["FAILED"]}
    assert check_executions(deployment, ["sales", "raw"]) == {
        day(1): ["SUCCEEDED"], day(3): ["SUCCEEDED"], day(5): ["SUCCEEDED"]}

    # The warehouse holds every row once, with its partition and run.
    assert dict(warehouse_rows(deployment, 'SELECT _partition_key, count(*) FROM raw."orders" GROUP BY 1')) == {
        "good.csv": 3, "bad.csv": 1}
    assert warehouse_rows(deployment, "SELECT partition_key, error_code FROM qa.quarantine WHERE dataset = 'orders'") == [
        ("bad.csv", "E_NUMERIC_FORMAT")]
    assert dict(warehouse_rows(deployment, "SELECT partition_key, status FROM qa.files WHERE dataset = 'orders'")) == {
        "good.csv": "loaded", "bad.csv": "loaded_with_errors", "blob.csv": "rejected"}
    assert sorted(warehouse_rows(deployment, 'SELECT _partition_key, _source_file, id FROM raw."sales"')) == [
        (day(1), sales_file(1), 1), (day(1), sales_file(1), 2),
        (day(3), sales_file(3), 3), (day(5), sales_file(5), 4),
        (day(5), sales_file(5), 5), (day(5), sales_file(5, "_late"), 6)]
    run_ids = {r["run_id"] for rs in runs.values() for r in rs}
    assert {r[0] for r in warehouse_rows(deployment, 'SELECT DISTINCT _run_id FROM raw."orders"')} <= run_ids

    # The webserver's GraphQL API reports the materializations.
    assert set(deployment.materialized_partitions(["orders", "raw"])) >= {"good.csv", "bad.csv"}
    assert set(deployment.materialized_partitions(["sales", "raw"])) == {day(1), day(3), day(5)}

    # Alerts: both failed checks and the failed run, each naming dataset, partition, rule and report.
    def alerts():
        found = read_alerts(deployment.output)
        kinds = {(a["kind"], a["partition"]) for a in found}
        wanted = {("check_failure", "bad.csv"), ("check_failure", "blob.csv"), ("run_failure", "blob.csv")}
        return found if wanted <= kinds else None

    found = wait_for(alerts, 90, "the alerts", interval=1, on_timeout=deployment.diagnostics)
    bad = next(a for a in found if a["kind"] == "check_failure" and a["partition"] == "bad.csv")
    assert (bad["dataset"], bad["rule"], bad["severity"]) == ("orders", "file_parsed", "warn")
    assert bad["report_path"] == str(deployment.output / "orders" / "bad.csv" / "report.html")
    blob = next(a for a in found if a["kind"] == "check_failure" and a["partition"] == "blob.csv")
    assert blob["severity"] == "error" and "binary" in blob["message"]
    failed = next(a for a in found if a["kind"] == "run_failure")
    assert failed["dataset"] == "orders" and failed["run_id"] == runs["blob.csv"][0]["run_id"]
    assert "QA_ALERT {" in deployment.services["code"].log.read_text()  # the log line


@pytest.mark.slow
def test_files_ready_together_share_a_run_and_a_rejected_one_holds_back_only_itself(tmp_path):
    """Three files already in the folder when the daemon starts: its first tick requests them as one
    run over a range; the binary one fails its blocking check, so the follow-up sensor runs each
    other file alone for the stages the range run did not reach."""
    project = tmp_path / "project"
    orders = project / "landing" / "orders"
    (project / "landing" / "sales").mkdir(parents=True)
    (project / "quality.yaml").write_text(CONTRACT.replace("FIRST_DAY", day(1)))
    land(orders, "a_good.csv", "order_id,amount,day\n1,2.5,2026-11-01\n2,3.5,2026-11-01\n")
    land(orders, "b_blob.csv", b"\x00\x01binary\x00" * 64)
    land(orders, "c_good.csv", "order_id,amount,day\n3,1,2026-11-02\n")
    for n, name in enumerate(("a_good.csv", "b_blob.csv", "c_good.csv")):  # landing order = partition order
        os.utime(orders / name, (1_700_000_000 + n, 1_700_000_000 + n))
    with fresh_database() as database:
        deployment = Deployment(tmp_path, database, project)
        try:
            for name, line in zip(("code", "webserver", "daemon"), command_lines(operations_blocks()["processes"]),
                                  strict=True):
                deployment.start(name, line)
            deployment.wait_ready()

            def settled():
                runs = deployment.runs()
                done = all(r["status"] in TERMINAL for r in runs)
                return runs if done and len(runs) == 3 else None

            ranged, *alone = wait_for(settled, 300, "the range run and its two follow-ups", interval=1,
                                      on_timeout=deployment.diagnostics)
        finally:
            deployment.stop_all()
    assert ranged["tags"]["dagster/asset_partition_range_start"] == "a_good.csv"
    assert ranged["tags"]["dagster/asset_partition_range_end"] == "c_good.csv"
    assert ranged["status"] == "FAILURE" and ranged["tags"]["dagster/sensor_name"] == "orders_landing_sensor"
    assert sorted((r["tags"]["dagster/partition"], r["status"], r["tags"]["quality_assets/after_range_run"],
                   r["tags"]["dagster/sensor_name"]) for r in alone) == [
        (name, "SUCCESS", ranged["run_id"], "orders_range_followup_sensor") for name in ("a_good.csv", "c_good.csv")]
    with Warehouse(deployment.warehouse, lock_timeout_s=120).connect() as con:
        assert con.execute("SELECT partition_key, status FROM qa.files ORDER BY 1").fetchall() == [
            ("a_good.csv", "loaded"), ("b_blob.csv", "rejected"), ("c_good.csv", "loaded")]
        assert con.execute("SELECT _partition_key, count(*) FROM published.orders GROUP BY 1 ORDER BY 1").fetchall() == [
            ("a_good.csv", 2), ("c_good.csv", 1)]
    for name in ("a_good.csv", "b_blob.csv", "c_good.csv"):
        assert (deployment.output / "orders" / name / "report.html").is_file()


@pytest.mark.slow
def test_backfill_of_a_date_range_is_one_run(deployment):
    # Through the daemon: a backfill launched on the webserver's GraphQL API, as the UI does.
    data = deployment.graphql(
        """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
             __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
        {"params": {"partitionsByAssets": [{"assetKey": {"path": ["sales", "raw"]},
                                           "partitions": {"range": {"start": day(4), "end": day(6)}}}]}},
    )["launchPartitionBackfill"]
    assert data["__typename"] == "LaunchBackfillSuccess", data
    backfill_id = data["backfillId"]

    def backfill_runs():
        runs = [r for r in deployment.runs() if r["tags"].get("dagster/backfill") == backfill_id]
        return runs if runs and all(r["status"] in TERMINAL for r in runs) else None

    runs = wait_for(backfill_runs, 180, "the backfill's run", interval=1, on_timeout=deployment.diagnostics)
    time.sleep(3)  # a second run would have been created by now
    runs = backfill_runs()
    assert len(runs) == 1, runs  # one run for the whole range
    [run] = runs
    assert run["status"] == "SUCCESS"
    assert (run["tags"]["dagster/asset_partition_range_start"], run["tags"]["dagster/asset_partition_range_end"]) == (
        day(4), day(6))
    # Every day of the range is materialized by that run; the days without files fail the check (warn).
    partitions = deployment.sql(
        "SELECT partition FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION' ORDER BY partition",
        [run["run_id"]])
    assert [p[0] for p in partitions] == [day(4), day(5), day(6)]
    checks = dict(deployment.sql("SELECT partition, execution_status FROM asset_check_executions WHERE run_id = %s",
                                 [run["run_id"]]))
    # each day's own result, and the run's verdict over the range (partition NULL)
    assert checks == {day(4): "FAILED", day(5): "SUCCEEDED", day(6): "FAILED", None: "FAILED"}
    statuses = dict(warehouse_rows(deployment, "SELECT status, count(*) FROM qa.files WHERE run_id = ? GROUP BY 1",
                                   [run["run_id"]]))
    assert statuses == {"unchanged": 2}  # day 5's two files, identical: nothing rewritten

    # From the command line (OPERATIONS.md), in-process against the same instance: also one run.
    before = {r["run_id"] for r in deployment.runs()}
    [result] = run_block(deployment, "backfill")
    new = [r for r in deployment.runs() if r["run_id"] not in before]
    assert len(new) == 1 and new[0]["status"] == "SUCCESS", (new, result.stderr[-2000:])
    assert (new[0]["tags"]["dagster/asset_partition_range_start"], new[0]["tags"]["dagster/asset_partition_range_end"]) == (
        day(1), day(3))
    assert set(deployment.materialized_partitions(["sales", "raw"])) >= {day(d) for d in range(1, 7)}


def run_workers(deployment: Deployment) -> list[int]:
    """Run worker processes: the code server's multiprocessing children executing a run."""
    return [pid for pid in deployment.code_server_children() if "spawn_main" in cmdline(pid)
            and "resource_tracker" not in cmdline(pid)]


@pytest.mark.slow
def test_daemon_killed_during_a_run_then_restarted(deployment):
    orders = deployment.project / "landing" / "orders"
    lines = ["order_id,amount,day"] + [f"{i},{i % 1000}.5,2026-11-0{i % 7 + 1}" for i in range(BIG_ROWS)]
    land(orders, "big.csv", "\n".join(lines) + "\n")

    def running():
        [run] = runs_for(deployment, "big.csv") or [None]
        if run and run["status"] == "STARTED" and deployment.sql(
                "SELECT 1 FROM event_logs WHERE run_id = %s AND dagster_event_type = 'STEP_START'", [run["run_id"]]):
            return run
        if run and run["status"] in TERMINAL:
            pytest.fail(f"the run ended before it could be interrupted: {run}")
        return None

    run = wait_for(running, 120, "the big file's step to start", interval=0.1, on_timeout=deployment.diagnostics)
    deployment.kill("daemon", signal.SIGKILL)  # the daemon dies during the run ...
    workers = run_workers(deployment)
    assert workers, deployment.diagnostics()
    for pid in workers:  # ... and so does the run's worker, as when the host or container dies
        os.kill(pid, signal.SIGKILL)

    # With the daemon down, the code server notices its worker died and marks the run failed.
    wait_for(lambda: runs_for(deployment, "big.csv")[0]["status"] == "FAILURE", 60, "the killed run marked failed",
             on_timeout=deployment.diagnostics)
    deployment.start("daemon", command_lines(operations_blocks()["processes"])[2])

    # The restarted daemon retries the crashed run (run_retries in dagster.yaml), and the retry succeeds.
    def retried():
        runs = runs_for(deployment, "big.csv")
        return runs if len(runs) == 2 and runs[1]["status"] in TERMINAL else None

    original, retry = wait_for(retried, 180, "the retry of the killed run", interval=1, on_timeout=deployment.diagnostics)
    assert original["run_id"] == run["run_id"] and original["status"] == "FAILURE"
    assert retry["status"] == "SUCCESS"
    assert retry["tags"]["dagster/parent_run_id"] == original["run_id"]
    assert retry["tags"]["dagster/retry_number"] == "1"
    # The killed step's slot of the warehouse pool comes back (run_monitoring in dagster.yaml).
    wait_for(lambda: not deployment.sql("SELECT 1 FROM concurrency_slots WHERE run_id = %s", [original["run_id"]]),
             120, "the killed run's pool slot freed", interval=1, on_timeout=deployment.diagnostics)

    # No half-written partition: all rows once, all from one run whose audit row committed with them.
    [(rows, run_ids)] = warehouse_rows(
        deployment, 'SELECT count(*), list(DISTINCT _run_id) FROM raw."orders" WHERE _partition_key = ?', ["big.csv"])
    assert rows == BIG_ROWS
    [writer] = run_ids
    audits = warehouse_rows(deployment, "SELECT run_id, status, rows_loaded FROM qa.files WHERE partition_key = 'big.csv' ORDER BY finished")
    assert (writer, "loaded", BIG_ROWS) in audits
    assert all(a[1] in ("loaded", "unchanged") for a in audits) and len(audits) <= 2
    # The failure was alerted, and the daemon is healthy again.
    wait_for(lambda: any(a["kind"] == "run_failure" and a["run_id"] == original["run_id"]
                         for a in read_alerts(deployment.output)), 60, "the run failure alert")
    wait_for(lambda: deployment.services["daemon"].alive() and subprocess.run(
        ["dagster-daemon", "liveness-check"], env=deployment.env, capture_output=True).returncode == 0,
        60, "the restarted daemon's heartbeat")


@pytest.mark.slow
def test_operations_commands(deployment):
    [info, grpc, daemon, pg] = run_block(deployment, "health")
    assert json.loads(info.stdout)["dagster_webserver_version"]
    assert "accepting connections" in pg.stdout
    [_, pools] = run_block(deployment, "pools")
    assert "duckdb_warehouse" in pools.stdout and re.search(r"\b2\b", pools.stdout), pools.stdout
    [tail] = run_block(deployment, "alerts")
    assert all(json.loads(line)["kind"] in ("run_failure", "check_failure") for line in tail.stdout.splitlines())
    [lock] = run_block(deployment, "lock")
    assert lock.stdout.startswith("pid ")
    # A stopped sensor: the block lists the running ones and starts it again.
    def dagster(*args):
        return subprocess.run(["dagster", *args, "-w", "workspace.yaml"], cwd=deployment.workdir, env=deployment.env,
                              capture_output=True, text=True, timeout=120)

    def stopped():
        # A tick finishing at the same moment can write the sensor's state back as running: check, and stop again.
        stop = dagster("sensor", "stop", "orders_landing_sensor")
        assert stop.returncode == 0 and "Stopped sensor orders_landing_sensor" in stop.stdout, stop.stdout + stop.stderr
        time.sleep(2)
        return "orders_landing_sensor" in dagster("sensor", "list", "--stopped").stdout

    wait_for(stopped, 120, "the sensor to stay stopped", interval=0)
    [listed, started] = run_block(deployment, "sensors")
    assert "orders_landing_sensor" not in listed.stdout and "sales_landing_sensor" in listed.stdout, listed.stdout
    assert "Started sensor orders_landing_sensor" in started.stdout
    land(deployment.project / "landing" / "orders", "after_restart.csv", "order_id,amount,day\n9,1,2026-11-01\n")
    runs = wait_runs_done(deployment, ["after_restart.csv"], timeout=120)
    assert [r["status"] for r in runs["after_restart.csv"]] == ["SUCCESS"]
    [df, du] = run_block(deployment, "disk")
    assert "Filesystem" in df.stdout and str(deployment.output) in du.stdout
    [validate] = run_block(deployment, "contract")
    assert "valid, 2 dataset(s)" in validate.stdout
    [ready] = run_block(deployment, "postgres")
    assert "accepting connections" in ready.stdout


@pytest.mark.slow
def test_retention_removes_old_partitions_everywhere(deployment):
    dry, real = run_block(deployment, "retention")  # nothing is 30 days old yet
    assert "nothing to remove" in dry.stdout and "nothing to remove" in real.stdout
    orders = set(deployment.materialized_partitions(["orders", "raw"]))
    assert {"good.csv", "bad.csv"} <= orders
    env = deployment.env
    result = subprocess.run(["quality-assets", "cleanup", "--older-than", "1s", "--dataset", "orders"],
                            cwd=deployment.workdir, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "orders: removed" in result.stdout and "Dagster: removed" in result.stdout, result.stdout
    assert 'from raw."orders"' in result.stdout and "kept" in result.stdout
    # Gone from Dagster (dynamic partition keys, materializations) and the warehouse; files kept.
    keys = deployment.sql("SELECT partition FROM dynamic_partitions WHERE partitions_def_name = 'orders_files'")
    assert keys == []
    node = deployment.graphql(
        """query($key: AssetKeyInput!) { assetNodeOrError(assetKey: $key) { ... on AssetNode {
             partitionKeys partitionStats { numMaterialized numPartitions } } } }""",
        {"key": {"path": ["orders", "raw"]}})["assetNodeOrError"]
    assert node["partitionKeys"] == [] and node["partitionStats"]["numMaterialized"] == 0
    assert warehouse_rows(deployment, 'SELECT count(*) FROM raw."orders"') == [(0,)]
    assert warehouse_rows(deployment, "SELECT count(*) FROM qa.files WHERE dataset = 'orders'") == [(0,)]
    assert (deployment.project / "landing" / "orders" / "good.csv").exists()
    # The sales dataset was not touched.
    assert set(deployment.materialized_partitions(["sales", "raw"])) >= {day(1), day(5)}


@pytest.mark.slow
def test_backup_and_restore(deployment):
    run_block(deployment, "backup")
    runs_before = deployment.sql("SELECT count(*) FROM runs")[0][0]
    sales_before = warehouse_rows(deployment, 'SELECT count(*) FROM raw."sales"')[0][0]
    assert runs_before > 0 and sales_before > 0
    deployment.stop_all()  # OPERATIONS.md: stop the processes before restoring
    # Lose both: an empty database and no warehouse file.
    drop_database(deployment.database)
    with pg_connect("postgres") as admin:
        admin.execute(f'CREATE DATABASE "{deployment.database}"')
    deployment.warehouse.unlink()
    run_block(deployment, "restore")
    assert deployment.sql("SELECT count(*) FROM runs")[0][0] == runs_before
    assert warehouse_rows(deployment, 'SELECT count(*) FROM raw."sales"')[0][0] == sales_before
    # The restored instance serves again: the webserver lists the runs.
    deployment.start("webserver", command_lines(operations_blocks()["processes"])[1])
    wait_for(lambda: deployment.server_info(), 120, "the webserver", on_timeout=deployment.diagnostics)
    data = deployment.graphql("{ runsOrError { ... on Runs { count } } }")
    assert data["runsOrError"]["count"] == runs_before


@pytest.mark.slow
def test_local_dagster_dev_serves_the_demo(tmp_path):
    """OPERATIONS.md's laptop deployment: the demo, then `dagster dev` with its embedded instance."""
    port = str(free_port())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "DAGSTER_"))}
    env.update({"WEBSERVER_PORT": port, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"})
    demo, dev = command_lines(operations_blocks()["local"])
    result = subprocess.run(["bash", "-c", demo], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    log = open(tmp_path / "dev.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(["bash", "-c", dev], cwd=tmp_path, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def location_loaded():
            import urllib.request

            if process.poll() is not None:
                pytest.fail(f"dagster dev exited: {(tmp_path / 'dev.log').read_text(errors='replace')[-3000:]}")

            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/graphql", headers={"Content-Type": "application/json"},
                data=json.dumps({"query": "{ assetNodes { assetKey { path } } }"}).encode())
            with urllib.request.urlopen(request, timeout=10) as response:
                nodes = json.loads(response.read())["data"]["assetNodes"]
            return {"/".join(n["assetKey"]["path"]) for n in nodes}

        keys = wait_for(location_loaded, 180, "dagster dev", interval=1,
                        on_timeout=lambda: (tmp_path / "dev.log").read_text(errors="replace")[-3000:])
        assert {"orders/raw", "customers/raw", "scorecard"} <= keys
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def test_fresh_database_is_dropped_afterwards():
    with fresh_database("qa_test_drop") as name:
        assert pg_connect(name).execute("SELECT current_database()").fetchone()[0] == name
    with pg_connect("postgres") as admin:
        assert admin.execute("SELECT count(*) FROM pg_database WHERE datname = %s", [name]).fetchone()[0] == 0
