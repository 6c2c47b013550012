"""The anomaly stage's warehouse tables and the reader other stages (the report) call.

Each run replaces the partition's rows in all six tables in one transaction (as the rules'
tables do), so counting rows per partition counts the current result.

- `qa.anomaly_runs`: one row per (partition, run): rows scored and flagged, the threshold, what
  the detector was fitted on, the counts of metric anomalies and drifted columns, and
  `partition_alarms` (partition-level findings: such a partition is left out of later references).
- `qa.row_anomalies`: the flagged rows (at most `max_rows` per run, best ranked first).
- `qa.anomaly_causes`: the flagged rows grouped by cause (column, condition, rows, share, three
  examples), and partition-level changes (`level` = partition), largest first.
- `qa.metric_anomalies`: volume, every profile metric compared with its history, period columns.
- `qa.drift`: every column's distribution against the reference (a pool of recent partitions).
- `qa.column_roles`: each column's role for the partition (learned or set in the contract).
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from quality_assets.warehouse import insert_rows, transaction

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
        duration_s DOUBLE,
        partition_alarms INTEGER
    )""",
    # warehouses made before these columns existed
    "ALTER TABLE qa.anomaly_runs ADD COLUMN IF NOT EXISTS partition_alarms INTEGER",
    """CREATE TABLE IF NOT EXISTS qa.anomaly_causes (
        dataset VARCHAR NOT NULL,
        partition_key VARCHAR NOT NULL,
        run_id VARCHAR NOT NULL,
        cause_rank INTEGER NOT NULL,
        level VARCHAR NOT NULL,
        column_name VARCHAR,
        columns VARCHAR[],
        signal VARCHAR,
        condition VARCHAR,
        rows BIGINT NOT NULL,
        share DOUBLE,
        examples JSON,
        description VARCHAR NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS qa.column_roles (
        dataset VARCHAR NOT NULL,
        partition_key VARCHAR NOT NULL,
        run_id VARCHAR NOT NULL,
        column_name VARCHAR NOT NULL,
        role VARCHAR NOT NULL,
        source VARCHAR NOT NULL,
        reason VARCHAR
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
        reason VARCHAR,
        reference_spread DOUBLE
    )""",
    "ALTER TABLE qa.drift ADD COLUMN IF NOT EXISTS reference_spread DOUBLE",
]

RESULT_TABLES = ("anomaly_runs", "row_anomalies", "anomaly_causes", "metric_anomalies", "drift", "column_roles")


# What the DDL above leaves: every table, with the columns added after tables were first made
DDL_DONE = {(table, "dataset") for table in RESULT_TABLES} | {("anomaly_runs", "partition_alarms"),
                                                             ("drift", "reference_spread")}


def ensure_anomaly_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create the anomaly tables when missing (idempotent). One catalog read when they are all
    there already (~1 ms against ~7 for the DDL): the stage and the report call this a partition."""
    present = set(con.execute("SELECT table_name, column_name FROM duckdb_columns() "
                              "WHERE database_name = current_database() AND schema_name = 'qa'").fetchall())
    if DDL_DONE <= present:
        return
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
    (drifted first), "drifted_columns": [names], "metric_anomalies": [rows with is_anomaly],
    "causes": partition-level changes and flagged rows grouped by cause (examples parsed),
    "roles": column -> {"role", "source", "reason"}}.
    """
    ensure_anomaly_tables(con)
    run_id = run_id or latest_anomaly_run(con, dataset, partition_key)
    out: dict[str, Any] = {
        "dataset": dataset, "partition_key": partition_key, "run_id": run_id, "summary": None,
        "rows": [], "metrics": [], "drift": [], "drifted_columns": [], "metric_anomalies": [],
        "causes": [], "roles": {},
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
    out["causes"] = _dicts(con, f"SELECT * FROM qa.anomaly_causes {where} ORDER BY cause_rank", params)
    for cause in out["causes"]:
        cause["examples"] = json.loads(cause["examples"]) if cause["examples"] else []
    out["roles"] = {r["column_name"]: {"role": r["role"], "source": r["source"], "reason": r["reason"]}
                    for r in _dicts(con, f"SELECT * FROM qa.column_roles {where}", params)}
    return out


def alarmed_partitions(con: duckdb.DuckDBPyConnection, dataset: str) -> set[str]:
    """Partitions whose latest anomaly run raised a partition-level alarm (volume, metric, drift,
    period, flood): left out of the references of later partitions."""
    return {k for (k,) in con.execute(
        """SELECT partition_key FROM qa.anomaly_runs WHERE dataset = ?
           QUALIFY row_number() OVER (PARTITION BY partition_key ORDER BY detected_at DESC, run_id DESC) = 1
               AND coalesce(partition_alarms, metric_anomalies + drifted_columns) > 0""", [dataset]).fetchall()}


def column_alarms(con: duckdb.DuckDBPyConnection, dataset: str) -> dict[str | None, set[str]]:
    """column -> partitions where it raised an alarm (a metric anomaly or drift; None: volume):
    left out of that column's references only, so one column's change does not take a partition
    from the others."""
    out: dict[str | None, set[str]] = {}
    for column, key in con.execute(
            """SELECT column_name, partition_key FROM qa.metric_anomalies WHERE dataset = ? AND is_anomaly
               UNION SELECT column_name, partition_key FROM qa.drift WHERE dataset = ? AND drifted""",
            [dataset, dataset]).fetchall():
        out.setdefault(column, set()).add(key)
    return out


def write_results(con: duckdb.DuckDBPyConnection, result) -> None:
    """Replace the partition's rows in the anomaly tables in one transaction (the stage created
    them when it started)."""
    key = [result.dataset, result.partition_key]
    with transaction(con):
        for table in RESULT_TABLES:
            con.execute(f"DELETE FROM qa.{table} WHERE dataset = ? AND partition_key = ?", key)
        con.execute(
            "INSERT INTO qa.anomaly_runs VALUES (?, ?, ?, now()::TIMESTAMP, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [*key, result.run_id, result.rows_scored, result.rows_flagged, result.anomaly_rate, len(result.rows),
             result.threshold_p, result.threshold_method, result.fitted_on, result.reference_partitions,
             result.reference_rows, json.dumps({"features": result.features, "skipped": result.skipped_columns,
                                                "notes": result.notes}),
             len(result.metric_anomalies), result.drift_reference, len(result.drifted_columns),
             json.dumps(result.settings.to_dict()), result.duration_s, result.partition_alarms])
        inserts = {
            "row_anomalies": [[*key, result.run_id, r["_source_row"], r["source_file"], r["score"], r["p_value"],
                               r["rank"], json.dumps(r["explanation"], default=str)] for r in result.rows],
            "anomaly_causes": [[*key, result.run_id, i, c["level"], (c["columns"] or [None])[0], c["columns"],
                                c["signal"], c["condition"], c["rows"], c["share"],
                                json.dumps(c["examples"], default=str), c["description"]]
                               for i, c in enumerate(result.causes, 1)],
            "metric_anomalies": [[*key, result.run_id, m.column_name, m.metric, m.value, m.expected, m.lower,
                                  m.upper, m.robust_z, m.direction, m.history_size, m.seasonal, m.is_anomaly,
                                  m.reason] for m in result.metrics],
            "drift": [[*key, result.run_id, d.reference or result.drift_reference, d.column_name, d.test, d.statistic,
                       d.p_value, d.adjusted_p, d.psi, d.effect_size, d.effect_measure, d.sample_size, d.reference_size,
                       d.drifted, d.reason, d.reference_spread] for d in result.drift],
            "column_roles": [[*key, result.run_id, r.column, r.role, r.source, r.reason]
                             for r in result.roles.values()],
        }
        for table, rows in inserts.items():
            insert_rows(con, f"qa.{table}", rows)
