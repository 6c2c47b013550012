"""Evaluate a dataset's rules on one partition of `raw."<dataset>"`.

Every rule becomes SQL over the partition (`WHERE _partition_key = ?`) through its kind
(quality_assets/rules/kinds/). Row-level rules become one failing-row predicate each, and all of
them are counted in a single aggregate scan, `count_if(<predicate>)` per rule, together with
freshness maxima and, for `unique` on an integer column, a bitmap distinct count
(`bitstring_agg`). Assertions get a second, small aggregate query, other `unique` keys a GROUP BY
of their own. Only when rules fail does one more scan pick their first failing rows
(`min(rowid, cap)`), read back by rowid. On 10M rows and 30 rules this is about 2.3x one plain
full scan (benchmarks/rules.py).
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING

import duckdb

from quality_assets.catalog import latest_load, table_types
from quality_assets.rules.kind import META_COLUMNS, Judging, Plan
from quality_assets.rules.kinds import KINDS, referenced_datasets
from quality_assets.rules.results import Evaluation, RuleResult, check_groups, check_name
from quality_assets.rules.sql import MissingColumn, RuleSQLError
from quality_assets.rules.tables import (
    FAILING_ROWS_CAP,
    attach_samples,
    ensure_tables,
    record_evaluation,
)
from quality_assets.warehouse import Warehouse, quote_ident, quote_literal, transaction

if TYPE_CHECKING:
    from quality_assets.contract import Dataset, Rule

SAMPLE_ROWS = 20  # failing rows shown in a check's metadata


def validate(warehouse: Warehouse, dataset: Dataset, partition_keys: list[str], run_id: str,
             now: dt.datetime | None = None, cap: int = FAILING_ROWS_CAP) -> list[Evaluation]:
    """Evaluate and record every rule on each partition (one connection, one transaction each)."""
    with warehouse.connect() as con:
        return [evaluate_partition(con, dataset, key, run_id, now=now, cap=cap) for key in partition_keys]


def evaluate_partition(
    con: duckdb.DuckDBPyConnection,
    dataset: Dataset,
    partition_key: str,
    run_id: str,
    *,
    now: dt.datetime | None = None,
    cap: int = FAILING_ROWS_CAP,
    sample_size: int = SAMPLE_ROWS,
    record: bool = True,
) -> Evaluation:
    """Evaluate every rule of the dataset on one partition; with `record`, replace the partition's
    results in qa.check_results, qa.failing_rows and qa.validations in one transaction."""
    started = time.perf_counter()
    now = now or dt.datetime.now(dt.timezone.utc)
    ensure_tables(con)
    table = f"raw.{quote_ident(dataset.name)}"
    types = table_types(con, "raw", dataset.name)
    load = latest_load(con, dataset.name, partition_key)
    names = {rule.name: group.name for group in check_groups(dataset.rules) for rule in group.rules}
    published = _published_tables(con, [name for rule in dataset.rules for name in referenced_datasets(rule)])
    plans = [plan_rule(rule, i, types, published) for i, rule in enumerate(dataset.rules)]
    evaluation = Evaluation(dataset.name, partition_key, run_id, 0, [], raw_run_id=load.get("run_id"),
                            loaded_at=load.get("finished"))
    if load:
        evaluation.columns = [c for c in load["columns"] if c in types]
    else:
        evaluation.columns = [c for c in types if c not in META_COLUMNS]
    evaluation.column_types = {c: types[c] for c in evaluation.columns}
    # Evaluated outside the transaction: a rule whose SQL fails on the data must not abort the
    # others. Nothing writes to the warehouse meanwhile (this connection holds the writer lock), so
    # the rowids of failing rows stay valid until they are read back.
    evaluation.results = _evaluate(con, dataset, table, partition_key, types, plans, load, names, evaluation, now, cap)
    evaluation.seconds = time.perf_counter() - started
    if record:
        with transaction(con):
            record_evaluation(con, dataset, evaluation, plans, table, types, cap)
        attach_samples(con, evaluation, sample_size)
    evaluation.seconds = time.perf_counter() - started
    return evaluation


def plan_rule(rule: Rule, index: int, types: dict[str, str], published: dict[str, dict[str, str]]) -> Plan:
    plan = Plan(rule, index, KINDS[rule.kind])
    try:
        plan.kind.plan(plan, types, published)
    except RuleSQLError as exc:
        plan.error = str(exc)
        plan.missing_column = isinstance(exc, MissingColumn)
    return plan


def _published_tables(con, datasets: list[str]) -> dict[str, dict[str, str]]:
    return {name: types for name in set(datasets) if (types := table_types(con, "published", name))}


def _evaluate(con, dataset: Dataset, table: str, partition_key: str, types: dict[str, str], plans: list[Plan],
              load: dict, names: dict[str, str], evaluation: Evaluation, now: dt.datetime, cap: int) -> list[RuleResult]:
    has_table = bool(types)
    where = f"_partition_key = {quote_literal(partition_key)}"
    for plan in plans:
        if plan.error is None and plan.literals:
            try:
                con.execute(f"SELECT {', '.join(plan.literals)}").fetchall()
            except duckdb.Error as exc:
                plan.error = f"invalid value in the rule: {_first_line(exc)}"
    values: dict[int, tuple] = {}
    rows = 0
    if has_table:
        for kind in {plan.kind.name: plan.kind for plan in plans}.values():
            ready = [p for p in plans if p.kind is kind and p.error is None]
            if ready:
                kind.prepare(con, table, partition_key, ready, types, evaluation)
        scan = [p for p in plans if p.error is None and p.scan_items]
        rows, values = _main_scan(con, table, partition_key, [p for p in scan if not p.kind.own_scan], evaluation)
        own = [p for p in scan if p.kind.own_scan]
        if own:
            values.update(_main_scan(con, table, partition_key, own, evaluation)[1])
        for plan in scan:
            if plan.error is None and plan.index in values:
                plan.kind.scanned(plan, values[plan.index])
        failing = [p for p in scan if p.fail and p.error is None and values.get(p.index, (0,))[0]]
        _capture_rowids(con, table, partition_key, failing, cap, evaluation)
    evaluation.rows = rows
    judging = Judging(con, dataset, evaluation, table, values, load, now, cap)
    results: list[RuleResult] = []
    for plan in plans:
        rule, kind = plan.rule, plan.kind
        result = RuleResult(rule, names.get(rule.name, check_name(rule.name)), passed=False, rows=rows)
        result.sql = "" if plan.error is not None else kind.sql(plan, table, where)
        if rows == 0 and kind.judges_rows and (not has_table or plan.missing_column):
            # no rows (an empty file): none fails, whatever its columns; row_count and schema say more
            result.passed, result.failing_rows = True, 0
            result.message = "no rows to check"
        elif not has_table and kind.needs_table(rule.params):
            result.error = f"{table} does not exist yet: nothing was loaded"
            result.message = f"could not evaluate: {result.error}"
        elif plan.error is not None:
            result.error = plan.error
            result.message = f"could not evaluate: {plan.error}"
        else:
            kind.judge(result, plan, judging)
        results.append(result)
    return results


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def _main_scan(con, table: str, partition_key: str, plans: list[Plan],
               evaluation: Evaluation) -> tuple[int, dict[int, tuple]]:
    """Every row-level and aggregate rule in one aggregate query over the partition (count_if is
    measurably faster than count(*) FILTER with many rules); a rule whose SQL fails on the data is
    evaluated on its own so that it alone reports the error."""
    items = ["count(*)"]
    slots: list[tuple[Plan, int, int]] = []
    for plan in plans:
        slots.append((plan, len(items), len(plan.scan_items)))
        items += plan.scan_items
    sql = f"SELECT {', '.join(items)} FROM {table} WHERE _partition_key = ?"
    try:
        evaluation.scans += 1
        row = con.execute(sql, [partition_key]).fetchone()
    except duckdb.Error:
        if len(plans) <= 1:
            raise
        return _scan_one_by_one(con, table, partition_key, plans, evaluation)
    return row[0], {plan.index: tuple(row[at:at + n]) for plan, at, n in slots}


def _capture_rowids(con, table: str, partition_key: str, failing: list[Plan], cap: int, evaluation: Evaluation) -> None:
    """The first `cap` failing rows (by rowid, i.e. file order) of every failing rule, in one more
    scan that only the failing rules' predicates take part in."""
    if not failing:
        return
    evaluation.scans += 1
    picks = con.execute(
        f"SELECT {', '.join(f'min(CASE WHEN {p.fail} THEN rowid END, {int(cap)})' for p in failing)} "
        f"FROM {table} WHERE _partition_key = ?", [partition_key]).fetchone()
    for plan, rowids in zip(failing, picks, strict=True):
        plan.rowids = list(rowids or [])


def _scan_one_by_one(con, table: str, partition_key: str, plans: list[Plan],
                     evaluation: Evaluation) -> tuple[int, dict[int, tuple]]:
    evaluation.scans += 1
    rows = con.execute(f"SELECT count(*) FROM {table} WHERE _partition_key = ?", [partition_key]).fetchone()[0]
    values: dict[int, tuple] = {}
    for plan in plans:
        try:
            evaluation.scans += 1
            _, one = _main_scan(con, table, partition_key, [plan], evaluation)
            values.update(one)
        except duckdb.Error as exc:
            plan.error = f"the rule's SQL failed on the data: {_first_line(exc)}"
    return rows, values
