"""The profile's reads of the partition: the streaming aggregates, the sample, monotonicity, the
second scan of high-cardinality columns, exact counts of top-value candidates, and the
statistics computed from the sample."""

from __future__ import annotations

import math

import numpy as np

from quality_assets.profile.frequencies import bin_edges
from quality_assets.profile.kernels import (
    double_literal,
    finish_moments,
    finite,
    normality_test,
    pearson_matrix,
    spearman_matrix,
)
from quality_assets.profile.state import PARSE_CONDITIONS, PARSE_KEYS, QUANTILES, Column, Profiler


def scan_items(state: Profiler, col: Column) -> tuple[list[tuple[str, str]], dict[str, str]]:
    c, a = col.ident, col.alias
    proj = {a: c}
    items = [(f"{a}_nn", f"count({a})"), (f"{a}_hll", f"approx_count_distinct({a})")]
    if col.kind == "float":
        x = c if col.storage == "DOUBLE" else f"CAST({c} AS DOUBLE)"
        proj[f"{a}_f"] = f"CASE WHEN isfinite({x}) THEN {x} END"
        items += [
            (f"{a}_min", f"min({a}_f)"), (f"{a}_max", f"max({a}_f)"), (f"{a}_sum", f"sum({a}_f)"),
            (f"{a}_mean", f"avg({a}_f)"), (f"{a}_finite", f"count({a}_f)"),
            (f"{a}_nan", f"count_if(isnan({a}))"), (f"{a}_inf", f"count_if(isinf({a}))"),
            (f"{a}_zeros", f"count_if({a} = 0)"), (f"{a}_neg", f"count_if({a} < 0)"),
        ]
    elif col.kind == "integer":
        items += [
            (f"{a}_min", f"CAST(min({a}) AS DOUBLE)"), (f"{a}_max", f"CAST(max({a}) AS DOUBLE)"),
            (f"{a}_sum", f"CAST(sum({a}) AS DOUBLE)"), (f"{a}_mean", f"avg({a})"),
            (f"{a}_zeros", f"count_if({a} = 0)"), (f"{a}_neg", f"count_if({a} < 0)"),
        ]
    elif col.kind == "temporal":
        items += [
            (f"{a}_min", f"epoch(min({a}))"), (f"{a}_max", f"epoch(max({a}))"),
            (f"{a}_future", f"count_if({a} > CAST($now AS {col.storage}))"),
            (f"{a}_old", f"count_if({a} < CAST($floor AS {col.storage}))"),
        ]
    elif col.kind in ("text", "other"):
        v = a
        if col.kind == "other":
            v = f"{a}_v"
            proj[v] = f"CAST({c} AS VARCHAR)"
        proj[f"{a}_l"] = f"length({proj[v]})"
        items += [
            (f"{a}_lmin", f"min({a}_l)"), (f"{a}_lmean", f"avg({a}_l)"), (f"{a}_lmax", f"max({a}_l)"),
            # blank values sort before '!': the cheap comparison spares the regex on nearly every value
            (f"{a}_blank", f"count_if({v} < '!' AND regexp_full_match({v}, '\\s*'))"),
        ]
    elif col.kind == "boolean":
        items += [(f"{a}_true", f"count_if({a})")]
    return items, proj

def scan(state: Profiler) -> None:
    items = [("t_rows", "count(*)"), ("t_first", "min(_source_row)"), ("t_last", "max(_source_row)")]
    projections = {"_source_row": "_source_row"}
    for col in state.columns:
        col_items, proj = scan_items(state, col)
        items += col_items
        projections.update(proj)
    for alias, value in state.batched(items, projections, {"now": state.now, "floor": state.opts.date_floor}):
        col_alias, stat = alias.split("_", 1)
        if col_alias == "t":
            setattr(state, {"rows": "rows", "first": "first_row", "last": "last_row"}[stat],
                    int(value) if value is not None else None)
        else:
            state.stats[col_alias][stat] = value
    for col in state.columns:
        s = state.stats[col.alias]
        s["exact"] = s["nn"] == 0 or s["hll"] <= state.opts.exact_distinct_max
        if col.kind == "integer":
            s["finite"] = s["nn"]

def sample(state: Profiler) -> None:
    cols = [c for c in state.columns if c.numeric or not state.stats[c.alias]["exact"]]
    if not cols or state.rows == 0:
        return
    wanted = int(min(state.opts.sample_rows, max(10_000, state.opts.sample_cells // len(cols))))
    where = state.where
    if state.rows > wanted:
        # the wanted-th smallest hash, from a top-N over one column (among the rows whose hash is in the
        # lowest ~1.5 sample sizes' worth): the sample is then a filter, with no sort of its rows
        cutoff = min(2 ** 64 - 1, int(2 ** 64 * 1.5 * wanted / state.rows))
        threshold = state.query(
            f"""SELECT max(h) FROM (SELECT hash(_source_row) AS h FROM {state.table}
                WHERE {state.where} AND hash(_source_row) < {cutoff}::UBIGINT ORDER BY h LIMIT {wanted})"""
        ).fetchone()[0]
        state.sample_bound = cutoff if threshold is None else int(threshold) + 1
        where += f" AND hash(_source_row) < {state.sample_bound}::UBIGINT"
    state.query(
        f"""CREATE OR REPLACE TEMP TABLE _profile_sample AS
            SELECT hash(_source_row) AS _h, {', '.join(f'{c.ident} AS {c.alias}' for c in cols)}
            FROM {state.table} WHERE {where}""")
    state.sample_size = state.con.execute("SELECT count(*) FROM _profile_sample").fetchone()[0]
    state.complete = state.sample_size == state.rows
    # numbers as DOUBLE; dates as epoch seconds where the sample is the whole partition (their histograms)
    arrays = {c.alias: f"CAST({c.alias} AS DOUBLE)" for c in cols if c.numeric}
    if state.complete:
        arrays.update({c.alias: f"epoch({c.alias})" for c in cols if c.kind == "temporal"})
    if arrays:
        found = state.con.execute(
            f"SELECT _h, {', '.join(f'{expr} AS {alias}' for alias, expr in arrays.items())} FROM _profile_sample"
        ).fetchnumpy()
        order = np.argsort(np.asarray(found["_h"]), kind="stable")  # hash order: any head is uniform too
        # NULLs come back masked: they become NaN and drop out like NaN does
        state.sample = {alias: np.ma.filled(np.ma.asarray(found[alias]).astype(float), np.nan)[order]
                       for alias in arrays}

def monotonicity(state: Profiler) -> None:
    ordered = []
    for col in state.columns:
        s = state.stats[col.alias]
        if not (col.numeric or col.kind == "temporal"):
            continue
        s["monotonicity"] = "none"
        if s["finite" if col.numeric else "nn"] >= 2 and s["min"] is not None and s["min"] != s["max"]:
            ordered.append(col)
    if not ordered:
        return
    value = {c.alias: f"epoch({c.ident})" if c.kind == "temporal" else f"CAST({c.ident} AS DOUBLE)" for c in ordered}
    edges = state.query(
        f"""SELECT _source_row, {', '.join(value[c.alias] for c in ordered)} FROM {state.table}
            WHERE {state.where} AND _source_row IN ($first, $last)""",
        {"first": state.first_row, "last": state.last_row}).fetchall()
    at = {}
    for row in edges:
        at.setdefault(row[0], []).append(row[1:])
    unclear = []
    for i, col in enumerate(ordered):
        s = state.stats[col.alias]
        ends = [at.get(state.first_row), at.get(state.last_row)]
        if any(e is None or len(e) != 1 or e[0][i] is None or not math.isfinite(e[0][i]) for e in ends):
            unclear.append(col)  # a null or non-finite edge, or record numbers repeated in the partition
        else:
            s["first"], s["last"] = ends[0][0][i], ends[1][0][i]
    if unclear:
        exprs = []
        for col in unclear:
            x = value[col.alias]
            exprs += [f"arg_min({x}, _source_row) FILTER (WHERE isfinite({x}))",
                      f"arg_max({x}, _source_row) FILTER (WHERE isfinite({x}))"]
        row = state.query(f"SELECT {', '.join(exprs)} FROM {state.table} WHERE {state.where}").fetchone()
        for i, col in enumerate(unclear):
            state.stats[col.alias]["first"], state.stats[col.alias]["last"] = row[2 * i], row[2 * i + 1]
    candidates = []
    for col in ordered:
        s = state.stats[col.alias]
        first, last, low, high = s["first"], s["last"], float(s["min"]), float(s["max"])
        if (first == low and last == high) or (first == high and last == low):
            candidates.append(col)
    if not candidates:
        return
    # rows usually stream in record order: a lag over the stream (no sort) holds when the record numbers
    # it sees strictly increase; otherwise the lag is taken in sorted record order. A plain lag streams;
    # `lag(x IGNORE NULLS)` makes DuckDB hold every row (~330 MB at 10M rows): a column with nulls
    # gets its own query over its non-null rows instead.
    full = [col for col in candidates if state.stats[col.alias]["nn"] == state.rows]
    groups = ([full] if full else []) + [[col] for col in candidates if col not in full]
    found: dict[str, tuple] = {}
    for window in ("", "ORDER BY _source_row"):
        in_order = True
        for group in groups:
            items, checks = ["_source_row AS _r", f"lag(_source_row) OVER ({window}) AS _r_prev"], ["bool_and(_r > _r_prev)"]
            for col in group:
                a, x = col.alias, value[col.alias]
                items.append(f"{x} AS {a}, lag({x}) OVER ({window}) AS {a}_prev")
                checks += [f"bool_and({a} >= {a}_prev)", f"bool_and({a} > {a}_prev)",
                           f"bool_and({a} <= {a}_prev)", f"bool_and({a} < {a}_prev)"]
            non_null = "" if group is full else f" AND {value[group[0].alias]} IS NOT NULL"
            ordered_here, *row = state.query(
                f"SELECT {', '.join(checks)} FROM (SELECT {', '.join(items)} FROM {state.table} "
                f"WHERE {state.where}{non_null})").fetchone()
            in_order = in_order and bool(ordered_here)
            found.update((col.alias, tuple(row[4 * i: 4 * i + 4])) for i, col in enumerate(group))
        if in_order:
            break
    for col in candidates:
        up, strict_up, down, strict_down = found[col.alias]
        state.stats[col.alias]["monotonicity"] = (
            "strictly_increasing" if strict_up else "increasing" if up else
            "strictly_decreasing" if strict_down else "decreasing" if down else "none")

def second_scan(state: Profiler) -> None:
    items: list[tuple[str, str]] = []
    projections: dict[str, str] = {}
    for col in state.columns:
        s, a, c = state.stats[col.alias], col.alias, col.ident
        if s["exact"]:
            continue
        edges = bin_edges(state, col) if col.numeric or col.kind == "temporal" else None
        if edges is not None and not s.get("distribution_done"):
            if col.numeric:
                x = c if col.storage == "DOUBLE" else f"CAST({c} AS DOUBLE)"
                projections[f"{a}_x"] = f"CASE WHEN isfinite({x}) THEN {x} END"
                projections[f"{a}_d"] = f"CASE WHEN isfinite({x}) THEN {x} - {double_literal(s['mean'])} END"
                items += [(f"{a}_m2", f"sum({a}_d * {a}_d)"), (f"{a}_m3", f"sum({a}_d * {a}_d * {a}_d)"),
                          (f"{a}_m4", f"sum(({a}_d * {a}_d) * ({a}_d * {a}_d))")]
            else:
                projections[f"{a}_x"] = f"epoch({c})"
            nb = len(edges) - 1
            width = (edges[-1] - edges[0]) / nb
            # GREATEST and LEAST skip NULLs: the CASE keeps nulls (and NaN, infinities) out of bin 0
            # histogram() with bin boundaries 0..nb-1 counts each bin index: one-argument histogram()s
            # in one query make DuckDB hold every row of the projection (~900 MB at 10M rows)
            items.append((f"{a}_hist", f"histogram(CASE WHEN {a}_x IS NOT NULL THEN LEAST(GREATEST(CAST(floor(("
                                       f"{a}_x - {double_literal(edges[0])}) / {double_literal(width)}) AS INTEGER), 0), "
                                       f"{nb - 1}) END, {list(range(nb))})"))
        projections[a] = c
        for key in state.full_parse.get(a, []):
            items.append((f"{a}_full{key}", f"count_if({PARSE_CONDITIONS[PARSE_KEYS.index(key)].format(v=a)})"))
    if duplicates_needed(state):
        projections["_row_hash"] = f"hash({', '.join(c.ident for c in state.columns)})"
        items.append(("t_distinctrows", "count(DISTINCT _row_hash)"))
    for alias, value in state.batched(items, projections):
        col_alias, stat = alias.split("_", 1)
        if col_alias == "t":
            # a 64-bit hash: two distinct rows collide with probability about rows^2 / 2^65
            state.duplicates = state.rows - int(value)
            continue
        s = state.stats[col_alias]
        if stat.startswith("full"):
            s[stat[4:]] = int(value)
        else:
            s[stat] = value

def duplicates_needed(state: Profiler) -> bool:
    """Duplicate rows are counted unless a column is known to be unique."""
    if state.rows < 2:
        return False
    for col in state.columns:
        s = state.stats[col.alias]
        if (s["exact"] and s.get("distinct") == state.rows) or \
                (s["nn"] == state.rows and s.get("monotonicity", "").startswith("strictly")):
            return False
    return True

def top_counts(state: Profiler) -> None:
    """Exact counts of the top-value candidates: a hash join of each column with its few candidates
    (half the work of comparing every value with each candidate)."""
    branches, params = [], {}
    by_index = {col.index: col for col in state.columns}
    for col in state.columns:
        found = state.candidates.get(col.alias)
        if not found:
            continue
        a = col.alias
        value = f"CAST({col.ident} AS VARCHAR)" if col.kind == "other" else col.ident
        cast = "VARCHAR" if col.kind == "other" else col.storage
        params.update({f"k{a}_{j}": candidate for j, candidate in enumerate(found)})
        listed = ", ".join(f"({j}, CAST($k{a}_{j} AS {cast}))" for j in range(len(found)))
        branches.append(
            f"""SELECT {col.index} AS ci, k.j, count(*) AS n
                FROM (SELECT {value} AS v FROM {state.table} WHERE {state.where}) t
                JOIN (VALUES {listed}) k(j, v) ON t.v = k.v GROUP BY k.j""")
    if not branches:
        return
    for ci, j, n in state.query(" UNION ALL ".join(branches), params).fetchall():
        col = by_index[ci]
        state.stats[col.alias]["top"].append({"value": state.candidates[col.alias][j], "count": int(n)})
    for col in state.columns:
        if col.alias in state.candidates:
            state.stats[col.alias]["top"].sort(key=lambda t: (-t["count"], t["value"]))

def sample_statistics(state: Profiler) -> None:
    for col in state.columns:
        s = state.stats[col.alias]
        if col.numeric and s["min"] is not None:
            finish_moments(s)
        if not col.numeric or "q" in s or col.alias not in state.sample:
            continue
        values = state.sample[col.alias]
        values = values[np.isfinite(values)]
        if values.size:
            s["q"] = [float(v) for v in np.quantile(values, [q for _, q in QUANTILES])]
            s["mad"] = float(np.median(np.abs(values - s["q"][3])))
    for col in state.columns:
        values = state.sample.get(col.alias) if col.numeric else None
        if values is None:
            continue
        values = values[np.isfinite(values)][: state.opts.normality_sample]
        result = normality_test(values, state.opts.gaussian_test)
        if result is not None:
            state.normality[col.alias] = result
    state.corr_columns = [c for c in state.columns if c.numeric and (state.stats[c.alias].get("std") or 0) > 0]
    state.corr_capped = len(state.corr_columns) > state.opts.correlation_max_columns
    state.corr_columns = state.corr_columns[: state.opts.correlation_max_columns]
    aliases = [c.alias for c in state.corr_columns if c.alias in state.sample]
    if len(aliases) >= 2:
        values = np.column_stack([state.sample[a] for a in aliases])
        pearson = pearson_matrix(values)
        spearman = spearman_matrix(values[: state.opts.correlation_sample])
        for i, a in enumerate(aliases):
            for j in range(i + 1, len(aliases)):
                state.pearson[(a, aliases[j])] = finite(pearson[i, j])
                state.spearman[(a, aliases[j])] = finite(spearman[i, j])
