"""Contract rules on one partition: every kind passing and failing, `mostly`, failing rows kept,
hostile names and values quoted (never executed), rule grouping into checks, and the parser's
checks of what the rules need."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path

import pytest
import yaml

from quality_assets.contract import RULE_KINDS, ContractError, Rule, parse_contract
from quality_assets.publish import gate, publish_partition
from quality_assets.rules import (
    MAX_CHECKS_PER_ASSET,
    check_groups,
    evaluate_partition,
    user_sql_problem,
)

HEADER = "id,amount,cur,code,a,b,day"
COLUMNS = {"id": "bigint", "amount": "double", "cur": "string", "code": "string", "a": "bigint", "b": "bigint",
           "day": "date"}
GOOD = [
    "1,10.5,EUR,AB12,1,2,2026-11-01",
    "2,20,USD,CD34,2,2,2026-11-02",
    "3,15,EUR,EF56,0,5,2026-11-03",
]


def csv(*rows: str, header: str = HEADER) -> str:
    return "\n".join([header, *rows]) + "\n"


def dataset(tmp_path, rules: list, columns: dict | None = COLUMNS, primary_key=("id",), name: str = "ds",
            extra: dict | None = None):
    spec: dict = {"landing": "landing"}
    if columns:
        spec["columns"] = columns
    if primary_key:
        spec["primary_key"] = list(primary_key)
    spec["rules"] = rules
    datasets = {name: spec, **(extra or {})}
    text = yaml.safe_dump({"version": 1, "datasets": datasets}, allow_unicode=True, sort_keys=False)
    return parse_contract(text, tmp_path / "quality.yaml").dataset(name)


def evaluate(harness, ds, content: str, partition: str = "a.csv", run_id: str = "run-1", **kwargs):
    path = harness.write(partition, content)
    loaded = harness.load(path, ds, partition=partition)
    assert loaded.audit.status in ("loaded", "loaded_with_errors", "unchanged"), loaded.audit.summary()
    with harness.warehouse.connect() as con:
        return evaluate_partition(con, ds, partition, run_id, **kwargs)


def only(evaluation):
    [result] = evaluation.results
    return result


# (id, rule, rows that pass, rows with failures, failing source rows)
ROW_RULES = [
    ("not_null", {"not_null": "amount"}, GOOD,
     ["1,10.5,EUR,AB12,1,2,2026-11-01", "2,,USD,CD34,2,2,2026-11-02"], [2]),
    ("unique_one_column", {"unique": "id"}, GOOD,
     ["1,10.5,EUR,AB12,1,2,2026-11-01", "2,20,USD,CD34,2,2,2026-11-02", "2,15,EUR,EF56,0,5,2026-11-03"], [2, 3]),
    ("unique_composite", {"unique": {"columns": ["cur", "a"]}}, GOOD,
     ["1,10.5,EUR,AB12,1,2,2026-11-01", "2,20,USD,CD34,2,2,2026-11-02", "3,15,EUR,EF56,1,5,2026-11-03"], [1, 3]),
    ("accepted_values", {"accepted_values": {"column": "cur", "values": ["EUR", "USD"]}},
     [*GOOD, "4,1,,X,1,1,2026-11-04"],  # NULL is not judged (not_null is)
     [*GOOD, "4,1,GBP,X,1,1,2026-11-04"], [4]),
    ("range_inclusive", {"range": {"column": "amount", "min": 10.5, "max": 20}}, GOOD,
     [*GOOD, "4,20.01,EUR,X,1,1,2026-11-04"], [4]),
    ("range_exclusive", {"range": {"column": "amount", "min": 10.5, "max": 20, "inclusive": False}},
     ["1,11,EUR,AB12,1,2,2026-11-01", "2,19.9,USD,CD34,2,2,2026-11-02"], GOOD, [1, 2]),
    ("range_dates", {"range": {"column": "day", "min": dt.date(2026, 11, 1)}}, GOOD,
     [*GOOD, "4,1,EUR,X,1,1,2026-10-31"], [4]),
    ("regex", {"regex": {"column": "code", "pattern": "^[A-Z]{2}[0-9]{2}$"}}, GOOD,
     [*GOOD, "4,1,EUR,ab12,1,1,2026-11-04", "5,1,EUR,ABC12,1,1,2026-11-04"], [4, 5]),
    ("length", {"length": {"column": "code", "min": 4, "max": 4}}, GOOD,
     [*GOOD, "4,1,EUR,ABC,1,1,2026-11-04"], [4]),
    ("type", {"type": {"column": "code", "type": "bigint"}},
     ["1,1,EUR,12,1,2,2026-11-01", "2,1,EUR,-7,1,2,2026-11-01"],
     ["1,1,EUR,12,1,2,2026-11-01", "2,1,EUR,1.5,1,2,2026-11-01", "3,1,EUR,x,1,2,2026-11-01"], [2, 3]),
    ("sql", {"sql": "amount < 100 OR cur = 'USD'"}, [*GOOD, "4,150,USD,X,1,1,2026-11-04"],
     [*GOOD, "4,150,EUR,X,1,1,2026-11-04"], [4]),
    ("compare_columns", {"compare": {"left": "a", "op": "<=", "right": "b"}}, [*GOOD, "4,1,EUR,X,,1,2026-11-04"],
     [*GOOD, "4,1,EUR,X,3,1,2026-11-04"], [4]),
    ("compare_value", {"compare": {"left": "amount", "op": "<", "right": 100}}, GOOD,
     [*GOOD, "4,100,EUR,X,1,1,2026-11-04"], [4]),
    ("conditional", {"conditional": {"when": "cur = 'USD'", "then": "amount > 10"}},
     [*GOOD, "4,5,EUR,X,1,1,2026-11-04"], [*GOOD, "4,5,USD,X,1,1,2026-11-04"], [4]),
]


@pytest.mark.parametrize(("rule", "good", "bad", "failing"), [c[1:] for c in ROW_RULES], ids=[c[0] for c in ROW_RULES])
def test_each_row_rule_passes_on_good_rows_and_names_the_failing_ones(harness, tmp_path, rule, good, bad, failing):
    ds = dataset(tmp_path, [rule])
    passed = only(evaluate(harness, ds, csv(*good), "good.csv"))
    assert passed.passed and passed.failing_rows == 0 and passed.error is None, passed.message
    result = only(evaluate(harness, ds, csv(*bad), "bad.csv"))
    assert not result.passed and result.error is None
    assert result.failing_rows == len(failing)
    assert result.failing_share == pytest.approx(len(failing) / len(bad))
    assert [row["source_row"] for row in result.sample] == failing
    assert all(row["key"] == {"id": int(bad[n - 1].split(",")[0])} for row, n in zip(result.sample, failing, strict=True))
    assert result.stored == len(failing)
    assert "FROM raw.\"ds\" WHERE _partition_key = 'bad.csv'" in result.sql
    stored = harness.query("SELECT rule, source_row FROM qa.failing_rows WHERE partition_key = 'bad.csv' ORDER BY 2")
    assert stored == [(result.rule.name, n) for n in failing]


def test_unique_ignores_null_keys(harness, tmp_path):
    ds = dataset(tmp_path, [{"unique": "a"}])
    result = only(evaluate(harness, ds, csv("1,1,EUR,X,,1,2026-11-01", "2,1,EUR,X,,1,2026-11-01")))
    assert result.passed and result.failing_rows == 0


def test_failing_rows_show_the_rules_columns_and_the_key(harness, tmp_path):
    ds = dataset(tmp_path, [{"compare": {"left": "a", "op": "<=", "right": "b"}}, {"sql": "amount < 100 AND cur <> 'GBP'"}])
    evaluation = evaluate(harness, ds, csv(*GOOD, "4,150,GBP,X,3,1,2026-11-04"))
    compare, predicate = evaluation.results
    assert compare.sample == [{"source_row": 4, "key": {"id": 4}, "values": {"a": 3, "b": 1}}]
    assert predicate.sample == [{"source_row": 4, "key": {"id": 4}, "values": {"amount": 150.0, "cur": "GBP"}}]


# ---------------------------------------------------------------------------------------------
# Rules over the whole partition


def test_an_empty_file_fails_no_row_rule_but_row_count_and_schema_say_so(harness, tmp_path):
    ds = dataset(tmp_path, [{"not_null": "id"}, {"unique": "id"}, {"row_count": {"min": 1}}, {"schema": {}}],
                 columns={"id": "bigint"})
    path = harness.write("empty.csv", "")
    assert harness.load(path, ds).audit.status == "empty"
    with harness.warehouse.connect() as con:
        not_null, unique, row_count, schema = evaluate_partition(con, ds, "empty.csv", "run-1").results
    assert not_null.passed and unique.passed and not_null.message == "no rows to check"
    assert not row_count.passed and row_count.message == "0 rows, expected [1, ∞]"
    assert not schema.passed and schema.message == "missing id"


def test_row_count(harness, tmp_path):
    ds = dataset(tmp_path, [{"row_count": {"min": 2, "max": 3}}])
    assert only(evaluate(harness, ds, csv(*GOOD), "three.csv")).passed
    result = only(evaluate(harness, ds, csv(*GOOD, "4,1,EUR,X,1,1,2026-11-04"), "four.csv"))
    assert not result.passed and result.observed == 4 and result.failing_rows is None
    assert result.message == "4 rows, expected [2, 3]"


@pytest.mark.clock
def test_freshness_of_a_column_counts_a_date_through_its_day(harness, tmp_path):
    ds = dataset(tmp_path, [{"freshness": {"column": "day", "max_age": "1d"}}])
    fresh = only(evaluate(harness, ds, csv(*GOOD), now=dt.datetime(2026, 11, 4, 12, tzinfo=dt.timezone.utc)))
    assert fresh.passed, fresh.message  # newest day 2026-11-03 lasts until 2026-11-04 00:00: 12h old
    stale = only(evaluate(harness, ds, csv(*GOOD), now=dt.datetime(2026, 11, 6, tzinfo=dt.timezone.utc)))
    assert not stale.passed and "newest day is 2.0d old" in stale.message


@pytest.mark.clock
def test_freshness_of_the_file(harness, tmp_path):
    ds = dataset(tmp_path, [{"freshness": {"max_age": "2h"}}])
    path = harness.write("a.csv", csv(*GOOD))
    modified = dt.datetime(2026, 11, 4, 8, tzinfo=dt.timezone.utc)
    os.utime(path, (modified.timestamp(), modified.timestamp()))
    harness.load(path, ds)
    with harness.warehouse.connect() as con:
        fresh = only(evaluate_partition(con, ds, "a.csv", "r1", now=modified + dt.timedelta(hours=1)))
        stale = only(evaluate_partition(con, ds, "a.csv", "r2", now=modified + dt.timedelta(hours=3)))
    assert fresh.passed and not stale.passed
    assert "the file (modified) is 3.0h old" in stale.message


def test_assert_takes_an_aggregate_condition(harness, tmp_path):
    ds = dataset(tmp_path, [{"assert": "sum(amount) > 0"}, {"assert": "count(DISTINCT cur) = 3"},
                            {"assert": "sum(amount)"}, {"assert": "amount > 0"}])
    ok, wrong, not_boolean, not_aggregate = evaluate(harness, ds, csv(*GOOD)).results
    assert ok.passed and ok.observed is True
    assert not wrong.passed and wrong.message == "count(DISTINCT cur) = 3 is false"
    assert not not_boolean.passed and "not true or false" in not_boolean.error
    assert not not_aggregate.passed and "the rule's SQL failed" in not_aggregate.error


def test_schema_required_extra_and_types(harness, tmp_path):
    rules = [{"schema": {"required": ["id", "amount", "missing"], "allow_extra": False, "types": {"amount": "bigint"}}}]
    ds = dataset(tmp_path, rules, columns={"id": "bigint", "amount": "double"})
    result = only(evaluate(harness, ds, "id,amount,surprise\n1,2.5,x\n"))
    assert not result.passed
    assert result.message == "missing missing; unexpected surprise; amount is DOUBLE, expected BIGINT"
    relaxed = dataset(tmp_path, [{"schema": {}}], columns={"id": "bigint", "amount": "double"})
    assert only(evaluate(harness, relaxed, "id,amount,surprise\n1,2.5,x\n")).passed


def test_schema_reports_a_rename_and_a_retype_against_the_previous_partition(harness, tmp_path):
    ds = dataset(tmp_path, [{"schema": {}}], columns=None, primary_key=())
    first = only(evaluate(harness, ds, "id,note,size\n1,7,10\n", "p1.csv"))
    assert first.passed, first.message  # nothing before it
    renamed = only(evaluate(harness, ds, "id,remark,size\n1,7,10\n", "p2.csv"))
    assert not renamed.passed and renamed.message == "since partition 'p1.csv': renamed note -> remark"
    # The dataset keeps its schema: 'big' is quarantined, not a retype; no value fitting is the finding.
    misfit = only(evaluate(harness, ds, "id,remark,size\n1,7,big\n2,8,huge\n", "p3.csv"))
    assert not misfit.passed and misfit.message == "size: none of its 2 value(s) fits its type BIGINT (quarantined)"


def test_references_another_datasets_published_table(harness, tmp_path):
    stores = {"stores": {"landing": "landing", "columns": {"store": "bigint"}}}
    ds = dataset(tmp_path, [{"references": {"column": "a", "dataset": "stores", "to_column": "store"}}], extra=stores)
    before = only(evaluate(harness, ds, csv(*GOOD)))
    assert not before.passed and "has nothing published yet" in before.error
    store_ds = parse_contract(yaml.safe_dump({"datasets": stores}), tmp_path / "quality.yaml").dataset("stores")
    harness.load(harness.write("stores.csv", "store\n0\n1\n"), store_ds)
    with harness.warehouse.connect() as con:
        evaluate_partition(con, store_ds, "stores.csv", "r0")
        assert gate(con, store_ds, "stores.csv").ok
        publish_partition(con, store_ds, "stores.csv")
    after = only(evaluate(harness, ds, csv(*GOOD)))  # a = 1, 2, 0: store 2 does not exist
    assert not after.passed and after.failing_rows == 1 and [r["source_row"] for r in after.sample] == [2]
    known = only(evaluate(harness, ds, csv(GOOD[0], GOOD[2], "4,1,EUR,X,,1,2026-11-04"), "known.csv"))
    assert known.passed and known.failing_rows == 0  # stores 1 and 0 exist; NULL is not looked up


# ---------------------------------------------------------------------------------------------
# mostly, severity, failing rows, recording


def test_mostly_tolerates_a_share_of_failing_rows_which_are_still_kept(harness, tmp_path):
    rule = {"regex": {"column": "code", "pattern": "^[A-Z]{2}[0-9]{2}$"}}
    ds = dataset(tmp_path, [{**rule, "mostly": 0.6}, {**rule, "name": "strict", "mostly": 0.9}])
    tolerant, strict = evaluate(harness, ds, csv(*GOOD, "4,1,EUR,bad,1,1,2026-11-04")).results
    assert tolerant.passed and tolerant.failing_rows == 1 and tolerant.stored == 1
    assert "mostly 0.6 tolerates 40.00%" in tolerant.message
    assert not strict.passed and strict.failing_rows == 1


def test_failing_rows_are_capped_per_rule_and_sampled_in_file_order(harness, tmp_path):
    ds = dataset(tmp_path, [{"not_null": "amount"}, {"not_null": "cur", "severity": "warn"}])
    rows = [f"{n},,,X,1,1,2026-11-01" for n in range(1, 31)]
    evaluation = evaluate(harness, ds, csv(*rows), cap=25)
    amount, cur = evaluation.results
    assert amount.failing_rows == 30 and amount.stored == 25
    assert [r["source_row"] for r in amount.sample] == list(range(1, 21))  # SAMPLE_ROWS
    assert harness.query("SELECT rule, count(*), min(source_row), max(source_row) FROM qa.failing_rows GROUP BY 1 ORDER BY 1") == [
        ("not_null_amount", 25, 1, 25), ("not_null_cur", 25, 1, 25)]
    assert [r.rule.name for r in evaluation.blocking_failures] == ["not_null_amount"]
    stored = harness.query("SELECT rule, severity, passed, failing_rows, failing_rows_stored, rows_evaluated "
                           "FROM qa.check_results ORDER BY rule")
    assert stored == [("not_null_amount", "error", False, 30, 25, 30), ("not_null_cur", "warn", False, 30, 25, 30)]


def test_a_new_evaluation_replaces_the_partitions_results(harness, tmp_path):
    ds = dataset(tmp_path, [{"not_null": "amount"}])
    evaluate(harness, ds, csv("1,,EUR,X,1,1,2026-11-01"), run_id="run-1")
    evaluate(harness, ds, csv("1,2,EUR,X,1,1,2026-11-01"), run_id="run-2")
    assert harness.query("SELECT run_id, passed FROM qa.check_results") == [("run-2", True)]
    assert harness.query("SELECT count(*) FROM qa.failing_rows") == [(0,)]
    assert harness.query("SELECT run_id, rules, rules_failed, blocking_failed FROM qa.validations") == [
        ("run-2", 1, 0, [])]


def test_all_row_rules_are_counted_in_one_scan(harness, tmp_path):
    """One aggregate query for every row rule (and `unique` on an integer column, after a min/max of
    that column), one for the assertions; two more passes only when rules fail: their first
    failing rows, then those rows read back."""
    rules = [rule for name, rule, good, *_ in ROW_RULES if "unique" not in name and good == GOOD]
    rules += [{"row_count": {"min": 1}}, {"assert": "sum(a) > 0"}, {"freshness": {"column": "day", "max_age": "9999d"}},
              {"unique": "id"}]
    ds = dataset(tmp_path, rules)
    clean = evaluate(harness, ds, csv(*GOOD), "clean.csv")
    assert not clean.failed, [(r.rule.name, r.message) for r in clean.failed]
    assert clean.scans == 3 and len(clean.results) == len(rules) >= 10
    dirty = evaluate(harness, ds, csv(*GOOD, "4,,GBP,ab,9,1,2020-01-01"), "dirty.csv")
    assert len(dirty.failed) >= 4 and dirty.scans == 5  # + the failing rules' first rows, + reading them back


def test_a_rule_that_fails_on_the_data_is_reported_alone(harness, tmp_path):
    ds = dataset(tmp_path, [{"not_null": "amount"}, {"sql": "CAST(code AS INTEGER) > 0"}, {"not_null": "cur"}])
    first, broken, last = evaluate(harness, ds, csv(*GOOD)).results
    assert first.passed and last.passed
    assert not broken.passed and broken.error.startswith("the rule's SQL failed on the data: Conversion Error")


def test_values_that_do_not_fit_the_column_are_reported(harness, tmp_path):
    ds = dataset(tmp_path, [{"range": {"column": "amount", "min": "lots"}},
                            {"accepted_values": {"column": "day", "values": ["someday"]}},
                            {"not_null": "gone"}], columns={**COLUMNS, "gone": "string"})
    bad_number, bad_date, missing = evaluate(harness, ds, csv(*GOOD)).results
    assert "'lots' is not a number" in bad_number.error
    assert bad_date.error.startswith("invalid value in the rule: Conversion Error")
    assert missing.error == "column 'gone' is not in the data (columns: a, amount, b, code, cur, day, id)"


# ---------------------------------------------------------------------------------------------
# Hostile names and values: quoted, never executed

HOSTILE = {"id": "bigint", 'we"ird': "string", "semi;colon": "string", "prénom 🙂": "string",
           "x'); DROP TABLE raw.ds; --": "string"}


def test_hostile_column_names_and_values_are_quoted(harness, tmp_path):
    rules = [
        {"not_null": 'we"ird', "name": "bad'); DROP TABLE qa.files; --"},
        {"accepted_values": {"column": "semi;colon", "values": ["a'b", "x;y", "🙂"]}},
        {"regex": {"column": "prénom 🙂", "pattern": "^[^'\";]+$"}},
        {"length": {"column": "x'); DROP TABLE raw.ds; --", "max": 3}},
        {"sql": "\"semi;colon\" <> 'x;y; DROP TABLE raw.ds' OR \"prénom 🙂\" = 'Zoë'"},
        {"unique": ['we"ird', "semi;colon"]},
    ]
    ds = dataset(tmp_path, rules, columns=HOSTILE)
    header = 'id,"we""ird",semi;colon,prénom 🙂,"x\'); DROP TABLE raw.ds; --"'
    content = "\n".join([
        header,
        '1,"a""b","a\'b",Zoë,abc',
        '2,,x;y,"O\'Brien",abcd',
        '3,"a""b",evil,Zoë,ab',
        '4,q,"x;y; DROP TABLE raw.ds","Ann;",a',
    ]) + "\n"
    path = harness.write("h.csv", content)
    loaded = harness.load(path, ds)
    assert loaded.audit.rows_loaded == 4, loaded.audit.summary()
    with harness.warehouse.connect() as con:
        evaluation = evaluate_partition(con, ds, "h.csv", "run-1")
    failing = {r.rule.name: [s["source_row"] for s in r.sample] for r in evaluation.results}
    assert all(r.error is None for r in evaluation.results), [r.error for r in evaluation.results]
    assert failing == {
        "bad'); DROP TABLE qa.files; --": [2],
        "accepted_values_semi_colon": [3, 4],
        "regex_pr_nom": [2, 4],
        "length_x_drop_table_raw_ds": [2],
        "sql": [4],
        "unique_we_ird_semi_colon": [],
    }
    assert evaluation.results[1].sample[1]["values"] == {"semi;colon": "x;y; DROP TABLE raw.ds"}
    assert evaluation.results[2].sample[0]["values"] == {"prénom 🙂": "O'Brien"}
    # nothing was dropped, and the rule names were stored as values
    assert harness.query("SELECT count(*) FROM raw.ds") == [(4,)]
    assert harness.query("SELECT count(*) FROM qa.files") == [(1,)]
    assert ("bad'); DROP TABLE qa.files; --",) in harness.query("SELECT rule FROM qa.check_results")
    assert all(re.fullmatch(r"[A-Za-z0-9_]+", g.name) for g in check_groups(ds.rules))


@pytest.mark.parametrize("text", [
    "1=1; DROP TABLE raw.ds",
    "amount > 0 -- and the rest",
    "amount > 0 /* hidden */",
    "amount > 0) OR (1=1",
    "(amount > 0",
    "amount > 'unterminated",
])
def test_user_sql_that_is_not_one_expression_is_refused_at_load(tmp_path, text):
    with pytest.raises(ContractError) as info:
        dataset(tmp_path, [{"sql": text}])
    assert "predicate:" in str(info.value)
    assert user_sql_problem(text) is not None


def test_user_sql_is_never_run_as_a_second_statement(harness, tmp_path):
    """Even a rule built past the parser cannot run a second statement: it is refused, not executed."""
    ds = dataset(tmp_path, [{"not_null": "id"}])
    harness.load(harness.write("a.csv", csv(*GOOD)), ds)
    hostile = Rule("sql", {"predicate": "true); DROP TABLE raw.ds; SELECT (1"}, "hostile")
    forged = type(ds)(**{**ds.__dict__, "rules": (hostile,)})
    with harness.warehouse.connect() as con:
        [result] = evaluate_partition(con, forged, "a.csv", "run-1").results
    assert not result.passed and "';' is not allowed" in result.error and not result.sql
    assert harness.query("SELECT count(*) FROM raw.ds") == [(3,)]
    assert user_sql_problem("note <> 'a;b' AND \"semi;colon\" IS NOT NULL") is None  # ';' inside quotes is data


# ---------------------------------------------------------------------------------------------
# Checks: one per rule, grouped by kind and severity on wide tables


def test_one_check_per_rule_until_the_limit_then_rules_of_a_kind_are_grouped(tmp_path):
    columns = {f"c{n}": "string" for n in range(120)}
    few = dataset(tmp_path, [{"not_null": "c1"}, {"not_null": "c2"}, {"unique": "c3"}], columns=columns, primary_key=())
    assert [g.name for g in check_groups(few.rules)] == ["not_null_c1", "not_null_c2", "unique_c3"]
    rules = ([{"not_null": f"c{n}"} for n in range(100)] + [{"regex": {"column": f"c{n}", "pattern": "x"}} for n in range(40)]
             + [{"unique": "c0"}, {"range": {"column": "c1", "min": "a"}, "severity": "warn"}])
    wide = dataset(tmp_path, rules, columns=columns, primary_key=())
    groups = check_groups(wide.rules)
    assert len(groups) <= MAX_CHECKS_PER_ASSET
    assert sorted(r.name for g in groups for r in g.rules) == sorted(r.name for r in wide.rules)  # each once
    by_name = {g.name: g for g in groups}
    assert len(by_name["not_null_rules_error"].rules) == 100 and by_name["not_null_rules_error"].blocking
    assert "regex_c0" in by_name and len(groups) == 1 + 40 + 2  # the largest bucket is merged first, then enough
    assert "unique_c0" in by_name and not by_name["range_c1"].blocking  # small kinds keep one check per rule
    assert len(check_groups(wide.rules, limit=10)) == 4  # not_null, regex, unique, range
    assert all(re.fullmatch(r"[A-Za-z0-9_]+", name) for name in by_name)


def test_results_name_their_check(harness, tmp_path):
    ds = dataset(tmp_path, [{"not_null": "amount", "name": "montant présent ✓"}])
    [result] = evaluate(harness, ds, csv(*GOOD)).results
    assert result.check_name == "montant_pr_sent"
    assert harness.query("SELECT rule, check_name FROM qa.check_results") == [("montant présent ✓", "montant_pr_sent")]


# ---------------------------------------------------------------------------------------------
# The parser knows what the rules need


@pytest.mark.parametrize(("rule", "message"), [
    ({"row_count": {"min": 1}, "mostly": 0.9}, "mostly does not apply to row_count rules"),
    ({"assert": "sum(id) > 0", "mostly": 0.5}, "mostly does not apply to assert rules"),
    ({"range": {"column": "amount"}}, "give min, max or both"),
    ({"range": {"column": "amount", "min": [1]}}, "min: expected a number, a date or a text value"),
    ({"range": {"column": "amount", "min": 1, "inclusive": "yes"}}, "inclusive: expected true or false"),
    ({"length": {"column": "code", "min": -1}}, "min: expected a whole number >= 0"),
    ({"row_count": {"max": 1.5}}, "max: expected a whole number >= 0"),
    ({"schema": {"types": {"amount": "money"}}}, "types.amount: unknown type 'money'"),
    ({"schema": {"required": "id"}}, "required: expected a list of column names"),
    ({"compare": {"left": "nope", "op": "<", "right": "b"}}, "unknown column 'nope'"),
    ({"compare": {"left": "a", "op": "<", "right": [1]}}, "right: expected a column name or a value"),
    ({"accepted_values": {"column": "cur", "values": [["EUR"]]}}, "values: expected plain values"),
    ({"conditional": {"when": "a > 1; DROP TABLE x", "then": "b > 1"}}, "when: ';' is not allowed"),
])
def test_the_parser_refuses_rules_that_cannot_run(tmp_path, rule, message):
    with pytest.raises(ContractError) as info:
        dataset(tmp_path, [rule])
    assert message in str(info.value), info.value.problems


def test_rule_outcomes_are_json_serialisable(harness, tmp_path):
    ds = dataset(tmp_path, [{"freshness": {"column": "day", "max_age": "1d"}}, {"schema": {}}, {"not_null": "amount"}])
    evaluate(harness, ds, csv(*GOOD), now=dt.datetime(2026, 11, 4, 12, tzinfo=dt.timezone.utc))
    observed = {rule: json.loads(text) for rule, text in harness.query("SELECT rule, observed FROM qa.check_results")}
    # a date counts through its whole day: 2026-11-03 is current until 11-04 00:00, 12 hours before now
    assert observed["freshness_day"] == {"newest": "2026-11-04T00:00:00+00:00", "age_s": 43200.0}
    assert observed["schema"]["columns"] == list(COLUMNS)
    assert observed["schema"]["types"] == {"id": "BIGINT", "amount": "DOUBLE", "cur": "VARCHAR", "code": "VARCHAR",
                                           "a": "BIGINT", "b": "BIGINT", "day": "DATE"}
    assert observed["not_null_amount"] == {"failing_rows": 0, "failing_share": 0.0}


def test_the_readme_example_of_every_rule_kind_validates_and_runs(harness, tmp_path):
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    block = readme.split("\n## Rules\n", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    columns = {"order_id": "bigint", "customer_id": "bigint", "order_date": "date", "shipped_date": "date",
               "amount": "double", "currency": "string", "sku": "string", "country": "string", "postcode": "string",
               "status": "string", "attributes": "string"}
    head = yaml.safe_dump({"datasets": {"customers": {"landing": "landing", "columns": {"id": "bigint"}},
                                        "orders": {"landing": "landing", "columns": columns}}})
    ds = parse_contract(head + block, tmp_path / "quality.yaml").dataset("orders")
    assert {r.kind for r in ds.rules} == set(RULE_KINDS)
    row = '1,7,2026-11-01,2026-11-02,10.0,EUR,SKU-00001,PT,1000,shipped,"{""gift"": true}"'
    evaluation = evaluate(harness, ds, csv(row, header=",".join(columns)),
                          now=dt.datetime(2026, 11, 2, tzinfo=dt.timezone.utc))
    errors = {r.rule.name: r.error for r in evaluation.results if r.error}
    assert list(errors) == ["references_customer_id"]  # customers has published nothing yet
    assert [r.rule.name for r in evaluation.failed] == ["references_customer_id"]
