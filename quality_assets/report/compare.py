"""A comparison of two partitions (or two files): the model (schema changes, metric deltas,
drift) and its HTML page. Where the two sides come from is compare_sources.py.

Partitions are read from the warehouse: their stored profiles (or, when the profile stage has not
run on one, a profile computed from its raw rows), their loads, and the drift results of B. Two
files are loaded and profiled in a throw-away warehouse, exactly as the pipeline reads them.
The page shows schema changes first (added, removed, retyped, moved columns), then the metrics
that changed most, then every common column's metrics side by side, then drift.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

from quality_assets.report.gather import short
from quality_assets.report.html import cell, esc, fmt_number, page, table

SHARE_CHANGE = 0.02  # shares (null share, uniqueness...) moving by 2 points or more are notable
RELATIVE_CHANGE = 0.10  # other metrics moving by 10% or more
SHAPE_METRICS = ("skewness", "kurtosis")
SHAPE_CHANGE = 1.0  # skewness and kurtosis moving by 1 or more
TOP_CHANGES = 50


@dataclass
class Side:
    label: str  # the partition key or file name
    profile: dict
    load: dict | None = None
    profiled_now: bool = False  # computed for this comparison, not read from qa.column_profiles


@dataclass
class MetricDelta:
    column: str | None
    metric: str
    a: float | None
    b: float | None

    @property
    def change(self) -> float | None:
        if self.a is None or self.b is None:
            return None
        return self.b - self.a

    @property
    def relative(self) -> float | None:
        if self.change is None:
            return None
        if self.a == 0:
            return 0.0 if self.b == 0 else math.inf
        return self.change / abs(self.a)

    @property
    def notable(self) -> bool:
        if self.change is None:
            return (self.a is None) != (self.b is None)
        if self.metric.endswith("_share") or self.metric == "uniqueness":
            return abs(self.change) >= SHARE_CHANGE
        if self.metric in SHAPE_METRICS:  # near zero, so relative change means little
            return abs(self.change) >= SHAPE_CHANGE
        return abs(self.relative or 0) >= RELATIVE_CHANGE

    @property
    def weight(self) -> float:
        if self.change is None:
            return 1.0
        if self.metric.endswith("_share") or self.metric == "uniqueness":
            return abs(self.change) / SHARE_CHANGE * RELATIVE_CHANGE
        if self.metric in SHAPE_METRICS:
            return abs(self.change) / SHAPE_CHANGE * RELATIVE_CHANGE
        return min(abs(self.relative or 0), 1e9)


@dataclass
class Comparison:
    dataset: str
    a: Side
    b: Side
    added: list[tuple[str, str]] = field(default_factory=list)  # (column, type)
    removed: list[tuple[str, str]] = field(default_factory=list)
    retyped: list[tuple[str, str, str]] = field(default_factory=list)  # (column, type in A, type in B)
    moved: list[tuple[str, int, int]] = field(default_factory=list)
    dataset_deltas: list[MetricDelta] = field(default_factory=list)
    column_deltas: dict[str, list[MetricDelta]] = field(default_factory=dict)
    drift: list[dict] = field(default_factory=list)
    drift_note: str = ""

    def top_changes(self, limit: int = TOP_CHANGES) -> list[MetricDelta]:
        notable = [d for deltas in self.column_deltas.values() for d in deltas if d.notable]
        notable += [d for d in self.dataset_deltas if d.notable]
        return sorted(notable, key=lambda d: -d.weight)[:limit]

    def summary(self) -> dict:
        return {"added": len(self.added), "removed": len(self.removed), "retyped": len(self.retyped),
                "moved": len(self.moved), "notable_changes": len(self.top_changes(10**9)),
                "drifted": sum(bool(d.get("drifted")) for d in self.drift)}


def _type_of(column: dict) -> str:
    semantic = column.get("semantic_type") or {}
    if isinstance(semantic, dict):
        return " / ".join(str(p) for p in (semantic.get("type"), semantic.get("storage_type")) if p)
    return str(semantic)


def compare_profiles(dataset: str, a: Side, b: Side, drift: list[dict] | None = None, drift_note: str = "") -> Comparison:
    result = Comparison(dataset, a, b, drift=list(drift or []), drift_note=drift_note)
    cols_a, cols_b = _own_columns(a), _own_columns(b)
    result.added = [(name, _type_of(c)) for name, c in cols_b.items() if name not in cols_a]
    result.removed = [(name, _type_of(c)) for name, c in cols_a.items() if name not in cols_b]
    common = [name for name in cols_b if name in cols_a]
    result.retyped = [(n, _type_of(cols_a[n]), _type_of(cols_b[n])) for n in common
                      if _type_of(cols_a[n]) != _type_of(cols_b[n])]
    order_a = [n for n in cols_a if n in cols_b]
    result.moved = [(n, order_a.index(n) + 1, i + 1) for i, n in enumerate(common) if order_a.index(n) != i]
    result.dataset_deltas = _deltas(None, a.profile.get("metrics") or {}, b.profile.get("metrics") or {})
    for name in common:
        result.column_deltas[name] = _deltas(name, cols_a[name].get("metrics") or {}, cols_b[name].get("metrics") or {})
    return result


def _own_columns(side: Side) -> dict[str, dict]:
    """The side's profiled columns that its file had: the raw table is the union of every
    partition's columns, so a profile also lists columns the file lacked (all NULL)."""
    profiled = {c["name"]: c for c in side.profile.get("columns") or []}
    in_file = (side.load or {}).get("columns")
    if not in_file:
        return profiled
    return {name: profiled.get(name, {"name": name, "metrics": {}}) for name in in_file}


def _deltas(column: str | None, a: dict, b: dict) -> list[MetricDelta]:
    names = list(dict.fromkeys([*a, *b]))
    out = []
    for metric in names:
        va, vb = _finite(a.get(metric)), _finite(b.get(metric))
        if va is None and vb is None:
            continue
        out.append(MetricDelta(column, metric, va, vb))
    return out


def _finite(value) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def pct(delta: MetricDelta) -> str:
    rel = delta.relative
    if rel is None:
        return "–"
    if math.isinf(rel):
        return "new"
    return f"{rel * 100:+.1f}%"


def render_comparison(comparison: Comparison) -> str:
    a, b = comparison.a, comparison.b
    s = comparison.summary()
    title = f"{comparison.dataset}: {a.label} → {b.label}"
    parts = [
        "<header>",
        f'<p class="muted">quality_assets comparison · dataset <b>{esc(comparison.dataset)}</b> · generated '
        f"{esc(dt.datetime.now(dt.timezone.utc).isoformat(timespec='seconds'))}</p>",
        f"<h1>A: <code>{esc(a.label)}</code> → B: <code>{esc(b.label)}</code></h1>",
        f'<section id="verdict" class="verdict v-{"warn" if any(s.values()) else "pass"}"><h2>'
        f"{s['added']} column(s) added, {s['removed']} removed, {s['retyped']} retyped; {s['notable_changes']} notable "
        f"metric change(s); {s['drifted']} drifted column(s)</h2></section>",
        '<nav><a href="#sides">Partitions</a><a href="#schema">Schema</a><a href="#changes">Largest changes</a>'
        '<a href="#columns">Columns</a><a href="#drift">Drift</a></nav></header><main>',
        _sides(comparison),
        _schema(comparison),
        _changes(comparison),
        _columns(comparison),
        _drift(comparison),
        "</main>",
    ]
    return page(title, "".join(parts))


def _sides(c: Comparison) -> str:
    rows = []
    for label, getter in (
        ("rows", lambda s: (s.profile.get("metrics") or {}).get("row_count")),
        ("columns", lambda s: len(s.profile.get("columns") or [])),
        ("file", lambda s: (s.load or {}).get("source_path")),
        ("sha256", lambda s: (s.load or {}).get("sha256")),
        ("bytes", lambda s: (s.load or {}).get("bytes")),
        ("rows quarantined", lambda s: (s.load or {}).get("rows_quarantined")),
        ("loaded", lambda s: (s.load or {}).get("finished")),
        ("profile", lambda s: "computed for this comparison" if s.profiled_now else f"stored, run {s.profile.get('run_id')}"),
    ):
        rows.append([cell(label), cell(getter(c.a)), cell(getter(c.b))])
    return ('<section id="sides"><h2>Partitions</h2>' + table(["", f"A: {c.a.label}", f"B: {c.b.label}"], rows, raw_cells=True)
            + "</section>")


def _schema(c: Comparison) -> str:
    out = ['<section id="schema"><h2>Schema changes</h2>']
    if not (c.added or c.removed or c.retyped or c.moved):
        out.append('<p class="ok">Same columns, types and order.</p>')
    if c.added:
        out.append("<h3>Added in B</h3>" + table(["column", "type"], c.added))
    if c.removed:
        out.append("<h3>Removed in B</h3>" + table(["column", "type"], c.removed))
    if c.retyped:
        out.append("<h3>Retyped</h3>" + table(["column", "type in A", "type in B"], c.retyped))
    if c.moved:
        out.append("<h3>Moved</h3>" + table(["column", "position in A", "position in B"], c.moved))
    out.append("</section>")
    return "".join(out)


def _delta_rows(deltas: list[MetricDelta], with_column: bool) -> list[list[str]]:
    rows = []
    for d in deltas:
        row = [cell(d.column if d.column is not None else "(dataset)")] if with_column else []
        klass = ' class="warn"' if d.notable else ""
        row += [cell(d.metric), f'<td class="n">{esc(fmt_number(d.a, d.metric))}</td>',
                f'<td class="n">{esc(fmt_number(d.b, d.metric))}</td>',
                f'<td class="n">{esc(fmt_number(d.change, d.metric) if d.change is not None else "–")}</td>',
                f'<td class="n"{klass}>{esc(pct(d))}</td>']
        rows.append(row)
    return rows


def _changes(c: Comparison) -> str:
    top = c.top_changes()
    out = ['<section id="changes"><h2>Largest changes</h2>']
    if not top:
        out.append(f'<p class="ok">No metric moved by {RELATIVE_CHANGE:.0%} or more (shares: {SHARE_CHANGE * 100:.0f} points).</p>')
    else:
        out.append(table(["column", "metric", "A", "B", "change", "relative"], _delta_rows(top, True), raw_cells=True))
    out.append("<h3>Dataset</h3>" + table(["metric", "A", "B", "change", "relative"], _delta_rows(c.dataset_deltas, False),
                                          raw_cells=True))
    out.append("</section>")
    return "".join(out)


def _columns(c: Comparison) -> str:
    out = ['<section id="columns"><h2>Columns in both</h2>']
    if not c.column_deltas:
        out.append('<p class="muted">No column in common.</p>')
    for name, deltas in c.column_deltas.items():
        notable = sum(d.notable for d in deltas)
        badge = f'<span class="badge warn">{notable} notable</span>' if notable else ""
        out.append(f'<details class="col" data-name="{esc(name)}"><summary><b>{esc(name)}</b>{badge}</summary>'
                   + table(["metric", "A", "B", "change", "relative"], _delta_rows(deltas, False), raw_cells=True)
                   + "</details>")
    out.append("</section>")
    return "".join(out)


def _drift(c: Comparison) -> str:
    out = ['<section id="drift"><h2>Drift</h2>']
    if c.drift_note:
        out.append(f'<p class="muted">{esc(c.drift_note)}</p>')
    if c.drift:
        out.append(table(["column", "drifted", "test", "statistic", "adjusted p", "PSI", "effect size", "reference", "why"], (
            [d.get("column_name"), bool(d.get("drifted")), d.get("test"), d.get("statistic"), d.get("adjusted_p"),
             d.get("psi"), d.get("effect_size"), d.get("reference_partition"), short(d.get("reason"))] for d in c.drift)))
    out.append("</section>")
    return "".join(out)
