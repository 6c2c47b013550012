"""Publishing: the partition replaced in `raw."<dataset>"`, `qa.quarantine` and `qa.files` in one
transaction, the raw table created or evolved to fit.
"""

from __future__ import annotations

import duckdb

from quality_assets.ingest.audit import META_COLUMNS, LoadAudit, Staged
from quality_assets.ingest.schema import record_new_columns
from quality_assets.published_rows import hold_published
from quality_assets.warehouse import quote_ident, quote_literal, transaction

WIDENINGS = {
    frozenset({"BIGINT", "DOUBLE"}): "DOUBLE",
    frozenset({"INTEGER", "BIGINT"}): "BIGINT",
    frozenset({"INTEGER", "DOUBLE"}): "DOUBLE",
    frozenset({"DATE", "TIMESTAMP"}): "TIMESTAMP",
}


def raw_table(dataset: str) -> str:
    return f"raw.{quote_ident(dataset)}"


def publish_stage(con: duckdb.DuckDBPyConnection, staged: Staged) -> LoadAudit:
    """Replace the partition in raw, qa.quarantine and qa.files in one transaction."""
    audit = staged.audit
    table = raw_table(audit.dataset)
    con.execute(f"ATTACH {quote_literal(str(staged.path))} AS stage (READ_ONLY)")
    try:
        with transaction(con):
            changes = evolve_raw_table(con, table, staged)
            hold_published(con, audit.dataset, [audit.partition_key])
            con.execute(f"DELETE FROM {table} WHERE _partition_key = ?", [audit.partition_key])
            columns = [c for c in staged.column_types if c != "_source_row"]
            if columns:
                names = ", ".join(quote_ident(c) for c in columns)
                values = ", ".join(
                    f"CAST(trim({quote_ident(c)}) AS {staged.column_types[c]})" if c in staged.stored_types else quote_ident(c)
                    for c in columns
                )
                # Staged rows are in file order already: no ORDER BY (a sort of every row).
                con.execute(
                    f"INSERT INTO {table} (_partition_key, _source_row, _run_id, {names}) "
                    f"SELECT ?, {staged.source_row_sql}, ?, {values} FROM stage.rows",
                    [audit.partition_key, audit.run_id],
                )
            con.execute("DELETE FROM qa.quarantine WHERE dataset = ? AND partition_key = ?",
                        [audit.dataset, audit.partition_key])
            con.execute(
                "INSERT INTO qa.quarantine SELECT ?, ?, ?, * FROM stage.quarantine ORDER BY source_row",
                [audit.dataset, audit.partition_key, audit.run_id],
            )
            record_new_columns(con, table, audit, staged.column_types, staged.declared)
            finish_publish(con, audit, changes)
    finally:
        con.execute("DETACH stage")
    audit.column_types = {c: t for c, t in staged.column_types.items() if c != "_source_row"}
    return audit


def finish_publish(con, audit: LoadAudit, changes: list[str]) -> None:
    """Flag a duplicate of another partition's content, note schema changes, write the audit row."""
    if audit.sha256 and audit.status != "rejected":
        dup = con.execute(
            "SELECT partition_key FROM qa.files WHERE dataset = ? AND sha256 = ? "
            "AND partition_key <> ? AND status NOT IN ('rejected', 'unchanged') "
            "ORDER BY finished LIMIT 1",
            [audit.dataset, audit.sha256, audit.partition_key],
        ).fetchone()
        if dup:
            audit.duplicate_of = dup[0]
            audit.message += f"; same content as partition {dup[0]!r}"
    if changes:
        audit.message += "; schema: " + ", ".join(changes)
    insert_audit(con, audit)


def insert_audit(con: duckdb.DuckDBPyConnection, audit: LoadAudit) -> None:
    placeholders = ", ".join("?" for _ in LoadAudit.AUDIT_COLUMNS)
    con.execute(f"INSERT INTO qa.files VALUES ({placeholders})", audit.as_row())


def evolve_raw_table(con, table: str, staged: Staged) -> list[str]:
    """Create the raw table or add and widen columns so the staged rows fit; returns the changes."""
    return evolve_columns(con, table, staged.column_types)


def evolve_columns(con, table: str, column_types: dict[str, str]) -> list[str]:
    """Create the raw table or add and widen columns so rows of these types fit; returns the changes."""
    # All columns in the CREATE: one ALTER per column costs seconds on a file of 2,000 columns.
    columns = "".join(f", {quote_ident(n)} {t}" for n, t in column_types.items() if n != "_source_row")
    con.execute(f"CREATE TABLE IF NOT EXISTS {table} "
                f"(_partition_key VARCHAR NOT NULL, _source_row BIGINT, _run_id VARCHAR{columns})")
    existing = {row[0]: row[1] for row in con.execute(f"DESCRIBE {table}").fetchall()}
    changes = []
    for name, staged_type in column_types.items():
        if name == "_source_row":
            continue
        current = existing.get(name)
        if current is None:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {quote_ident(name)} {staged_type}")
            if len(existing) > len(META_COLUMNS):
                changes.append(f"added {name} {staged_type}")
        elif current != staged_type:
            # A column that holds no value yet (all NULL so far) takes the type; one with values
            # changes only when the contract changes its declared type.
            empty = con.execute(f"SELECT count({quote_ident(name)}) = 0 FROM {table}").fetchone()[0]
            wider = staged_type if empty else WIDENINGS.get(frozenset({current, staged_type}), "VARCHAR")
            if wider != current:
                con.execute(f"ALTER TABLE {table} ALTER COLUMN {quote_ident(name)} TYPE {wider}")
                changes.append(f"{name} {current} -> {wider}")
    return changes
