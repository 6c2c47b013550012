"""Operations on a DuckLake warehouse: give back the space of removed partitions (expire old
snapshots, delete the data files only they used), back the lake up and restore it (the catalog
with pg_dump, the data path as files), and copy an embedded DuckDB warehouse into a lake.

DuckLake never deletes a data file when rows are deleted: older snapshots still see them (time
travel, and readers in the middle of a query). Expiring the snapshots older than a grace period
makes the files only they used unreferenced, and DuckLake's own cleanup deletes them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from quality_assets.lake import LAKE_ALIAS, LAKE_PREFIX
from quality_assets.warehouse import quote_ident, quote_literal

CATALOG_PREFIX = LAKE_PREFIX + "postgres:"
MANIFEST = "quality_assets_lake_backup.json"
CATALOG_DUMP = "catalog.dump"
DATA_COPY = "data"
EMBEDDED = "embedded"  # the alias of the DuckDB file being migrated


def catalog_dsn(spec: str) -> str:
    """The libpq connection string of a `ducklake:postgres:<conninfo>` lake's catalog."""
    spec = spec.strip()
    if not spec.startswith(CATALOG_PREFIX):
        raise ValueError(f"{spec!r}: expected ducklake:postgres:<connection string> (a lake with its catalog in PostgreSQL)")
    return spec[len(CATALOG_PREFIX):].strip()


# -- retention --------------------------------------------------------------------------------


@dataclass
class Reclaimed:
    snapshots: list[int] = field(default_factory=list)  # expired (or, in a dry run, expirable)
    files: list[str] = field(default_factory=list)  # deleted (or deletable) data files


def reclaim_space(con: duckdb.DuckDBPyConnection, keep: dt.timedelta, dry_run: bool = False) -> Reclaimed:
    """Expire the lake's snapshots older than `keep` (never the newest), then delete the data
    files no remaining snapshot uses, and files left by writers that died, older than `keep` (a
    run writing now is younger). A dry run lists both without changing anything."""
    lake = quote_literal(LAKE_ALIAS)
    cutoff = f"now() - INTERVAL {quote_literal(f'{keep.total_seconds()} seconds')}"
    flag = "true" if dry_run else "false"
    snapshots = con.execute(
        f"SELECT snapshot_id FROM ducklake_expire_snapshots({lake}, older_than => {cutoff}, dry_run => {flag})"
    ).fetchall()
    # Files only the expired snapshots used are scheduled for deletion now: nothing younger than
    # `keep` can be reading them. In a dry run nothing was expired yet, so none are scheduled.
    files = con.execute(f"SELECT path FROM ducklake_cleanup_old_files({lake}, cleanup_all => true, dry_run => {flag})").fetchall()
    orphans = con.execute(
        f"SELECT path FROM ducklake_delete_orphaned_files({lake}, older_than => {cutoff}, dry_run => {flag})"
    ).fetchall()
    return Reclaimed(sorted(s for (s,) in snapshots), sorted({p for (p,) in files + orphans}))


# -- backup and restore -----------------------------------------------------------------------


def backup_lake(spec: str, data_path: str, target: Path) -> dict:
    """The catalog (pg_dump, one consistent snapshot of it), then a copy of the data path, into a
    new folder. Runs may go on meanwhile: DuckLake only adds files while they write, so every file
    the dumped catalog names is there when the copy is taken (files written later are copied too
    and simply unused after a restore). Retention must not run meanwhile: it deletes files."""
    target = target.resolve()
    if target.exists() and any(target.iterdir()):
        raise FileExistsError(f"{target} is not empty; back up into a new folder")
    data = _local(data_path)
    target.mkdir(parents=True, exist_ok=True)
    _run(["pg_dump", "--format=custom", "--no-owner", "--file", str(target / CATALOG_DUMP), catalog_dsn(spec)])
    shutil.copytree(data, target / DATA_COPY) if data.exists() else (target / DATA_COPY).mkdir()
    manifest = {
        "lake": _without_password(spec),
        "data_path": str(data),
        "backed_up_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "data_files": sum(1 for p in (target / DATA_COPY).rglob("*") if p.is_file()),
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=2))
    return manifest


def restore_lake(source: Path, spec: str, data_path: str, force: bool = False) -> dict:
    """Put the catalog back (pg_restore --clean into the lake's database) and the data path (the
    copy swapped in; what was there is kept beside it). Stop every process using the lake first.
    Refuses to replace a data path holding files unless forced."""
    source = source.resolve()
    if not (source / MANIFEST).is_file() or not (source / CATALOG_DUMP).is_file():
        raise FileNotFoundError(f"{source} is not a lake backup (no {MANIFEST} / {CATALOG_DUMP})")
    data = _local(data_path)
    if data.exists() and any(data.iterdir()) and not force:
        raise FileExistsError(f"the lake's data path {data} holds files; pass --force to replace it with the backup")
    _run(["pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction", "--dbname", catalog_dsn(spec),
          str(source / CATALOG_DUMP)])
    kept = None
    if data.exists():
        kept = data.with_name(f"{data.name}.before-restore-{dt.datetime.now():%Y%m%d%H%M%S}")
        os.replace(data, kept)
    shutil.copytree(source / DATA_COPY, data)
    return {"restored_from": str(source), "data_path": str(data), "previous_data_kept_at": str(kept) if kept else None}


def _local(data_path: str) -> Path:
    if "://" in str(data_path):
        raise ValueError(f"the data path {data_path} is in object storage: back it up with the store's own "
                         "versioning or copy tool (OPERATIONS.md), and the catalog with pg_dump")
    return Path(data_path).expanduser().resolve()


def _without_password(spec: str) -> str:
    return " ".join("password=***" if part.startswith("password=") else part for part in spec.split(" "))


def _run(argv: list[str]) -> None:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip().splitlines()
        raise RuntimeError(f"{argv[0]} failed: {detail[-1] if detail else f'exit status {result.returncode}'}")


# -- migration --------------------------------------------------------------------------------


def migrate_into_lake(con: duckdb.DuckDBPyConnection, source: Path) -> dict[str, int]:
    """Copy every table of an embedded warehouse file into the lake `con` has attached, in one
    transaction: a table the lake lacks is created with the file's columns, an empty one is
    filled by column name. Refuses (changing nothing) when a table already holds rows in the
    lake. Returns the rows copied per table."""
    con.execute(f"ATTACH {quote_literal(str(source))} AS {EMBEDDED} (READ_ONLY)")
    try:
        tables = con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ? ORDER BY 1, 2", [EMBEDDED]
        ).fetchall()
        existing = set(con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ?", [LAKE_ALIAS]).fetchall())
        occupied = [f"{s}.{t}" for s, t in tables if (s, t) in existing and _count(con, LAKE_ALIAS, s, t)]
        if occupied:
            raise FileExistsError(f"the lake already holds rows in {', '.join(occupied)}: migrate into an empty lake")
        copied: dict[str, int] = {}
        con.execute("BEGIN TRANSACTION")
        try:
            for schema, table in tables:
                src, dst = _name(EMBEDDED, schema, table), _name(LAKE_ALIAS, schema, table)
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {LAKE_ALIAS}.{quote_ident(schema)}")
                if (schema, table) in existing:
                    con.execute(f"INSERT INTO {dst} BY NAME SELECT * FROM {src}")
                else:
                    con.execute(f"CREATE TABLE {dst} AS SELECT * FROM {src}")
                copied[f"{schema}.{table}"] = _count(con, EMBEDDED, schema, table)
            # views (published.*: raw's published partitions and the held rows) are made again
            # in the lake, the connection's default catalog, from their own definitions
            for schema, sql in con.execute(
                    "SELECT schema_name, sql FROM duckdb_views() WHERE database_name = ? AND NOT internal "
                    "ORDER BY 1, view_name", [EMBEDDED]).fetchall():
                con.execute(f"CREATE SCHEMA IF NOT EXISTS {LAKE_ALIAS}.{quote_ident(schema)}")
                con.execute(sql.replace("CREATE VIEW", "CREATE OR REPLACE VIEW", 1))
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return copied
    finally:
        con.execute(f"DETACH {EMBEDDED}")


def table_counts(con: duckdb.DuckDBPyConnection, database: str) -> dict[str, int]:
    tables = con.execute(
        "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = ? ORDER BY 1, 2", [database]
    ).fetchall()
    return {f"{s}.{t}": _count(con, database, s, t) for s, t in tables}


def _name(database: str, schema: str, table: str) -> str:
    return f"{quote_ident(database)}.{quote_ident(schema)}.{quote_ident(table)}"


def _count(con: duckdb.DuckDBPyConnection, database: str, schema: str, table: str) -> int:
    return con.execute(f"SELECT count(*) FROM {_name(database, schema, table)}").fetchone()[0]
