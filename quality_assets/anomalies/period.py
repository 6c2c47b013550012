"""Consistency of `period` columns (one value per partition) with their partition: one value, and
the value that follows the history's progression (or, for labels, one not seen before)."""

from __future__ import annotations

import datetime as dt

from quality_assets.anomalies.columns import raw_table
from quality_assets.anomalies.metric_anomalies import MetricResult, _evaluate
from quality_assets.anomalies.roles import ColumnRole
from quality_assets.warehouse import quote_ident


def _result(column: str, metric: str, value, expected, history: int, anomaly: bool, reason: str) -> MetricResult:
    number = value if isinstance(value, (int, float)) and not isinstance(value, bool) else None
    wanted = expected if isinstance(expected, (int, float)) and not isinstance(expected, bool) else None
    return MetricResult(column_name=column, metric=metric, value=number, expected=wanted, lower=wanted,
                        upper=wanted, robust_z=None, direction="both", history_size=history, seasonal=False,
                        is_anomaly=anomaly, reason=reason)


def _months(day: dt.date) -> int:
    return day.year * 12 + day.month - 1


def next_value(values: list):
    """The value after `values` when they advance by a constant step (numbers, days, or months on
    the same day of the month); None when there is no such progression."""
    if len(values) < 2:
        return None
    recent = values[-4:]
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in recent):
        steps = {b - a for a, b in zip(recent, recent[1:], strict=False)}
        return recent[-1] + steps.pop() if len(steps) == 1 and 0 not in steps else None
    if all(isinstance(v, dt.date) and not isinstance(v, dt.datetime) for v in recent):
        steps = {(b - a).days for a, b in zip(recent, recent[1:], strict=False)}
        if len(steps) == 1 and 0 not in steps:
            return recent[-1] + dt.timedelta(days=steps.pop())
        if len({v.day for v in recent}) == 1:
            months = {_months(b) - _months(a) for a, b in zip(recent, recent[1:], strict=False)}
            if len(months) == 1 and 0 not in months:
                index = _months(recent[-1]) + months.pop()
                try:
                    return dt.date(index // 12, index % 12 + 1, recent[-1].day)
                except ValueError:
                    return None
    return None


def _stray_rows(con, dataset: str, partition_key: str, name: str, mode, strays: int, total: int,
                has_file: bool) -> dict:
    """The rows whose period value is not the partition's, as a cause with three examples."""
    ident = quote_ident(name)
    file = "_source_file" if has_file else "NULL"
    examples = con.execute(
        f"SELECT _source_row, {file}, {ident} FROM {raw_table(dataset)} WHERE _partition_key = ? AND {ident} IS NOT NULL "
        f"AND {ident} <> (SELECT mode({ident}) FROM {raw_table(dataset)} WHERE _partition_key = ?) "
        "ORDER BY hash(_source_row) LIMIT 3", [partition_key, partition_key]).fetchall()
    return {"level": "rows", "columns": [name], "signal": "period", "condition": "differs", "rows": strays,
            "share": strays / total if total else 0.0,
            "examples": [{"source_row": row, "source_file": source, "value": str(value)} for row, source, value in examples],
            "description": f"{name} differs from the partition's own value {mode!r} (one value per partition "
                           "in the history)"}


def period_findings(con, dataset: str, partition_key: str, roles: dict[str, ColumnRole], has_file: bool = False
                    ) -> tuple[list[MetricResult], list[dict]]:
    """Per period column: how many values this partition has, and whether its value is the
    expected one; and the rows whose value is not the partition's, as causes."""
    out, causes = [], []
    for name, role in roles.items():
        if role.role != "period" or not role.history:
            continue
        counts = con.execute(
            f"SELECT {quote_ident(name)}, count(*) FROM {raw_table(dataset)} WHERE _partition_key = ? "
            f"AND {quote_ident(name)} IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 4", [partition_key]).fetchall()
        if not counts:
            continue
        total = con.execute(f"SELECT count({quote_ident(name)}) FROM {raw_table(dataset)} WHERE _partition_key = ?",
                            [partition_key]).fetchall()[0][0]
        mode, size = counts[0]
        history = [v for _, v in role.history]
        n = len(history)
        if len(counts) > 1:
            causes.append(_stray_rows(con, dataset, partition_key, name, mode, total - size,
                                      con.execute(f"SELECT count(*) FROM {raw_table(dataset)} WHERE _partition_key = ?",
                                                  [partition_key]).fetchall()[0][0], has_file))
            listed = ", ".join(f"{v!r} {c / total:.1%}" for v, c in counts)
            out.append(_result(name, "period_values", len(counts), 1, n, True,
                               f"{name} is one value per partition in the history, but this partition has "
                               f"{'at least ' if len(counts) == 4 else ''}{len(counts)}: {listed}"))
        expected = next_value(history)
        if expected is not None:
            ok = mode == expected
            reason = (f"{name} = {mode!r}, the value after {history[-1]!r} in the history's progression" if ok else
                      f"{name} = {mode!r}, but the history advances to {expected!r} next (last {history[-1]!r})")
            out.append(_result(name, "period_next", mode, expected, n, not ok, reason))
        elif mode in history and len(set(history)) == len(history):  # labels that never repeated
            earlier = [k for k, v in role.history if v == mode]
            out.append(_result(name, "period_next", mode, None, n, True,
                               f"{name} = {mode!r} repeats the value of the earlier partition {earlier[-1]!r}"))
    return out, causes


def time_gaps(con, dataset: str, partition_key: str, history: list[str], roles: dict[str, ColumnRole],
              columns: dict, settings, daily: bool) -> list[MetricResult]:
    """Gaps in a date column: the share of days between its first and last date that have a row,
    against the same share in the history (a week missing from a month's export)."""
    out = []
    for name, role in roles.items():
        column = columns.get(name)
        if role.role != "time" or column is None or column.kind != "temporal" or daily:
            continue
        ident = quote_ident(name)
        keys = [*history[-settings.window:], partition_key]
        coverage = dict(con.execute(
            f"SELECT _partition_key, count(DISTINCT CAST({ident} AS DATE)) / "
            f"(date_diff('day', min(CAST({ident} AS DATE)), max(CAST({ident} AS DATE))) + 1) "
            f"FROM {raw_table(dataset)} WHERE list_contains(?, _partition_key) AND {ident} IS NOT NULL GROUP BY 1",
            [keys]).fetchall())
        if partition_key not in coverage:
            continue
        past = [(k, float(coverage[k])) for k in history[-settings.window:] if k in coverage]
        result, _ = _evaluate(float(coverage[partition_key]), past, partition_key, "date_coverage", settings, daily,
                              name, efficiency=1.0)
        if result.p_value is not None:
            result.adjusted_p = result.p_value
            result.is_anomaly = result.is_anomaly and result.value < (result.expected or 0) \
                and result.p_value <= settings.metric_alpha
            result.reason = ("gaps: " if result.is_anomaly else "") + result.reason.replace(
                "date_coverage", "share of days with a row")
            if result.is_anomaly:
                result.reason += "; no rows on " + _missing_days(con, dataset, partition_key, ident)
        out.append(result)
    return out


def _missing_days(con, dataset: str, partition_key: str, ident: str, shown: int = 5) -> str:
    """The days between the partition's first and last date that have no row, the first few."""
    days = [d for (d,) in con.execute(
        f"""WITH present AS (SELECT DISTINCT CAST({ident} AS DATE) AS day FROM {raw_table(dataset)}
                             WHERE _partition_key = ? AND {ident} IS NOT NULL)
            SELECT CAST(g.day AS DATE) FROM (SELECT min(day) AS lo, max(day) AS hi FROM present) b,
                   generate_series(b.lo, b.hi, INTERVAL 1 DAY) AS g(day)
            WHERE CAST(g.day AS DATE) NOT IN (SELECT day FROM present) ORDER BY 1""", [partition_key]).fetchall()]
    listed = ", ".join(d.isoformat() for d in days[:shown])
    return listed + (f" and {len(days) - shown} more" if len(days) > shown else "")
