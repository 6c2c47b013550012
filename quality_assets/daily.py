"""Daily partitions: which day a landed file or a row belongs to, and loading whole days.

A `partitioning: daily` dataset has one partition per day (`YYYY-MM-DD`). The day comes either
from the file name (`daily.file_pattern`: every file whose name carries that date belongs to the
day) or from a date/timestamp column (`daily.column`: every landed file is read and its rows are
split by day). Loading a set of days stages every file involved once, outside the warehouse
lock, then replaces all those days in `raw."<dataset>"`, `qa.quarantine` and `qa.files` in one
transaction, so a day is never half-written and a range backfill is all-or-nothing.
"""

from __future__ import annotations

import datetime as dt
import re
import shutil
import tempfile
import zoneinfo
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from quality_assets.catalog import latest_load_files
from quality_assets.contract import Dataset
from quality_assets.ingest import (
    QUARANTINE_LINE_CAP,
    LoadAudit,
    Staged,
    evolve_raw_table,
    extend_schema,
    insert_audit,
    raw_table,
    record_new_columns,
    sha256_file,
    stage_file,
    stored_schema,
)
from quality_assets.landing import LandedFile, list_landed
from quality_assets.warehouse import Warehouse, quote_ident, quote_literal, transaction

SOURCE_FILE_COLUMN = "_source_file"
E_PARTITION_DATE = "E_PARTITION_DATE"
PARTITION_DATE_MESSAGE = "no valid day in the partition column"


def today(dataset: Dataset, now: dt.datetime | None = None) -> dt.date:
    """The current day in the dataset's time zone."""
    zone = zoneinfo.ZoneInfo(dataset.daily.timezone)
    now = now or dt.datetime.now(dt.timezone.utc)
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.timezone.utc)
    return now.astimezone(zone).date()


def is_partition_day(dataset: Dataset, day: str, now: dt.datetime | None = None) -> bool:
    """A day that exists as a partition: from `daily.start` up to yesterday (a day closes at midnight)."""
    try:
        value = dt.date.fromisoformat(day)
    except ValueError:
        return False
    return dt.date.fromisoformat(dataset.daily.start) <= value < today(dataset, now)


def file_day(dataset: Dataset, relative: str) -> str | None:
    """The day a file name carries (`daily.file_pattern`), as YYYY-MM-DD; None when it carries none.

    The pattern is searched in the path relative to the landing folder. Its group `date` (or its
    first group) holds the date, parsed with `daily.date_format` (default `%Y%m%d` for digits
    only, else `%Y-%m-%d`); groups `year`, `month`, `day` may be used instead.
    """
    spec = dataset.daily
    if spec is None or not spec.file_pattern:
        return None
    match = re.search(spec.file_pattern, relative)
    if not match:
        return None
    groups = match.groupdict()
    try:
        if {"year", "month", "day"} <= set(groups):
            return dt.date(int(groups["year"]), int(groups["month"]), int(groups["day"])).isoformat()
        text = groups.get("date") or match.group(1)
        fmt = spec.date_format or ("%Y%m%d" if text.isdigit() else "%Y-%m-%d")
        return dt.datetime.strptime(text, fmt).date().isoformat()
    except (TypeError, ValueError, IndexError):
        return None


def files_by_day(dataset: Dataset) -> dict[str, list[LandedFile]]:
    """Landed files grouped by the day in their name (file_pattern mode); files without one are left out."""
    days: dict[str, list[LandedFile]] = defaultdict(list)
    files, _ = list_landed(dataset)
    for landed in files:
        day = file_day(dataset, landed.key)
        if day is not None:
            days[day].append(landed)
    return dict(days)


def day_range(start: str, end: str) -> list[str]:
    """Every day from start to end inclusive."""
    first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


# ---------------------------------------------------------------------------------------------
# Loading days


@dataclass
class DayLoad:
    """What loading one day did: the audits of its files and their totals."""

    day: str
    status: str  # loaded | loaded_with_errors | unchanged | empty | rejected | missing
    audits: list[LoadAudit] = field(default_factory=list)
    message: str = ""

    @property
    def rows_read(self) -> int:
        return sum(a.rows_read for a in self.audits)

    @property
    def rows_loaded(self) -> int:
        return sum(a.rows_loaded for a in self.audits)

    @property
    def rows_quarantined(self) -> int:
        return sum(a.rows_quarantined for a in self.audits)

    @property
    def error_codes(self) -> dict[str, int]:
        codes: dict[str, int] = defaultdict(int)
        for audit in self.audits:
            for code, count in (audit.error_codes or {}).items():
                codes[code] += count
        return dict(codes)

    @property
    def passed(self) -> bool:
        return self.status in ("loaded", "unchanged") and self.rows_quarantined == 0


def load_days(
    warehouse: Warehouse,
    dataset: Dataset,
    days: list[str],
    run_id: str,
    force: bool = False,
) -> list[DayLoad]:
    """Load the given days of a daily dataset; every changed day is replaced in one transaction."""
    spec = dataset.daily
    if spec is None:
        raise ValueError(f"dataset {dataset.name!r} is not partitioned daily")
    days = sorted(set(days))
    workroot = warehouse.work_dir / ".staging"
    workroot.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="days-", dir=workroot))
    try:
        if spec.column:
            return _load_by_column(warehouse, dataset, days, run_id, workdir)
        return _load_by_file_name(warehouse, dataset, days, run_id, workdir, force)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _load_by_file_name(warehouse: Warehouse, dataset: Dataset, days: list[str], run_id: str,
                       workdir: Path, force: bool) -> list[DayLoad]:
    by_day = files_by_day(dataset)
    results: dict[str, DayLoad] = {}
    to_stage: dict[str, list[LandedFile]] = {}
    with warehouse.connect() as con:
        previous = {day: _previous_versions(con, dataset.name, day) for day in days} if not force else {}
        schema = stored_schema(con, dataset.name)
    for day in days:
        files = by_day.get(day, [])
        if not files:
            results[day] = DayLoad(day, "missing", message=f"no file for {day} in {dataset.landing_dir}")
            continue
        current = {str(f.path): sha256_file(f.path) for f in files}
        before = previous.get(day)
        if before and before["files"] == current and before["fingerprint"] == dataset.fingerprint():
            results[day] = _unchanged(dataset, day, run_id, before, files)
            continue
        to_stage[day] = files
    staged: dict[str, list[tuple[str, Staged]]] = {}
    for n, (day, files) in enumerate(to_stage.items()):
        staged[day] = []
        for i, f in enumerate(files):
            one = stage_file(warehouse, f.path, dataset, day, run_id, workdir / f"{n}-{i}", schema)
            schema = extend_schema(schema, one)  # the first file types a column for the whole batch
            staged[day].append((f.key, one))
    with warehouse.connect() as con:
        for load in results.values():
            if load.status == "unchanged":
                for audit in load.audits:
                    insert_audit(con, audit)
        if staged:
            published = _publish(con, dataset, staged, run_id)
            results.update(published)
    return [results[day] for day in days]


def _previous_versions(con: duckdb.DuckDBPyConnection, dataset: str, day: str) -> dict | None:
    """The files of the last load that changed this day: {source_path: sha256}, fingerprint, audits."""
    rows = latest_load_files(con, dataset, day)
    if not rows or any(r["status"] == "rejected" for r in rows):
        return None
    fingerprints = {r["contract_fingerprint"] for r in rows}
    return {
        "files": {r["source_path"]: r["sha256"] for r in rows},
        "fingerprint": fingerprints.pop() if len(fingerprints) == 1 else None,
        "rows": {r["source_path"]: r for r in rows},
    }


def _unchanged(dataset: Dataset, day: str, run_id: str, before: dict, files: list[LandedFile]) -> DayLoad:
    now = dt.datetime.now()
    audits = []
    for f in files:
        row = before["rows"][str(f.path)]
        audits.append(LoadAudit(
            dataset=dataset.name, partition_key=day, run_id=run_id, source_path=str(f.path),
            status="unchanged", bytes=f.size, sha256=row["sha256"], format=row["format"],
            rows_read=row["rows_read"], rows_loaded=row["rows_loaded"],
            rows_quarantined=row["rows_quarantined"], columns=list(row["columns"] or []),
            error_codes=dict(row["error_codes"] or {}), contract_fingerprint=dataset.fingerprint(),
            message=f"identical content already loaded by run {row['run_id']}; nothing to do",
            started=now, finished=now,
        ))
    runs = sorted({before["rows"][str(f.path)]["run_id"] for f in files})
    return DayLoad(day, "unchanged", audits, f"{len(files)} file(s) unchanged since run {', '.join(runs)}; nothing to do")


def _load_by_column(warehouse: Warehouse, dataset: Dataset, days: list[str], run_id: str,
                    workdir: Path) -> list[DayLoad]:
    """Stage every landed file once; publish each day's rows (by the partition column)."""
    files, _ = list_landed(dataset)
    with warehouse.connect() as con:
        schema = stored_schema(con, dataset.name)
    zone = zoneinfo.ZoneInfo(dataset.daily.timezone)
    staged: dict[str, list[tuple[str, Staged]]] = {day: [] for day in days}
    for i, f in enumerate(files):
        home = dt.datetime.fromtimestamp(f.mtime_ns / 1e9, tz=zone).date().isoformat()
        one = stage_file(warehouse, f.path, dataset, home, run_id, workdir / str(i), schema)
        schema = extend_schema(schema, one)
        one.audit.partition_key = home  # where rows without a valid day are kept
        for day in days:
            staged[day].append((f.key, one))
    with warehouse.connect() as con:
        return [v for _, v in sorted(_publish(con, dataset, staged, run_id).items())]


def _publish(con: duckdb.DuckDBPyConnection, dataset: Dataset, staged: dict[str, list[tuple[str, Staged]]],
             run_id: str) -> dict[str, DayLoad]:
    """Replace every given day in one transaction."""
    table = raw_table(dataset.name)
    column = dataset.daily.column
    aliases: dict[int, str] = {}
    for _, files in staged.items():
        for _, one in files:
            if id(one) not in aliases:
                aliases[id(one)] = f"stage_{len(aliases)}"
                con.execute(f"ATTACH {quote_literal(str(one.path))} AS {aliases[id(one)]} (READ_ONLY)")
    results: dict[str, DayLoad] = {}
    try:
        with transaction(con):
            done: set[int] = set()
            for files in staged.values():
                for _, one in files:
                    if id(one) not in done:
                        evolve_raw_table(con, table, one)
                        done.add(id(one))
            con.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {SOURCE_FILE_COLUMN} VARCHAR")
            for day, files in staged.items():
                con.execute(f"DELETE FROM {table} WHERE _partition_key = ?", [day])
                con.execute("DELETE FROM qa.quarantine WHERE dataset = ? AND partition_key = ?", [dataset.name, day])
                audits = []
                for relative, one in files:
                    audit = _publish_file(con, dataset, table, day, relative, one, aliases[id(one)], column, run_id,
                                          many=len(files) > 1)
                    if audit is not None:
                        insert_audit(con, audit)
                        audits.append(audit)
                results[day] = _summarise(dataset, day, audits)
            for one in {id(one): one for files in staged.values() for _, one in files}.values():
                record_new_columns(con, table, one.audit, one.column_types, one.declared, list(staged))
    finally:
        for alias in aliases.values():
            con.execute(f"DETACH {alias}")
    return results


def _publish_file(con, dataset: Dataset, table: str, day: str, relative: str, one: Staged, alias: str,
                  column: str | None, run_id: str, many: bool) -> LoadAudit | None:
    """Copy one staged file's rows of `day` (all of them in file_pattern mode); returns its audit row."""
    base = one.audit
    columns = [c for c in one.column_types if c != "_source_row"]
    home = base.partition_key
    source_row = one.source_row_sql  # the staged row's record number (ingest keeps it implicit)
    where, day_expr = "TRUE", None
    if column:
        value = _value(one, column) if column in columns else "NULL"
        day_expr = _day_expression(value, one.column_types.get(column), dataset.daily.timezone)
        where = f"{day_expr} = CAST(? AS DATE)"
    params = [day] if column else []
    loaded = 0
    if columns:
        names = ", ".join(quote_ident(c) for c in columns)
        values = ", ".join(_value(one, c) for c in columns)
        # staged rows are in file order: no ORDER BY
        loaded = con.execute(
            f"INSERT INTO {table} (_partition_key, _source_row, _run_id, {SOURCE_FILE_COLUMN}, {names}) "
            f"SELECT ?, {source_row}, ?, ?, {values} FROM {alias}.rows WHERE {where}",
            [day, run_id, relative, *params],
        ).fetchone()[0]
    quarantined = 0
    codes: dict[str, int] = {}
    if not column or home == day:
        # Rows that belong to no day (unparseable, or no valid date) stay with the file's own day.
        prefix = f"{quote_literal(relative + ': ')} || " if many else ""
        codes = dict(con.execute(f"SELECT error_code, count(*) FROM {alias}.quarantine GROUP BY 1").fetchall())
        quarantined = con.execute(
            "INSERT INTO qa.quarantine SELECT ?, ?, ?, source_row, line, column_name, error_code, "
            f"{prefix}message, raw_value, raw_line, raw_line_bytes FROM {alias}.quarantine ORDER BY source_row",
            [dataset.name, day, run_id],
        ).fetchone()[0]
        if column and base.status not in ("empty", "rejected"):
            value = f"CAST({quote_ident(column)} AS VARCHAR)" if column in columns else "NULL"
            record = "CAST(to_json(t) AS VARCHAR)"
            ordinal = source_row.replace("rowid", "t.rowid")
            start = dataset.daily.start
            message = f"{PARTITION_DATE_MESSAGE} {column!r} (missing, not a date, or before {start})"
            undated = con.execute(
                f"INSERT INTO qa.quarantine SELECT ?, ?, ?, {ordinal}, NULL, ?, ?, {prefix}?, {value}, "
                f"left({record}, {QUARANTINE_LINE_CAP}), strlen({record}) FROM {alias}.rows t "
                f"WHERE {day_expr} IS NULL OR {day_expr} < CAST(? AS DATE) ORDER BY 4",
                [dataset.name, day, run_id, column, E_PARTITION_DATE, message, start],
            ).fetchone()[0]
            if undated:
                codes[E_PARTITION_DATE] = undated
                quarantined += undated
    if column and not loaded and not quarantined and not (home == day and base.status in ("empty", "rejected")):
        return None  # this file has no rows for this day
    audit = LoadAudit(**{k: v for k, v in base.__dict__.items() if k not in ("preview", "column_types")})
    audit.partition_key = day
    audit.rows_loaded = loaded
    audit.rows_quarantined = quarantined
    audit.rows_read = loaded + quarantined
    if column:
        audit.error_codes = codes if base.status not in ("empty", "rejected") else base.error_codes
        if base.status not in ("empty", "rejected"):
            audit.status = "loaded_with_errors" if quarantined else "loaded"
            audit.message = (f"{loaded} rows of {day} loaded" + (f", {quarantined} quarantined" if quarantined else "")
                             + f" (of {base.rows_read} rows read from the file)")
    audit.column_types = {c: t for c, t in one.column_types.items() if c != "_source_row"}
    audit.preview = base.preview if not column else []
    return audit


def _value(one: Staged, column: str) -> str:
    """SQL for a staged column's value with its raw type (some are staged as text, cast on publish)."""
    if column in one.stored_types:
        return f"CAST(trim({quote_ident(column)}) AS {one.column_types[column]})"
    return quote_ident(column)


def _day_expression(col: str, column_type: str | None, timezone: str) -> str:
    """SQL for the day of a row, from the partition column's value (`col`, SQL) and raw type."""
    if column_type is None or col == "NULL":
        return "CAST(NULL AS DATE)"
    if column_type == "DATE":
        return col
    if column_type == "TIMESTAMP WITH TIME ZONE":
        return f"CAST(timezone({quote_literal(timezone)}, {col}) AS DATE)"
    if column_type.startswith("TIMESTAMP"):
        return f"CAST({col} AS DATE)"
    return f"CAST(TRY_CAST(CAST({col} AS VARCHAR) AS TIMESTAMP) AS DATE)"


def _summarise(dataset: Dataset, day: str, audits: list[LoadAudit]) -> DayLoad:
    if not audits:
        return DayLoad(day, "missing", message=f"no rows for {day} in {dataset.landing_dir}")
    statuses = {a.status for a in audits}
    if "rejected" in statuses:
        status = "rejected"
    elif statuses == {"empty"}:
        status = "empty"
    elif any(a.rows_quarantined for a in audits) or "loaded_with_errors" in statuses:
        status = "loaded_with_errors"
    else:
        status = "loaded"
    loaded = sum(a.rows_loaded for a in audits)
    quarantined = sum(a.rows_quarantined for a in audits)
    message = f"{len(audits)} file(s): {loaded} rows loaded, {quarantined} quarantined"
    rejected = [Path(a.source_path).name for a in audits if a.status == "rejected"]
    if rejected:
        message += f"; rejected: {', '.join(rejected)}"
    return DayLoad(day, status, audits, message)
