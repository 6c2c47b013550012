"""The anomaly stage's warehouse tables and the reader other stages (the report) call.

Each run replaces the partition's rows in all four tables in one transaction (as the rules'
tables do), so counting rows per partition counts the current result.

- `qa.anomaly_runs`: one row per (partition, run): rows scored and flagged, the threshold, what
  the detector was fitted on, the counts of metric anomalies and drifted columns.
- `qa.row_anomalies`: the flagged rows (at most `max_rows` per run, best ranked first).
- `qa.metric_anomalies`: every profile metric compared with its history.
- `qa.drift`: every column's distribution against the reference partition.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

ANOMALY_TABLES_DDL = [
    "CREATE SCHEMA IF NOT EXISTS qa",
    """CREATE TABLE IF NOT EXISTS qa.anomaly_runs (
        dataset VARCHAR NOT NULL,
        partition_key VARCHAR NOT NULL,
        run_id VARCHAR NOT NULL,
        detected_at TIMESTAMP NOT NULL,
        rows_scored BIGINT,
        rows_flagged BIGINT,
        anomaly_rate DOUBLE,
        rows_stored BIGINT,
        threshold_p DOUBLE,
        threshold_method VARCHAR,
        fitted_on VARCHAR,
        reference_partitions VARCHAR[],
        reference_rows BIGINT,
        features JSON,
        metric_anomalies BIGINT,
        drift_reference VARCHAR,
        drifted_columns BIGINT,
        settings JSON,
        duration_s DOUBLE
    )""",
    """CREATE TABLE IF NOT EXISTS qa.row_anomalies (
        dataset VARCHAR NOT NULL,
        partition_key VARCHAR NOT NULL,
        run_id VARCHAR NOT NULL,
        _source_row BIGINT NOT NULL,
        source_file VARCHAR,
        score DOUBLE NOT NULL,
        p_value DOUBLE NOT NULL,
        rank BIGINT NOT NULL,
        explanation JSON NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS qa.metric_anomalies (
        dataset VARCHAR NOT NULL,
        partition_key VARCHAR NOT NULL,
        run_id VARCHAR NOT NULL,
        column_name VARCHAR,
        metric VARCHAR NOT NULL,
        value DOUBLE,
        expected DOUBLE,
        lower DOUBLE,
        upper DOUBLE,
        robust_z DOUBLE,
        direction VARCHAR,
        history_size INTEGER NOT NULL,
        seasonal BOOLEAN,
        is_anomaly BOOLEAN NOT NULL,
        reason VARCHAR
    )""",
    """CREATE TABLE IF NOT EXISTS qa.drift (
        dataset VARCHAR NOT NULL,
        partition_key VARCHAR NOT NULL,
        run_id VARCHAR NOT NULL,
        reference_partition VARCHAR,
        column_name VARCHAR NOT NULL,
        test VARCHAR,
        statistic DOUBLE,
        p_value DOUBLE,
        adjusted_p DOUBLE,
        psi DOUBLE,
        effect_size DOUBLE,
        effect_measure VARCHAR,
        sample_size INTEGER,
        reference_size INTEGER,
        drifted BOOLEAN NOT NULL,
        reason VARCHAR
    )""",
]

RESULT_TABLES = ("row_anomalies", "metric_anomalies", "drift", "anomaly_runs")


def ensure_anomaly_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the anomaly tables when missing (idempotent)."""
    for ddl in ANOMALY_TABLES_DDL:
        con.execute(ddl)


def latest_anomaly_run(con: duckdb.DuckDBPyConnection, dataset: str, partition_key: str) -> str | None:
    found = con.execute(
        """SELECT run_id FROM qa.anomaly_runs WHERE dataset = ? AND partition_key = ?
           ORDER BY detected_at DESC, run_id DESC LIMIT 1""",
        [dataset, partition_key],
    ).fetchall()
    return found[0][0] if found else None


def _dicts(con: duckdb.DuckDBPyConnection, sql: str, params: list) -> list[dict]:
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def read_anomalies(
    con: duckdb.DuckDBPyConnection, dataset: str, partition_key: str, run_id: str | None = None
) -> dict[str, Any]:
    """The anomaly stage's results for one partition (the stored run when run_id is None).

    Returns {"dataset", "partition_key", "run_id" (None when the stage has not run),
    "summary": qa.anomaly_runs row or None (features and settings parsed from JSON),
    "rows": flagged rows by rank, each with "explanation" parsed: {"score", "p_value",
    "contributions": [{"column", "value", "signal", "why", "p_value", ...}]},
    "metrics": every metric compared (anomalies first), "drift": every column tested
    (drifted first), "drifted_columns": [names], "metric_anomalies": [rows with is_anomaly]}.
    """
    ensure_anomaly_tables(con)
    run_id = run_id or latest_anomaly_run(con, dataset, partition_key)
    out: dict[str, Any] = {
        "dataset": dataset, "partition_key": partition_key, "run_id": run_id, "summary": None,
        "rows": [], "metrics": [], "drift": [], "drifted_columns": [], "metric_anomalies": [],
    }
    if run_id is None:
        return out
    params = [dataset, partition_key, run_id]
    where = "WHERE dataset = ? AND partition_key = ? AND run_id = ?"
    summary = _dicts(con, f"SELECT * FROM qa.anomaly_runs {where} LIMIT 1", params)
    if summary:
        row = summary[0]
        for key in ("features", "settings"):
            row[key] = json.loads(row[key]) if row[key] else None
        out["summary"] = row
    rows = _dicts(con, f"SELECT * FROM qa.row_anomalies {where} ORDER BY rank", params)
    for row in rows:
        row["explanation"] = json.loads(row["explanation"])
    out["rows"] = rows
    out["metrics"] = _dicts(
        con, f"""SELECT * FROM qa.metric_anomalies {where}
                 ORDER BY is_anomaly DESC, column_name NULLS FIRST, metric""", params)
    out["drift"] = _dicts(
        con, f"SELECT * FROM qa.drift {where} ORDER BY drifted DESC, adjusted_p NULLS LAST, column_name", params)
    out["drifted_columns"] = [d["column_name"] for d in out["drift"] if d["drifted"]]
    out["metric_anomalies"] = [m for m in out["metrics"] if m["is_anomaly"]]
    return out
