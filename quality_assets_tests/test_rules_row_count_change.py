"""`row_count_change`: a partition's rows against the partition validated before it, in real runs
(the check's result and message in Dagster, publishing blocked by an error rule) and the
contract's checks of its parameters."""

from pathlib import Path

import dagster as dg
import pytest

from quality_assets.config import settings_from_env
from quality_assets.contract import ContractError, load_contract, parse_contract
from quality_assets.defs.definitions import build_definitions
from quality_assets.rules import evaluate_partition

CONTRACT = """\
datasets:
  orders:
    landing: {path: landing/orders, glob: "*.csv"}
    columns: {order_id: bigint}
    rules:
      - row_count_change: {max_drop: 0.5, max_rise: 1}
"""


def rows(n: int) -> str:
    return "order_id\n" + "".join(f"{i}\n" for i in range(1, n + 1))


def run_file(project: Path, instance, name: str, content: str):
    (project / "landing" / "orders" / name).write_text(content)
    instance.add_dynamic_partitions("orders_files", [name])
    settings = settings_from_env({"QA_CONTRACTS": str(project / "quality.yaml"),
                                  "QA_DUCKDB_PATH": str(project / "wh.duckdb")})
    job = build_definitions(load_contract(project / "quality.yaml"), settings).resolve_job_def("orders_job")
    result = job.execute_in_process(partition_key=name, instance=instance, raise_on_error=False)
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "row_count_change"]
    published = [e.asset_key.to_user_string() for e in result.get_asset_materialization_events()
                 if e.asset_key.to_user_string() == "orders/published"]
    return check, {k: v.value for k, v in check.metadata.items()}, bool(published)


def test_a_drop_or_rise_beyond_its_share_fails_and_blocks_publishing(tmp_path):
    (tmp_path / "quality.yaml").write_text(CONTRACT)
    (tmp_path / "landing" / "orders").mkdir(parents=True)
    with dg.instance_for_test() as instance:
        first, meta, published = run_file(tmp_path, instance, "a.csv", rows(10))
        assert first.passed and published
        assert meta["message"] == "10 rows; no previous partition to compare with"

        dropped, meta, published = run_file(tmp_path, instance, "b.csv", rows(4))
        assert not dropped.passed and dropped.blocking and not published
        assert meta["message"] == "4 rows against 10 in partition 'a.csv' (-60.0%); max_drop 50%"

        doubled, meta, published = run_file(tmp_path, instance, "c.csv", rows(8))  # +100%: at the limit
        assert doubled.passed and published, meta["message"]

        more, meta, published = run_file(tmp_path, instance, "d.csv", rows(17))
        assert not more.passed and not published
        assert meta["message"] == "17 rows against 8 in partition 'c.csv' (+112.5%); max_rise 100%"


def test_rows_after_an_empty_partition_are_a_rise_from_none(harness, tmp_path):
    ds = parse_contract(CONTRACT, tmp_path / "quality.yaml").dataset("orders")
    for name, content in (("a.csv", "order_id\n"), ("b.csv", rows(3))):
        harness.load(harness.write(name, content), ds, partition=name)
        with harness.warehouse.connect() as con:
            result = evaluate_partition(con, ds, name, "run-1").results[0]
    assert not result.passed
    assert result.observed == {"rows": 3, "previous_rows": 0, "previous_partition": "a.csv", "change": None}
    assert result.message == "3 rows against 0 in partition 'a.csv' (from none); max_rise 100%"


@pytest.mark.parametrize(("body", "message"), [
    ("{}", "give max_drop, max_rise or both"),
    ("{max_drop: 1.5}", "max_drop: a drop is at most 1 (100% of the rows), got 1.5"),
    ("{max_rise: -1}", "max_rise: expected a share such as 0.3 (30%), got -1"),
    ("{max_rise: lots}", "max_rise: expected a share such as 0.3 (30%), got 'lots'"),
    ("0.5", "row_count_change: expected a mapping with max_drop, max_rise"),
])
def test_the_contract_checks_its_shares(tmp_path, body, message):
    text = CONTRACT.replace("{max_drop: 0.5, max_rise: 1}", body)
    with pytest.raises(ContractError) as info:
        parse_contract(text, tmp_path / "quality.yaml")
    assert len(info.value.problems) == 1 and info.value.problems[0].endswith(message), info.value.problems
    assert f"{tmp_path / 'quality.yaml'}:6: dataset 'orders', rules[1]" in info.value.problems[0]
