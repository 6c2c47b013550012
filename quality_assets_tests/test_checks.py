"""Rules as Dagster asset checks and write-audit-publish, in real runs: partition-aware results with
failing rows in their metadata, error rules blocking `published` (not run) until the data is fixed,
warn rules not blocking, and `published` refusing to run on its own without a passing validation."""

from pathlib import Path

import dagster as dg
import duckdb
import pytest

from quality_assets.cli.execute import outcome_of
from quality_assets.config import settings_from_env
from quality_assets.contract import load_contract
from quality_assets.defs.definitions import build_definitions
from quality_assets.defs.published import build_published_asset
from quality_assets.defs.raw import files_partitions
from quality_assets.defs.resources import WarehouseResource
from quality_assets.rules import MAX_CHECKS_PER_ASSET

CONTRACT = """\
datasets:
  orders:
    landing: {path: landing/orders, glob: "*.csv"}
    columns: {order_id: bigint, amount: double, currency: string}
    primary_key: [order_id]
    rules:
      - not_null: order_id
      - accepted_values: {column: currency, values: [EUR, USD]}
      - range: {column: amount, min: 0}
        severity: warn
  sales:
    landing: {path: landing/sales, glob: "*.csv"}
    partitioning: daily
    daily: {start: 2026-11-01, file_pattern: 'sales_(?P<date>\\d{8})'}
    columns: {id: bigint, total: double}
    rules:
      - range: {column: total, min: 0}
"""
BAD = "order_id,amount,currency\n1,5,EUR\n2,-1,BTC\n3,oops,EUR\n4,7,USD\n"
FIXED = "order_id,amount,currency\n1,5,EUR\n2,-1,USD\n3,oops,EUR\n4,7,USD\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "quality.yaml").write_text(CONTRACT)
    for name in ("orders", "sales"):
        (tmp_path / "landing" / name).mkdir(parents=True)
    return tmp_path


def definitions(project: Path, contract: str | None = None) -> dg.Definitions:
    if contract is not None:
        (project / "quality.yaml").write_text(contract)
    settings = settings_from_env({"QA_CONTRACTS": str(project / "quality.yaml"),
                                  "QA_DUCKDB_PATH": str(project / "wh.duckdb")})
    return build_definitions(load_contract(project / "quality.yaml"), settings)


def run_file(project: Path, instance, name: str, content: str | None = None, dataset: str = "orders"):
    if content is not None:
        (project / "landing" / dataset / name).write_text(content)
    if not instance.has_dynamic_partition(f"{dataset}_files", name):
        instance.add_dynamic_partitions(f"{dataset}_files", [name])
    job = definitions(project).resolve_job_def(f"{dataset}_job")
    return job.execute_in_process(partition_key=name, instance=instance, raise_on_error=False)


def materialized(result) -> list[str]:
    return [e.event_specific_data.materialization.asset_key.to_user_string() for e in result.get_asset_materialization_events()]


def checks(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {f"{e.asset_key.to_user_string()}:{e.check_name}": e for e in result.get_asset_check_evaluations()}


def published_rows(project: Path) -> list[tuple]:
    with duckdb.connect(str(project / "wh.duckdb"), read_only=True) as con:
        if not con.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = 'published' "
                           "AND table_name = 'orders'").fetchone():
            return []
        return con.execute('SELECT _partition_key, order_id, amount, currency FROM published."orders" '
                           "ORDER BY order_id").fetchall()


def test_each_dataset_gets_validation_checks_and_published(project):
    repo = definitions(project).get_repository_def()
    graph = repo.asset_graph
    orders = dg.AssetKey(["orders", "validation"])
    assert graph.get(dg.AssetKey(["orders", "published"])).parent_keys == {dg.AssetKey(["orders", "raw"]), orders}
    assert graph.get(orders).parent_keys == {dg.AssetKey(["orders", "raw"])}
    specs = {key.to_user_string(): graph.get(key) for key in graph.asset_check_keys if key.asset_key == orders}
    assert sorted(specs) == ["orders/validation:accepted_values_currency", "orders/validation:not_null_order_id",
                             "orders/validation:range_amount"]
    assert {name: node.blocking for name, node in specs.items()} == {
        "orders/validation:accepted_values_currency": True, "orders/validation:not_null_order_id": True,
        "orders/validation:range_amount": False}
    validation = repo.assets_defs_by_key[orders]
    assert validation.partitions_def == files_partitions(load_contract(project / "quality.yaml").dataset("orders"))
    assert validation.group_names_by_key[orders] == "orders"
    descriptions = {spec.name: spec.description for spec in validation.check_specs}
    assert descriptions["range_amount"] == "0 <= amount (warn)"
    assert descriptions["accepted_values_currency"] == "currency in ['EUR', 'USD'] (error, blocks publishing)"
    sales = repo.assets_defs_by_key[dg.AssetKey(["sales", "published"])]
    assert sales.backfill_policy == dg.BackfillPolicy.single_run()


def test_a_wide_table_stays_under_fifty_checks(project):
    columns = "\n".join(f"      c{n}: string" for n in range(150))
    rules = "\n".join(f"      - not_null: c{n}" for n in range(150))
    wide = f"datasets:\n  wide:\n    columns:\n{columns}\n    rules:\n{rules}\n      - unique: c0\n"
    repo = definitions(project, wide).get_repository_def()
    names = [k.name for k in repo.asset_graph.asset_check_keys if k.asset_key == dg.AssetKey(["wide", "validation"])]
    assert len(names) <= MAX_CHECKS_PER_ASSET
    assert sorted(names) == ["not_null_rules_error", "unique_c0"]


def test_an_error_rule_blocks_published_until_the_data_is_fixed(project):
    with dg.instance_for_test() as instance:
        result = run_file(project, instance, "a.csv", BAD)
        assert not result.success
        # published did not run; the stages that describe the data did, the report included
        assert sorted(materialized(result)) == ["orders/anomalies", "orders/profile", "orders/raw", "orders/report",
                                                "orders/validation"]
        found = checks(result)
        failed = found["orders/validation:accepted_values_currency"]
        assert not failed.passed and failed.severity == dg.AssetCheckSeverity.ERROR and failed.blocking
        assert failed.partition == "a.csv"  # partition-aware
        meta = {k: v.value for k, v in failed.metadata.items()}
        assert meta["failing_rows"] == 1 and meta["rows_evaluated"] == 3 and meta["failing_share"] == pytest.approx(1 / 3)
        assert meta["failed_rules"] == "accepted_values_currency"
        assert meta["message"] == "1 of 3 rows fail (33.33%)"
        assert "| source\\_row | key order\\_id | currency |" in meta["failing_rows_sample"]
        assert "| 2 | 2 | BTC |" in meta["failing_rows_sample"]
        assert """"currency" NOT IN ('EUR', 'USD')""" in meta["sql"] and "_partition_key = 'a.csv'" in meta["sql"]
        warn = found["orders/validation:range_amount"]
        assert not warn.passed and warn.severity == dg.AssetCheckSeverity.WARN and not warn.blocking
        assert found["orders/validation:not_null_order_id"].passed
        assert found["orders/raw:file_parsed"].severity == dg.AssetCheckSeverity.WARN  # 'oops' was quarantined
        outcome = outcome_of("orders", "a.csv", [result])
        assert outcome.error_failed and (outcome.status, outcome.outcome) == ("loaded_with_errors", "blocked")
        assert outcome.reasons()[:2] == ["not published: blocked by accepted_values_currency",
                                         "1 row(s) quarantined (E_NUMERIC_FORMAT 1)"]
        assert published_rows(project) == []
        [validation] = result.asset_materializations_for_node("orders__validation")
        assert validation.metadata["publish"].value == "blocked by accepted_values_currency"

        fixed = run_file(project, instance, "a.csv", FIXED)
        assert fixed.success
        assert "orders/published" in materialized(fixed)
        [published] = fixed.asset_materializations_for_node("orders__published")
        assert published.partition == "a.csv" and published.metadata["dagster/row_count"].value == 3
        outcome = outcome_of("orders", "a.csv", [fixed])
        assert (outcome.status, outcome.outcome, outcome.published) == ("loaded_with_errors", "warnings", True)
    # the quarantined row (order 3) never reaches published; the warn rule's negative amount does
    assert published_rows(project) == [("a.csv", 1, 5.0, "EUR"), ("a.csv", 2, -1.0, "USD"), ("a.csv", 4, 7.0, "USD")]


def test_a_rejected_file_blocks_everything_after_raw(project):
    with dg.instance_for_test() as instance:
        result = run_file(project, instance, "blob.csv", "\x00\x01binary\x00" * 50)
        assert not result.success and materialized(result) == ["orders/raw"]
        assert not checks(result)["orders/raw:file_parsed"].passed
        outcome = outcome_of("orders", "blob.csv", [result])
        assert (outcome.outcome, outcome.status, outcome.published) == ("rejected", "rejected", False)
        assert outcome.reasons() == ["rejected: the file is binary, not text in a supported format (33% control bytes in the first 450 bytes)"]
        # file_parsed blocks the stages after raw, the report included: raw writes the report, saying why
        assert outcome.verdict == "fail" and "binary" in outcome.headline
        assert "the file was rejected: the file is binary" in Path(outcome.report_path).read_text()


def test_published_on_its_own_needs_a_passing_validation_of_the_current_data_and_rules(project):
    def publish_alone(instance):
        ds = load_contract(project / "quality.yaml").dataset("orders")
        return dg.materialize([build_published_asset(ds, files_partitions(ds))], partition_key="a.csv",
                              instance=instance, raise_on_error=False,
                              resources={"warehouse": WarehouseResource(path=str(project / "wh.duckdb"))})

    def failure(result) -> str:
        return next(e for e in result.all_events if e.is_step_failure).event_specific_data.user_failure_data.description

    with dg.instance_for_test() as instance:
        assert not run_file(project, instance, "a.csv", BAD).success
        alone = publish_alone(instance)
        assert not alone.success and "blocked by error rule(s) accepted_values_currency" in failure(alone)
        assert run_file(project, instance, "a.csv", FIXED).success
        assert publish_alone(instance).success
        # a stricter contract: the validation on record no longer covers the rules
        (project / "quality.yaml").write_text(CONTRACT.replace("values: [EUR, USD]", "values: [EUR]"))
        stale = publish_alone(instance)
        assert not stale.success and "the contract's rules changed since the validation" in failure(stale)
        # and re-running under the new rules blocks again, naming the rule
        again = run_file(project, instance, "a.csv")
        assert not again.success
        assert outcome_of("orders", "a.csv", [again]).blocked_by == ["accepted_values_currency"]
    assert [r[1] for r in published_rows(project)] == [1, 2, 4]  # the last good version stays published


def test_a_daily_range_reports_each_days_checks(project):
    (project / "landing/sales/sales_20261101.csv").write_text("id,total\n1,10\n")
    (project / "landing/sales/sales_20261103.csv").write_text("id,total\n2,-5\n3,4\n")
    job = definitions(project).resolve_job_def("sales_job")
    with dg.instance_for_test() as instance:
        result = job.execute_in_process(
            instance=instance, raise_on_error=False,
            tags={"dagster/asset_partition_range_start": "2026-11-01", "dagster/asset_partition_range_end": "2026-11-03"})
        assert not result.success  # 2026-11-03 breaks an error rule: the range is not published
        by_day = {e.partition: e.passed for e in result.get_asset_check_evaluations() if e.check_name == "range_total"}
        assert by_day == {"2026-11-01": True, "2026-11-02": True, "2026-11-03": False, None: False}
        assert "sales/published" not in materialized(result)
        [day3] = [e for e in result.get_asset_check_evaluations() if e.check_name == "range_total" and e.partition == "2026-11-03"]
        assert day3.metadata["failing_rows"].value == 1
        assert "| 1 | sales\\_20261103\\.csv | \\-5\\.0 |" in day3.metadata["failing_rows_sample"].value


def test_rules_observing_a_plain_value_report_it_as_check_metadata(project):
    # row_count and assert observe a number or a boolean, not a mapping: the validation step must
    # still succeed and show it (it failed on MetadataValue.json(9999)).
    contract = CONTRACT.replace("      - not_null: order_id\n", "      - not_null: order_id\n      - row_count: {min: 1}\n"
                                "      - assert: 'count(*) > 0'\n")
    definitions(project, contract)
    result = run_file(project, dg.DagsterInstance.ephemeral(), "a.csv", FIXED.replace("oops", "3"))
    assert result.success
    observed = [r.metadata["observed"].value for e in result.get_asset_check_evaluations()
                for r in [e] if "observed" in r.metadata]
    assert 4 in observed and True in observed
