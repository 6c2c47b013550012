"""The daily scorecard: per dataset and day, what landed and how healthy it was.

One row per dataset and day in `qa.scorecard`, computed from the warehouse's own tables so it
can be recomputed at any time: files, rows, quarantined rows and rejected files from `qa.files`;
checks from the `file_parsed` outcome of each load plus `qa.check_results` when the rules stage
writes it; anomalies and drift from `qa.row_anomalies` / `qa.metric_anomalies` / `qa.drift` when
those stages exist (NULL until then); freshness as the age of the newest load at the end of the
day. Later stages slot in by adding a function to `SOURCES`.

A file-partitioned dataset counts the files loaded that day (server local time, as `qa.files`
records it; UTC in the compose images); a daily dataset counts the
files of that day's partition.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from quality_assets.warehouse import transaction

SCORECARD_DDL = """CREATE TABLE IF NOT EXISTS qa.scorecard (
    day DATE NOT NULL,
    dataset VARCHAR NOT NULL,
    partitioning VARCHAR,
    status VARCHAR NOT NULL,
    files BIGINT,
    files_rejected BIGINT,
    rows_read BIGINT,
    rows_loaded BIGINT,
    rows_quarantined BIGINT,
    checks_passed BIGINT,
    checks_failed BIGINT,
    checks_failed_error BIGINT,
    anomalies BIGINT,
    drifted_columns BIGINT,
    last_load TIMESTAMP,
    freshness_hours DOUBLE,
    partitions VARCHAR[],
    run_id VARCHAR,
    computed_at TIMESTAMP
)"""

SCORECARD_COLUMNS = (
    "day", "dataset", "partitioning", "status", "files", "files_rejected", "rows_read", "rows_loaded",
    "rows_quarantined", "checks_passed", "checks_failed", "checks_failed_error", "anomalies",
    "drifted_columns", "last_load", "freshness_hours", "partitions", "run_id", "computed_at",
)


@dataclass
class ScorecardRow:
    day: str
    dataset: str
    partitioning: str
    status: str = "no data"  # ok | warn | error | no data
    files: int = 0
    files_rejected: int = 0
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    checks_passed: int = 0
    checks_failed: int = 0
    checks_failed_error: int = 0
    anomalies: int | None = None
    drifted_columns: int | None = None
    last_load: dt.datetime | None = None
    freshness_hours: float | None = None
    partitions: list[str] = field(default_factory=list)
    run_id: str = ""
    computed_at: dt.datetime | None = None

    def as_row(self) -> list:
        values = asdict(self)
        return [values[name] for name in SCORECARD_COLUMNS]


def day_bounds(day: str) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(dt.date.fromisoformat(day), dt.time())
    return start, start + dt.timedelta(days=1)


def table_columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> set[str]:
    """The columns of a table, empty when it does not exist (a stage not built yet)."""
    return {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchall()}


# ---------------------------------------------------------------------------------------------
# Sources: each fills some fields of a row from one table; tables that do not exist are skipped.


def _files(con, row: ScorecardRow, now: dt.datetime) -> None:
    start, end = day_bounds(row.day)
    if row.partitioning == "daily":
        # the files of the day's partition, as its latest load left them
        scope = ("partition_key = ? AND run_id = (SELECT run_id FROM qa.files WHERE dataset = ? AND "
                 "partition_key = ? AND status <> 'unchanged' ORDER BY finished DESC LIMIT 1)")
        params = [row.day, row.dataset, row.day]
    else:
        # the files loaded that day; a file loaded twice counts once, as last loaded
        scope, params = "finished >= ? AND finished < ?", [start, end]
    loads = con.execute(
        f"""SELECT partition_key, status, rows_read, rows_loaded, rows_quarantined FROM qa.files
            WHERE dataset = ? AND status <> 'unchanged' AND {scope}
            QUALIFY row_number() OVER (PARTITION BY partition_key, source_path ORDER BY finished DESC) = 1""",
        [row.dataset, *params],
    ).fetchall()
    row.files = len(loads)
    row.files_rejected = sum(1 for r in loads if r[1] == "rejected")
    row.rows_read = sum(r[2] or 0 for r in loads)
    row.rows_loaded = sum(r[3] or 0 for r in loads)
    row.rows_quarantined = sum(r[4] or 0 for r in loads)
    row.partitions = sorted({r[0] for r in loads})
    # the file_parsed check, as the raw asset evaluates it for each load
    clean = sum(1 for r in loads if r[1] == "loaded" and not r[4])
    row.checks_passed += clean
    row.checks_failed += len(loads) - clean
    row.checks_failed_error += row.files_rejected
    horizon = min(end, now)
    last = con.execute(
        "SELECT max(finished) FROM qa.files WHERE dataset = ? AND finished < ?", [row.dataset, horizon]
    ).fetchone()[0]
    row.last_load = last
    row.freshness_hours = round((horizon - last).total_seconds() / 3600, 2) if last else None


def _check_results(con, row: ScorecardRow, now: dt.datetime) -> None:
    """Rule checks, once the rules stage writes qa.check_results (dataset, partition_key, passed[, severity])."""
    columns = table_columns(con, "qa", "check_results")
    if not {"dataset", "partition_key", "passed"} <= columns or not row.partitions:
        return
    severity = "severity" if "severity" in columns else "'error'"
    passed, failed, failed_error = con.execute(
        f"""SELECT count(*) FILTER (WHERE passed), count(*) FILTER (WHERE NOT passed),
                   count(*) FILTER (WHERE NOT passed AND lower({severity}) = 'error')
            FROM qa.check_results WHERE dataset = ? AND list_contains(?, partition_key)""",
        [row.dataset, row.partitions],
    ).fetchone()
    row.checks_passed += passed
    row.checks_failed += failed
    row.checks_failed_error += failed_error


def _anomalies(con, row: ScorecardRow, now: dt.datetime) -> None:
    for table in ("row_anomalies", "metric_anomalies"):
        columns = table_columns(con, "qa", table)
        if not {"dataset", "partition_key"} <= columns:
            continue
        flag = " AND is_anomaly" if "is_anomaly" in columns else ""
        count = con.execute(
            f"SELECT count(*) FROM qa.{table} WHERE dataset = ? AND list_contains(?, partition_key){flag}",
            [row.dataset, row.partitions],
        ).fetchone()[0]
        row.anomalies = (row.anomalies or 0) + count


def _drift(con, row: ScorecardRow, now: dt.datetime) -> None:
    columns = table_columns(con, "qa", "drift")
    if not {"dataset", "partition_key"} <= columns:
        return
    flag = " AND drifted" if "drifted" in columns else ""
    subject = "DISTINCT column_name" if "column_name" in columns else "*"
    row.drifted_columns = con.execute(
        f"SELECT count({subject}) FROM qa.drift WHERE dataset = ? AND list_contains(?, partition_key){flag}",
        [row.dataset, row.partitions],
    ).fetchone()[0]


SOURCES: list[Callable[[duckdb.DuckDBPyConnection, ScorecardRow, dt.datetime], None]] = [
    _files, _check_results, _anomalies, _drift,
]


def status_of(row: ScorecardRow) -> str:
    if row.checks_failed_error or row.files_rejected:
        return "error"
    if row.files == 0:
        return "warn" if row.partitioning == "daily" else "no data"
    if row.checks_failed or row.rows_quarantined or row.anomalies or row.drifted_columns:
        return "warn"
    return "ok"


def compute_scorecard(
    con: duckdb.DuckDBPyConnection,
    datasets: list[tuple[str, str]],
    day: str,
    now: dt.datetime | None = None,
) -> list[ScorecardRow]:
    """One row per (dataset, partitioning) for `day`, from the warehouse tables."""
    now = now or dt.datetime.now()  # qa.files keeps local wall-clock times
    rows = []
    for name, partitioning in datasets:
        row = ScorecardRow(day=day, dataset=name, partitioning=partitioning, computed_at=now)
        for source in SOURCES:
            source(con, row, now)
        row.status = status_of(row)
        rows.append(row)
    return rows


def write_scorecard(con: duckdb.DuckDBPyConnection, rows: list[ScorecardRow], day: str, run_id: str) -> None:
    """Replace the day in qa.scorecard (one transaction)."""
    con.execute(SCORECARD_DDL)
    with transaction(con):
        con.execute("DELETE FROM qa.scorecard WHERE day = ?", [day])
        for row in rows:
            row.run_id = run_id
            con.execute(f"INSERT INTO qa.scorecard VALUES ({', '.join('?' for _ in SCORECARD_COLUMNS)})", row.as_row())


def write_files(rows: list[ScorecardRow], day: str, output_dir: Path) -> Path:
    """`<output>/scorecard/<day>/scorecard.json` (machine-readable) and `scorecard.md`; returns the folder."""
    folder = output_dir / "scorecard" / day
    folder.mkdir(parents=True, exist_ok=True)
    payload = {"day": day, "datasets": [asdict(r) for r in rows]}
    tmp = folder / ".scorecard.json.tmp"
    tmp.write_text(json.dumps(payload, indent=2, default=str))
    tmp.replace(folder / "scorecard.json")
    (folder / "scorecard.md").write_text(markdown(rows, day))
    return folder


MARKDOWN_COLUMNS = (
    ("dataset", "dataset"), ("status", "status"), ("files", "files"), ("rows_loaded", "rows"),
    ("rows_quarantined", "quarantined"), ("checks_passed", "checks passed"), ("checks_failed", "checks failed"),
    ("anomalies", "anomalies"), ("drifted_columns", "drift"), ("freshness_hours", "freshness (h)"),
)


def markdown(rows: list[ScorecardRow], day: str) -> str:
    def cell(value) -> str:
        text = "–" if value is None else str(value)
        for char in "\\`*_[]<>|":
            text = text.replace(char, "\\" + char)
        return text

    lines = [f"Scorecard for {day}", "", "| " + " | ".join(label for _, label in MARKDOWN_COLUMNS) + " |",
             "|" + "---|" * len(MARKDOWN_COLUMNS)]
    for row in rows:
        values = asdict(row)
        lines.append("| " + " | ".join(cell(values[name]) for name, _ in MARKDOWN_COLUMNS) + " |")
    return "\n".join(lines) + "\n"
