"""Kinds judged on the whole partition: its row count, its freshness and its schema."""

from __future__ import annotations

import datetime as dt
from typing import Any

from quality_assets.rules.history import previous_validation
from quality_assets.rules.kind import Judging, Kind, Plan, bounds_problems, column, register
from quality_assets.vocabulary import duckdb_type, parse_duration
from quality_assets.warehouse import quote_ident

CAST_CODES = ("E_NUMERIC_FORMAT", "E_NUMERIC_RANGE", "E_DATE_FORMAT", "E_BOOLEAN_FORMAT", "E_TYPE")


@register
class RowCount(Kind):
    name = "row_count"
    params = {"min": "count", "max": "count"}
    judges_rows = False

    def check(self, params: dict):
        return bounds_problems(self, params)

    def describe(self, params: dict) -> str:
        return f"row count in [{params.get('min', 0)}, {params.get('max', '∞')}]"

    def judge(self, result, plan: Plan, judging: Judging) -> None:
        low, high = plan.rule.params.get("min"), plan.rule.params.get("max")
        rows = judging.evaluation.rows
        result.observed = rows
        result.passed = (low is None or rows >= low) and (high is None or rows <= high)
        bounds = f"[{low if low is not None else 0}, {high if high is not None else '∞'}]"
        result.message = f"{rows:,} rows, expected {bounds}"

    def sql(self, plan: Plan, table: str, where: str) -> str:
        return f"SELECT count(*) FROM {table} WHERE {where}"


@register
class Freshness(Kind):
    name = "freshness"
    params = {"max_age": "duration", "column": "column"}
    required = ("max_age",)
    judges_rows = False

    def describe(self, params: dict) -> str:
        return f"newest {params['column'] if params.get('column') else 'file'} younger than {params['max_age']}"

    def needs_table(self, params: dict) -> bool:
        return bool(params.get("column"))

    def plan(self, plan: Plan, types: dict[str, str], published: dict) -> None:
        if plan.rule.params.get("column"):
            col, col_type = column(plan.rule.params["column"], types)
            plan.subject = [plan.rule.params["column"]]
            if col_type.startswith("TIMESTAMP") or col_type == "DATE":
                plan.aggregate = f"max({col})"
            else:
                plan.aggregate = f"max(TRY_CAST({col} AS TIMESTAMP))"

    def judge(self, result, plan: Plan, judging: Judging) -> None:
        newest = judging.values[plan.index][0] if plan.aggregate else judging.load.get("mtime")
        _judge_freshness(result, newest, judging.now, bool(plan.aggregate))

    def sql(self, plan: Plan, table: str, where: str) -> str:
        if plan.aggregate:
            return f"SELECT {plan.aggregate} FROM {table} WHERE {where}"
        return f"SELECT max(mtime) FROM qa.files WHERE {where.replace('_partition_key', 'partition_key')} -- UTC"


def _judge_freshness(result, newest: Any, now: dt.datetime, from_column: bool) -> None:
    p = result.rule.params
    max_age = parse_duration(str(p["max_age"])) or 0.0
    what = f"newest {p['column']}" if from_column else "the file (modified)"
    if newest is None:
        result.passed = False
        result.message = f"{what}: no value to measure"
        return
    if isinstance(newest, dt.datetime):
        moment = newest if newest.tzinfo else newest.replace(tzinfo=dt.timezone.utc)  # naive: UTC
    elif isinstance(newest, dt.date):
        # a date is current through its whole day
        moment = dt.datetime.combine(newest + dt.timedelta(days=1), dt.time(), tzinfo=dt.timezone.utc)
    else:
        result.passed = False
        result.message = f"{what}: {newest!r} is not a date or timestamp"
        return
    age = (now - moment).total_seconds()
    result.observed = {"newest": moment.isoformat(), "age_s": round(age, 3)}
    result.passed = age <= max_age
    result.message = f"{what} is {_duration(age)} old ({moment:%Y-%m-%d %H:%M:%S} UTC); max_age {p['max_age']}"


def _duration(seconds: float) -> str:
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{sign}{seconds / size:.1f}{unit}"
    return f"{sign}{seconds:.0f}s"


@register
class Schema(Kind):
    name = "schema"
    params = {"required": "column_list", "allow_extra": "flag", "types": "types"}
    judges_rows = False

    def describe(self, params: dict) -> str:
        return "the columns and types agreed (and no rename or retype since the previous partition)"

    def judge(self, result, plan: Plan, judging: Judging) -> None:
        con, dataset, evaluation = judging.con, judging.dataset, judging.evaluation
        p = plan.rule.params
        columns = evaluation.columns
        declared = [c.name for c in dataset.columns]
        required = list(p.get("required") or declared)
        wanted_types = dict(p.get("types") or {})
        allow_extra = p.get("allow_extra", dataset.allow_extra_columns)
        problems: list[str] = []
        missing = [c for c in required if c not in columns]
        if missing:
            problems.append(f"missing {', '.join(missing)}")
        expected = set(declared) | set(required) | set(wanted_types)
        extra = [c for c in columns if c not in expected] if expected and not allow_extra else []
        if extra:
            problems.append(f"unexpected {', '.join(extra)}")
        for name, type_name in wanted_types.items():
            want = duckdb_type(str(type_name))
            have = evaluation.column_types.get(name)
            if have is not None and want is not None and have != want:
                problems.append(f"{name} is {have}, expected {want}")
        previous = previous_validation(con, dataset, evaluation)
        if previous and previous.columns:
            changes = _changes(previous.columns, previous.types, columns, evaluation.column_types)
            if changes:
                problems.append("since partition " + repr(previous.partition_key) + ": " + ", ".join(changes))
        for name, (count, kind) in _columns_that_no_longer_fit(con, dataset, evaluation).items():
            problems.append(f"{name}: none of its {count} value(s) fits its type {kind} (quarantined)")
        result.observed = {"columns": columns, "types": evaluation.column_types}
        result.passed = not problems
        result.message = "; ".join(problems) if problems else f"{len(columns)} columns as agreed"

    def sql(self, plan: Plan, table: str, where: str) -> str:
        return "DESCRIBE " + table


def _changes(prev_columns: list[str], prev_types: dict[str, str], columns: list[str], types: dict[str, str]) -> list[str]:
    """Renamed and retyped columns since the previous partition."""
    removed = [c for c in prev_columns if c not in columns]
    added = [c for c in columns if c not in prev_columns]
    renamed = []
    for old in removed:
        position = prev_columns.index(old)
        new = columns[position] if position < len(columns) else None
        if new in added and new not in [n for _, n in renamed]:
            renamed.append((old, new))
    if len(removed) == 1 and len(added) == 1 and not renamed:
        renamed.append((removed[0], added[0]))
    changes = [f"renamed {old} -> {new}" for old, new in renamed]
    for name in columns:
        before, now_type = prev_types.get(name), types.get(name)
        if before and now_type and before != now_type:
            changes.append(f"retyped {name} {before} -> {now_type}")
    return changes


def _columns_that_no_longer_fit(con, dataset, evaluation) -> dict[str, tuple[int, str]]:
    """Columns of the partition with values quarantined for their type and none loaded: the kept
    type (qa.dataset_columns) no longer fits the data at all, a schema change."""
    quarantined = con.execute(
        "SELECT column_name, count(*) FROM qa.quarantine WHERE dataset = ? AND partition_key = ? "
        "AND list_contains(?, error_code) AND column_name IS NOT NULL GROUP BY 1 ORDER BY 1",
        [dataset.name, evaluation.partition_key, list(CAST_CODES)]).fetchall()
    found = {}
    for name, count in quarantined:
        kind = evaluation.column_types.get(name)
        if kind is None:
            continue
        loaded = con.execute(f"SELECT count({quote_ident(name)}) FROM raw.{quote_ident(dataset.name)} "
                             "WHERE _partition_key = ?", [evaluation.partition_key]).fetchone()[0]
        if loaded == 0:
            found[name] = (count, kind)
    return found
