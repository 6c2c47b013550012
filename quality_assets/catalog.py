"""Reads of what the warehouse holds: a table's columns and types and a partition's latest load
(`qa.files`). One place for the queries the stages share.

Both backends answer them: the embedded file, and a DuckLake attached as the connection's default
catalog (`current_database()`), whose catalog also lists the in-memory and the PostgreSQL metadata
catalogs beside it. The catalog functions (`duckdb_columns()`, `duckdb_tables()`)
give what `information_schema` gives, names and types alike, in a third of the time (1 ms against
3): a small file's chain asks them a dozen times while it holds the writer lock."""

from __future__ import annotations

import duckdb


def table_types(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> dict[str, str]:
    """Column name -> DuckDB type, in table order; empty when the table does not exist."""
    return dict(con.execute(
        "SELECT column_name, data_type FROM duckdb_columns() WHERE database_name = current_database() "
        "AND schema_name = ? AND table_name = ? ORDER BY column_index", [schema, table]).fetchall())


def has_table(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """Whether the schema holds a table (not a view) of that name."""
    return bool(con.execute(
        "SELECT 1 FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = ? "
        "AND table_name = ?", [schema, table]).fetchone())


def schema_tables(con: duckdb.DuckDBPyConnection, schema: str) -> set[str]:
    """The names of a schema's tables (not views)."""
    return {row[0] for row in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() AND schema_name = ?",
        [schema]).fetchall()}


def latest_load_files(con: duckdb.DuckDBPyConnection, dataset: str, partition_key: str) -> list[dict]:
    """The `qa.files` rows of the last run that changed the partition (a run that found every file
    unchanged does not count), oldest first."""
    cursor = con.execute(
        """SELECT * FROM qa.files
           WHERE dataset = ? AND partition_key = ? AND status <> 'unchanged'
             AND run_id = (SELECT run_id FROM qa.files WHERE dataset = ? AND partition_key = ?
                           AND status <> 'unchanged' ORDER BY finished DESC LIMIT 1)
           ORDER BY finished""",
        [dataset, partition_key, dataset, partition_key],
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def latest_load(con: duckdb.DuckDBPyConnection, dataset: str, partition_key: str) -> dict:
    """The raw load the partition holds now: run id, when, its files' columns, statuses and newest
    modification time; empty when nothing was loaded."""
    rows = latest_load_files(con, dataset, partition_key)
    if not rows:
        return {}
    columns: list[str] = []
    for row in rows:
        for name in row["columns"] or []:
            if name not in columns:
                columns.append(name)
    finished = [r["finished"] for r in rows if r["finished"]]
    return {
        "run_id": rows[-1]["run_id"], "finished": max(finished) if finished else None,
        "columns": columns, "statuses": [r["status"] for r in rows],
        "mtime": max((r["mtime"] for r in rows if r["mtime"] is not None), default=None),
    }
