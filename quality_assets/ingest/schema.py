"""One schema per dataset: a column's type is declared in the contract, or inferred from the
whole first file that holds a value for it, and kept in `qa.dataset_columns`. Later files are
read with those types; a value that does not fit is quarantined with its code, never widening
the column. A new column is inferred from the file that brings it and added.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import duckdb

from quality_assets.contract import Column, Dataset
from quality_assets.ingest.audit import LoadAudit, Staged
from quality_assets.warehouse import insert_rows, quote_ident

WHOLE_FILE = -1  # read_csv's sample_size that sniffs types from every row


def stored_schema(con: duckdb.DuckDBPyConnection, dataset: str) -> dict[str, str]:
    """The dataset's kept column types, in the order they were first seen."""
    return dict(con.execute(
        "SELECT column_name, column_type FROM qa.dataset_columns WHERE dataset = ? ORDER BY ordinal",
        [dataset],
    ).fetchall())


def with_schema(dataset: Dataset, schema: dict[str, str] | None) -> Dataset:
    """The dataset with its kept column types declared, for parsing (the contract's own types win)."""
    if not schema:
        return dataset
    named = {c.name for c in dataset.columns}
    columns = list(dataset.columns)
    for i, column in enumerate(columns):
        if not column.type and column.name in schema:
            columns[i] = dataclasses.replace(column, type=schema[column.name])
    columns += [Column(name, kind) for name, kind in schema.items() if name not in named]
    return dataclasses.replace(dataset, columns=tuple(columns))


def undeclared(dataset: Dataset, targets: list[str]) -> bool:
    """Whether some of these columns have no type yet: the reader must infer them from every row."""
    declared = {c.name for c in dataset.columns if c.type}
    return any(t not in declared for t in targets)


def record_new_columns(con: duckdb.DuckDBPyConnection, table: str, audit: LoadAudit,
                       column_types: dict[str, str], declared: set[str],
                       partitions: list[str] | None = None) -> list[str]:
    """Keep the types of the columns this load typed first (in the same transaction as its rows);
    an undeclared column without a single value keeps no type yet. Returns the columns kept."""
    known = stored_schema(con, audit.dataset)
    new = [c for c in column_types if c != "_source_row" and c not in known]
    if not new:
        return []
    undeclared_new = [c for c in new if c not in declared]
    valued: set[str] = set(new) - set(undeclared_new)
    if undeclared_new:
        counts = con.execute(
            f"SELECT {', '.join(f'count({quote_ident(c)})' for c in undeclared_new)} FROM {table} "
            "WHERE list_contains(?, _partition_key)", [partitions or [audit.partition_key]]
        ).fetchone()
        valued |= {c for c, n in zip(undeclared_new, counts, strict=True) if n}
    kept = [c for c in new if c in valued]
    if not kept:
        return []
    raw_types = dict(con.execute("SELECT column_name, data_type FROM duckdb_columns() "
                                 "WHERE schema_name = 'raw' AND table_name = ?", [audit.dataset]).fetchall())
    now = dt.datetime.now()
    start = len(known)
    insert_rows(con, "qa.dataset_columns",  # a wide file's first load: thousands of columns
                [(audit.dataset, name, raw_types.get(name, column_types[name]), start + i,
                  "declared" if name in declared else "inferred", audit.partition_key, audit.run_id, now)
                 for i, name in enumerate(kept)])
    return kept


def extend_schema(schema: dict[str, str], staged: Staged) -> dict[str, str]:
    """The schema after a staged file, for the next file staged in the same batch (before any is
    published): its columns that are new and hold a value, with their staged types."""
    new = [c for c in staged.column_types if c != "_source_row" and c not in schema]
    if not new or staged.audit.rows_loaded == 0:
        return schema
    with duckdb.connect(str(staged.path), read_only=True) as con:
        counts = con.execute(f"SELECT {', '.join(f'count({quote_ident(c)})' for c in new)} FROM rows").fetchone()
    return {**schema, **{c: staged.column_types[c] for c, n in zip(new, counts, strict=True) if n or c in staged.declared}}
