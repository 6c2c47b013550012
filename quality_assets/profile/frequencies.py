"""Value frequencies: one group-by per column of bounded cardinality (exact distinct counts, top
values, entropy, shapes, parse counts, number distributions), and candidates, shapes and parse
shares of high-cardinality columns from the sample."""

from __future__ import annotations

import math

import numpy as np

from quality_assets.profile.kernels import bin_counts, equal_width_edges, weighted_quantiles
from quality_assets.profile.state import (
    FREQUENCY_BATCH,
    PARSE_CONDITIONS,
    PARSE_KEYS,
    PARSE_SAMPLE,
    QUANTILES,
    Column,
    Profiler,
)
from quality_assets.shapes import shape_sql

# the coarse shape (shapes.py) of text `v`, capped to keep shapes readable
SHAPE_SQL = f"left({shape_sql('v', coarse=True)}, 40)"



def frequencies(state: Profiler) -> None:
    exact = [col for col in state.columns if state.stats[col.alias]["exact"] and state.stats[col.alias]["nn"]]
    for start in range(0, len(exact), FREQUENCY_BATCH):
        frequency_batch(state, exact[start:start + FREQUENCY_BATCH])

def frequency_batch(state: Profiler, batch: list[Column]) -> None:
    """One group-by per column, unioned into one temp table of (column, value, count); distinct
    counts, entropy, top values, parse counts, shapes and number distributions come from those rows."""
    k = state.opts.top_values
    by_index = {col.index: col for col in batch}

    def number(col: Column) -> str:
        if col.numeric:
            return f"CAST({col.ident} AS DOUBLE)"
        return f"epoch({col.ident})" if col.kind == "temporal" else "CAST(NULL AS DOUBLE)"

    branches = [
        f"""SELECT {col.index} AS ci, {col.ident if col.kind == "text" else f"CAST({col.ident} AS VARCHAR)"} AS v,
                   {number(col)} AS x, count(*) AS n
            FROM {state.table} WHERE {state.where} AND {col.ident} IS NOT NULL GROUP BY {col.ident}"""
        for col in batch]
    state.query(f"CREATE OR REPLACE TEMP TABLE _profile_values AS {' UNION ALL '.join(branches)}")
    try:
        parsed = ", ".join(f"coalesce(sum(n) FILTER (WHERE {cond.format(v='v')}), 0)" for cond in PARSE_CONDITIONS)
        for ci, distinct, neg_nlogn, *parse in state.con.execute(
                f"SELECT ci, count(*), -sum(n * ln(n)), {parsed} FROM _profile_values GROUP BY ci").fetchall():
            col = by_index[ci]
            s = state.stats[col.alias]
            s["distinct"] = int(distinct)
            if col.kind == "text":
                s["asnum"], s["asint"], s["asdate"], s["asbool"] = (int(x) for x in parse)
            n = int(s["nn"])
            # entropy of the value distribution, normalised to [0, 1] by its maximum ln(distinct)
            if distinct > 1:
                entropy = math.log(n) + (neg_nlogn or 0.0) / n
                s["balance"] = max(0.0, min(1.0, entropy / math.log(distinct)))
        for col in batch:
            state.stats[col.alias]["top"] = []
        for ci, v, n in state.con.execute(
                f"""SELECT ci, v, n FROM _profile_values
                    QUALIFY row_number() OVER (PARTITION BY ci ORDER BY n DESC, v) <= {k}
                    ORDER BY ci, n DESC, v""").fetchall():
            state.stats[by_index[ci].alias]["top"].append({"value": v, "count": n})
        texts = [col.index for col in batch if col.kind in ("text", "other")]
        if texts:
            for col in batch:
                if col.index in texts:
                    state.stats[col.alias]["shapes"] = []
            for ci, shape, n in state.con.execute(
                    f"""SELECT ci, s, n FROM (
                            SELECT ci, {SHAPE_SQL} AS s, sum(n) AS n FROM _profile_values
                            WHERE ci IN ({', '.join(str(i) for i in texts)}) GROUP BY ci, s)
                        QUALIFY row_number() OVER (PARTITION BY ci ORDER BY n DESC, s) <= {k}
                        ORDER BY ci, n DESC, s""").fetchall():
                state.stats[by_index[ci].alias]["shapes"].append({"shape": shape, "count": int(n)})
        if any(col.numeric or col.kind == "temporal" for col in batch):
            found = state.con.execute(
                "SELECT ci, x, n FROM _profile_values WHERE isfinite(x) ORDER BY ci, x").fetchnumpy()
            ci, x, n = (np.asarray(found[name]) for name in ("ci", "x", "n"))
            starts = np.flatnonzero(np.r_[True, ci[1:] != ci[:-1]]) if ci.size else np.array([], int)
            for begin, end in zip(starts, np.r_[starts[1:], ci.size], strict=True):
                exact_distribution(state, by_index[int(ci[begin])], x[begin:end], n[begin:end].astype(float))
    finally:
        state.con.execute("DROP TABLE IF EXISTS _profile_values")

def exact_distribution(state: Profiler, col: Column, values: np.ndarray, counts: np.ndarray | None = None) -> None:
    """Histogram, and for numbers central moments, quantiles and MAD, of finite values sorted ascending,
    with their counts (None: each value once)."""
    s = state.stats[col.alias]
    edges = bin_edges(state, col)
    if edges is not None:
        s["hist"] = dict(enumerate(bin_counts(values, counts, edges)))
    if not col.numeric:
        return
    d = values - float(s["mean"])
    d2 = d * d
    weighted = d2 if counts is None else d2 * counts
    s["m2"], s["m3"], s["m4"] = float(weighted.sum()), float((weighted * d).sum()), float((weighted * d2).sum())
    qs = [q for _, q in QUANTILES]
    if counts is None:
        s["q"] = [float(v) for v in np.quantile(values, qs)]
        s["mad"] = float(np.median(np.abs(values - s["q"][3])))
        return
    s["q"] = weighted_quantiles(values, counts, qs)
    deviations = np.abs(values - s["q"][3])
    order = np.argsort(deviations, kind="stable")
    s["mad"] = weighted_quantiles(deviations[order], counts[order], [0.5])[0]

def bin_edges(state: Profiler, col: Column) -> list[float] | None:
    s = state.stats[col.alias]
    if s.get("min") is None:
        return None
    if "edges" not in s:
        s["edges"] = equal_width_edges(float(s["min"]), float(s["max"]), state.opts.histogram_bins,
                                      integer=col.kind == "integer")
    return s["edges"]


def candidates(state: Profiler) -> None:
    complete = state.complete  # the sample is the whole partition: its counts are exact
    for col in state.columns:
        s = state.stats[col.alias]
        if s["exact"]:
            continue
        a, k = col.alias, state.opts.top_values
        if complete and a in state.sample and s.get("min") is not None:
            values = state.sample[a]
            values = np.sort(values[np.isfinite(values)])
            exact_distribution(state, col, values)
            s["distribution_done"] = True
        top = state.con.execute(
            f"""SELECT v, n FROM (
                    SELECT CAST({a} AS VARCHAR) AS v, count(*) AS n FROM _profile_sample WHERE {a} IS NOT NULL
                    GROUP BY {a}) ORDER BY n DESC, v LIMIT {k}""").fetchall()
        if complete:
            s["top"] = sorted(({"value": v, "count": int(n)} for v, n in top), key=lambda t: (-t["count"], t["value"]))
        else:
            s["top"], state.candidates[a] = [], [v for v, _ in top]
        if col.kind not in ("text", "other"):
            continue
        text = a if col.kind == "text" else f"CAST({a} AS VARCHAR)"
        # about PARSE_SAMPLE values: a lower hash bound is a uniform subsample of the sample, with no sort
        present = state.sample_size * int(s["nn"]) / state.rows
        bound = f"AND _h < {int(state.sample_bound * PARSE_SAMPLE / present)}::UBIGINT" \
            if present > PARSE_SAMPLE else ""
        head = f"(SELECT {text} AS v FROM _profile_sample WHERE {a} IS NOT NULL {bound})"
        # digits become 9 first (cheap, and the shape does that too): the costly letter classes then run
        # on the few distinct results
        shapes = state.con.execute(
            f"""SELECT {SHAPE_SQL} AS s, sum(n) AS n FROM (
                    SELECT translate(v, '012345678', '999999999') AS v, count(*) AS n FROM {head} GROUP BY 1)
                GROUP BY s ORDER BY n DESC, s LIMIT {k}""").fetchall()
        s["shapes"] = [{"shape": shape, "count": int(n)} for shape, n in shapes]
        if col.kind == "text":
            sample_parse_counts(state, col, head, exact=complete and not bound)
        else:
            s["shapes_total"] = state.con.execute(f"SELECT count(*) FROM {head}").fetchone()[0]

def sample_parse_counts(state: Profiler, col: Column, head: str, exact: bool) -> None:
    """How many values parse as number, integer, timestamp, boolean: estimated from the sample unless it
    holds every value; where the sample says every value parses, counted over the whole partition in the
    second scan (so 'stored as text' is exact)."""
    s = state.stats[col.alias]
    sums = ", ".join(f"count(*) FILTER (WHERE {cond.format(v='v')})" for cond in PARSE_CONDITIONS)
    row = state.con.execute(
        f"SELECT count(v), count(v) - count(*) FILTER (WHERE regexp_full_match(v, '\\s*')), {sums} FROM {head}"
    ).fetchone()
    s["shapes_total"], present = row[0], row[1]
    scale = (int(s["nn"]) - int(s.get("blank") or 0)) / present if present else 0.0
    counts = dict(zip(PARSE_KEYS, row[2:], strict=True))
    for key in PARSE_KEYS:
        s[key] = int(counts[key]) if exact else round(counts[key] * scale)
    if not exact:
        state.full_parse[col.alias] = [key for key in PARSE_KEYS if present and counts[key] >= present]
