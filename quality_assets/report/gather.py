"""Everything a partition's report shows, read from the warehouse in one short visit.

Reads qa.files (the load audit), qa.quarantine, the rules' results (qa.check_results,
qa.failing_rows, qa.validations), the stored profile and its history (qa.column_profiles) and
the anomaly stage's results. A stage that has not run for the partition leaves its part empty
(None), and the report says so; nothing here fails because a table does not exist yet.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import duckdb

from quality_assets.anomalies import read_anomalies
from quality_assets.catalog import schema_tables
from quality_assets.profile import read_profile

SAMPLE_ROWS = 10  # failing rows shown per failed rule
QUARANTINE_SAMPLE = 20
HISTORY_PARTITIONS = 30  # past partitions in the trend charts
TREND_METRICS = ("null_share", "distinct_count", "mean", "p50", "std", "length_mean", "top_value_share")
DATASET_TREND_METRICS = ("row_count", "duplicate_rows", "max_null_share")
TEXT_CAP = 300  # characters of a data value kept for display


@dataclass
class Verdict:
    level: str  # pass | warn | fail | no_data
    headline: str
    reasons: list[str] = field(default_factory=list)

    @property
    def code(self) -> int:
        return {"pass": 0, "warn": 1, "fail": 2, "no_data": 3}[self.level]


@dataclass
class ReportData:
    dataset: str
    partition_key: str
    generated_at: str
    description: str = ""
    load: dict | None = None  # the latest load of the partition that read the file (qa.files)
    last_attempt: dict | None = None  # the latest attempt, e.g. an `unchanged` no-op
    load_attempts: int = 0
    quarantine_by_code: list[tuple[str, int]] = field(default_factory=list)
    quarantine_sample: list[dict] = field(default_factory=list)
    checks: list[dict] = field(default_factory=list)  # qa.check_results of the latest evaluation
    failing_samples: dict[str, list[dict]] = field(default_factory=dict)
    validation: dict | None = None
    profile: dict | None = None  # read_profile()'s dict
    history: dict[tuple[str | None, str], list[tuple[str, float | None]]] = field(default_factory=dict)
    load_history: list[dict] = field(default_factory=list)
    anomalies: dict | None = None  # read_anomalies()'s dict

    @property
    def failed_checks(self) -> list[dict]:
        return [c for c in self.checks if not c["passed"]]

    @property
    def validation_is_current(self) -> bool:
        if self.validation is None or self.load is None:
            return self.validation is not None
        return self.validation.get("raw_run_id") in (None, self.load.get("run_id"))

    @property
    def anomalies_ran(self) -> bool:
        return bool(self.anomalies and self.anomalies.get("run_id"))

    def row_anomalies(self) -> list[dict]:
        """The flagged rows stored (best ranked first; capped by the anomaly stage)."""
        return list((self.anomalies or {}).get("rows") or [])

    def rows_flagged(self) -> int:
        summary = (self.anomalies or {}).get("summary") or {}
        flagged = summary.get("rows_flagged")
        return int(flagged) if flagged is not None else len(self.row_anomalies())

    def metric_anomalies(self) -> list[dict]:
        return list((self.anomalies or {}).get("metric_anomalies") or [])

    def causes(self) -> list[dict]:
        """Partition-level changes, then the flagged rows grouped by cause (qa.anomaly_causes)."""
        return list((self.anomalies or {}).get("causes") or [])

    def roles(self) -> dict[str, dict]:
        """column -> {"role", "source", "reason"} of the anomaly stage's latest run."""
        return dict((self.anomalies or {}).get("roles") or {})

    def drift(self) -> list[dict]:
        return list((self.anomalies or {}).get("drift") or [])

    def drifted(self) -> list[dict]:
        return [d for d in self.drift() if d.get("drifted")]

    def profile_alerts(self) -> list[dict]:
        if not self.profile:
            return []
        alerts = [dict(a) for a in self.profile.get("alerts") or []]
        for column in self.profile.get("columns") or []:
            alerts += [{"column": column["name"], **a} for a in column.get("alerts") or []]
        return alerts

    def summary(self) -> dict:
        failed = self.failed_checks
        return {
            "rows_loaded": (self.load or {}).get("rows_loaded"),
            "rows_quarantined": sum(n for _, n in self.quarantine_by_code),
            "checks": len(self.checks),
            "checks_failed": {"error": sum(c["severity"] == "error" for c in failed),
                              "warn": sum(c["severity"] != "error" for c in failed)},
            "row_anomalies": self.rows_flagged(),
            "metric_anomalies": len(self.metric_anomalies()),
            "drifted_columns": len(self.drifted()),
            "profile_alerts": len(self.profile_alerts()),
            "columns": len((self.profile or {}).get("columns") or []) or len((self.load or {}).get("columns") or []),
        }

    @property
    def verdict(self) -> Verdict:
        return verdict_of(self)


def verdict_of(data: ReportData) -> Verdict:
    load = data.load
    if load is None:
        return Verdict("no_data", "No load recorded for this partition",
                       ["qa.files has no row for it: the file was never loaded, or retention removed it"])
    if load.get("status") in ("empty", "loaded") and not load.get("rows_read"):  # empty or header only
        return Verdict("no_data", f"Empty: {load.get('message') or 'the file holds no data rows'}",
                       ["there is nothing to check: the file holds no data rows"])
    reasons_fail, reasons_warn = [], []
    if load.get("status") == "rejected":
        reasons_fail.append(f"the file was rejected: {load.get('message') or load.get('status')}")
    summary = data.summary()
    blocking = [c for c in data.failed_checks if c["severity"] == "error"]
    warned = [c for c in data.failed_checks if c["severity"] != "error"]
    if blocking:
        reasons_fail.append(f"{len(blocking)} error rule(s) failed: " + ", ".join(c["rule"] for c in blocking[:5])
                            + (" …" if len(blocking) > 5 else ""))
    if summary["rows_quarantined"]:
        reasons_warn.append(f"{summary['rows_quarantined']:,} row(s) quarantined")
    if warned:
        reasons_warn.append(f"{len(warned)} warn rule(s) failed: " + ", ".join(c["rule"] for c in warned[:5])
                            + (" …" if len(warned) > 5 else ""))
    if summary["row_anomalies"]:
        row_causes = sum(1 for c in data.causes() if c.get("level") == "rows")
        reasons_warn.append(f"{summary['row_anomalies']:,} anomalous row(s)"
                            + (f" in {row_causes} cause(s)" if row_causes else ""))
    if summary["metric_anomalies"]:
        reasons_warn.append(f"{summary['metric_anomalies']} metric anomaly(ies)")
    if summary["drifted_columns"]:
        reasons_warn.append(f"{summary['drifted_columns']} drifted column(s)")
    if reasons_fail:
        return Verdict("fail", "Fail: " + reasons_fail[0], reasons_fail + reasons_warn)
    if reasons_warn:
        return Verdict("warn", "Warnings: " + "; ".join(reasons_warn[:3]), reasons_warn)
    return Verdict("pass", "Pass: the file parsed, every rule passed and nothing looked anomalous", [])


def _dicts(con: duckdb.DuckDBPyConnection, sql: str, params: list) -> list[dict]:
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def short(value: Any, cap: int = TEXT_CAP) -> Any:
    if isinstance(value, str) and len(value) > cap:
        return value[: cap - 1] + "…"
    return value


def gather(con: duckdb.DuckDBPyConnection, dataset: str, partition_key: str, description: str = "") -> ReportData:
    """Read what the report of one partition shows."""
    data = ReportData(dataset, partition_key, dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                      description=description)
    qa_tables = schema_tables(con, "qa")  # one catalog query: each costs about as much as a small read
    _gather_load(con, data)
    if "check_results" in qa_tables:
        _gather_checks(con, data, qa_tables)
    if "column_profiles" in qa_tables:
        data.profile = read_profile(con, dataset, partition_key)
        if data.profile is not None:
            data.history = metric_histories(con, dataset, partition_key)
    if "anomaly_runs" in qa_tables:
        data.anomalies = read_anomalies(con, dataset, partition_key)
    return data


def _gather_load(con, data: ReportData) -> None:
    attempts = _dicts(con, "SELECT * FROM qa.files WHERE dataset = ? AND partition_key = ? ORDER BY finished DESC NULLS LAST",
                      [data.dataset, data.partition_key])
    data.load_attempts = len(attempts)
    if attempts:
        latest = attempts[0]
        data.last_attempt = {"run_id": latest["run_id"], "status": latest["status"], "finished": latest["finished"],
                             "message": latest["message"]}
        data.load = next((a for a in attempts if a["status"] != "unchanged"), latest)
        codes = data.load.get("error_codes")
        data.load["error_codes"] = dict(codes) if codes else {}
    data.quarantine_by_code = [tuple(r) for r in con.execute(
        "SELECT error_code, count(*) FROM qa.quarantine WHERE dataset = ? AND partition_key = ? "
        "GROUP BY 1 ORDER BY 2 DESC, 1", [data.dataset, data.partition_key]).fetchall()]
    data.quarantine_sample = [
        {k: short(v) for k, v in row.items()} for row in _dicts(
            con, "SELECT source_row, line, column_name, error_code, message, raw_value, raw_line FROM qa.quarantine "
                 "WHERE dataset = ? AND partition_key = ? ORDER BY source_row NULLS LAST LIMIT ?",
            [data.dataset, data.partition_key, QUARANTINE_SAMPLE])]
    data.load_history = _dicts(con, """
        WITH loads AS (
            SELECT partition_key, finished, rows_loaded, rows_quarantined FROM qa.files
            WHERE dataset = ? AND status <> 'unchanged'
            QUALIFY row_number() OVER (PARTITION BY partition_key ORDER BY finished DESC) = 1)
        SELECT * FROM loads
        WHERE finished <= coalesce((SELECT max(finished) FROM loads WHERE partition_key = ?), now()::TIMESTAMP)
        ORDER BY finished DESC LIMIT ?""", [data.dataset, data.partition_key, HISTORY_PARTITIONS])[::-1]


def _gather_checks(con, data: ReportData, qa_tables: set[str]) -> None:
    key = [data.dataset, data.partition_key]
    if "validations" in qa_tables:
        found = _dicts(con, "SELECT * FROM qa.validations WHERE dataset = ? AND partition_key = ? "
                            "ORDER BY evaluated_at DESC LIMIT 1", key)
        data.validation = found[0] if found else None
    run = con.execute("SELECT run_id FROM qa.check_results WHERE dataset = ? AND partition_key = ? "
                      "ORDER BY evaluated_at DESC LIMIT 1", key).fetchone()
    if run is None:
        return
    data.checks = _dicts(con, """
        SELECT rule, check_name, kind, severity, passed, rows_evaluated, failing_rows, failing_share, mostly,
               failing_rows_stored, observed, message, error, sql, evaluated_at, run_id
        FROM qa.check_results WHERE dataset = ? AND partition_key = ? AND run_id = ?
        ORDER BY passed, severity = 'warn', failing_rows DESC NULLS LAST, rule""", [*key, run[0]])
    failed = [c["rule"] for c in data.checks if not c["passed"]]
    if failed and "failing_rows" in qa_tables:
        rows = _dicts(con, """
            SELECT rule, source_row, source_file, row_key, row_values FROM qa.failing_rows
            WHERE dataset = ? AND partition_key = ? AND run_id = ? AND rule = ANY(?)
            QUALIFY row_number() OVER (PARTITION BY rule ORDER BY source_row) <= ?
            ORDER BY rule, source_row""", [*key, run[0], failed, SAMPLE_ROWS])
        for row in rows:
            data.failing_samples.setdefault(row.pop("rule"), []).append(
                {"source_row": row["source_row"], "source_file": row["source_file"],
                 "key": _json_or_text(row["row_key"]), "values": _json_or_text(row["row_values"])})


def _json_or_text(text: str | None) -> Any:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return short(text)
    if isinstance(value, dict):
        return {k: short(v) for k, v in value.items()}
    return value


def metric_histories(con, dataset: str, partition_key: str, limit: int = HISTORY_PARTITIONS
                     ) -> dict[tuple[str | None, str], list[tuple[str, float | None]]]:
    """Trend series per (column or None, metric): the latest run of each of the last `limit`
    partitions profiled up to this one, oldest first (profile.metric_history's selection, for every
    column and metric in one query)."""
    rows = con.execute(
        """WITH latest AS (
               SELECT partition_key, run_id, profiled_at FROM qa.column_profiles
               WHERE dataset = ? AND column_name IS NULL AND metric = 'row_count'
               QUALIFY row_number() OVER (PARTITION BY partition_key ORDER BY profiled_at DESC, run_id DESC) = 1),
           window_ AS (
               SELECT * FROM latest
               WHERE profiled_at <= coalesce((SELECT profiled_at FROM latest WHERE partition_key = ?), now()::TIMESTAMP)
               ORDER BY profiled_at DESC, partition_key DESC LIMIT ?)
           SELECT p.column_name, p.metric, w.partition_key, p.value
           FROM qa.column_profiles p JOIN window_ w ON p.partition_key = w.partition_key AND p.run_id = w.run_id
           WHERE p.dataset = ? AND p.detail IS NULL
             AND ((p.column_name IS NULL AND p.metric = ANY(?)) OR (p.column_name IS NOT NULL AND p.metric = ANY(?)))
           ORDER BY w.profiled_at, w.partition_key""",
        [dataset, partition_key, limit, dataset, list(DATASET_TREND_METRICS), list(TREND_METRICS)],
    ).fetchall()
    series: dict[tuple[str | None, str], list[tuple[str, float | None]]] = {}
    for column, metric, key, value in rows:
        series.setdefault((column, metric), []).append((key, value))
    return series
