"""The Dagster layer: definitions built from a contract, and real materializations."""

import os
import textwrap
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from quality_assets.config import settings_from_env
from quality_assets.contract import load_contract
from quality_assets.defs.definitions import build_definitions
from quality_assets.defs.raw import (
    FILE_PARSED_CHECK,
    RawLoadConfig,
    build_raw_asset,
    files_partitions,
)
from quality_assets.defs.resources import OutputFolderResource, WarehouseResource

CONTRACT = """\
datasets:
  orders:
    description: Orders.
    landing: {path: landing/orders, glob: "*.csv"}
    columns:
      order_id: bigint
      amount: double
      day: date
  events:
    landing: {path: landing/events, glob: "*.jsonl"}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "quality.yaml").write_text(CONTRACT)
    (tmp_path / "landing" / "orders").mkdir(parents=True)
    (tmp_path / "landing" / "events").mkdir(parents=True)
    return tmp_path


def settings_for(project: Path):
    return settings_from_env({"QA_CONTRACTS": str(project / "quality.yaml")})


def test_definitions_graph_snapshot(project):
    defs = build_definitions(load_contract(project / "quality.yaml"), settings_for(project))
    repo = defs.get_repository_def()
    stages = ["anomalies", "profile", "published", "raw", "report", "validation"]
    assert sorted(k.to_user_string() for k in repo.asset_graph.get_all_asset_keys()) == [
        f"{ds}/{stage}" for ds in ("events", "orders") for stage in stages] + ["scorecard"]
    upstream = {stage: sorted(k.path[1] for k in repo.asset_graph.get(dg.AssetKey(["orders", stage])).parent_keys)
                for stage in stages}
    assert upstream == {"raw": [], "validation": ["raw"], "published": ["raw", "validation"], "profile": ["raw"],
                        "anomalies": ["profile"], "report": ["anomalies"]}  # the report never waits on rules
    assert sorted(j.name for j in repo.get_all_jobs() if not j.name.startswith("__")) == ["events_job", "orders_job", "scorecard_job"]
    sensors = {s.name: s for s in repo.sensor_defs}
    assert sorted(sensors) == ["events_landing_sensor", "events_range_followup_sensor", "orders_landing_sensor",
                               "orders_range_followup_sensor", "qa_check_failure_alerts", "qa_run_failure_alerts"]
    assert [s.name for s in repo.schedule_defs] == ["scorecard_schedule"]
    assert sensors["orders_landing_sensor"].default_status == dg.DefaultSensorStatus.RUNNING
    assert sensors["orders_range_followup_sensor"].default_status == dg.DefaultSensorStatus.RUNNING
    checks = sorted(k.to_user_string() for k in repo.asset_graph.asset_check_keys)
    anomaly_checks = ["anomaly_rate_within_bounds", "no_drift", "no_metric_anomalies"]
    assert checks == [f"{ds}/{check}" for ds in ("events", "orders")
                      for check in [f"anomalies:{name}" for name in anomaly_checks] + ["raw:file_parsed"]]
    raw = repo.assets_defs_by_key[dg.AssetKey(["orders", "raw"])]
    assert raw.group_names_by_key[dg.AssetKey(["orders", "raw"])] == "orders"
    assert raw.partitions_def == files_partitions(load_contract(project / "quality.yaml").dataset("orders"))
    assert raw.descriptions_by_key[dg.AssetKey(["orders", "raw"])]


def materialize_file(project: Path, dataset: str, name: str, instance, force: bool = False):
    contract = load_contract(project / "quality.yaml")
    ds = contract.dataset(dataset)
    partitions = files_partitions(ds)
    instance.add_dynamic_partitions(partitions.name, [name])
    return dg.materialize(
        [build_raw_asset(ds, partitions)],
        partition_key=name,
        instance=instance,
        resources={"warehouse": WarehouseResource(path=str(project / "wh.duckdb")),
                   "output_folder": OutputFolderResource(path=str(project / "output"))},
        run_config=dg.RunConfig(ops={f"{dataset}__raw": RawLoadConfig(force=force)}),
        raise_on_error=False,
    )


def test_descriptions_render_in_the_ui_as_written(project):
    """The UI renders descriptions as markdown: an <angle-bracketed> word outside a code span is an
    HTML tag to it and disappears (the report's description read `orders//.`)."""
    import re

    defs = build_definitions(load_contract(project / "quality.yaml"), settings_for(project))
    repo = defs.get_repository_def()
    texts = {key.to_user_string(): repo.asset_graph.get(key).description for key in repo.asset_graph.get_all_asset_keys()}
    texts.update({s.name: s.description for s in [*repo.sensor_defs, *repo.schedule_defs]})
    texts.update({j.name: j.description for j in repo.get_all_jobs()})
    for name, text in texts.items():
        assert not re.search(r"<[A-Za-z_/]", re.sub(r"`[^`]*`", "", text or "")), (name, text)
    assert "`$QA_OUTPUT_DIR/orders/<partition>/`" in texts["orders/report"]


def test_materialize_clean_file_passes_check_and_records_metadata(project):
    (project / "landing/orders/a.csv").write_text("order_id,amount,day\n1,2.5,2026-01-01\n2,3.5,2026-01-02\n")
    with dg.instance_for_test() as instance:
        result = materialize_file(project, "orders", "a.csv", instance)
        assert result.success
        [mat] = result.asset_materializations_for_node("orders__raw")
        meta = mat.metadata
        assert meta["dagster/row_count"].value == 2
        assert meta["rows_quarantined"].value == 0
        assert meta["status"].value == "loaded"
        schema = meta["dagster/column_schema"].schema
        assert [(c.name, c.type) for c in schema.columns] == [("order_id", "BIGINT"), ("amount", "DOUBLE"), ("day", "DATE")]
        assert len(meta["sha256"].value) == 64
        [check] = result.get_asset_check_evaluations()
        assert check.check_name == FILE_PARSED_CHECK and check.passed
        # The materialization is recorded against the partition in the instance.
        event = instance.get_latest_materialization_event(dg.AssetKey(["orders", "raw"]))
        assert event.dagster_event.partition == "a.csv"
    with duckdb.connect(str(project / "wh.duckdb"), read_only=True) as con:
        assert con.execute('SELECT order_id, amount FROM raw."orders" ORDER BY _source_row').fetchall() == [(1, 2.5), (2, 3.5)]


def test_materialize_quarantine_warns_and_binary_file_fails_error_check(project):
    (project / "landing/orders/bad.csv").write_text("order_id,amount,day\n1,x,2026-01-01\n2,3.5,2026-01-02\n3,4\n")
    (project / "landing/orders/blob.csv").write_bytes(b"\x00\x01\x02binary\x00" * 100)
    with dg.instance_for_test() as instance:
        result = materialize_file(project, "orders", "bad.csv", instance)
        assert result.success
        [check] = result.get_asset_check_evaluations()
        assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
        assert check.metadata["rows_quarantined"].value == 2
        assert check.metadata["error_codes"].value == {"E_COLUMN_COUNT": 1, "E_NUMERIC_FORMAT": 1}

        result = materialize_file(project, "orders", "blob.csv", instance)
        [check] = result.get_asset_check_evaluations()
        assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
        assert check.metadata["status"].value == "rejected"
        assert check.metadata["error_codes"].value == {"E_BINARY": 1}


def test_rematerialize_is_idempotent_and_unchanged_file_is_noop(project):
    path = project / "landing/orders/a.csv"
    path.write_text("order_id,amount,day\n1,2.5,2026-01-01\n")
    with dg.instance_for_test() as instance:
        assert materialize_file(project, "orders", "a.csv", instance).success
        again = materialize_file(project, "orders", "a.csv", instance)
        [mat] = again.asset_materializations_for_node("orders__raw")
        assert mat.metadata["status"].value == "unchanged"
        forced = materialize_file(project, "orders", "a.csv", instance, force=True)
        [mat] = forced.asset_materializations_for_node("orders__raw")
        assert mat.metadata["status"].value == "loaded"
    with duckdb.connect(str(project / "wh.duckdb"), read_only=True) as con:
        assert con.execute('SELECT count(*) FROM raw."orders"').fetchone()[0] == 1
        statuses = [r[0] for r in con.execute("SELECT status FROM qa.files ORDER BY finished").fetchall()]
        assert statuses == ["loaded", "unchanged", "loaded"]


def test_missing_file_fails_the_run_with_a_clear_message(project):
    with dg.instance_for_test() as instance:
        result = materialize_file(project, "orders", "gone.csv", instance)
        assert not result.success
        failure = next(e for e in result.all_events if e.is_step_failure)
        assert "no longer in" in failure.event_specific_data.error.message


def test_definitions_load_from_environment(project, monkeypatch):
    monkeypatch.setenv("QA_CONTRACTS", str(project / "quality.yaml"))
    monkeypatch.setenv("QA_DUCKDB_PATH", str(project / "elsewhere.duckdb"))
    from quality_assets.defs import defs

    loaded = defs()
    resource = loaded.resources["warehouse"]
    assert isinstance(resource.path, dg.EnvVar) or resource.path == str(project / "elsewhere.duckdb")


@pytest.mark.parametrize(("setting", "threads"), [(None, os.cpu_count()), ("1", 1)])
def test_duckdb_threads_follow_the_setting(project, setting, threads):
    """QA_DUCKDB_THREADS: the run's warehouse connections and staging databases use that many threads."""
    env = {"QA_CONTRACTS": str(project / "quality.yaml"), **({"QA_DUCKDB_THREADS": setting} if setting else {})}
    settings = settings_from_env(env)
    warehouse = build_definitions(load_contract(settings.contracts), settings).resources["warehouse"].get()
    with warehouse.connect() as con:
        assert con.execute("SELECT current_setting('threads')").fetchone()[0] == threads
    with warehouse.scratch(project / "stage" / "s.duckdb") as scratch:
        assert scratch.execute("SELECT current_setting('threads')").fetchone()[0] == threads


def test_importing_the_definitions_pulls_in_no_heavy_statistics_library():
    """scipy and scikit-learn cost about a second at start-up: a stage imports them when it needs them."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import sys, quality_assets.defs; "
                          "print(sorted(m for m in ('scipy', 'sklearn', 'pandas', 'sqlalchemy', 'jinja2') if m in sys.modules))"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_definition_has_a_description(tmp_path):
    contract_text = textwrap.dedent("""\
        datasets:
          orders:
            landing: landing/orders
            rules:
              - not_null: id
              - unique: id
                severity: warn
          sales:
            landing: landing/sales
            partitioning: daily
            daily: {start: 2026-11-01, file_pattern: 'sales_(?P<date>\\d{8})'}
        """)
    (tmp_path / "quality.yaml").write_text(contract_text)
    settings = settings_from_env({"QA_CONTRACTS": str(tmp_path / "quality.yaml")})
    defs = build_definitions(load_contract(settings.contracts), settings)
    repo = defs.get_repository_def()
    graph = repo.asset_graph
    missing = []
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if not (node.description or "").strip():
            missing.append(f"asset {key.to_user_string()}")
    for check_key in graph.asset_check_keys:
        spec = graph.get_check_spec(check_key)
        if not (spec.description or "").strip():
            missing.append(f"check {check_key.to_user_string()}")
    missing += [f"sensor {s.name}" for s in repo.sensor_defs if not (s.description or "").strip()]
    missing += [f"schedule {s.name}" for s in repo.schedule_defs if not (s.description or "").strip()]
    missing += [f"job {j.name}" for j in repo.get_all_jobs()
                if not j.name.startswith("__") and not (j.description or "").strip()]
    assert not missing, missing
    assert dg.AssetKey(["orders", "report"]) in graph.get_all_asset_keys()
    assert dg.AssetKey(["sales", "report"]) in graph.get_all_asset_keys()
    assert dg.AssetKey(["orders", "validation"]) not in graph.get(dg.AssetKey(["orders", "report"])).parent_keys
