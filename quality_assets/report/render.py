"""The partition report as one self-contained HTML page.

Everything is inline (style, one small script allowed by its hash in the page's
Content-Security-Policy, charts as SVG drawn here), so the page loads offline and makes no
request. Every value from the data, column names included, goes through `esc`; the script reads
no data, so nothing from a file can run. Per-column sections are collapsed `<details>`, which the
browser does not lay out until opened: a 1,000-column page stays quick.
"""

from __future__ import annotations

import json
import math
from typing import Any

from quality_assets.report.gather import ReportData, short
from quality_assets.report.html import (
    CORRELATION_PAIRS,
    HEATMAP_MAX_COLUMNS,
    ROWS_SHOWN,
    SCRIPT,
    STAT_ORDER,
    TOP_VALUES_SHOWN,
    cell,
    esc,
    fmt_number,
    page,
    records_table,
    share_bar,
    svg_histogram,
    svg_sparkline,
    table,
)

COLUMN_SECTIONS = 500  # columns with a full section (statistics, histogram, top values, trends)


def render_report(data: ReportData) -> str:
    verdict = data.verdict
    title = f"{data.dataset} / {data.partition_key} — data quality report"
    parts = [
        "<header>",
        f'<p class="muted">quality_assets report · dataset <b>{esc(data.dataset)}</b> · partition '
        f"<code>{esc(data.partition_key)}</code> · generated {esc(data.generated_at)}</p>",
        f"<h1>{esc(data.dataset)} / {esc(data.partition_key)}</h1>",
        f'<section id="verdict" class="verdict v-{esc(verdict.level)}"><h2>{esc(verdict.headline)}</h2>',
        ("<ul>" + "".join(f"<li>{esc(r)}</li>" for r in verdict.reasons) + "</ul>") if verdict.reasons else "",
        "</section>",
        '<nav><a href="#failures">What is wrong</a><a href="#overview">Overview</a><a href="#columns">Columns</a>'
        '<a href="#correlations">Correlations</a></nav></header><main>',
        _failures(data),
        _overview(data),
        _columns(data),
        _correlations(data),
        "</main>",
        '<footer><p class="muted">Written by quality_assets from the warehouse tables qa.files, qa.quarantine, '
        "qa.check_results, qa.failing_rows, qa.column_profiles and the anomaly tables. Samples are capped; "
        "the tables hold every row. Machine-readable: profile.json, metrics.csv, audit.log.json, metrics.prom.</p></footer>",
    ]
    return page(title, "".join(parts), SCRIPT)


def _causes(data: ReportData) -> str:
    causes = data.causes()
    if not causes:
        return ""
    rows = ([cell(c.get("rows")), share_bar(c.get("share")), cell(c.get("level")), cell(", ".join(c.get("columns") or [])),
             cell(c.get("description")),
             cell("; ".join(f"row {e.get('source_row')}: {short(e.get('value'), 60)}" for e in c.get("examples") or []))]
            for c in causes)
    return ('<h3 id="causes">Causes</h3><p>What the anomaly stage found, grouped: changes of the whole partition '
            "first, then the flagged rows by reason, with the best-ranked examples (qa.anomaly_causes).</p>"
            + table(["rows", "share", "level", "columns", "cause", "examples"], rows, raw_cells=True))


def _failures(data: ReportData) -> str:
    out = ['<section id="failures"><h2>What is wrong</h2>', _causes(data)]
    failed = data.failed_checks
    out.append('<h3 id="failed-checks">Failed rules</h3>')
    if not data.checks:
        out.append('<p class="muted">No rule results for this partition (no rules in the contract, or validation has not run).</p>')
    elif not failed:
        out.append(f'<p class="ok">All {len(data.checks)} rule(s) passed.</p>')
    else:
        if not data.validation_is_current:
            out.append('<p class="warn">These results are from a validation of an earlier load of this file.</p>')
        out.append(table(["rule", "severity", "failing rows", "failing share", "message"], (
            [f"<td><b>{esc(c['rule'])}</b></td>",
             f'<td class="{"bad" if c["severity"] == "error" else "warn"}">{esc(c["severity"])}'
             f'{" (blocks publishing)" if c["severity"] == "error" else ""}</td>',
             cell(c["failing_rows"]), cell(None) if c["failing_share"] is None else share_bar(c["failing_share"]),
             cell(c["error"] or c["message"])] for c in failed), raw_cells=True))
        for check in failed:
            sample = data.failing_samples.get(check["rule"], [])
            rows = [{"source row": s["source_row"], **({"file": s["source_file"]} if s.get("source_file") else {}),
                     **{f"key {k}": v for k, v in (s["key"] or {}).items()},
                     **(s["values"] if isinstance(s["values"], dict) else {"values": s["values"]})} for s in sample]
            body = records_table(rows) if rows else '<p class="muted">No failing rows to show (the rule judges the whole partition).</p>'
            stored = check.get("failing_rows_stored")
            note = (f'<p class="muted">First {len(rows)} of {check["failing_rows"]:,} failing row(s); {stored:,} kept in '
                    f"qa.failing_rows.</p>") if rows and check.get("failing_rows") else ""
            sql = f"<pre><code>{esc(check['sql'])}</code></pre>" if check.get("sql") else ""
            out.append(f"<details><summary>{esc(check['rule'])}: failing rows and SQL</summary>{note}{body}{sql}</details>")

    out.append('<h3 id="quarantine">Quarantined rows</h3>')
    if not data.quarantine_by_code:
        out.append('<p class="muted">No rows were quarantined.</p>' if data.load else '<p class="muted">No load recorded.</p>')
    else:
        total = sum(n for _, n in data.quarantine_by_code)
        out.append(table(["error code", "rows", "share of quarantined"],
                         ([cell(code), cell(n), share_bar(n / total)] for code, n in data.quarantine_by_code), raw_cells=True))
        out.append(records_table(data.quarantine_sample))

    out.append(_anomaly_sections(data))
    out.append("</section>")
    return "".join(out)


def _anomaly_sections(data: ReportData) -> str:
    out = []
    missing = '<p class="muted">No anomaly results for this partition (the anomalies stage has not run on it).</p>'
    ran = data.anomalies_ran
    out.append('<h3 id="anomalous-rows">Anomalous rows</h3>')
    rows = data.row_anomalies()
    if not ran:
        out.append(missing)
    elif not rows:
        summary = (data.anomalies or {}).get("summary") or {}
        scored = summary.get("rows_scored")
        out.append(f'<p class="ok">No row was flagged as anomalous{f" ({scored:,} scored)" if scored else ""}.</p>')
    else:
        summary = (data.anomalies or {}).get("summary") or {}
        out.append(f"<p>{data.rows_flagged():,} row(s) flagged of {summary.get('rows_scored') or 0:,} scored "
                   f"(fitted on {esc(summary.get('fitted_on') or '?')}); the highest ranked first, with the columns "
                   "that explain each score.</p>")
        out.append(table(["rank", "source row", "score", "p-value", "why"], (
            [cell(r.get("rank")), cell(r.get("_source_row")), cell(r.get("score")), cell(r.get("p_value")),
             f"<td>{_explanation(r.get('explanation'))}</td>"] for r in rows[:ROWS_SHOWN]), raw_cells=True))
        if len(rows) > ROWS_SHOWN:
            out.append(f'<p class="muted">{data.rows_flagged() - ROWS_SHOWN:,} more in qa.row_anomalies.</p>')
    out.append('<h3 id="drift">Drifted columns</h3>')
    drift = data.drift()
    if not ran:
        out.append(missing)
    elif not drift:
        out.append('<p class="muted">No drift results (no reference partition yet).</p>')
    elif not data.drifted():
        reference = drift[0].get("reference_partition")
        out.append(f'<p class="ok">No column drifted ({len(drift)} tested against {esc(reference or "the reference")}).</p>')
    else:
        out.append(table(["column", "test", "statistic", "adjusted p", "PSI", "effect size", "reference", "why"], (
            [cell(d.get("column_name")), cell(d.get("test")), cell(d.get("statistic")), cell(d.get("adjusted_p")),
             cell(d.get("psi")), cell(f"{fmt_number(d.get('effect_size'))} ({d.get('effect_measure') or ''})"),
             cell(d.get("reference_partition")), cell(d.get("reason"))] for d in data.drifted()), raw_cells=True))
    out.append('<h3 id="metric-anomalies">Metric anomalies</h3>')
    anomalies = data.metric_anomalies()
    if not ran:
        out.append(missing)
    elif not anomalies:
        out.append(f'<p class="ok">No metric departed from its history ({len((data.anomalies or {}).get("metrics") or [])} compared).</p>')
    else:
        out.append(table(["column", "metric", "value", "expected", "range", "robust z", "why"], (
            [cell(m.get("column_name") or "(dataset)"), cell(m.get("metric")), cell(m.get("value")), cell(m.get("expected")),
             cell(f"{fmt_number(m.get('lower'))} … {fmt_number(m.get('upper'))}"), cell(m.get("robust_z")),
             cell(m.get("reason"))] for m in anomalies[:50]), raw_cells=True))
    return "".join(out)


def _explanation(explanation: Any) -> str:
    if not isinstance(explanation, dict):
        return esc(short(explanation))
    items = []
    for c in (explanation.get("contributions") or [])[:4]:
        value = c.get("value")
        items.append(f"<li><b>{esc(c.get('column'))}</b> = <code>{esc(short(value, 80))}</code>: "
                     f"{esc(short(c.get('why') or c.get('signal'), 160))}</li>")
    return f"<ul>{''.join(items)}</ul>" if items else ""


def _overview(data: ReportData) -> str:
    out = ['<section id="overview"><h2>Overview</h2>']
    load = data.load
    if load is None:
        out.append('<p class="muted">No load recorded for this partition.</p>')
    else:
        codes = ", ".join(f"{k}: {v:,}" for k, v in sorted((load.get("error_codes") or {}).items())) or "none"
        audit = [
            ("status", load.get("status")), ("message", load.get("message")), ("source", load.get("source_path")),
            ("sha256", load.get("sha256")), ("bytes", load.get("bytes")), ("format", load.get("format")),
            ("compression", load.get("compression") or "none"),
            ("delimiter", json.dumps(load["delimiter"]) if load.get("delimiter") else None),
            ("encoding", load.get("encoding")), ("valid UTF-8", load.get("utf8_valid")), ("parser", load.get("parser")),
            ("rows read", load.get("rows_read")), ("rows loaded", load.get("rows_loaded")),
            ("rows quarantined", load.get("rows_quarantined")), ("error codes", codes),
            ("columns", len(load.get("columns") or [])), ("loaded", load.get("finished")),
            ("duration (s)", load.get("duration_s")), ("run", load.get("run_id")),
        ]
        if load.get("duplicate_of"):
            audit.append(("same content as", load["duplicate_of"]))
        if data.last_attempt and data.last_attempt["run_id"] != load.get("run_id"):
            audit.append(("last attempt", f"{data.last_attempt['status']} ({data.last_attempt['message'] or ''})"))
        out.append('<h3 id="file-audit">File audit</h3><div class="grid"><div>')
        out.append(table(["", ""], ([cell(k), cell(v)] for k, v in audit), raw_cells=True))
        out.append("</div><div>")
        for metric, key in (("rows_loaded", "rows loaded"), ("rows_quarantined", "rows quarantined")):
            out.append(svg_sparkline([(h["partition_key"], h[metric]) for h in data.load_history], data.partition_key, key))
        out.append("</div></div>")
    profile = data.profile
    out.append('<h3 id="dataset-profile">Rows and columns</h3>')
    if profile is None:
        out.append('<p class="muted">No profile for this partition (the profile stage has not run on it).</p>')
    else:
        metrics = profile.get("metrics") or {}
        out.append('<div class="grid"><div>')
        out.append(table(["metric", "value"], ([cell(m), f'<td class="n">{esc(fmt_number(v, m))}</td>']
                                               for m, v in metrics.items()), raw_cells=True))
        out.append("</div><div>")
        for metric in ("row_count", "duplicate_rows", "max_null_share"):
            out.append(svg_sparkline(data.history.get((None, metric), []), data.partition_key, metric))
        out.append("</div></div>")
        alerts = data.profile_alerts()
        out.append('<h3 id="alerts">Profile alerts</h3>')
        out.append(records_table(alerts, cap=100) if alerts else '<p class="ok">No profile alerts.</p>')
    if data.checks:
        out.append('<h3 id="all-rules">All rules</h3>')
        out.append(table(["rule", "kind", "severity", "result", "failing rows", "message"], (
            [cell(c["rule"]), cell(c["kind"]), cell(c["severity"]),
             f'<td class="{"ok" if c["passed"] else ("bad" if c["severity"] == "error" else "warn")}">'
             f'{"passed" if c["passed"] else "failed"}</td>', cell(c["failing_rows"]), cell(c["error"] or c["message"])]
            for c in data.checks), raw_cells=True))
    out.append("</section>")
    return "".join(out)


def _column_flags(data: ReportData) -> dict[str, list[str]]:
    """Per column name, the problems other stages found (drift, metric anomalies)."""
    flags: dict[str, list[str]] = {}
    for label, records in (("drift", data.drifted()), ("metric anomaly", data.metric_anomalies())):
        for record in records:
            name = record.get("column_name")
            if name:
                flags.setdefault(str(name), []).append(label)
    return flags


def _columns(data: ReportData) -> str:
    out = ['<section id="columns"><h2>Columns</h2>']
    profile = data.profile
    if profile is None:
        names = (data.load or {}).get("columns") or []
        out.append('<p class="muted">No profile for this partition (the profile stage has not run on it)'
                   + (": the file's columns are " + ", ".join(f"<code>{esc(n)}</code>" for n in names) if names else "")
                   + ".</p></section>")
        return "".join(out)
    columns = profile.get("columns") or []
    out.append('<div class="tools"><input id="column-filter" type="search" placeholder="Filter columns by name" '
               'aria-label="Filter columns by name"><button id="expand-all" type="button">Expand all</button>'
               '<button id="collapse-all" type="button">Collapse all</button></div>')
    flags = _column_flags(data)
    # Past COLUMN_SECTIONS columns, those with alerts or findings keep their section first; the
    # rest get one line each, so a 10,000-column report stays a few megabytes.
    noted = [c for c in columns if c.get("alerts") or flags.get(c["name"])]
    sectioned = {c["index"] for c in (noted + [c for c in columns if c not in noted])[:COLUMN_SECTIONS]}
    out.extend(_column_section(column, data, flags.get(column["name"], [])) for column in columns
               if column["index"] in sectioned)
    rest = [c for c in columns if c["index"] not in sectioned]
    if rest:
        out.append(f'<h3 id="more-columns">{len(rest):,} more columns</h3><p class="muted">Sections are shown for '
                   f"{len(sectioned):,} of {len(columns):,} columns (those with alerts or findings first); every "
                   "statistic of the others is in profile.json and qa.column_profiles.</p>")
        out.append(table(["#", "column", "type", "nulls", "distinct"], (
            [cell(int(c["index"]) + 1), cell(c["name"]),
             cell((c.get("semantic_type") or {}).get("type") if isinstance(c.get("semantic_type"), dict)
                  else c.get("semantic_type")),
             cell(fmt_number((c.get("metrics") or {}).get("null_share"), "null_share")),
             cell(fmt_number((c.get("metrics") or {}).get("distinct_count"), "distinct_count"))] for c in rest),
            raw_cells=True))
    out.append("</section>")
    return "".join(out)


def _column_section(column: dict, data: ReportData, flags: list[str]) -> str:
    name = column["name"]
    metrics = column.get("metrics") or {}
    semantic = column.get("semantic_type") or {}
    kind = semantic.get("type", "?") if isinstance(semantic, dict) else str(semantic)
    storage = semantic.get("storage_type", "") if isinstance(semantic, dict) else ""
    temporal = kind == "datetime"
    alerts = column.get("alerts") or []
    role = data.roles().get(name) or {}
    badges = [f'<span class="badge">{esc(kind)}{" · " + esc(storage) if storage else ""}</span>',
              *([f'<span class="badge" title="{esc(role.get("reason"))}">role: {esc(role.get("role"))}</span>']
                if role else []),
              f'<span class="badge">nulls {esc(fmt_number(metrics.get("null_share"), "null_share"))}</span>',
              f'<span class="badge">distinct {esc(fmt_number(metrics.get("distinct_count"), "distinct_count"))}</span>']
    if alerts:
        badges.append(f'<span class="badge warn">{len(alerts)} alert(s)</span>')
    badges += [f'<span class="badge bad">{esc(flag)}</span>' for flag in dict.fromkeys(flags)]
    stats = [(m, metrics[m]) for m in STAT_ORDER if metrics.get(m) is not None]
    parts = [
        f'<details class="col" id="col-{int(column["index"])}" data-name="{esc(name)}">',
        f'<summary><b>{esc(name)}</b> <span class="muted">#{int(column["index"]) + 1}</span>{"".join(badges)}</summary>',
        '<div class="grid"><div>',
        table(["statistic", "value"], ([cell(m), f'<td class="n">{esc(fmt_number(v, m, temporal))}</td>'] for m, v in stats),
              raw_cells=True) if stats else '<p class="muted">No statistics.</p>',
        "</div><div>",
    ]
    histogram = column.get("histogram")
    if isinstance(histogram, dict) and histogram.get("counts"):
        parts.append("<h3>Histogram</h3>" + svg_histogram(histogram.get("edges") or [], histogram["counts"], temporal))
    top = column.get("top_values") or []
    if top:
        rows = metrics.get("row_count") or sum(t.get("count") or 0 for t in top) or 1
        parts.append("<h3>Top values</h3>" + table(["value", "count", "share"], (
            [cell(t.get("value")), cell(t.get("count")), share_bar((t.get("count") or 0) / rows)]
            for t in top[:TOP_VALUES_SHOWN]), raw_cells=True))
    shapes = column.get("shapes") or []
    if shapes:
        parts.append("<h3>Patterns</h3>" + table(["shape", "share"], (
            [f'<td class="mono">{esc(short(s.get("shape"), 80))}</td>', share_bar(s.get("share"))]
            for s in shapes[:TOP_VALUES_SHOWN]), raw_cells=True))
    parts.append("</div><div>")
    trends = [svg_sparkline(data.history.get((name, m), []), data.partition_key, m) for m in
              ("null_share", "distinct_count", "mean", "p50", "std", "length_mean", "top_value_share")]
    trends = [t for t in trends if t]
    if trends:
        parts.append("<h3>Trend over past partitions</h3>" + "".join(trends))
    parts.append("</div></div>")
    extra = {k: column.get(k) for k in ("normality", "monotonicity", "distinct_method") if column.get(k) not in (None, {}, [])}
    if extra:
        parts.append("<h3>More</h3>" + table(["", ""], ([cell(k), cell(v)] for k, v in extra.items()), raw_cells=True))
    if alerts:
        parts.append("<h3>Alerts</h3>" + records_table(alerts))
    parts.append("</details>")
    return "".join(parts)


def _correlations(data: ReportData) -> str:
    out = ['<section id="correlations"><h2>Correlations</h2>']
    correlations = (data.profile or {}).get("correlations") or {}
    if data.profile is None:
        out.append('<p class="muted">No profile for this partition.</p></section>')
        return "".join(out)
    shown = False
    for method in ("pearson", "spearman"):
        matrix = correlations.get(method) or {}
        if not isinstance(matrix, dict) or not matrix:
            continue
        shown = True
        pairs = {}
        for a, row in matrix.items():
            for b, r in (row or {}).items():
                if a != b and r is not None and math.isfinite(r):
                    pairs[tuple(sorted((a, b)))] = r
        strongest = sorted(pairs.items(), key=lambda item: -abs(item[1]))[:CORRELATION_PAIRS]
        out.append(f"<h3>{esc(method.capitalize())}</h3>")
        out.append(table(["column", "column", "r"], ([a, b, round(r, 4)] for (a, b), r in strongest)))
        if len(matrix) <= HEATMAP_MAX_COLUMNS:
            out.append(_heatmap(matrix))
    capped = correlations.get("columns_capped_at")
    if capped:
        out.append(f'<p class="muted">Computed over at most {int(capped)} numeric columns.</p>')
    if not shown:
        out.append('<p class="muted">No correlations (fewer than two numeric columns).</p>')
    out.append("</section>")
    return "".join(out)


def _heatmap(matrix: dict[str, dict[str, float]], cell_px: int = 14) -> str:
    names = list(matrix)
    label_w = 120
    size = label_w + cell_px * len(names)
    rects = []
    for i, a in enumerate(names):
        rects.append(f'<text x="{label_w - 4}" y="{label_w + i * cell_px + 11}" text-anchor="end">{esc(short(a, 18))}</text>')
        for j, b in enumerate(names):
            r = (matrix.get(a) or {}).get(b)
            if r is None or not math.isfinite(r):
                continue
            color = f"rgb({255 - int(max(r, 0) * 200)},{255 - int(abs(r) * 200)},{255 - int(max(-r, 0) * 200)})"
            rects.append(f'<rect x="{label_w + j * cell_px}" y="{label_w + i * cell_px}" width="{cell_px}" height="{cell_px}" '
                         f'fill="{color}"><title>{esc(a)} × {esc(b)}: {r:.3f}</title></rect>')
    return f'<svg width="{size}" height="{size}" role="img" aria-label="correlation heatmap">{"".join(rects)}</svg>'
