"""`quality-assets suggest`: draft a contract from the data itself.

A file is loaded exactly as the pipeline would load it (into a throw-away warehouse), or a
dataset's rows are read from the warehouse; one profile of the columns then gives the draft:
declared types, `not_null` where there are no nulls, a key from a unique column, accepted values
for low cardinality, a regex from the dominant character shape, and by the column's role (as the
anomaly stage sees it): ranges of measures from their quartiles with a margin of three IQRs (one
extreme value in the sample does not widen them; `mostly` covers a long tail), the natural range
of a calendar part (`month: 1..12`), no range on identifiers, and one value per partition for a
period column (a month number, a batch id) instead of a range or a list that the next file would
break. The draft validates and passes on the data it came from; rules that one sample cannot
settle come out as `warn`.

The profile here is deliberately small (one aggregate query plus a top-values and a shape query
per column that needs them); the profiling stage's `quality_assets.profile` computes far more.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from quality_assets.anomalies.roles import CALENDAR, DENSE, calendar_part
from quality_assets.contract import Dataset, parse_contract
from quality_assets.contract.document import (
    dataset_name_for,
    dump_contract,
    merge_columns,
    template_spec,
)
from quality_assets.ingest import load_file
from quality_assets.shapes import shape_regex, shape_sql
from quality_assets.warehouse import Warehouse, quote_ident

SURE_ROWS = 1000  # below this many rows, even a clean-looking rule is only a warning
ACCEPTED_MAX = 12  # at most this many distinct text values make an accepted-values rule
SHAPE_SHARE = 0.9  # a character shape this common becomes a regex rule
MARGIN = 0.1  # without a spread (IQR 0), ranges widen the observed span by this share on each side
FENCE = 3.0  # ranges reach this many IQRs beyond the quartiles (Tukey's far-out fence)
KEY_NAME = re.compile(r"(^|_)(id|key|code|uuid|number|no)$", re.IGNORECASE)

CONTRACT_TYPES = {
    "BIGINT": "bigint", "INTEGER": "bigint", "SMALLINT": "smallint", "TINYINT": "smallint",
    "DOUBLE": "double", "FLOAT": "double", "REAL": "double", "BOOLEAN": "boolean", "DATE": "date",
    "TIMESTAMP": "timestamp", "TIMESTAMP WITH TIME ZONE": "timestamptz", "TIME": "time", "VARCHAR": "string",
}
NUMERIC = ("BIGINT", "INTEGER", "SMALLINT", "TINYINT", "DOUBLE", "FLOAT", "REAL")
TEMPORAL = ("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE")


@dataclass
class ColumnProfile:
    name: str
    type: str
    rows: int
    nulls: int
    distinct: int
    min: Any = None
    max: Any = None
    q1: float | None = None  # quartiles of numbers
    q3: float | None = None
    values: list[Any] = field(default_factory=list)  # every distinct value, when there are few
    shape: tuple[str, float] | None = None  # dominant exact character shape and its share
    loose_shape: tuple[str, float] | None = None  # the same with runs collapsed

    @property
    def unique(self) -> bool:
        return self.rows > 1 and self.nulls == 0 and self.distinct == self.rows


# ---------------------------------------------------------------------------------------------
# Profile





def profile_table(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, str]) -> tuple[int, list[ColumnProfile]]:
    """Rows and per-column statistics of `table` (SQL name) with `columns` (name -> DuckDB type)."""
    items = ["count(*)"]
    for name, type_ in columns.items():
        col = quote_ident(name)
        items += [f"count({col})", f"count(DISTINCT {col})"]
        items += [f"min({col})", f"max({col})"] if type_ in NUMERIC or type_ in TEMPORAL or type_.startswith("DECIMAL") \
            else ["NULL", "NULL"]
        items += [f"quantile_cont({col}::DOUBLE, [0.25, 0.75])"] if type_ in NUMERIC or type_.startswith("DECIMAL") \
            else ["NULL"]
    row = con.execute(f"SELECT {', '.join(items)} FROM {table}").fetchone()
    rows = row[0]
    profiles = []
    for i, (name, type_) in enumerate(columns.items()):
        present, distinct, low, high, quartiles = row[1 + 5 * i: 6 + 5 * i]
        profile = ColumnProfile(name, type_, rows, rows - present, distinct, low, high)
        if quartiles:
            profile.q1, profile.q3 = quartiles
        col = quote_ident(name)
        if type_ == "VARCHAR" and 0 < distinct <= ACCEPTED_MAX:
            profile.values = sorted(v for (v,) in con.execute(
                f"SELECT DISTINCT {col} FROM {table} WHERE {col} IS NOT NULL").fetchall())
        elif type_ == "VARCHAR" and distinct:
            value = f"CAST({col} AS VARCHAR)"
            for attr, expr in (("shape", shape_sql(value)), ("loose_shape", shape_sql(value, coarse=True))):
                top = con.execute(
                    f"SELECT {expr} AS s, count(*) FROM {table} WHERE {col} IS NOT NULL GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1"
                ).fetchone()
                setattr(profile, attr, (top[0], top[1] / present))
        profiles.append(profile)
    return rows, profiles


# ---------------------------------------------------------------------------------------------
# Draft


def contract_type(duckdb_type: str) -> str | None:
    if duckdb_type in CONTRACT_TYPES:
        return CONTRACT_TYPES[duckdb_type]
    match = re.fullmatch(r"DECIMAL\((\d+),(\d+)\)", duckdb_type.replace(" ", ""))
    return f"decimal({match.group(1)},{match.group(2)})" if match else None


def _identifier(p: ColumnProfile) -> bool:
    """Unique whole numbers in a dense range (a row number, an order id): keys grow, no range lasts."""
    return (p.unique and isinstance(p.min, int) and isinstance(p.max, int) and not isinstance(p.min, bool)
            and p.max - p.min + 1 <= DENSE * p.rows)


def _period_candidate(p: ColumnProfile, rows: int) -> bool:
    """One number or date in the whole file: likely its period (a month number, a file date)."""
    return (rows >= 2 and p.distinct == 1 and p.nulls == 0
            and (p.type in NUMERIC or p.type in TEMPORAL or p.type.startswith("DECIMAL")))


def draft_rules(rows: int, profiles: list[ColumnProfile], periods: set[str] | None = None) -> tuple[list[str], list[dict]]:
    """(primary key, rules) for the profiled data; every rule passes on it (a range's `mostly`
    is set by `draft_dataset` from the share of rows inside it). `periods`: columns with one value
    per partition of a loaded dataset."""
    sure = rows >= SURE_ROWS
    key = _key_candidate(profiles)
    periods = set(periods or ()) | {p.name for p in profiles if _period_candidate(p, rows)}
    rules: list[dict] = []
    for p in profiles:
        if rows and p.nulls == 0:
            rules.append(_rule({"not_null": p.name}, "error" if sure else "warn"))
    if key:
        rules.append(_rule({"unique": key[0] if len(key) == 1 else key}, "error" if sure else "warn"))
    for p in profiles:
        if p.name in periods:
            rules.append(_rule({"assert": f"count(DISTINCT {quote_ident(p.name)}) <= 1",
                                "description": f"{p.name} holds one value per partition (its period)"}, "warn"))
            continue
        if p.min is None or p.max is None or p.name in key or _identifier(p):  # keys grow: a range would not last
            continue
        bounds = _range_bounds(p)
        if bounds:
            rules.append(_rule({"range": {"column": p.name, **bounds}}, "warn"))
    for p in profiles:
        if p.name in periods:
            continue
        if p.values and p.distinct <= ACCEPTED_MAX and rows >= 2 * p.distinct and not p.unique:
            rules.append(_rule({"accepted_values": {"column": p.name, "values": p.values}}, "warn"))
        elif p.type == "VARCHAR" and not p.values:
            regex = _shape_rule(p)
            if regex:
                rules.append(regex)
    rules.append(_rule({"schema": {}}, "warn"))
    return key, rules


def _rule(body: dict, severity: str, mostly: float | None = None) -> dict:
    rule = dict(body)
    if severity != "error":
        rule["severity"] = severity
    if mostly is not None:
        rule["mostly"] = mostly
    return rule


def _key_candidate(profiles: list[ColumnProfile]) -> list[str]:
    candidates = [p for p in profiles if p.unique and p.type in ("BIGINT", "INTEGER", "SMALLINT", "VARCHAR")]
    if not candidates:
        return []
    named = [p for p in candidates if KEY_NAME.search(p.name)]
    return [(named or candidates)[0].name]


def _range_bounds(p: ColumnProfile) -> dict | None:
    low, high = p.min, p.max
    if isinstance(low, bool):
        return None
    if isinstance(low, Decimal):
        low, high = float(low), float(high)
    if isinstance(low, int) and isinstance(high, int):
        part = calendar_part(p.name, low, high)
        if part:  # a calendar part: its natural range, whatever one file happens to hold
            return dict(zip(("min", "max"), CALENDAR[part], strict=True))
    if isinstance(low, (int, float)) and not isinstance(low, bool):
        if isinstance(low, float) and not (math.isfinite(low) and math.isfinite(high)):
            return None
        iqr = (p.q3 - p.q1) if p.q1 is not None and p.q3 is not None else 0.0
        if iqr > 0:  # quartiles and a margin in IQRs: robust to the sample's own outliers
            lo = 0 if low >= 0 else _round_down(p.q1 - FENCE * iqr)
            hi = 0 if high <= 0 else _round_up(p.q3 + FENCE * iqr)
        else:
            span = float(high - low)
            margin = span * MARGIN or abs(float(high)) * MARGIN or 1.0
            lo = 0 if low >= 0 else _round_down(low - margin)
            hi = _round_up(high + margin)
        if isinstance(low, int) and isinstance(high, int):
            lo, hi = math.floor(lo), math.ceil(hi)
        return {"min": lo, "max": hi}
    if isinstance(low, dt.datetime) and isinstance(high, dt.datetime):
        if low.tzinfo is not None or high.tzinfo is not None:
            return None
        # only a floor: the newest value of one file says nothing about tomorrow's
        margin = max((high - low) * MARGIN, dt.timedelta(days=1))
        return {"min": (low - margin).replace(hour=0, minute=0, second=0, microsecond=0).isoformat(sep=" ")}
    if isinstance(low, dt.date) and isinstance(high, dt.date):
        margin = max((high - low) * MARGIN, dt.timedelta(days=1))
        return {"min": low - dt.timedelta(days=math.ceil(margin.total_seconds() / 86400))}
    return None


def _step(value: float) -> float:
    return 10.0 ** math.floor(math.log10(abs(value))) if value else 1.0


def _round_down(value: float) -> float:
    step = _step(value) / 10
    result = math.floor(value / step) * step
    result = round(result, max(0, -math.floor(math.log10(step)))) if step < 1 else result
    return result if result <= value else value


def _round_up(value: float) -> float:
    step = _step(value) / 10
    result = math.ceil(value / step) * step
    result = round(result, max(0, -math.floor(math.log10(step)))) if step < 1 else result
    result = int(result) if float(result).is_integer() else result
    return result if result >= value else value


def _shape_rule(p: ColumnProfile) -> dict | None:
    for attr, loose in (("shape", False), ("loose_shape", True)):
        found = getattr(p, attr)
        if found and found[1] >= SHAPE_SHARE and found[0]:
            mostly = None if found[1] >= 1.0 else math.floor(found[1] * 100) / 100
            return _rule({"regex": {"column": p.name, "pattern": shape_regex(found[0], loose)}}, "warn", mostly)
    return None


def period_columns(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, str]) -> set[str]:
    """Columns of a loaded dataset with one value in every partition and several across them."""
    if not columns:
        return set()
    per = ", ".join(f"count(DISTINCT {quote_ident(c)}) AS d{i}" for i, c in enumerate(columns))
    most = ", ".join(f"max(d{i})" for i in range(len(columns)))
    overall = ", ".join(f"count(DISTINCT {quote_ident(c)})" for c in columns)
    inside = con.execute(f"SELECT count(*), {most} FROM (SELECT {per} FROM {table} GROUP BY _partition_key)").fetchone()
    across = con.execute(f"SELECT {overall} FROM {table}").fetchone()
    if inside[0] < 2:
        return set()
    return {c for i, c in enumerate(columns) if inside[1 + i] == 1 and across[i] > 1}


def _within(con: duckdb.DuckDBPyConnection, table: str, rule: dict) -> float:
    spec = rule["range"]
    col = quote_ident(spec["column"])
    parts = [f"{col} >= {spec['min']!r}" if "min" in spec else "TRUE", f"{col} <= {spec['max']!r}" if "max" in spec else "TRUE"]
    return con.execute(f"SELECT avg(CASE WHEN {' AND '.join(parts)} THEN 1.0 ELSE 0.0 END) FROM {table} "
                       f"WHERE {col} IS NOT NULL").fetchone()[0] or 1.0


def _matching(con: duckdb.DuckDBPyConnection, table: str, rule: dict) -> float:
    """The share of a regex rule's non-null values that match it, as the rules stage will judge them."""
    spec = rule["regex"]
    col = quote_ident(spec["column"])
    return con.execute(f"SELECT avg(CASE WHEN regexp_matches(CAST({col} AS VARCHAR), ?) THEN 1.0 ELSE 0.0 END) "
                       f"FROM {table} WHERE {col} IS NOT NULL", [spec["pattern"]]).fetchone()[0] or 1.0


def draft_dataset(con: duckdb.DuckDBPyConnection, table: str, columns: dict[str, str],
                  partitioned: bool = False) -> tuple[int, dict]:
    """Rows, and the `columns`/`primary_key`/`rules` part of a dataset's contract for the table
    (`partitioned`: it has `_partition_key`, so period columns can be told apart)."""
    rows, profiles = profile_table(con, table, columns)
    key, rules = draft_rules(rows, profiles, period_columns(con, table, columns) if partitioned else set())
    numbers = {p.name for p in profiles if isinstance(p.min, (int, float, Decimal)) and not isinstance(p.min, bool)}
    kept = []
    for rule in rules:
        if "range" in rule and rule["range"]["column"] in numbers:
            inside = _within(con, table, rule)
            if inside < 1.0:  # the quartile fence leaves a long tail out: tolerate that share
                rule["mostly"] = math.floor(inside * 1000) / 1000
        if "regex" in rule:  # a shape's regex spells letters in ASCII: measure what it accepts
            share = _matching(con, table, rule)
            if share < SHAPE_SHARE:
                continue
            rule.pop("mostly", None)
            if share < 1.0:
                rule["mostly"] = math.floor(share * 100) / 100
        kept.append(rule)
    rules = kept
    declared: dict[str, Any] = {}
    for p in profiles:
        kind = contract_type(p.type)
        declared[p.name] = kind if kind else {}
    block: dict[str, Any] = {"columns": declared}
    if key:
        block["primary_key"] = key
    block["rules"] = rules
    return rows, block


# ---------------------------------------------------------------------------------------------
# From a file or from a dataset


META = ("_partition_key", "_source_row", "_run_id", "_source_file")


def _table_columns(con, schema: str, table: str) -> dict[str, str]:
    return {name: type_ for name, type_ in con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
        "ORDER BY ordinal_position", [schema, table]).fetchall() if name not in META}


def suggest_for_file(path: Path, template: Dataset | None = None, name: str | None = None,
                     base: Path | None = None) -> tuple[str, int]:
    """A contract (YAML text) for one file, and the rows it was drafted from. `template` gives the
    dataset's format and CSV options when the file belongs to one; `base` is the folder the
    contract will live in (landing paths are relative to it)."""
    path = path.resolve()
    name = name or (template.name if template else dataset_name_for(path))
    # read as the dataset reads it (format, dialect, column names and aliases), every type inferred afresh
    loading = template_spec(template, columns="names") if template else {"landing": str(path.parent)}
    source = parse_contract(dump_contract({"datasets": {name: loading}}), path.parent / "quality.yaml").dataset(name)
    work = Path(tempfile.mkdtemp(prefix="qa-suggest-"))
    try:
        warehouse = Warehouse(work / "draft.duckdb", lock_timeout_s=30)
        audit = load_file(warehouse, path, source, path.name, f"suggest-{uuid.uuid4().hex[:8]}", force=True)
        if audit.status == "rejected":
            raise ValueError(f"{path}: {audit.message}")
        with warehouse.connect() as con:
            columns = _table_columns(con, "raw", name)
            if not columns:
                raise ValueError(f"{path}: no columns to draft from ({audit.status}: {audit.message})")
            rows, block = draft_dataset(con, f"raw.{quote_ident(name)}", columns)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    base = (base or Path.cwd()).resolve()
    if template is not None:
        spec = template_spec(template, base=base)
    else:
        spec = {
            "description": f"Drafted from {path.name} ({rows:,} rows) by quality-assets suggest; review before use.",
            "landing": {"path": os.path.relpath(path.parent, base), "glob": "*" + "".join(path.suffixes[-2:])},
        }
    spec.update(merge_columns(block, template))
    header = (f"# Drafted by `quality-assets suggest {path.name}` from {rows:,} rows on {dt.date.today()}.\n"
              f"# Rules with severity: warn are guesses from one sample: confirm them, or make them errors.\n")
    return header + dump_contract({"version": 1, "datasets": {name: spec}}), rows


def suggest_for_dataset(dataset: Dataset, warehouse: Warehouse, base: Path | None = None) -> tuple[str, int]:
    """A contract (YAML text) for a dataset from every row of it in the warehouse."""
    with warehouse.connect() as con:
        columns = _table_columns(con, "raw", dataset.name)
        if not columns:
            raise ValueError(f"dataset {dataset.name!r} has no rows in the warehouse yet: run it first, "
                             "or give one of its files")
        rows, block = draft_dataset(con, f"raw.{quote_ident(dataset.name)}", columns, partitioned=True)
    spec = template_spec(dataset, base=base)
    spec.update(merge_columns(block, dataset))
    header = (f"# Drafted by `quality-assets suggest {dataset.name}` from {rows:,} rows in the warehouse on "
              f"{dt.date.today()}.\n# Rules with severity: warn are guesses: confirm them, or make them errors.\n")
    return header + dump_contract({"version": 1, "datasets": {dataset.name: spec}}), rows
