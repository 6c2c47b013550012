"""Profiles kept as history in `qa.column_profiles` (one row per dataset, partition, run, column
and metric; every run kept), read back as one partition's profile or a metric's series."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import duckdb

from quality_assets.profile.kernels import finite
from quality_assets.profile.model import (
    COLUMN_DETAILS,
    COLUMN_METRICS,
    DATASET_METRICS,
    TableProfile,
)
from quality_assets.warehouse import transaction

PROFILE_TABLES_DDL = [
    "CREATE SCHEMA IF NOT EXISTS qa",
    """CREATE TABLE IF NOT EXISTS qa.column_profiles (
        dataset VARCHAR NOT NULL,
        partition_key VARCHAR NOT NULL,
        run_id VARCHAR NOT NULL,
        profiled_at TIMESTAMP NOT NULL,
        column_name VARCHAR,
        column_index INTEGER,
        metric VARCHAR NOT NULL,
        value DOUBLE,
        detail VARCHAR
    )""",
]


def ensure_profile_tables(con: duckdb.DuckDBPyConnection) -> None:
    for ddl in PROFILE_TABLES_DDL:
        con.execute(ddl)


def _json(value: Any) -> str:
    return json.dumps(value, default=_json_default, allow_nan=False, ensure_ascii=False)


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    try:  # numpy / Decimal scalars
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _profile_rows(profile: TableProfile | dict) -> list[tuple]:
    data = profile.to_dict() if isinstance(profile, TableProfile) else profile
    rows: list[tuple] = []
    for metric in DATASET_METRICS:
        rows.append((None, None, metric, finite(data["metrics"].get(metric)), None))
    rows.append((None, None, "correlations", None, _json(data.get("correlations") or {})))
    rows.append((None, None, "alerts", None, _json(data.get("alerts") or [])))
    for col in data["columns"]:
        for metric in COLUMN_METRICS:
            rows.append((col["name"], col["index"], metric, finite(col["metrics"].get(metric)), None))
        for key in COLUMN_DETAILS:
            if col.get(key) is not None:
                rows.append((col["name"], col["index"], key, None, _json(col[key])))
    return rows


def write_profile(
    con: duckdb.DuckDBPyConnection,
    dataset_name: str,
    partition_key: str,
    run_id: str,
    profile: TableProfile | dict,
    profiled_at: dt.datetime | None = None,
) -> int:
    """Append one run's profile in one transaction (a rerun of the same run id replaces it)."""
    import pyarrow as pa  # lazy: only writing a profile needs Arrow, reading one does not

    ensure_profile_tables(con)
    when = profiled_at or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    rows = _profile_rows(profile)
    names, indexes, metrics, values, details = (list(x) for x in zip(*rows, strict=True))
    batch = pa.table({
        "column_name": pa.array(names, pa.string()),
        "column_index": pa.array(indexes, pa.int32()),
        "metric": pa.array(metrics, pa.string()),
        "value": pa.array(values, pa.float64()),
        "detail": pa.array(details, pa.string()),
    })
    con.register("_profile_batch", batch)
    try:
        with transaction(con):
            con.execute(
                "DELETE FROM qa.column_profiles WHERE dataset = ? AND partition_key = ? AND run_id = ?",
                [dataset_name, partition_key, run_id],
            )
            con.execute(
                """INSERT INTO qa.column_profiles
                   SELECT ?, ?, ?, ?::TIMESTAMP, column_name, column_index, metric, value, detail
                   FROM _profile_batch""",
                [dataset_name, partition_key, run_id, when],
            )
    finally:
        con.unregister("_profile_batch")
    return len(rows)


def read_profile(
    con: duckdb.DuckDBPyConnection, dataset_name: str, partition_key: str, run_id: str | None = None
) -> dict | None:
    """One stored profile (the latest run of the partition when run_id is None), as to_dict()."""
    ensure_profile_tables(con)
    if run_id is None:
        found = con.execute(
            """SELECT run_id FROM qa.column_profiles
               WHERE dataset = ? AND partition_key = ? AND column_name IS NULL AND metric = 'row_count'
               ORDER BY profiled_at DESC, run_id DESC LIMIT 1""",
            [dataset_name, partition_key],
        ).fetchone()
        if found is None:
            return None
        run_id = found[0]
    rows = con.execute(
        """SELECT profiled_at, column_name, column_index, metric, value, detail FROM qa.column_profiles
           WHERE dataset = ? AND partition_key = ? AND run_id = ?
           ORDER BY column_index NULLS FIRST, metric""",
        [dataset_name, partition_key, run_id],
    ).fetchall()
    if not rows:
        return None
    out: dict[str, Any] = {"dataset": dataset_name, "partition_key": partition_key, "run_id": run_id,
                           "profiled_at": rows[0][0], "metrics": {}, "correlations": {}, "alerts": [],
                           "columns": []}
    columns: dict[int, dict] = {}
    for _, name, index, metric, value, detail in rows:
        if name is None:
            if detail is not None:
                out[metric] = json.loads(detail)
            else:
                out["metrics"][metric] = value
            continue
        col = columns.get(index)
        if col is None:
            col = columns[index] = {"name": name, "index": index, "metrics": {},
                                    **{k: None for k in COLUMN_DETAILS}}
        if detail is not None:
            col[metric] = json.loads(detail)
        else:
            col["metrics"][metric] = value
    out["columns"] = [columns[i] for i in sorted(columns)]
    return out


def metric_history(
    con: duckdb.DuckDBPyConnection,
    dataset_name: str,
    metric: str,
    column_name: str | None = None,
    exclude_partition: str | None = None,
    limit: int | None = None,
) -> list[tuple[str, str, dt.datetime, float | None]]:
    """(partition_key, run_id, profiled_at, value) of a metric, latest run per partition, oldest first.

    column_name None reads the dataset-level metric. `limit` keeps the most recent partitions.
    """
    ensure_profile_tables(con)
    column_filter = "column_name IS NULL" if column_name is None else "column_name = ?"
    params: list[Any] = [dataset_name, dataset_name, metric]
    if column_name is not None:
        params.append(column_name)
    exclude = ""
    if exclude_partition is not None:
        exclude = "AND r.partition_key <> ?"
        params.append(exclude_partition)
    limit_sql = ""
    if limit is not None:
        limit_sql = "LIMIT ?"
        params.append(int(limit))
    rows = con.execute(
        f"""WITH latest AS (
                SELECT partition_key, run_id, profiled_at FROM qa.column_profiles
                WHERE dataset = ? AND column_name IS NULL AND metric = 'row_count'
                QUALIFY row_number() OVER (PARTITION BY partition_key
                                           ORDER BY profiled_at DESC, run_id DESC) = 1)
            SELECT r.partition_key, r.run_id, r.profiled_at, r.value
            FROM qa.column_profiles r JOIN latest l
              ON r.partition_key = l.partition_key AND r.run_id = l.run_id
            WHERE r.dataset = ? AND r.metric = ? AND {column_filter.replace('column_name', 'r.column_name')}
              {exclude}
            ORDER BY r.profiled_at DESC, r.partition_key DESC {limit_sql}""",
        params,
    ).fetchall()
    return [(p, r, t, v) for p, r, t, v in reversed(rows)]



# The statistics

