"""The rules stage's tables: `qa.check_results` (one row per rule), `qa.failing_rows` (up to
FAILING_ROWS_CAP rows per rule) and `qa.validations` (one row per partition), replaced per
partition in one transaction."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING, Any

import duckdb

from quality_assets.rules.results import Evaluation, rules_fingerprint
from quality_assets.warehouse import insert_rows, quote_ident

if TYPE_CHECKING:
    from quality_assets.contract import Dataset
    from quality_assets.rules.kind import Plan

FAILING_ROWS_CAP = 1000  # failing rows kept per rule and partition in qa.failing_rows

RULES_DDL = [
    "CREATE SCHEMA IF NOT EXISTS qa",
    """CREATE TABLE IF NOT EXISTS qa.check_results (
        dataset VARCHAR NOT NULL,
        partition_key VARCHAR NOT NULL,
        run_id VARCHAR NOT NULL,
        rule VARCHAR NOT NULL,
        check_name VARCHAR NOT NULL,
        kind VARCHAR NOT NULL,
        severity VARCHAR NOT NULL,
        passed BOOLEAN NOT NULL,
        rows_evaluated BIGINT,
        failing_rows BIGINT,
        failing_share DOUBLE,
        mostly DOUBLE,
        failing_rows_stored BIGINT,
        observed VARCHAR,
        message VARCHAR,
        error VARCHAR,
        sql VARCHAR,
        evaluated_at TIMESTAMP
    )""",
    """CREATE TABLE IF NOT EXISTS qa.failing_rows (
        dataset VARCHAR NOT NULL,
        partition_key VARCHAR NOT NULL,
        run_id VARCHAR NOT NULL,
        rule VARCHAR NOT NULL,
        source_row BIGINT,
        source_file VARCHAR,
        row_key VARCHAR,
        row_values VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS qa.validations (
        dataset VARCHAR NOT NULL,
        partition_key VARCHAR NOT NULL,
        run_id VARCHAR NOT NULL,
        raw_run_id VARCHAR,
        loaded_at TIMESTAMP,
        evaluated_at TIMESTAMP,
        rules_fingerprint VARCHAR,
        rows_evaluated BIGINT,
        rules INTEGER,
        rules_failed INTEGER,
        blocking_failed VARCHAR[],
        columns VARCHAR[],
        column_types VARCHAR[],
        duration_s DOUBLE
    )""",
]


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    for ddl in RULES_DDL:
        con.execute(ddl)


def record_evaluation(con, dataset: Dataset, evaluation: Evaluation, plans: list[Plan], table: str,
            types: dict[str, str], cap: int) -> None:
    key = (dataset.name, evaluation.partition_key)
    for name in ("check_results", "failing_rows", "validations"):
        con.execute(f"DELETE FROM qa.{name} WHERE dataset = ? AND partition_key = ?", list(key))
    _store_failing_rows(con, evaluation, plans, table, types, dataset, cap)
    evaluated_at = dt.datetime.now()
    rows = []
    for result in evaluation.results:
        share = result.failing_share
        rows.append([
            dataset.name, evaluation.partition_key, evaluation.run_id, result.rule.name, result.check_name,
            result.rule.kind, result.rule.severity, result.passed, evaluation.rows, result.failing_rows,
            share, result.rule.mostly, result.stored,
            json.dumps(result.observed, default=str) if result.observed is not None else None,
            result.message, result.error, result.sql, evaluated_at,
        ])
    insert_rows(con, "qa.check_results", rows)
    con.execute(
        "INSERT INTO qa.validations VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [dataset.name, evaluation.partition_key, evaluation.run_id, evaluation.raw_run_id, evaluation.loaded_at,
         evaluated_at, rules_fingerprint(dataset), evaluation.rows, len(evaluation.results),
         len(evaluation.failed), [r.rule.name for r in evaluation.blocking_failures],
         evaluation.columns, [evaluation.column_types.get(c, "") for c in evaluation.columns],
         round(evaluation.seconds, 3)],
    )


def _json_struct(columns: list[str], types: dict[str, str], alias: str = "r") -> str:
    present = [c for c in columns if c in types]
    if not present:
        return "NULL"
    fields = ", ".join(f"{quote_ident(c)} := {alias}.{quote_ident(c)}" for c in present)
    return f"CAST(to_json(struct_pack({fields})) AS VARCHAR)"


def _store_failing_rows(con, evaluation: Evaluation, plans: list[Plan], table: str, types: dict[str, str],
                        dataset: Dataset, cap: int) -> None:
    """Up to `cap` failing rows per rule, read back from raw in one pass over the partition."""
    by_index = {p.index: p for p in plans}
    picks = [(n, rid) for n in range(len(evaluation.results)) for rid in by_index[n].rowids[:cap]]
    if not picks:
        return
    key_sql = _json_struct(list(dataset.primary_key), types)
    cases = " ".join(
        f"WHEN {n} THEN {_json_struct(by_index[n].subject, types)}"
        for n in sorted({n for n, _ in picks})
    )
    source_file = "r._source_file" if "_source_file" in types else "NULL"
    evaluation.scans += 1
    con.execute(
        f"""INSERT INTO qa.failing_rows
            SELECT ?, ?, ?, list_extract(?::VARCHAR[], m.i + 1), r._source_row, {source_file}, {key_sql},
                   CASE m.i {cases} END
            FROM (SELECT unnest(?::INTEGER[]) AS i, unnest(?::BIGINT[]) AS rid) m
            JOIN {table} r ON r.rowid = m.rid
            WHERE r._partition_key = ?
            ORDER BY m.i, m.rid""",
        [evaluation.dataset, evaluation.partition_key, evaluation.run_id,
         [r.rule.name for r in evaluation.results], [n for n, _ in picks], [rid for _, rid in picks],
         evaluation.partition_key],
    )
    counts = dict(con.execute(
        "SELECT rule, count(*) FROM qa.failing_rows WHERE dataset = ? AND partition_key = ? GROUP BY 1",
        [evaluation.dataset, evaluation.partition_key],
    ).fetchall())
    for result in evaluation.results:
        result.stored = counts.get(result.rule.name, 0)


def attach_samples(con, evaluation: Evaluation, sample_size: int) -> None:
    rows = con.execute(
        """SELECT rule, source_row, source_file, row_key, row_values FROM qa.failing_rows
           WHERE dataset = ? AND partition_key = ? AND run_id = ?
           QUALIFY row_number() OVER (PARTITION BY rule ORDER BY source_file NULLS FIRST, source_row) <= ?
           ORDER BY rule, source_file NULLS FIRST, source_row""",
        [evaluation.dataset, evaluation.partition_key, evaluation.run_id, sample_size],
    ).fetchall()
    by_rule: dict[str, list[dict]] = {}
    for rule, source_row, source_file, key, values in rows:
        item: dict[str, Any] = {"source_row": source_row}
        if source_file is not None:
            item["source_file"] = source_file
        item["key"] = json.loads(key) if key else None
        item["values"] = json.loads(values) if values else {}
        by_rule.setdefault(rule, []).append(item)
    for result in evaluation.results:
        result.sample = by_rule.get(result.rule.name, [])
