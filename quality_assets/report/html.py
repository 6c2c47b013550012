"""The report pages' HTML building blocks: the page with its inline style and its one hashed
script, escaping, number formats, tables, and SVG charts. Every value from the data goes through
`esc`."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from quality_assets.report.gather import short

SHARE_METRICS = {"null_share", "uniqueness", "top_value_share", "future_share", "before_floor_share", "max_null_share"}
COUNT_METRICS = {"row_count", "null_count", "blank_count", "nan_count", "inf_count", "distinct_count", "zeros",
                 "negatives", "column_count", "duplicate_rows", "bytes", "alert_count"}
TIME_METRICS = {"min", "max", "mean", "p1", "p5", "p25", "p50", "p75", "p95", "p99"}
STAT_ORDER = ("row_count", "null_count", "null_share", "blank_count", "distinct_count", "uniqueness", "min", "p1",
              "p5", "p25", "p50", "p75", "p95", "p99", "max", "mean", "std", "mad", "iqr", "sum", "zeros",
              "negatives", "nan_count", "inf_count", "skewness", "kurtosis", "top_value_share", "length_min",
              "length_mean", "length_max", "future_share", "before_floor_share")
TOP_VALUES_SHOWN = 10
ROWS_SHOWN = 20
CORRELATION_PAIRS = 30
HEATMAP_MAX_COLUMNS = 40

CSS = """
:root{--fail:#b3261e;--warn:#9a6700;--pass:#1a7f37;--muted:#57606a;--line:#d0d7de;--bg:#f6f8fa}
*{box-sizing:border-box}body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1f2328}
header,main,footer{max-width:1200px;margin:0 auto;padding:0 20px}header{padding-top:16px}
h1{font-size:22px;margin:8px 0}h2{font-size:18px;border-bottom:1px solid var(--line);padding-bottom:4px;margin-top:28px}
h3{font-size:15px;margin:18px 0 6px}.muted{color:var(--muted)}code,.mono{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12.5px}
.verdict{border-radius:8px;padding:12px 16px;margin:12px 0;border:2px solid}.verdict h2{border:0;margin:0;font-size:20px}
.v-fail{border-color:var(--fail);background:#ffebe9}.v-warn{border-color:var(--warn);background:#fff8c5}
.v-pass{border-color:var(--pass);background:#dafbe1}.v-no_data{border-color:var(--muted);background:var(--bg)}
nav a{margin-right:14px}table{border-collapse:collapse;margin:6px 0 12px;max-width:100%}
th,td{border:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top;word-break:break-word;max-width:520px}
th{background:var(--bg);font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.bad{color:var(--fail);font-weight:600}.warn{color:var(--warn);font-weight:600}.ok{color:var(--pass)}
details{border:1px solid var(--line);border-radius:6px;margin:6px 0;padding:0 10px}
details[open]{padding-bottom:8px}summary{cursor:pointer;padding:6px 0}details.col>summary b{font-size:15px}
.badge{display:inline-block;border-radius:10px;padding:0 7px;font-size:12px;margin-left:6px;background:var(--bg);border:1px solid var(--line)}
.badge.bad{background:#ffebe9;border-color:var(--fail)}.badge.warn{background:#fff8c5;border-color:var(--warn)}
.grid{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}.bar{background:#8c959f;height:10px;display:inline-block}
svg{display:block}svg text{font:10px system-ui,sans-serif;fill:#57606a}.tools{margin:8px 0}
.tools input{padding:4px 8px;width:260px}.tools button{margin-left:6px}pre{white-space:pre-wrap;background:var(--bg);padding:6px;margin:4px 0}
"""

SCRIPT = """
(function(){
  var cols=document.querySelectorAll('details.col');
  var filter=document.getElementById('column-filter');
  filter.addEventListener('input',function(){
    var q=filter.value.toLowerCase();
    cols.forEach(function(d){d.hidden=q!==''&&d.getAttribute('data-name').toLowerCase().indexOf(q)<0;});
  });
  document.getElementById('expand-all').addEventListener('click',function(){cols.forEach(function(d){if(!d.hidden)d.open=true;});});
  document.getElementById('collapse-all').addEventListener('click',function(){cols.forEach(function(d){d.open=false;});});
})();
"""


def esc(value: Any) -> str:
    """Text for HTML (element content and quoted attributes)."""
    return html.escape("" if value is None else str(value), quote=True)


def script_hash(script: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()


def page(title: str, body: str, script: str | None = None) -> str:
    csp = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
           + (f"; script-src '{script_hash(script)}'" if script else ""))
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
        f'<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>",
        body,
        f"<script>{script}</script>" if script else "",
        "</body></html>\n",
    ])


def fmt_number(value: Any, metric: str = "", temporal: bool = False) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, (int, float)):
        return str(value)
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "∞" if value > 0 else "−∞"
    if temporal and metric in TIME_METRICS:
        return fmt_epoch(value)
    if metric in SHARE_METRICS or metric.endswith("_share"):
        return f"{value * 100:.2f}%" if value < 0.9999 or value == 1 else f"{value * 100:.4f}%"
    if metric in COUNT_METRICS or (value.is_integer() and abs(value) < 1e15):
        return f"{int(value):,}"
    if abs(value) >= 1e6 or (abs(value) < 1e-3 and value != 0):
        return f"{value:.4g}"
    return f"{value:,.4f}".rstrip("0").rstrip(".")


def fmt_epoch(seconds: float) -> str:
    try:
        moment = dt.datetime.fromtimestamp(seconds, dt.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return f"{seconds:.0f}"
    return moment.strftime("%Y-%m-%d") if moment.time() == dt.time(0) else moment.strftime("%Y-%m-%d %H:%M:%S")


def cell(value: Any) -> str:
    """A table cell for an arbitrary value: numbers right-aligned, structures as compact JSON."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return f'<td class="n">{esc(fmt_number(value))}</td>'
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False, default=str)
    return f"<td>{esc(short(value) if value is not None else '')}</td>"


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], raw_cells: bool = False) -> str:
    """A table; with raw_cells the row items are already rendered `<td>` strings."""
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(c if raw_cells else cell(c) for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def records_table(records: Sequence[dict], cap: int = ROWS_SHOWN, columns: Sequence[str] | None = None) -> str:
    """A table of dict records (the keys of the first ones as headers), at most `cap` rows."""
    if not records:
        return ""
    names = list(columns or dict.fromkeys(k for r in records[:cap] for k in r))[:14]
    more = f'<p class="muted">{len(records) - cap:,} more not shown.</p>' if len(records) > cap else ""
    return table(names, ([r.get(n) for n in names] for r in records[:cap])) + more


def svg_histogram(edges: Sequence[float], counts: Sequence[int], temporal: bool = False,
                  width: int = 340, height: int = 96) -> str:
    if not counts or len(edges) != len(counts) + 1:
        return ""
    top = max(counts) or 1
    plot_h = height - 16
    step = width / len(counts)
    bars = []
    for i, count in enumerate(counts):
        h = 0 if count == 0 else max(1.0, plot_h * count / top)
        lo, hi = fmt_number(edges[i], "min", temporal), fmt_number(edges[i + 1], "max", temporal)
        bars.append(f'<rect x="{i * step:.1f}" y="{plot_h - h:.1f}" width="{max(step - 1, 0.5):.1f}" '
                    f'height="{h:.1f}" fill="#54aeff"><title>{esc(lo)} – {esc(hi)}: {count:,}</title></rect>')
    labels = (f'<text x="0" y="{height - 3}">{esc(fmt_number(edges[0], "min", temporal))}</text>'
              f'<text x="{width}" y="{height - 3}" text-anchor="end">{esc(fmt_number(edges[-1], "max", temporal))}</text>')
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="histogram">{"".join(bars)}{labels}</svg>')


def svg_sparkline(points: Sequence[tuple[str, float | None]], current: str, metric: str,
                  width: int = 200, height: int = 44) -> str:
    values = [(key, v) for key, v in points if v is not None and math.isfinite(v)]
    if len(values) < 2:
        return ""
    lo, hi = min(v for _, v in values), max(v for _, v in values)
    span = (hi - lo) or 1.0
    n = len(values)
    coords = [(4 + (width - 8) * i / (n - 1), 4 + (height - 18) * (1 - (v - lo) / span)) for i, (_, v) in enumerate(values)]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    dots = "".join(
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{3 if key == current else 1.6}" fill="{"#cf222e" if key == current else "#0969da"}">'
        f"<title>{esc(key)}: {esc(fmt_number(v, metric))}</title></circle>"
        for (x, y), (key, v) in zip(coords, values, strict=True))
    return (f'<svg width="{width}" height="{height}" role="img" aria-label="trend of {esc(metric)}">'
            f'<polyline points="{line}" fill="none" stroke="#0969da" stroke-width="1.2"/>{dots}'
            f'<text x="2" y="{height - 2}">{esc(metric)}: {esc(fmt_number(lo, metric))} … {esc(fmt_number(hi, metric))}</text></svg>')


def share_bar(share: float | None, width: int = 80) -> str:
    if share is None or not math.isfinite(share):
        return "<td></td>"
    return f'<td><span class="bar" style="width:{max(1, round(width * min(share, 1.0)))}px"></span> {share * 100:.1f}%</td>'
