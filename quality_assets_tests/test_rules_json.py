"""`json`: every value of a column parses as JSON, in a real run (the failing rows in the check's
metadata) and on the values JSON allows or refuses."""

from pathlib import Path

import dagster as dg
import pytest
import yaml

from quality_assets.config import settings_from_env
from quality_assets.contract import ContractError, load_contract, parse_contract
from quality_assets.rules import evaluate_partition

CONTRACT = """\
datasets:
  events:
    landing: {path: landing/events, glob: "*.csv"}
    columns: {id: bigint, payload: string}
    primary_key: [id]
    rules:
      - json: payload
"""


def test_values_that_are_not_json_fail_with_their_rows(tmp_path: Path):
    from quality_assets.defs.definitions import build_definitions

    (tmp_path / "quality.yaml").write_text(CONTRACT)
    landing = tmp_path / "landing" / "events"
    landing.mkdir(parents=True)
    (landing / "a.csv").write_text('id,payload\n1,"{""a"": [1, 2]}"\n2,{a: 1}\n3,\n4,"[true, null]"\n5,"{""a"": 1"\n')
    settings = settings_from_env({"QA_CONTRACTS": str(tmp_path / "quality.yaml"),
                                  "QA_DUCKDB_PATH": str(tmp_path / "wh.duckdb")})
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("events_files", ["a.csv"])
        job = build_definitions(load_contract(tmp_path / "quality.yaml"), settings).resolve_job_def("events_job")
        result = job.execute_in_process(partition_key="a.csv", instance=instance, raise_on_error=False)
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "json_payload"]
    meta = {k: v.value for k, v in check.metadata.items()}
    assert not check.passed and check.blocking
    assert meta["message"] == "2 of 5 rows fail (40.00%)"  # row 3 is NULL: not_null's business
    assert "| 2 | 2 | \\{a: 1\\} |" in meta["failing_rows_sample"]  # markdown-escaped braces
    assert '| 5 | 5 | \\{"a": 1 |' in meta["failing_rows_sample"]
    assert "json_valid" in meta["sql"]


@pytest.mark.parametrize(("value", "valid"), [
    ('"text"', True), ("12.5", True), ("null", True), ("[]", True), ("{}", True),
    ("text", False), ("{'a': 1}", False), ("[1] x", False), ('{"a": 1}{"b": 2}', False),
    ("[1,]", True), ("NaN", True),  # DuckDB's parser is lenient here, as the README says
])
def test_what_parses_as_json(harness, tmp_path, value, valid):
    ds = parse_contract(CONTRACT, tmp_path / "quality.yaml").dataset("events")
    path = harness.write("a.csv", "id,payload\n1," + '"' + value.replace('"', '""') + '"\n')
    harness.load(path, ds, partition="a.csv")
    with harness.warehouse.connect() as con:
        [result] = evaluate_partition(con, ds, "a.csv", "run-1").results
    assert result.passed is valid and result.failing_rows == (0 if valid else 1), result.message


def test_the_contract_needs_a_known_column(tmp_path):
    text = CONTRACT.replace("json: payload", "json: body")
    with pytest.raises(ContractError) as info:
        parse_contract(text, tmp_path / "quality.yaml")
    assert info.value.problems == [f"{tmp_path / 'quality.yaml'}:7: dataset 'events', rules[1] (json): unknown column 'body'"]
    assert yaml.safe_load(CONTRACT)["datasets"]["events"]["rules"] == [{"json": "payload"}]
