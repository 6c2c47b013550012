"""Retention: remove partitions older than a cut-off from the warehouse and the output folder.

A partition is old when its last load finished before the cut-off (file partitions) or when its
day is before the cut-off's day (daily partitions). Removing it deletes its rows from
`raw."<dataset>"` and from every `qa` table that has `dataset` and `partition_key` columns (so
tables added by later stages are covered without changes here), in one transaction per dataset,
and its folder `<QA_OUTPUT_DIR>/<dataset>/<partition>/`. The landed source files stay unless
asked for. Each removed file leaves a row in `qa.retention` (its sha256, size and mtime), so
`quality-assets run` does not load an unchanged old file again. The Dagster side (dynamic
partition keys) is removed by the caller through the instance.
"""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from quality_assets.catalog import schema_tables
from quality_assets.contract import Contract, Dataset
from quality_assets.daily import files_by_day
from quality_assets.published_rows import hold_published
from quality_assets.report.outputs import OutputPathError, partition_output_dir
from quality_assets.vocabulary import parse_duration
from quality_assets.warehouse import quote_ident, transaction

RETENTION_DDL = """CREATE TABLE IF NOT EXISTS qa.retention (
    dataset VARCHAR NOT NULL,
    partition_key VARCHAR NOT NULL,
    source_path VARCHAR,
    sha256 VARCHAR,
    bytes BIGINT,
    mtime TIMESTAMP,
    contract_fingerprint VARCHAR,
    last_load TIMESTAMP,
    rows_removed BIGINT,
    removed_at TIMESTAMP NOT NULL
)"""
KEEP_TABLES = {"retention", "scorecard", "dataset_columns"}  # removals, the daily summary, and each dataset's kept schema


def parse_age(text: str) -> dt.timedelta:
    """'30d', '12h', '2w' -> timedelta; ValueError with the accepted forms otherwise."""
    seconds = parse_duration(text)
    if seconds is None or seconds <= 0:
        raise ValueError(f"--older-than {text!r}: expected a duration such as 30d, 12h, 2w or 90m")
    return dt.timedelta(seconds=seconds)


@dataclass
class OldPartition:
    dataset: str
    partition_key: str
    partitioning: str
    last_load: dt.datetime | None
    landing_files: list[Path] = field(default_factory=list)


@dataclass
class Removal:
    """What was (or, in a dry run, would be) removed."""

    partitions: list[OldPartition] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)  # table -> rows
    output_dirs: list[Path] = field(default_factory=list)
    landing_files: list[Path] = field(default_factory=list)
    dagster_partitions: int = 0
    dagster_wiped: int = 0
    dry_run: bool = False

    def keys(self, dataset: str) -> list[str]:
        return [p.partition_key for p in self.partitions if p.dataset == dataset]


def find_old_partitions(
    con: duckdb.DuckDBPyConnection,
    contract: Contract,
    cutoff: dt.datetime,
    dagster_keys: dict[str, set[str]] | None = None,
    only: str | None = None,
) -> list[OldPartition]:
    """Partitions whose last load finished before `cutoff` (daily: whose day is before it).

    `dagster_keys` are the dynamic partition keys Dagster knows; a key with no load in the
    warehouse counts as old when its landed file is older than the cut-off or is gone.
    """
    dagster_keys = dagster_keys or {}
    found: list[OldPartition] = []
    raw_tables = schema_tables(con, "raw")
    for ds in contract.datasets:
        if only and ds.name != only:
            continue
        last_loads = dict(con.execute(
            "SELECT partition_key, max(finished) FROM qa.files WHERE dataset = ? GROUP BY 1", [ds.name]
        ).fetchall())
        if ds.name in raw_tables:  # rows whose audit is gone still count
            for (key,) in con.execute(
                f"SELECT DISTINCT _partition_key FROM raw.{quote_ident(ds.name)}").fetchall():
                last_loads.setdefault(key, None)
        if ds.partitioning == "daily":
            cutoff_day = cutoff.date().isoformat()
            for key in sorted(last_loads):
                if key < cutoff_day:
                    found.append(OldPartition(ds.name, key, "daily", last_loads[key], _day_files(ds, key)))
            continue
        for key in sorted(set(last_loads) | dagster_keys.get(ds.name, set())):
            last = last_loads.get(key)
            path = ds.landing_dir / key
            if last is None:
                try:
                    mtime = dt.datetime.fromtimestamp(path.stat().st_mtime)
                except OSError:
                    mtime = None  # the file is gone: an orphan key
                if mtime is not None and mtime >= cutoff:
                    continue
            elif last >= cutoff:
                continue
            found.append(OldPartition(ds.name, key, "file", last, [path] if path.is_file() else []))
    return found


def _day_files(ds: Dataset, day: str) -> list[Path]:
    if ds.daily is None or not ds.daily.file_pattern:
        return []  # by column: a file may hold rows of many days, it is never a day's own file
    return [f.path for f in files_by_day(ds).get(day, [])]


def partition_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """qa tables keyed by dataset and partition (those retention removes rows from)."""
    rows = con.execute(
        "SELECT table_name FROM information_schema.columns WHERE table_schema = 'qa' "
        "AND column_name IN ('dataset', 'partition_key') GROUP BY 1 HAVING count(*) = 2 ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows if r[0] not in KEEP_TABLES]


def remove_partitions(
    con: duckdb.DuckDBPyConnection,
    partitions: list[OldPartition],
    output_dir: Path,
    dry_run: bool = False,
    delete_landing: bool = False,
) -> Removal:
    """Delete the partitions' rows (one transaction per dataset), output folders and, if asked, files."""
    removal = Removal(partitions=list(partitions), dry_run=dry_run)
    if not dry_run:
        con.execute(RETENTION_DDL)
    raw_tables = schema_tables(con, "raw")
    qa_tables = partition_tables(con)
    by_dataset: dict[str, list[OldPartition]] = {}
    for part in partitions:
        by_dataset.setdefault(part.dataset, []).append(part)
    for dataset, parts in by_dataset.items():
        keys = [p.partition_key for p in parts]
        with transaction(con, commit=not dry_run):
            if not dry_run:
                _record_tombstones(con, dataset, parts)
            if dataset in raw_tables:
                if not dry_run:  # consumers keep what was published (held rows, not raw's)
                    hold_published(con, dataset, keys)
                _count_or_delete(con, removal, f"raw.{quote_ident(dataset)}", "_partition_key = ANY(?)", [keys], dry_run)
            for table in qa_tables:
                _count_or_delete(con, removal, f"qa.{quote_ident(table)}",
                                 "dataset = ? AND partition_key = ANY(?)", [dataset, keys], dry_run)
    for part in partitions:
        try:
            folder = partition_output_dir(output_dir, part.dataset, part.partition_key)
        except OutputPathError:
            folder = None
        if folder is not None and folder.is_dir():
            removal.output_dirs.append(folder)
            if not dry_run:
                shutil.rmtree(folder)
        if delete_landing:
            for path in part.landing_files:
                removal.landing_files.append(path)
                if not dry_run:
                    path.unlink(missing_ok=True)
    return removal


def _record_tombstones(con, dataset: str, parts: list[OldPartition]) -> None:
    """Remember each removed file's identity (from its last load) before its audit rows go."""
    rows_removed = {p.partition_key: 0 for p in parts}
    con.execute(
        """INSERT INTO qa.retention
           SELECT dataset, partition_key, source_path, sha256, bytes, mtime, contract_fingerprint, finished,
                  rows_loaded + rows_quarantined, now()::TIMESTAMP
           FROM qa.files WHERE dataset = ? AND partition_key = ANY(?) AND status <> 'unchanged'
           QUALIFY row_number() OVER (PARTITION BY partition_key, source_path ORDER BY finished DESC) = 1""",
        [dataset, list(rows_removed)],
    )


def _count_or_delete(con, removal: Removal, table: str, where: str, params: list, dry_run: bool) -> None:
    count = con.execute(f"SELECT count(*) FROM {table} WHERE {where}", params).fetchone()[0]
    if count and not dry_run:
        con.execute(f"DELETE FROM {table} WHERE {where}", params)
    removal.rows[table] = removal.rows.get(table, 0) + count


def removed_versions(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    """(dataset, partition_key, source_path, bytes, mtime µs, fingerprint) of files removed by retention."""
    exists = con.execute(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = 'qa' AND table_name = 'retention'"
    ).fetchone()
    if not exists:
        return []
    return con.execute(
        "SELECT dataset, partition_key, source_path, bytes, epoch_us(mtime), contract_fingerprint FROM qa.retention "
        "QUALIFY row_number() OVER (PARTITION BY dataset, partition_key, source_path ORDER BY removed_at DESC) = 1"
    ).fetchall()
