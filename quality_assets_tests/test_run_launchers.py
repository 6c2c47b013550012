"""The run launchers past one machine: the Docker variant (docker-compose.docker-launcher.yml with
deploy/docker/dagster.yaml, dagster-docker's DockerRunLauncher) and Kubernetes (deploy/helm/values.yaml
for Dagster's chart, dagster-k8s's K8sRunLauncher). No Docker engine nor cluster here: the files
are checked against each other and against the launchers' own config schemas, and the Docker
variant's code server, webserver and daemon run as plain processes until the daemon hands a run
to Docker.
"""

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from dagster._config import process_config
from dagster._serdes import ConfigurableClassData
from dagster_docker import DockerRunLauncher
from dagster_k8s import K8sRunLauncher
from dagster_k8s.container_context import K8sContainerContext
from deployment_support import (
    REPO,
    Deployment,
    command_lines,
    fresh_database,
    operations_blocks,
    wait_for,
)

from quality_assets.config import VARIABLES

DOCKER_INSTANCE = REPO / "deploy" / "docker" / "dagster.yaml"
OVERRIDE = REPO / "docker-compose.docker-launcher.yml"
HELM_VALUES = REPO / "deploy" / "helm" / "values.yaml"
HELM_ENV = REPO / "deploy" / "helm" / "quality-assets.env"


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def mounts(volumes: list[str]) -> dict[str, str]:
    """Compose / docker volume strings: container path -> source (a `:ro` suffix dropped)."""
    found = {}
    for volume in volumes:
        parts = volume.split(":")
        if parts[-1] in ("ro", "rw"):
            parts = parts[:-1]
        found[parts[-1]] = ":".join(parts[:-1])
    return found


def merged_compose() -> dict:
    """docker-compose.yml with the override laid over it, as `docker compose -f A -f B` merges:
    environment by variable, volumes by container path, other keys replaced."""
    base, override = load(REPO / "docker-compose.yml"), load(OVERRIDE)
    services = base["services"]
    for name, extra in override["services"].items():
        service = services[name]
        for key, value in extra.items():
            if key == "environment":
                service[key] = {**service.get(key, {}), **value}
            elif key == "volumes":
                by_target = {**mounts(service.get(key, [])), **mounts(value)}
                service[key] = [f"{source}:{target}" for target, source in by_target.items()]
            else:
                service[key] = value
    base["volumes"] = {**base["volumes"], **override["volumes"]}
    base["networks"] = override["networks"]
    return base


def variables_named(text: str) -> str:
    """Compose's `${NAME:-default}` / `${NAME:?message}` written as `<NAME>`, so that values can be compared."""
    return re.sub(r"\$\{(\w+)[^}]*\}", r"<\1>", text)


def lake_spec(spec: str) -> dict[str, str]:
    spec = variables_named(spec)
    assert spec.startswith("ducklake:postgres:"), spec
    return dict(item.split("=", 1) for item in shlex.split(spec.removeprefix("ducklake:postgres:")))


def rehydrate(section: dict):
    """The launcher a dagster.yaml section names, built by Dagster from its config (validated by
    the class's own schema, as when an instance loads)."""
    return ConfigurableClassData(section["module"], section["class"], yaml.safe_dump(section["config"])).rehydrate()


# ---------------------------------------------------------------------------------------------
# Docker: one container per run


def test_docker_instance_is_dagster_yaml_with_the_docker_run_launcher():
    base, docker = load(REPO / "dagster.yaml"), load(DOCKER_INSTANCE)
    launcher = docker.pop("run_launcher")
    assert "run_launcher" not in base  # the default: runs are children of the code server
    # The lake has no single writer: the warehouse pool is as wide as the run queue; nothing else differs.
    assert docker["concurrency"]["pools"]["default_limit"] == docker["concurrency"]["runs"]["max_concurrent_runs"]
    docker["concurrency"]["pools"]["default_limit"] = base["concurrency"]["pools"]["default_limit"]
    assert docker == base

    assert (launcher["module"], launcher["class"]) == ("dagster_docker", "DockerRunLauncher")
    result = process_config(DockerRunLauncher.config_type(), launcher["config"])
    assert result.success, result.errors
    built = rehydrate(launcher)
    assert isinstance(built, DockerRunLauncher)
    assert built.networks == [launcher["config"]["network"]]


def test_docker_compose_variant_agrees_with_its_instance():
    compose = merged_compose()
    services = compose["services"]
    config = load(DOCKER_INSTANCE)["run_launcher"]["config"]
    code, daemon, webserver = services["code"], services["daemon"], services["webserver"]
    instance_path = "/opt/dagster/home/dagster.yaml"
    for service in (code, daemon, webserver):  # all three read the Docker variant's instance
        assert mounts(service["volumes"])[instance_path] == "./deploy/docker/dagster.yaml"
    assert (REPO / "deploy" / "docker" / "dagster.yaml").exists()

    # The run containers: the code server's image, on the project's network ...
    assert code["environment"]["DAGSTER_CURRENT_IMAGE"] == code["image"]
    assert config["network"] == compose["networks"]["default"]["name"]
    # ... with every variable of the code server's that a run reads (the daemon passes its own values)
    code_env = set(code["environment"])
    run_env = set(config["env_vars"])
    assert run_env == code_env - {"DAGSTER_CURRENT_IMAGE", "DAGSTER_CODE_HOST", "DAGSTER_CODE_PORT",
                                  "QA_SENSOR_INTERVAL", "QA_SENSOR_SETTLE_SECONDS"}
    assert run_env <= set(daemon["environment"])
    assert all(daemon["environment"][v] == code["environment"][v] for v in run_env)
    assert {v for v in run_env if v.startswith("QA_")} <= set(VARIABLES)
    # ... and the same volumes, by the names the override gives them (the backups stay with `code`)
    names = {key: spec["name"] for key, spec in compose["volumes"].items() if spec and "name" in spec}
    code_mounts = {target: names.get(source, source) for target, source in mounts(code["volumes"]).items()
                   if target not in (instance_path, "/backups")}
    assert mounts(config["container_kwargs"]["volumes"]) == code_mounts
    assert all(source.startswith("quality_assets_") for source in code_mounts.values())
    env = code["environment"]
    assert code_mounts[env["QA_LAKE_DATA_PATH"]] == "quality_assets_lake"
    assert code_mounts[str(Path(env["QA_CONTRACTS"]).parent)] == "quality_assets_project"
    assert code_mounts[env["QA_OUTPUT_DIR"]] == "quality_assets_output"
    assert code_mounts[str(Path(env["QA_DUCKDB_PATH"]).parent)] == "quality_assets_warehouse"
    project = compose["volumes"]["project"]["driver_opts"]
    assert project["o"] == "bind" and re.fullmatch(r"\$\{QA_PROJECT_DIR_ABSOLUTE:\?.+\}", project["device"])

    # The daemon starts them through the Docker socket.
    assert mounts(daemon["volumes"])["/var/run/docker.sock"] == "/var/run/docker.sock"
    assert daemon["group_add"]

    # The lake: its catalog is the database the postgres service creates, with Dagster's credentials.
    spec = lake_spec(env["QA_WAREHOUSE"])
    init = mounts(services["postgres"]["volumes"])["/docker-entrypoint-initdb.d/create-lake-database.sql"]
    assert re.search(rf"CREATE DATABASE {spec['dbname']};", (REPO / init).read_text())
    assert (spec["host"], spec["port"]) == (env["DAGSTER_PG_HOST"], env["DAGSTER_PG_PORT"])
    assert (spec["user"], spec["password"]) == (variables_named(env["DAGSTER_PG_USER"]),
                                                variables_named(env["DAGSTER_PG_PASSWORD"]))
    # Every variable the override requires is in .env.example.
    example = dict(line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert set(re.findall(r"\$\{(\w+):\?", OVERRIDE.read_text())) <= set(example)


@pytest.mark.slow
def test_docker_variant_processes_hand_runs_to_docker(tmp_path):
    """The Docker variant's code server, webserver and daemon, as plain processes: they come up
    healthy on PostgreSQL with DockerRunLauncher, and a landed file's run is launched through
    Docker (which is absent here, so the launch fails saying so) instead of in the code server."""
    project = tmp_path / "project"
    (project / "landing" / "orders").mkdir(parents=True)
    (project / "quality.yaml").write_text(
        "version: 1\ndatasets:\n  orders:\n    landing: {path: landing/orders, glob: \"*.csv\"}\n")
    with fresh_database() as database:
        # what the override gives the code server and the daemon (the run never reaches the lake)
        lake = {"QA_WAREHOUSE": f"ducklake:postgres:dbname={database} host=127.0.0.1",
                "QA_LAKE_DATA_PATH": str(tmp_path / "lake"), "QA_ALERT_WEBHOOK_URL": ""}
        deployment = Deployment(tmp_path, database, project, instance=DOCKER_INSTANCE,
                                extra_env={"DAGSTER_CURRENT_IMAGE": "quality_assets:latest", **lake})
        try:
            for name, line in zip(("code", "webserver", "daemon"), command_lines(operations_blocks()["processes"]),
                                  strict=True):
                deployment.start(name, line)
            deployment.wait_ready()
            (project / "landing" / "orders" / "a.csv").write_text("order_id\n1\n")

            def failed_run():
                runs = [r for r in deployment.runs() if r["tags"].get("dagster/partition") == "a.csv"]
                return runs[0] if runs and runs[0]["status"] == "FAILURE" else None

            run = wait_for(failed_run, 120, "the run handed to Docker", interval=1, on_timeout=deployment.diagnostics)
            events = [json.loads(body) for (body,) in deployment.sql(
                "SELECT event FROM event_logs WHERE run_id = %s ORDER BY id", [run["run_id"]])]
            messages = json.dumps(events)
            assert "DockerException" in messages, messages[-3000:]
            # No run worker ever started in the code server: the run was never executed locally.
            steps = deployment.sql("SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = 'STEP_START'",
                                   [run["run_id"]])
            assert steps == [(0,)]
        finally:
            deployment.stop_all()


# ---------------------------------------------------------------------------------------------
# Kubernetes: one Job per run


def snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def k8s_run_launcher_section(values: dict) -> dict:
    """The run_launcher of the instance Dagster's chart renders from these values
    (templates/helpers/instance/_run-launcher.tpl: the chart fills the env fields itself)."""
    k8s = values["runLauncher"]["config"]["k8sRunLauncher"]
    config = {
        "load_incluster_config": k8s["loadInclusterConfig"],
        "job_namespace": k8s.get("jobNamespace") or "quality",
        "image_pull_policy": k8s["imagePullPolicy"],
        "service_account_name": "quality-assets-dagster",
        "dagster_home": {"env": "DAGSTER_HOME"},
        "instance_config_map": {"env": "DAGSTER_K8S_INSTANCE_CONFIG_MAP"},
        "postgres_password_secret": {"env": "DAGSTER_K8S_PG_PASSWORD_SECRET"},
        "env_config_maps": [{"env": "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP"}] + [c["name"] for c in k8s["envConfigMaps"]],
    }
    for key in ("envSecrets",):
        if k8s.get(key):
            config["env_secrets"] = [s["name"] for s in k8s[key]]
    for key in ("envVars", "volumeMounts", "volumes"):
        if k8s.get(key):
            config[snake(key)] = k8s[key]
    if k8s.get("runK8sConfig"):
        config["run_k8s_config"] = {snake(k): v for k, v in k8s["runK8sConfig"].items()}
    return {"module": "dagster_k8s", "class": "K8sRunLauncher", "config": config}


def test_helm_values_give_a_valid_k8s_run_launcher(monkeypatch):
    values = load(HELM_VALUES)
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    section = k8s_run_launcher_section(values)
    for variable in ("DAGSTER_HOME", "DAGSTER_K8S_INSTANCE_CONFIG_MAP", "DAGSTER_K8S_PG_PASSWORD_SECRET",
                     "DAGSTER_K8S_PIPELINE_RUN_ENV_CONFIGMAP"):
        monkeypatch.setenv(variable, "set-by-the-chart")
    result = process_config(K8sRunLauncher.config_type(), section["config"])
    assert result.success, result.errors
    resources = result.value["run_k8s_config"]["container_config"]["resources"]
    assert resources["requests"]["memory"] and resources["limits"]["memory"]

    # The code location: the same server and module as docker-compose.yml, its environment, secret
    # and volumes passed on to every run's pod (as a container context Dagster can read).
    [deployment] = values["dagster-user-deployments"]["deployments"]
    pyproject = (REPO / "pyproject.toml").read_text()
    args = deployment["codeServerArgs"]
    assert args[args.index("-m") + 1] == re.search(r'^module_name = "(.+)"', pyproject, re.M).group(1)
    assert args[args.index("--location-name") + 1] == re.search(r'^code_location_name = "(.+)"', pyproject, re.M).group(1)
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    context = K8sContainerContext.create_from_config({"k8s": {
        "env_config_maps": [c["name"] for c in deployment["envConfigMaps"]],
        "env_secrets": [s["name"] for s in deployment["envSecrets"]],
        "volumes": deployment["volumes"], "volume_mounts": deployment["volumeMounts"]}})
    [mount] = context.run_k8s_config.container_config["volume_mounts"]
    [volume] = context.run_k8s_config.pod_spec_config["volumes"]
    assert mount["name"] == volume["name"] and volume["persistent_volume_claim"]["claim_name"]

    # The ConfigMap's variables are the documented ones, below the claim's mount; the lake's spec
    # (it holds the catalog's password) is left to the Secret.
    env = dict(line.split("=", 1) for line in HELM_ENV.read_text().splitlines() if line and not line.startswith("#"))
    assert set(env) <= set(VARIABLES) and "QA_WAREHOUSE" not in env
    for variable in ("QA_CONTRACTS", "QA_LAKE_DATA_PATH", "QA_DUCKDB_PATH", "QA_OUTPUT_DIR"):
        assert Path(env[variable]).is_relative_to(mount["mount_path"]), variable

    # The daemon behaves as dagster.yaml says: monitoring, one retry of crashed runs, retention, no telemetry.
    instance = load(REPO / "dagster.yaml")
    daemon = values["dagsterDaemon"]
    assert {snake(k): v for k, v in daemon["runMonitoring"].items()} == instance["run_monitoring"]
    assert {snake(k): v for k, v in daemon["runRetries"].items()} == instance["run_retries"]
    assert daemon["runCoordinator"]["type"] == "QueuedRunCoordinator"
    pools = values["concurrency"]["pools"]
    assert pools["defaultLimit"] == values["concurrency"]["runs"]["maxConcurrentRuns"]
    assert (pools["granularity"], pools["opGranularityRunBuffer"]) == (
        instance["concurrency"]["pools"]["granularity"], instance["concurrency"]["pools"]["op_granularity_run_buffer"])
    assert values["retention"]["sensor"]["purgeAfterDays"] == instance["retention"]["sensor"]["purge_after_days"]
    assert values["telemetry"] == instance["telemetry"]
    assert values["postgresql"]["postgresqlScheme"] == instance["storage"]["custom"]["config"]["postgres_db"]["scheme"]


def test_operations_blocks_use_these_files():
    """OPERATIONS.md's Docker-variant and Kubernetes commands name the files and objects above."""
    blocks = operations_blocks()
    up, ps, runs = command_lines(blocks["compose-docker-launcher"])
    files = re.findall(r"-f (\S+)", up)
    assert files == ["docker-compose.yml", OVERRIDE.name] and all((REPO / f).exists() for f in files)
    assert up.endswith("up -d --build") and re.findall(r"-f (\S+)", ps) == files
    assert "label=dagster/run_id" in runs  # the label DockerRunLauncher puts on run containers

    values = load(HELM_VALUES)
    [deployment] = values["dagster-user-deployments"]["deployments"]
    namespace, pg_secret, env_secret, config_map, repo, install, jobs = command_lines(blocks["helm"])
    assert namespace == "kubectl create namespace quality"
    assert f"secret generic {values['global']['postgresqlSecretName']} --from-literal=postgresql-password=" in pg_secret
    [secret] = deployment["envSecrets"]
    assert f"secret generic {secret['name']} --from-literal=QA_WAREHOUSE=" in env_secret
    assert lake_spec(env_secret.split("QA_WAREHOUSE=", 1)[1].strip('"'))["dbname"] == "lake"
    [config] = deployment["envConfigMaps"]
    assert f"configmap {config['name']} --from-env-file={HELM_ENV.relative_to(REPO)}" in config_map
    assert repo.startswith("helm repo add dagster ")
    assert install.endswith(f"dagster/dagster -n quality -f {HELM_VALUES.relative_to(REPO)}")
    assert "-l dagster/run-id" in jobs
