"""Kinds judged on keys: `unique` (no key twice) and `references` (every key exists in another
dataset's published table)."""

from __future__ import annotations

from quality_assets.rules.kind import Judging, Kind, Plan, RowKind, column, judge_rows, register
from quality_assets.rules.sql import RuleSQLError
from quality_assets.warehouse import quote_ident

BITSTRING_MAX_SPAN = 1 << 28  # integer keys spanning up to this many values are counted with a bitmap (32 MB)
SMALL_INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT")


@register
class Unique(Kind):
    name = "unique"
    params = {"columns": "columns"}
    required = ("columns",)

    def describe(self, params: dict) -> str:
        columns = params["columns"]
        return f"({', '.join(columns)}) is unique" if len(columns) > 1 else f"{columns[0]} is unique"

    def plan(self, plan: Plan, types: dict[str, str], published: dict) -> None:
        for name in plan.rule.params["columns"]:
            column(name, types)
        plan.subject = list(plan.rule.params["columns"])

    def prepare(self, con, table: str, partition_key: str, plans: list[Plan], types: dict[str, str], evaluation) -> None:
        """A `unique` rule on one integer column is first tested in the main scan by comparing the
        non-null count with a bitmap's distinct count (bitstring_agg over the key's span): ten times
        cheaper than hashing every key; only a key that is not unique is grouped to find its rows."""
        candidates = [p for p in plans if len(p.rule.params["columns"]) == 1
                      and types.get(p.rule.params["columns"][0]) in SMALL_INTEGERS]
        if not candidates:
            return
        columns = [quote_ident(p.rule.params["columns"][0]) for p in candidates]
        evaluation.scans += 1  # min and max of the key columns only
        bounds = con.execute(
            f"SELECT {', '.join(f'min({c}), max({c})' for c in columns)} FROM {table} WHERE _partition_key = ?",
            [partition_key]).fetchone()
        for n, plan in enumerate(candidates):
            low, high = bounds[2 * n], bounds[2 * n + 1]
            if low is not None and high - low < BITSTRING_MAX_SPAN:
                plan.distinct = [f"count({columns[n]})", f"bit_count(bitstring_agg({columns[n]}, {int(low)}, {int(high)}))"]

    def judge(self, result, plan: Plan, judging: Judging) -> None:
        values = judging.values.get(plan.index)
        if plan.distinct and values[0] == values[1]:
            failing, groups = 0, 0  # as many distinct keys as keys: no need to group
        else:
            failing, groups, plan.rowids = _duplicates(judging, plan)
        judge_rows(result, failing)
        result.observed = {"failing_rows": failing, "duplicate_keys": groups}
        result.message += f" in {groups:,} duplicated key(s)" if groups else ""

    def sql(self, plan: Plan, table: str, where: str) -> str:
        cols = ", ".join(quote_ident(c) for c in plan.rule.params["columns"])
        not_null = " AND ".join(f"{quote_ident(c)} IS NOT NULL" for c in plan.rule.params["columns"])
        return (f"SELECT {cols}, count(*) AS n FROM {table} WHERE {where} AND {not_null} "
                f"GROUP BY {cols} HAVING count(*) > 1")


def _duplicates(judging: Judging, plan: Plan) -> tuple[int, int, list[int]]:
    """(rows in duplicated keys, duplicated keys, the first failing rowids); NULL keys are not compared."""
    con, table, key = judging.con, judging.table, judging.evaluation.partition_key
    cols = ", ".join(quote_ident(c) for c in plan.rule.params["columns"])
    not_null = " AND ".join(f"{quote_ident(c)} IS NOT NULL" for c in plan.rule.params["columns"])
    duplicates = (f"SELECT {cols} FROM {table} WHERE _partition_key = ? AND {not_null} "
                  f"GROUP BY {cols} HAVING count(*) > 1")
    judging.evaluation.scans += 1
    groups, failing = con.execute(
        f"SELECT count(*), coalesce(sum(n), 0) FROM (SELECT count(*) AS n FROM {table} "
        f"WHERE _partition_key = ? AND {not_null} GROUP BY {cols} HAVING count(*) > 1)",
        [key],
    ).fetchone()
    rowids: list[int] = []
    if failing:
        judging.evaluation.scans += 2
        join = " AND ".join(f"r.{quote_ident(c)} = d.{quote_ident(c)}" for c in plan.rule.params["columns"])
        rowids = con.execute(
            f"SELECT min(r.rowid, {int(judging.cap)}) FROM {table} r SEMI JOIN ({duplicates}) d ON {join} "
            "WHERE r._partition_key = ?",
            [key, key],
        ).fetchone()[0] or []
    return int(failing), int(groups), rowids


@register
class References(RowKind):
    name = "references"
    params = {"column": "column", "dataset": "dataset", "to_column": "text"}
    required = ("column", "dataset")

    def describe(self, params: dict) -> str:
        return f"{params['column']} exists in published.{params['dataset']}.{params.get('to_column') or params['column']}"

    def fail(self, plan: Plan, col: str, col_type: str, published: dict) -> str:
        target = plan.rule.params["dataset"]
        to_column = plan.rule.params.get("to_column") or plan.rule.params["column"]
        table = published.get(target)
        if table is None:
            raise RuleSQLError(f"dataset {target!r} has nothing published yet (published.{quote_ident(target)} does not exist)")
        if to_column not in table:
            raise RuleSQLError(f"published.{quote_ident(target)} has no column {to_column!r}")
        other = quote_ident(to_column)
        return (f"{col} IS NOT NULL AND {col} NOT IN (SELECT TRY_CAST({other} AS {col_type}) "
                f"FROM published.{quote_ident(target)} WHERE {other} IS NOT NULL)")
