"""Backup and restore of the DuckDB warehouse with DuckDB's EXPORT / IMPORT DATABASE.

The export runs under the warehouse's writer lock, so it never sees half a publish; the restore
imports into a new file beside the warehouse and swaps it in under the same lock.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import duckdb

from quality_assets.warehouse import Warehouse, exclusive_lock, quote_ident, quote_literal

MANIFEST = "quality_assets_backup.json"


def export_warehouse(warehouse: Warehouse, target: Path) -> dict:
    """EXPORT DATABASE (Parquet) into an empty or new folder; returns the manifest written there."""
    target = target.resolve()
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} is not empty; back up into a new folder")
    target.mkdir(parents=True, exist_ok=True)
    with warehouse.connect() as con:
        con.execute(f"EXPORT DATABASE {quote_literal(str(target))} (FORMAT parquet)")
        tables = _row_counts(con)
    manifest = {
        "warehouse": str(warehouse.path),
        "exported_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "duckdb": duckdb.__version__,
        "tables": tables,
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def import_warehouse(warehouse: Warehouse, source: Path, force: bool = False) -> dict:
    """Rebuild the warehouse file from an export; refuses to replace an existing one unless forced."""
    source = source.resolve()
    manifest_path = source / MANIFEST
    if not manifest_path.is_file() or not (source / "schema.sql").is_file():
        raise FileNotFoundError(f"{source} is not a warehouse backup (no {MANIFEST} / schema.sql)")
    if warehouse.path.exists() and not force:
        raise FileExistsError(f"{warehouse.path} exists; pass --force to replace it with the backup")
    warehouse.path.parent.mkdir(parents=True, exist_ok=True)
    fresh = warehouse.path.with_name(warehouse.path.name + ".restoring")
    fresh.unlink(missing_ok=True)
    with duckdb.connect(str(fresh)) as con:
        con.execute(f"IMPORT DATABASE {quote_literal(str(source))}")
        counts = _row_counts(con)
    with exclusive_lock(warehouse.lock_path, warehouse.lock_timeout_s):
        wal = warehouse.path.with_name(warehouse.path.name + ".wal")
        wal.unlink(missing_ok=True)
        os.replace(fresh, warehouse.path)
    return {"restored_from": str(source), "tables": counts}


def _row_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = current_database() ORDER BY 1, 2"
    ).fetchall()
    return {
        f"{schema}.{name}": con.execute(f"SELECT count(*) FROM {quote_ident(schema)}.{quote_ident(name)}").fetchone()[0]
        for schema, name in tables
    }
