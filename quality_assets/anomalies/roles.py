"""Column roles, learned from the partition and its history (or set in the contract), so that
each column gets the checks that fit it.

- `period`: one value per partition, changing between partitions (a period number, a batch id,
  the file's month): checked for consistency with its partition (one value, the expected next
  one), never as a row outlier against the history's range.
- `time`: dates and timestamps, and the calendar parts of a period (day of month, month, hour):
  rows checked against the partition's period; their calendar-bound distribution is not drift.
- `identifier`: keys and codes (unique integers in a dense range, strings of one or two shapes):
  duplicates, nulls and shapes, no range and no location metrics.
- `measure`, `category`, `text`: numbers, few distinct values, free text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pyarrow.compute as pc

from quality_assets.anomalies.columns import ColumnInfo, raw_table
from quality_assets.shapes import shapes
from quality_assets.warehouse import quote_ident, quote_literal

ROLE_HISTORY = 12  # recent history partitions read to learn roles
HISTORY_ROWS = 200_000  # history rows (a deterministic sample) read to learn roles
PART_SAMPLE = 10_000  # rows (a deterministic sample) that tell whether a number is a part of a date
TURNOVER_HISTORY = 3  # partitions before labels that turn over can be told from a category
MAX_CATEGORIES = 1000  # more distinct strings than this (or than 20% of the rows): codes or text
UNIQUE = 0.97  # approx_count_distinct errs by a few percent
DENSE = 1.5  # an integer key spans at most this many times as many values as it has rows
SHAPE_SAMPLE = 5000  # values whose shapes tell a code from free text
CODE_SHAPES = 0.9  # share of values in the 20 commonest character shapes: a code, else text
# calendar parts: a whole-word name and every value in the part's range
CALENDAR = {"year": (1000, 3000), "yr": (1000, 3000), "quarter": (1, 4), "month": (1, 12), "mon": (1, 12),
            "week": (0, 53), "day": (1, 31), "mday": (1, 31), "dom": (1, 31), "weekday": (0, 7),
            "dow": (0, 7), "wday": (0, 7), "doy": (1, 366), "yday": (1, 366), "hour": (0, 23),
            "hr": (0, 23), "minute": (0, 59)}
NUMBER_WORDS = {"num", "number", "no", "nr"}  # `week_number` is about the week
# whole numbers a name calls a label (`policePrecinct`, `zone_code`, `region_no`): categories
CODE_WORDS = {"precinct", "district", "ward", "zone", "region", "code", "class", "division", "sector"}
DATE_PARTS = {"year": (1000, 3000), "quarter": (1, 4), "month": (1, 12), "day": (1, 31), "dayofweek": (0, 6),
              "hour": (0, 23)}


@dataclass
class ColumnRole:
    column: str
    role: str
    source: str  # learned | contract
    reason: str
    history: list[tuple[str, object]] = field(default_factory=list)  # period: (partition, value), oldest first
    bounds: tuple[int, int] | None = None  # a calendar part's natural range
    centred: bool = False  # a number judged from its partition's median, like a date
    coarse: bool = False  # labels judged by their coarse shapes (runs collapsed: 'Aa' for any name)


def name_tokens(name: str) -> list[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return [t for t in re.split(r"[^0-9a-zA-Z]+", spaced.lower()) if t]


def names_a_code(name: str) -> bool:
    """Whether the name is about a label (its last word, past a number word): `policePrecinct`,
    `zone_no`; not `precinct_population`."""
    tokens = name_tokens(name)
    while len(tokens) > 1 and tokens[-1] in NUMBER_WORDS:
        tokens.pop()
    return bool(tokens) and tokens[-1] in CODE_WORDS


def calendar_part(name: str, low, high) -> str | None:
    """The calendar part a column's name says it holds, when every value fits that part. The part
    must be what the name is about, its last word (`pickup_hour`, `week_no`) or the word before
    "of" (`day_of_week`): `stays_in_week_nights` counts nights, not weeks."""
    if low is None or high is None:
        return None
    tokens = name_tokens(name)
    while len(tokens) > 1 and tokens[-1] in NUMBER_WORDS:
        tokens.pop()
    heads = [tokens[i - 1] for i in range(1, len(tokens)) if tokens[i] == "of"] + tokens[-1:]
    for token in heads:
        if token in CALENDAR:
            lo, hi = CALENDAR[token]
            if lo <= low and high <= hi:
                return token
    return None


STATS_COLUMNS_PER_QUERY = 250


def _partition_stats(con, dataset: str, columns: list[ColumnInfo], partitions: list[str],
                     sample: str = "TRUE") -> dict[str, dict]:
    """partition -> {"rows", column -> (non-null, min, max, approx distinct)}; `sample`: a
    predicate that thins the rows read (min and max of a sample still tell one value from many)."""
    out: dict[str, dict] = {}
    # A few hundred columns per query: DuckDB's aggregate dies (SIGFPE) on thousands of aggregates at once.
    for start in range(0, max(len(columns), 1), STATS_COLUMNS_PER_QUERY):
        for key, stats in _batch_stats(con, dataset, columns[start:start + STATS_COLUMNS_PER_QUERY], partitions,
                                       sample).items():
            out.setdefault(key, {}).update(stats)
    return out


def _batch_stats(con, dataset: str, columns: list[ColumnInfo], partitions: list[str], sample: str) -> dict[str, dict]:
    parts = []
    for col in columns:
        ident = quote_ident(col.name)
        comparable = f"CAST({ident} AS VARCHAR)" if col.kind == "boolean" else ident
        # distinct counts tell keys and categories apart: whole numbers and strings only
        counted = sample == "TRUE" and (col.kind == "string" or (col.kind == "numeric" and col.integer))
        parts += [f"count({ident})", f"min({comparable})", f"max({comparable})",
                  f"approx_count_distinct({ident})" if counted else "NULL"]
    keys = "[" + ", ".join(quote_literal(k) for k in partitions) + "]"
    rows = con.execute(f"SELECT _partition_key, count(*){''.join(', ' + p for p in parts)} FROM "
                       f"{raw_table(dataset)} WHERE list_contains({keys}, _partition_key) AND {sample} "
                       "GROUP BY 1").fetchall()
    out = {}
    for row in rows:
        stats = {"rows": row[1]}
        for i, col in enumerate(columns):
            stats[col.name] = tuple(row[2 + 4 * i: 6 + 4 * i])
        out[row[0]] = stats
    return out


def _date_part_matches(con, dataset: str, partition_key: str, candidates: list[ColumnInfo],
                       temporal: list[ColumnInfo], rows: int) -> dict[str, tuple[str, tuple[int, int]]]:
    """Integer columns equal to a part of a date column on at least 99% of the partition's rows, a
    part that varies over those rows: the hour of a DATE is 0 on every row, and so is a count that
    is nearly always 0 (a constant part's column is a period column, found from its history)."""
    if not candidates:
        return {}
    exprs, labels = [], []
    for t in temporal:
        for part in DATE_PARTS:
            value = f"date_part('{part}', {quote_ident(t.name)})"
            exprs.append(f"min({value}) < max({value})")
    varies = len(exprs)  # one per (date column, part), in the order the candidates repeat below
    for col in candidates:
        for t in temporal:
            for part in DATE_PARTS:
                exprs.append(f"avg(CASE WHEN {quote_ident(col.name)} = date_part('{part}', {quote_ident(t.name)}) "
                             f"THEN 1.0 ELSE 0.0 END)")
                labels.append((col.name, (f"{part} of {t.name}", DATE_PARTS[part])))
    # a part of a date holds on every row or on none: a deterministic sample of ~10,000 rows tells
    rate = 1_000_000 if rows <= PART_SAMPLE else int(1_000_000 * PART_SAMPLE / rows)
    values = con.execute(f"SELECT {', '.join(exprs)} FROM {raw_table(dataset)} WHERE _partition_key = ? "
                         f"AND hash(_source_row) % 1000000 < {rate}", [partition_key]).fetchall()[0]
    out: dict[str, tuple[str, tuple[int, int]]] = {}
    for i, ((name, label), share) in enumerate(zip(labels, values[varies:], strict=True)):
        if share is not None and share >= 0.99 and values[i % varies] and name not in out:
            out[name] = label
    return out


def _string_role(con, dataset: str, col: ColumnInfo, partition_key: str, non_null: int, distinct: int) -> tuple[str, str]:
    if distinct <= max(2, min(MAX_CATEGORIES, 0.2 * non_null)):
        return "category", f"{distinct:,} distinct values in {non_null:,} rows"
    rate = min(1_000_000, int(1_000_000 * SHAPE_SAMPLE / max(non_null, 1)) + 1)  # a deterministic ~5,000 values
    values = con.sql(
        f"SELECT {quote_ident(col.name)} FROM {raw_table(dataset)} WHERE _partition_key = {quote_literal(partition_key)} "
        f"AND {quote_ident(col.name)} IS NOT NULL AND hash(_source_row) % 1000000 < {rate}").to_arrow_table()
    counted = pc.value_counts(shapes(values.column(0))).field("counts").to_numpy()
    top = counted[counted.argsort()[::-1][:20]].sum() / max(1, counted.sum())
    if top >= CODE_SHAPES:
        unique = "unique " if distinct >= UNIQUE * non_null else ""
        return "identifier", f"{unique}codes: {top:.0%} of values in their 20 commonest character shapes"
    return "text", f"free text: {distinct:,} distinct values of many shapes"


def learn_roles(con, dataset: str, partition_key: str, history: list[str], columns: list[ColumnInfo],
                primary_key: tuple[str, ...] = (), declared: dict[str, str] | None = None) -> dict[str, ColumnRole]:
    """The role of every column for this partition."""
    declared = declared or {}
    recent = history[-ROLE_HISTORY:]
    stats = _partition_stats(con, dataset, columns, [partition_key])
    if recent:  # the history only for its minima and maxima: a sample of about HISTORY_ROWS rows
        total = con.execute(f"SELECT count(*) FROM {raw_table(dataset)} WHERE list_contains(?, _partition_key)",
                            [recent]).fetchall()[0][0]
        rate = min(1.0, HISTORY_ROWS / total) if total else 1.0
        thin = "TRUE" if rate >= 1 else f"hash(_partition_key, _source_row) % 1000000 < {int(rate * 1_000_000)}"
        stats.update(_partition_stats(con, dataset, columns, recent, thin))
    current = stats.get(partition_key, {"rows": 0})
    past = [(k, stats[k]) for k in recent if k in stats]
    temporal = [c for c in columns if c.kind == "temporal"]
    int_candidates = [c for c in columns if c.kind == "numeric" and c.integer and c.name not in declared
                      and (current.get(c.name) or (0,))[0]
                      and 0 <= current[c.name][1] and current[c.name][2] <= 3000]
    parts = _date_part_matches(con, dataset, partition_key, int_candidates, temporal, current["rows"]) if temporal else {}
    roles: dict[str, ColumnRole] = {}
    for col in columns:
        if col.name in declared:
            roles[col.name] = ColumnRole(col.name, declared[col.name], "contract", "set in the contract")
            continue
        non_null, low, high, distinct = current.get(col.name) or (0, None, None, 0)
        role = _period(col.name, past, current) or _advancing(col, past, current)
        if role is None:
            highs = [s[col.name][2] for _, s in past if s.get(col.name) and s[col.name][0]]
            lows = [s[col.name][1] for _, s in past if s.get(col.name) and s[col.name][0]]
            # a calendar part is known from the history's values: a stray 32nd day does not unmake it
            span = (min(lows), max(highs)) if highs else (low, high)
            role = _learned(con, dataset, col, partition_key, non_null, low, high, distinct or 0,
                            parts.get(col.name), primary_key, max(highs) if highs else None, span)
        if role.role == "category" and col.kind == "string" and len(past) >= TURNOVER_HISTORY:
            role = _turnover(con, dataset, col, [k for k, _ in past]) or role
        roles[col.name] = role
    return roles


def _advancing(col: ColumnInfo, past: list[tuple[str, dict]], current: dict) -> ColumnRole | None:
    """A number whose values in each partition start where the previous partition's end (a
    decimal year, a running total): a time-like column, judged within its partition's period."""
    now = current.get(col.name)
    if col.kind != "numeric" or (col.integer and now and now[0] and now[3] >= UNIQUE * now[0]):
        return None  # unique whole numbers that advance are keys (counters), not times
    spans = [s[col.name][1:3] for _, s in past if s.get(col.name) and s[col.name][0]]
    if current.get(col.name) and current[col.name][0]:
        spans.append(current[col.name][1:3])
    if len(spans) < 3 or any(low == high for low, high in spans):
        return None
    if all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:], strict=False)):
        return ColumnRole(col.name, "time", "learned", "advances with the partitions: each partition's values "
                          "start where the previous one's end", centred=True)
    return None


def _turnover(con, dataset: str, col: ColumnInfo, past: list[str]) -> ColumnRole | None:
    """A category whose values mostly change from one partition to the next (names of the year's
    storms, batch labels): labels, judged by their shapes, not as categories never seen."""
    keys = "[" + ", ".join(quote_literal(k) for k in past) + "]"
    rows = con.execute(f"SELECT DISTINCT _partition_key, {quote_ident(col.name)} FROM {raw_table(dataset)} "
                       f"WHERE list_contains({keys}, _partition_key) AND {quote_ident(col.name)} IS NOT NULL").fetchall()
    values: dict[str, set] = {}
    for key, value in rows:
        values.setdefault(key, set()).add(value)
    seen: set = set()
    shares = []
    for key in past:
        here = values.get(key, set())
        if seen and here:
            shares.append(len(here - seen) / len(here))
        seen |= here
    if len(shares) >= TURNOVER_HISTORY - 1 and float(np.median(shares)) >= 0.5:
        return ColumnRole(col.name, "identifier", "learned", f"labels that turn over: {float(np.median(shares)):.0%} "
                          "of a partition's values are new, in the median partition", coarse=True)
    return None


def _period(name: str, past: list[tuple[str, dict]], current: dict) -> ColumnRole | None:
    """One value in each recent history partition (and this one, when there is a single earlier
    partition), not the same value everywhere."""
    with_values = [(k, s[name]) for k, s in past if s.get(name) and s[name][0]]
    if not with_values:
        return None
    constant = [(k, low) for k, (_, low, high, _) in with_values if low == high]
    if len(constant) < len(with_values):
        return None
    values = [v for _, v in constant]
    now = current.get(name)
    if len(constant) == 1:  # one earlier partition: this one must be constant too, with another value
        if not now or not now[0] or now[1] != now[2] or now[1] == values[0]:
            return None
    elif len(set(values)) < 2:
        return None
    return ColumnRole(name, "period", "learned",
                      f"one value per partition in {len(constant)} earlier partition(s), changing between them",
                      history=constant)


def _learned(con, dataset: str, col: ColumnInfo, partition_key: str, non_null: int, low, high, distinct: int,
             date_part: tuple[str, tuple[int, int]] | None, primary_key: tuple[str, ...],
             past_high=None, span: tuple = (None, None)) -> ColumnRole:
    name = col.name
    if col.kind in ("temporal", "numeric_time"):
        return ColumnRole(name, "time", "learned", f"{col.db_type.lower()} values")
    if col.kind == "numeric":
        named = calendar_part(name, *span) if col.integer else None
        part = date_part or ((named, CALENDAR[named]) if named else None)
        if part:
            return ColumnRole(name, "time", "learned", f"calendar part: {part[0]}", bounds=part[1])
        unique = non_null >= 20 and distinct >= UNIQUE * non_null
        counter = unique and past_high is not None and low > past_high
        if col.integer and (name in primary_key or (unique and high - low + 1 <= DENSE * non_null) or counter):
            why = ("primary key" if name in primary_key else "unique whole numbers in a dense range"
                   if high - low + 1 <= DENSE * non_null else "a counter: unique, past every earlier partition's values")
            return ColumnRole(name, "identifier", "learned", why)
        # whole numbers that only ever were 0 or 1 are a yes/no flag (a genre, a "short film"):
        # their values are categories, and a number may depend on them
        if col.integer and span[0] is not None and 0 <= span[0] and span[1] <= 1:
            return ColumnRole(name, "category", "learned", "a 0/1 flag")
        if col.integer and names_a_code(name) and distinct <= MAX_CATEGORIES:
            return ColumnRole(name, "category", "learned", "whole numbers the name calls a label")
        return ColumnRole(name, "measure", "learned", "numbers")
    if col.kind == "boolean" or non_null == 0:
        return ColumnRole(name, "category", "learned", "true/false" if col.kind == "boolean" else "no values yet")
    if name in primary_key:
        return ColumnRole(name, "identifier", "learned", "primary key")
    role, why = _string_role(con, dataset, col, partition_key, non_null, distinct)
    return ColumnRole(name, role, "learned", why)
