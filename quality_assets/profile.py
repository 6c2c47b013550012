"""The profile stage: per-column statistics of a partition, kept as history in qa.column_profiles.

`qa.column_profiles` is long: one row per (dataset, partition, run, column, metric), every run
kept. Numeric metrics go in `value`; structured ones (semantic type, histogram, top values,
shapes, normality, alerts, distinct method, correlations) as JSON text in `detail`. Dataset-level
metrics have `column_name` NULL.

`TableProfile.to_dict()` and `read_profile()` return the same shape:

    {"dataset", "partition_key", ["run_id", "profiled_at"],
     "metrics": {"row_count", "column_count", "duplicate_rows", "bytes", "alert_count",
                 "max_null_share"},
     "correlations": {"pearson": {a: {b: r}}, "spearman": {...}, "columns_capped_at": n},
     "alerts": [{"alert", "column", "detail"}],            # dataset-level (e.g. duplicate rows)
     "columns": [{"name", "index", "metrics": {metric: value | None},
                  "semantic_type": {"type", "storage_type", "stored_as_text", "mixed_types"},
                  "distinct_method", "histogram", "top_values", "shapes", "normality",
                  "monotonicity", "alerts"}]}
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np

from quality_assets.contract import Dataset
from quality_assets.warehouse import quote_ident

PROFILE_TABLES_DDL = [
    "CREATE SCHEMA IF NOT EXISTS qa",
    """CREATE TABLE IF NOT EXISTS qa.column_profiles (
        dataset VARCHAR NOT NULL,
        partition_key VARCHAR NOT NULL,
        run_id VARCHAR NOT NULL,
        profiled_at TIMESTAMP NOT NULL,
        column_name VARCHAR,
        column_index INTEGER,
        metric VARCHAR NOT NULL,
        value DOUBLE,
        detail VARCHAR
    )""",
]

COLUMN_METRICS = (
    "row_count", "null_count", "null_share", "blank_count", "nan_count", "inf_count",
    "distinct_count", "uniqueness", "min", "max", "mean", "std", "sum", "zeros", "negatives",
    "skewness", "kurtosis", "p1", "p5", "p25", "p50", "p75", "p95", "p99", "iqr", "mad",
    "top_value_share", "length_min", "length_mean", "length_max", "future_share",
    "before_floor_share",
)
COLUMN_DETAILS = (
    "semantic_type", "distinct_method", "histogram", "top_values", "shapes", "normality",
    "monotonicity", "alerts",
)
DATASET_METRICS = ("row_count", "column_count", "duplicate_rows", "bytes", "alert_count", "max_null_share")
DATASET_DETAILS = ("correlations", "alerts")


@dataclass
class ColumnProfile:
    name: str
    index: int
    metrics: dict[str, float | None] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def semantic_type(self) -> str:
        return (self.details.get("semantic_type") or {}).get("type", "text")

    @property
    def alerts(self) -> list[dict]:
        return self.details.get("alerts") or []

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"name": self.name, "index": self.index,
                               "metrics": {m: self.metrics.get(m) for m in COLUMN_METRICS}}
        for key in COLUMN_DETAILS:
            out[key] = self.details.get(key)
        return out


@dataclass
class TableProfile:
    dataset: str
    partition_key: str
    metrics: dict[str, float | None] = field(default_factory=dict)
    columns: list[ColumnProfile] = field(default_factory=list)
    correlations: dict[str, Any] = field(default_factory=dict)
    alerts: list[dict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step, not stored

    def column(self, name: str) -> ColumnProfile:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def all_alerts(self) -> list[dict]:
        out = list(self.alerts)
        for col in self.columns:
            out.extend({"column": col.name, **a} for a in col.alerts)
        return out

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "partition_key": self.partition_key,
            "metrics": {m: self.metrics.get(m) for m in DATASET_METRICS},
            "correlations": self.correlations,
            "alerts": self.alerts,
            "columns": [c.to_dict() for c in self.columns],
        }


def ensure_profile_tables(con: duckdb.DuckDBPyConnection) -> None:
    for ddl in PROFILE_TABLES_DDL:
        con.execute(ddl)


def _json(value: Any) -> str:
    return json.dumps(value, default=_json_default, allow_nan=False, ensure_ascii=False)


def _json_default(value: Any) -> Any:
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    try:  # numpy / Decimal scalars
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def _finite(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _profile_rows(profile: TableProfile | dict) -> list[tuple]:
    data = profile.to_dict() if isinstance(profile, TableProfile) else profile
    rows: list[tuple] = []
    for metric in DATASET_METRICS:
        rows.append((None, None, metric, _finite(data["metrics"].get(metric)), None))
    rows.append((None, None, "correlations", None, _json(data.get("correlations") or {})))
    rows.append((None, None, "alerts", None, _json(data.get("alerts") or [])))
    for col in data["columns"]:
        for metric in COLUMN_METRICS:
            rows.append((col["name"], col["index"], metric, _finite(col["metrics"].get(metric)), None))
        for key in COLUMN_DETAILS:
            if col.get(key) is not None:
                rows.append((col["name"], col["index"], key, None, _json(col[key])))
    return rows


def write_profile(
    con: duckdb.DuckDBPyConnection,
    dataset_name: str,
    partition_key: str,
    run_id: str,
    profile: TableProfile | dict,
    profiled_at: dt.datetime | None = None,
) -> int:
    """Append one run's profile in one transaction (a rerun of the same run id replaces it)."""
    import pyarrow as pa

    ensure_profile_tables(con)
    when = profiled_at or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    rows = _profile_rows(profile)
    names, indexes, metrics, values, details = (list(x) for x in zip(*rows, strict=True))
    batch = pa.table({
        "column_name": pa.array(names, pa.string()),
        "column_index": pa.array(indexes, pa.int32()),
        "metric": pa.array(metrics, pa.string()),
        "value": pa.array(values, pa.float64()),
        "detail": pa.array(details, pa.string()),
    })
    con.register("_profile_batch", batch)
    try:
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(
                "DELETE FROM qa.column_profiles WHERE dataset = ? AND partition_key = ? AND run_id = ?",
                [dataset_name, partition_key, run_id],
            )
            con.execute(
                """INSERT INTO qa.column_profiles
                   SELECT ?, ?, ?, ?::TIMESTAMP, column_name, column_index, metric, value, detail
                   FROM _profile_batch""",
                [dataset_name, partition_key, run_id, when],
            )
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    finally:
        con.unregister("_profile_batch")
    return len(rows)


def read_profile(
    con: duckdb.DuckDBPyConnection, dataset_name: str, partition_key: str, run_id: str | None = None
) -> dict | None:
    """One stored profile (the latest run of the partition when run_id is None), as to_dict()."""
    ensure_profile_tables(con)
    if run_id is None:
        found = con.execute(
            """SELECT run_id FROM qa.column_profiles
               WHERE dataset = ? AND partition_key = ? AND column_name IS NULL AND metric = 'row_count'
               ORDER BY profiled_at DESC, run_id DESC LIMIT 1""",
            [dataset_name, partition_key],
        ).fetchone()
        if found is None:
            return None
        run_id = found[0]
    rows = con.execute(
        """SELECT profiled_at, column_name, column_index, metric, value, detail FROM qa.column_profiles
           WHERE dataset = ? AND partition_key = ? AND run_id = ?
           ORDER BY column_index NULLS FIRST, metric""",
        [dataset_name, partition_key, run_id],
    ).fetchall()
    if not rows:
        return None
    out: dict[str, Any] = {"dataset": dataset_name, "partition_key": partition_key, "run_id": run_id,
                           "profiled_at": rows[0][0], "metrics": {}, "correlations": {}, "alerts": [],
                           "columns": []}
    columns: dict[int, dict] = {}
    for _, name, index, metric, value, detail in rows:
        if name is None:
            if detail is not None:
                out[metric] = json.loads(detail)
            else:
                out["metrics"][metric] = value
            continue
        col = columns.get(index)
        if col is None:
            col = columns[index] = {"name": name, "index": index, "metrics": {},
                                    **{k: None for k in COLUMN_DETAILS}}
        if detail is not None:
            col[metric] = json.loads(detail)
        else:
            col["metrics"][metric] = value
    out["columns"] = [columns[i] for i in sorted(columns)]
    return out


def metric_history(
    con: duckdb.DuckDBPyConnection,
    dataset_name: str,
    metric: str,
    column_name: str | None = None,
    exclude_partition: str | None = None,
    limit: int | None = None,
) -> list[tuple[str, str, dt.datetime, float | None]]:
    """(partition_key, run_id, profiled_at, value) of a metric, latest run per partition, oldest first.

    column_name None reads the dataset-level metric. `limit` keeps the most recent partitions.
    """
    ensure_profile_tables(con)
    column_filter = "column_name IS NULL" if column_name is None else "column_name = ?"
    params: list[Any] = [dataset_name, dataset_name, metric]
    if column_name is not None:
        params.append(column_name)
    exclude = ""
    if exclude_partition is not None:
        exclude = "AND r.partition_key <> ?"
        params.append(exclude_partition)
    limit_sql = ""
    if limit is not None:
        limit_sql = "LIMIT ?"
        params.append(int(limit))
    rows = con.execute(
        f"""WITH latest AS (
                SELECT partition_key, run_id, profiled_at FROM qa.column_profiles
                WHERE dataset = ? AND column_name IS NULL AND metric = 'row_count'
                QUALIFY row_number() OVER (PARTITION BY partition_key
                                           ORDER BY profiled_at DESC, run_id DESC) = 1)
            SELECT r.partition_key, r.run_id, r.profiled_at, r.value
            FROM qa.column_profiles r JOIN latest l
              ON r.partition_key = l.partition_key AND r.run_id = l.run_id
            WHERE r.dataset = ? AND r.metric = ? AND {column_filter.replace('column_name', 'r.column_name')}
              {exclude}
            ORDER BY r.profiled_at DESC, r.partition_key DESC {limit_sql}""",
        params,
    ).fetchall()
    return [(p, r, t, v) for p, r, t, v in reversed(rows)]



# The statistics

PARTITION_COLUMNS = ("_partition_key", "_source_row", "_run_id")
GAUSSIAN_TESTS = ("dagostino", "shapiro", "anderson", "ks")
QUANTILES = (("p1", 0.01), ("p5", 0.05), ("p25", 0.25), ("p50", 0.5), ("p75", 0.75), ("p95", 0.95), ("p99", 0.99))
INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT", "UHUGEINT")
FLOAT_TYPES = ("FLOAT", "DOUBLE", "REAL")
TEMPORAL_TYPES = ("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS")
KEY_NAME = re.compile(r"(^|_)(id|key|uuid|guid|code|number|no)$", re.IGNORECASE)
# letters to A/a, digits to 9, runs collapsed; other characters kept (capped to keep shapes readable)
SHAPE_SQL = ("left(regexp_replace(regexp_replace(regexp_replace(regexp_replace({v}, '\\p{{Lu}}+', 'A', 'g'), "
             "'[\\p{{Ll}}\\p{{Lo}}\\p{{Lt}}\\p{{Lm}}]+', 'a', 'g'), '[0-9]+', '9', 'g'), '\\s+', ' ', 'g'), 40)")

FREQUENCY_BATCH = 64  # columns whose value counts are gathered in one query
PARSE_SAMPLE = 20_000  # sample values that estimate parse shares and shapes of high-cardinality text
PARSE_KEYS = ("asnum", "asint", "asdate", "asbool")
PARSE_CONDITIONS = (  # over a text value v (replaced by the column)
    "TRY_CAST({v} AS DOUBLE) IS NOT NULL",
    "regexp_full_match({v}, '\\s*[+-]?[0-9]+\\s*')",
    "TRY_CAST({v} AS TIMESTAMP) IS NOT NULL",
    "lower(trim({v})) IN ('true', 'false', 't', 'f', 'yes', 'no', 'y', 'n')",
)

# alert thresholds (ydata-profiling's defaults where it has one)
NEAR_CONSTANT_SHARE = 0.95
HIGH_NULL_SHARE = 0.5
HIGH_CARDINALITY_DISTINCT = 50
HIGH_CARDINALITY_UNIQUENESS = 0.5
SKEWED_ABS = 3.0
IMBALANCE = 0.5
MANY_ZEROS_SHARE = 0.1
MIXED_MIN_SHARE = 0.5
CATEGORICAL_MAX_DISTINCT = 50
CATEGORICAL_MAX_UNIQUENESS = 0.5


@dataclass(frozen=True)
class ProfileOptions:
    """Knobs of one profile; `now` and `date_floor` decide future / implausibly old dates."""

    top_values: int = 10
    gaussian_test: str = "dagostino"
    exact_distinct_max: int = 20_000  # HyperLogLog above this many (estimated) distinct values
    # a deterministic uniform sample (the rows with the smallest hash of their record number): quantiles and
    # MAD of high-cardinality numbers, top-value candidates and shapes of high-cardinality columns, normality,
    # Pearson and Spearman; wide tables get fewer rows (at most `sample_cells` values, never under 10,000 rows)
    sample_rows: int = 100_000
    sample_cells: int = 10_000_000
    normality_sample: int = 5_000
    correlation_sample: int = 20_000  # Spearman: the first rows of the sample
    histogram_bins: int = 20
    correlation_max_columns: int = 20
    aggregates_per_query: int = 150  # DuckDB keeps every aggregate state of a query in memory at once
    date_floor: dt.date = dt.date(1900, 1, 1)
    now: dt.datetime | None = None


@dataclass
class _Column:
    name: str
    index: int
    storage: str
    kind: str  # integer | float | boolean | temporal | text | other
    alias: str

    @property
    def ident(self) -> str:
        return quote_ident(self.name)

    @property
    def numeric(self) -> bool:
        return self.kind in ("integer", "float")


def _kind(storage: str) -> str:
    base = storage.split("(")[0].strip()
    if base in INTEGER_TYPES:
        return "integer"
    if base in FLOAT_TYPES or base == "DECIMAL":
        return "float"
    if base == "BOOLEAN":
        return "boolean"
    if base in TEMPORAL_TYPES:
        return "temporal"
    if base == "VARCHAR":
        return "text"
    return "other"


def profile_partition(
    con: duckdb.DuckDBPyConnection,
    dataset: Dataset | str,
    partition_key: str,
    top_values: int = 10,
    gaussian_test: str = "dagostino",
    options: ProfileOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> TableProfile:
    """Profile the partition's rows of raw."<dataset>" (every column but the load bookkeeping)."""
    name = dataset if isinstance(dataset, str) else dataset.name
    opts = options or ProfileOptions(top_values=top_values, gaussian_test=gaussian_test)
    if opts.gaussian_test not in GAUSSIAN_TESTS:
        raise ValueError(f"unknown normality test {opts.gaussian_test!r}; use one of {', '.join(GAUSSIAN_TESTS)}")
    con.execute("SET enable_progress_bar = false")
    table = f"raw.{quote_ident(name)}"
    described = con.execute(
        """SELECT column_name, data_type FROM information_schema.columns
           WHERE table_schema = 'raw' AND table_name = ? ORDER BY ordinal_position""", [name]
    ).fetchall()
    columns = [
        _Column(col_name, i, storage, _kind(storage), f"c{i}")
        for i, (col_name, storage) in enumerate(c for c in described if c[0] not in PARTITION_COLUMNS)
    ]
    profile = TableProfile(name, partition_key)
    if not described:
        profile.metrics.update(row_count=0, column_count=0, duplicate_rows=0, alert_count=0, max_null_share=None,
                               bytes=_source_bytes(con, name, partition_key))
        return profile
    runner = _Profiler(con, table, partition_key, columns, opts, progress or (lambda _: None))
    return runner.run(profile)


def _source_bytes(con: duckdb.DuckDBPyConnection, dataset: str, partition_key: str) -> float | None:
    row = con.execute(
        """SELECT sum(bytes) FROM (
               SELECT bytes FROM qa.files WHERE dataset = ? AND partition_key = ? AND status <> 'rejected'
               QUALIFY row_number() OVER (PARTITION BY source_path ORDER BY finished DESC NULLS LAST) = 1)""",
        [dataset, partition_key],
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


class _Profiler:
    """The statistics of one partition, in as few reads of the table as measured best:

    1. `scan`: streaming aggregates only, like SUMMARIZE's (counts, nulls, NaN/inf, min/max, sum, mean,
       zeros, negatives, lengths, blanks, HyperLogLog distinct counts); wide tables in batches;
    2. `sample`: a bounded deterministic uniform sample of the numeric and high-cardinality columns;
    3. `monotonicity`: the first and last rows looked up; a lag check in row order only for the columns
       whose first and last values are their min and max;
    4. `frequencies`: one group-by per column with at most `exact_distinct_max` distinct values (HLL
       estimate): exact distinct counts, top values, entropy, shapes, parse counts and, for numbers, exact
       quantiles, MAD, histogram and central moments from the (value, count) pairs;
    5. `candidates`: top-value candidates, shapes and parse shares of high-cardinality columns, from the sample;
    6. `second_scan`, of the high-cardinality columns only: histograms and central moments (around the mean
       of scan 1, as pandas does), full parse counts where the sample says every value parses, and
       duplicate rows (count(*) - count(DISTINCT row hash));
    7. `top_counts`: exact counts of the top-value candidates (a hash join per column);
    8. `sample_statistics`: quantiles and MAD of high-cardinality numbers, normality tests, Pearson and
       Spearman correlations, from the sample in numpy/scipy/pandas.
    """

    def __init__(self, con, table: str, partition_key: str, columns: list[_Column], opts: ProfileOptions,
                 progress: Callable[[str], None]):
        self.con = con
        self.table = table
        self.key = partition_key
        self.columns = columns
        self.opts = opts
        self.progress = progress
        self.now = opts.now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        self.where = "_partition_key = $key"
        self.stats: dict[str, dict[str, Any]] = {c.alias: {} for c in columns}
        self.rows = 0
        self.first_row = self.last_row = None
        self.sample: dict[str, np.ndarray] = {}
        self.sample_size = 0
        self.complete = False  # the sample holds every row of the partition
        self.sample_bound = 2 ** 64  # the sample's rows are those whose hash of the record number is below this
        self.duplicates = 0
        self.pearson: dict[tuple[str, str], float | None] = {}
        self.spearman: dict[tuple[str, str], float | None] = {}
        self.normality: dict[str, dict] = {}
        self.candidates: dict[str, list[str]] = {}
        self.full_parse: dict[str, list[str]] = {}

    def _query(self, sql: str, params: dict | None = None):
        return self.con.execute(sql, {"key": self.key, **(params or {})})

    def _timed(self, profile: TableProfile, step: str, fn: Callable[[], None]) -> None:
        started = time.perf_counter()
        self.progress(step)
        fn()
        profile.timings[step] = round(time.perf_counter() - started, 4)

    def run(self, profile: TableProfile) -> TableProfile:
        try:
            self._timed(profile, "scan", self._scan)
            self._timed(profile, "sample", self._sample)
            self._timed(profile, "monotonicity", self._monotonicity)
            self._timed(profile, "frequencies", self._frequencies)
            self._timed(profile, "candidates", self._candidates)
            self._timed(profile, "second_scan", self._second_scan)
            self._timed(profile, "top_counts", self._top_counts)
            self._timed(profile, "sample_statistics", self._sample_statistics)
        finally:
            with contextlib.suppress(duckdb.Error):
                self.con.execute("DROP TABLE IF EXISTS _profile_sample")
        for col in self.columns:
            profile.columns.append(self._column_profile(col))
        self._dataset_level(profile)
        return profile

    def _batched(self, items: list[tuple[str, str]], projections: dict[str, str], params: dict | None = None):
        """Yields (alias, value) of aggregates `items` over the projected partition rows, in batches;
        an item's expression may use the projections named in it."""
        for start in range(0, len(items), self.opts.aggregates_per_query):
            batch = items[start:start + self.opts.aggregates_per_query]
            aggs = ", ".join(f"{expr} AS {alias}" for alias, expr in batch)
            words = set(re.findall(r"\w+", " ".join(e for _, e in batch)))
            used = [f"{expr} AS {name}" for name, expr in projections.items() if name in words]
            sql = f"SELECT {aggs} FROM (SELECT {', '.join(used) or '1 AS _one'} FROM {self.table} WHERE {self.where})"
            wanted = {k: v for k, v in (params or {}).items() if re.search(rf"\${k}\b", sql)}
            yield from zip((a for a, _ in batch), self._query(sql, wanted).fetchone(), strict=True)

    # 1: streaming aggregates

    def _scan_items(self, col: _Column) -> tuple[list[tuple[str, str]], dict[str, str]]:
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

    def _scan(self) -> None:
        items = [("t_rows", "count(*)"), ("t_first", "min(_source_row)"), ("t_last", "max(_source_row)")]
        projections = {"_source_row": "_source_row"}
        for col in self.columns:
            col_items, proj = self._scan_items(col)
            items += col_items
            projections.update(proj)
        for alias, value in self._batched(items, projections, {"now": self.now, "floor": self.opts.date_floor}):
            col_alias, stat = alias.split("_", 1)
            if col_alias == "t":
                setattr(self, {"rows": "rows", "first": "first_row", "last": "last_row"}[stat],
                        int(value) if value is not None else None)
            else:
                self.stats[col_alias][stat] = value
        for col in self.columns:
            s = self.stats[col.alias]
            s["exact"] = s["nn"] == 0 or s["hll"] <= self.opts.exact_distinct_max
            if col.kind == "integer":
                s["finite"] = s["nn"]

    # 2: the sample (the rows with the smallest hash of their record number: the same rows every run)

    def _sample(self) -> None:
        cols = [c for c in self.columns if c.numeric or not self.stats[c.alias]["exact"]]
        if not cols or self.rows == 0:
            return
        wanted = int(min(self.opts.sample_rows, max(10_000, self.opts.sample_cells // len(cols))))
        where = self.where
        if self.rows > wanted:
            # the wanted-th smallest hash, from a top-N over one column (among the rows whose hash is in the
            # lowest ~1.5 sample sizes' worth): the sample is then a filter, with no sort of its rows
            cutoff = min(2 ** 64 - 1, int(2 ** 64 * 1.5 * wanted / self.rows))
            threshold = self._query(
                f"""SELECT max(h) FROM (SELECT hash(_source_row) AS h FROM {self.table}
                    WHERE {self.where} AND hash(_source_row) < {cutoff}::UBIGINT ORDER BY h LIMIT {wanted})"""
            ).fetchone()[0]
            self.sample_bound = cutoff if threshold is None else int(threshold) + 1
            where += f" AND hash(_source_row) < {self.sample_bound}::UBIGINT"
        self._query(
            f"""CREATE OR REPLACE TEMP TABLE _profile_sample AS
                SELECT hash(_source_row) AS _h, {', '.join(f'{c.ident} AS {c.alias}' for c in cols)}
                FROM {self.table} WHERE {where}""")
        self.sample_size = self.con.execute("SELECT count(*) FROM _profile_sample").fetchone()[0]
        self.complete = self.sample_size == self.rows
        # numbers as DOUBLE; dates as epoch seconds where the sample is the whole partition (their histograms)
        arrays = {c.alias: f"CAST({c.alias} AS DOUBLE)" for c in cols if c.numeric}
        if self.complete:
            arrays.update({c.alias: f"epoch({c.alias})" for c in cols if c.kind == "temporal"})
        if arrays:
            found = self.con.execute(
                f"SELECT _h, {', '.join(f'{expr} AS {alias}' for alias, expr in arrays.items())} FROM _profile_sample"
            ).fetchnumpy()
            order = np.argsort(np.asarray(found["_h"]), kind="stable")  # hash order: any head is uniform too
            # NULLs come back masked: they become NaN and drop out like NaN does
            self.sample = {alias: np.ma.filled(np.ma.asarray(found[alias]).astype(float), np.nan)[order]
                           for alias in arrays}

    # 3: row-order monotonicity

    def _monotonicity(self) -> None:
        ordered = []
        for col in self.columns:
            s = self.stats[col.alias]
            if not (col.numeric or col.kind == "temporal"):
                continue
            s["monotonicity"] = "none"
            if s["finite" if col.numeric else "nn"] >= 2 and s["min"] is not None and s["min"] != s["max"]:
                ordered.append(col)
        if not ordered:
            return
        value = {c.alias: f"epoch({c.ident})" if c.kind == "temporal" else f"CAST({c.ident} AS DOUBLE)" for c in ordered}
        edges = self._query(
            f"""SELECT _source_row, {', '.join(value[c.alias] for c in ordered)} FROM {self.table}
                WHERE {self.where} AND _source_row IN ($first, $last)""",
            {"first": self.first_row, "last": self.last_row}).fetchall()
        at = {}
        for row in edges:
            at.setdefault(row[0], []).append(row[1:])
        unclear = []
        for i, col in enumerate(ordered):
            s = self.stats[col.alias]
            ends = [at.get(self.first_row), at.get(self.last_row)]
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
            row = self._query(f"SELECT {', '.join(exprs)} FROM {self.table} WHERE {self.where}").fetchone()
            for i, col in enumerate(unclear):
                self.stats[col.alias]["first"], self.stats[col.alias]["last"] = row[2 * i], row[2 * i + 1]
        candidates = []
        for col in ordered:
            s = self.stats[col.alias]
            first, last, low, high = s["first"], s["last"], float(s["min"]), float(s["max"])
            if (first == low and last == high) or (first == high and last == low):
                candidates.append(col)
        if not candidates:
            return
        # rows usually stream in record order: a lag over the stream (no sort) holds when the record numbers
        # it sees strictly increase; otherwise the lag is taken in sorted record order
        for window in ("", "ORDER BY _source_row"):
            items, checks = ["_source_row AS _r", f"lag(_source_row) OVER ({window}) AS _r_prev"], ["bool_and(_r > _r_prev)"]
            for col in candidates:
                a, x = col.alias, value[col.alias]
                items.append(f"{x} AS {a}, lag({x} IGNORE NULLS) OVER ({window}) AS {a}_prev")
                checks += [f"bool_and({a} >= {a}_prev)", f"bool_and({a} > {a}_prev)",
                           f"bool_and({a} <= {a}_prev)", f"bool_and({a} < {a}_prev)"]
            in_order, *row = self._query(
                f"SELECT {', '.join(checks)} FROM (SELECT {', '.join(items)} FROM {self.table} WHERE {self.where})"
            ).fetchone()
            if in_order:
                break
        for i, col in enumerate(candidates):
            up, strict_up, down, strict_down = row[4 * i: 4 * i + 4]
            self.stats[col.alias]["monotonicity"] = (
                "strictly_increasing" if strict_up else "increasing" if up else
                "strictly_decreasing" if strict_down else "decreasing" if down else "none")

    # 4: exact distinct counts, top values, shapes, entropy and number distributions from one group-by per column

    def _frequencies(self) -> None:
        exact = [col for col in self.columns if self.stats[col.alias]["exact"] and self.stats[col.alias]["nn"]]
        for start in range(0, len(exact), FREQUENCY_BATCH):
            self._frequency_batch(exact[start:start + FREQUENCY_BATCH])

    def _frequency_batch(self, batch: list[_Column]) -> None:
        """One group-by per column, unioned into one temp table of (column, value, count); distinct
        counts, entropy, top values, parse counts, shapes and number distributions come from those rows."""
        k = self.opts.top_values
        by_index = {col.index: col for col in batch}

        def number(col: _Column) -> str:
            if col.numeric:
                return f"CAST({col.ident} AS DOUBLE)"
            return f"epoch({col.ident})" if col.kind == "temporal" else "CAST(NULL AS DOUBLE)"

        branches = [
            f"""SELECT {col.index} AS ci, {col.ident if col.kind == "text" else f"CAST({col.ident} AS VARCHAR)"} AS v,
                       {number(col)} AS x, count(*) AS n
                FROM {self.table} WHERE {self.where} AND {col.ident} IS NOT NULL GROUP BY {col.ident}"""
            for col in batch]
        self._query(f"CREATE OR REPLACE TEMP TABLE _profile_values AS {' UNION ALL '.join(branches)}")
        try:
            parsed = ", ".join(f"coalesce(sum(n) FILTER (WHERE {cond.format(v='v')}), 0)" for cond in PARSE_CONDITIONS)
            for ci, distinct, neg_nlogn, *parse in self.con.execute(
                    f"SELECT ci, count(*), -sum(n * ln(n)), {parsed} FROM _profile_values GROUP BY ci").fetchall():
                col = by_index[ci]
                s = self.stats[col.alias]
                s["distinct"] = int(distinct)
                if col.kind == "text":
                    s["asnum"], s["asint"], s["asdate"], s["asbool"] = (int(x) for x in parse)
                n = int(s["nn"])
                # entropy of the value distribution, normalised to [0, 1] by its maximum ln(distinct)
                if distinct > 1:
                    entropy = math.log(n) + (neg_nlogn or 0.0) / n
                    s["balance"] = max(0.0, min(1.0, entropy / math.log(distinct)))
            for col in batch:
                self.stats[col.alias]["top"] = []
            for ci, v, n in self.con.execute(
                    f"""SELECT ci, v, n FROM _profile_values
                        QUALIFY row_number() OVER (PARTITION BY ci ORDER BY n DESC, v) <= {k}
                        ORDER BY ci, n DESC, v""").fetchall():
                self.stats[by_index[ci].alias]["top"].append({"value": v, "count": n})
            texts = [col.index for col in batch if col.kind in ("text", "other")]
            if texts:
                for col in batch:
                    if col.index in texts:
                        self.stats[col.alias]["shapes"] = []
                for ci, shape, n in self.con.execute(
                        f"""SELECT ci, s, n FROM (
                                SELECT ci, {SHAPE_SQL.format(v='v')} AS s, sum(n) AS n FROM _profile_values
                                WHERE ci IN ({', '.join(str(i) for i in texts)}) GROUP BY ci, s)
                            QUALIFY row_number() OVER (PARTITION BY ci ORDER BY n DESC, s) <= {k}
                            ORDER BY ci, n DESC, s""").fetchall():
                    self.stats[by_index[ci].alias]["shapes"].append({"shape": shape, "count": int(n)})
            if any(col.numeric or col.kind == "temporal" for col in batch):
                found = self.con.execute(
                    "SELECT ci, x, n FROM _profile_values WHERE isfinite(x) ORDER BY ci, x").fetchnumpy()
                ci, x, n = (np.asarray(found[name]) for name in ("ci", "x", "n"))
                starts = np.flatnonzero(np.r_[True, ci[1:] != ci[:-1]]) if ci.size else np.array([], int)
                for begin, end in zip(starts, np.r_[starts[1:], ci.size], strict=True):
                    self._exact_distribution(by_index[int(ci[begin])], x[begin:end], n[begin:end].astype(float))
        finally:
            self.con.execute("DROP TABLE IF EXISTS _profile_values")

    def _exact_distribution(self, col: _Column, values: np.ndarray, counts: np.ndarray | None = None) -> None:
        """Histogram, and for numbers central moments, quantiles and MAD, of finite values sorted ascending,
        with their counts (None: each value once)."""
        s = self.stats[col.alias]
        edges = self._bin_edges(col)
        if edges is not None:
            s["hist"] = dict(enumerate(_bin_counts(values, counts, edges)))
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
        s["q"] = _weighted_quantiles(values, counts, qs)
        deviations = np.abs(values - s["q"][3])
        order = np.argsort(deviations, kind="stable")
        s["mad"] = _weighted_quantiles(deviations[order], counts[order], [0.5])[0]

    def _bin_edges(self, col: _Column) -> list[float] | None:
        s = self.stats[col.alias]
        if s.get("min") is None:
            return None
        if "edges" not in s:
            s["edges"] = _edges(float(s["min"]), float(s["max"]), self.opts.histogram_bins,
                                integer=col.kind == "integer")
        return s["edges"]

    # 5: top-value candidates, shapes and parse shares of high-cardinality columns, from the sample

    def _candidates(self) -> None:
        complete = self.complete  # the sample is the whole partition: its counts are exact
        for col in self.columns:
            s = self.stats[col.alias]
            if s["exact"]:
                continue
            a, k = col.alias, self.opts.top_values
            if complete and a in self.sample and s.get("min") is not None:
                values = self.sample[a]
                values = np.sort(values[np.isfinite(values)])
                self._exact_distribution(col, values)
                s["distribution_done"] = True
            top = self.con.execute(
                f"""SELECT v, n FROM (
                        SELECT CAST({a} AS VARCHAR) AS v, count(*) AS n FROM _profile_sample WHERE {a} IS NOT NULL
                        GROUP BY {a}) ORDER BY n DESC, v LIMIT {k}""").fetchall()
            if complete:
                s["top"] = sorted(({"value": v, "count": int(n)} for v, n in top), key=lambda t: (-t["count"], t["value"]))
            else:
                s["top"], self.candidates[a] = [], [v for v, _ in top]
            if col.kind not in ("text", "other"):
                continue
            text = a if col.kind == "text" else f"CAST({a} AS VARCHAR)"
            # about PARSE_SAMPLE values: a lower hash bound is a uniform subsample of the sample, with no sort
            present = self.sample_size * int(s["nn"]) / self.rows
            bound = f"AND _h < {int(self.sample_bound * PARSE_SAMPLE / present)}::UBIGINT" \
                if present > PARSE_SAMPLE else ""
            head = f"(SELECT {text} AS v FROM _profile_sample WHERE {a} IS NOT NULL {bound})"
            # digits become 9 first (cheap, and the shape does that too): the costly letter classes then run
            # on the few distinct results
            shapes = self.con.execute(
                f"""SELECT {SHAPE_SQL.format(v='v')} AS s, sum(n) AS n FROM (
                        SELECT translate(v, '012345678', '999999999') AS v, count(*) AS n FROM {head} GROUP BY 1)
                    GROUP BY s ORDER BY n DESC, s LIMIT {k}""").fetchall()
            s["shapes"] = [{"shape": shape, "count": int(n)} for shape, n in shapes]
            if col.kind == "text":
                self._sample_parse_counts(col, head, exact=complete and not bound)
            else:
                s["shapes_total"] = self.con.execute(f"SELECT count(*) FROM {head}").fetchone()[0]

    def _sample_parse_counts(self, col: _Column, head: str, exact: bool) -> None:
        """How many values parse as number, integer, timestamp, boolean: estimated from the sample unless it
        holds every value; where the sample says every value parses, counted over the whole partition in the
        second scan (so 'stored as text' is exact)."""
        s = self.stats[col.alias]
        sums = ", ".join(f"count(*) FILTER (WHERE {cond.format(v='v')})" for cond in PARSE_CONDITIONS)
        row = self.con.execute(
            f"SELECT count(v), count(v) - count(*) FILTER (WHERE regexp_full_match(v, '\\s*')), {sums} FROM {head}"
        ).fetchone()
        s["shapes_total"], present = row[0], row[1]
        scale = (int(s["nn"]) - int(s.get("blank") or 0)) / present if present else 0.0
        counts = dict(zip(PARSE_KEYS, row[2:], strict=True))
        for key in PARSE_KEYS:
            s[key] = int(counts[key]) if exact else round(counts[key] * scale)
        if not exact:
            self.full_parse[col.alias] = [key for key in PARSE_KEYS if present and counts[key] >= present]

    # 6: second scan of the high-cardinality columns, and duplicate rows

    def _second_scan(self) -> None:
        items: list[tuple[str, str]] = []
        projections: dict[str, str] = {}
        for col in self.columns:
            s, a, c = self.stats[col.alias], col.alias, col.ident
            if s["exact"]:
                continue
            edges = self._bin_edges(col) if col.numeric or col.kind == "temporal" else None
            if edges is not None and not s.get("distribution_done"):
                if col.numeric:
                    x = c if col.storage == "DOUBLE" else f"CAST({c} AS DOUBLE)"
                    projections[f"{a}_x"] = f"CASE WHEN isfinite({x}) THEN {x} END"
                    projections[f"{a}_d"] = f"CASE WHEN isfinite({x}) THEN {x} - {_double(s['mean'])} END"
                    items += [(f"{a}_m2", f"sum({a}_d * {a}_d)"), (f"{a}_m3", f"sum({a}_d * {a}_d * {a}_d)"),
                              (f"{a}_m4", f"sum(({a}_d * {a}_d) * ({a}_d * {a}_d))")]
                else:
                    projections[f"{a}_x"] = f"epoch({c})"
                nb = len(edges) - 1
                width = (edges[-1] - edges[0]) / nb
                # GREATEST and LEAST skip NULLs: the CASE keeps nulls (and NaN, infinities) out of bin 0
                items.append((f"{a}_hist", f"histogram(CASE WHEN {a}_x IS NOT NULL THEN LEAST(GREATEST(CAST(floor(("
                                           f"{a}_x - {_double(edges[0])}) / {_double(width)}) AS INTEGER), 0), "
                                           f"{nb - 1}) END)"))
            projections[a] = c
            for key in self.full_parse.get(a, []):
                items.append((f"{a}_full{key}", f"count_if({PARSE_CONDITIONS[PARSE_KEYS.index(key)].format(v=a)})"))
        if self._duplicates_needed():
            projections["_row_hash"] = f"hash({', '.join(c.ident for c in self.columns)})"
            items.append(("t_distinctrows", "count(DISTINCT _row_hash)"))
        for alias, value in self._batched(items, projections):
            col_alias, stat = alias.split("_", 1)
            if col_alias == "t":
                # a 64-bit hash: two distinct rows collide with probability about rows^2 / 2^65
                self.duplicates = self.rows - int(value)
                continue
            s = self.stats[col_alias]
            if stat.startswith("full"):
                s[stat[4:]] = int(value)
            else:
                s[stat] = value

    def _top_counts(self) -> None:
        """Exact counts of the top-value candidates: a hash join of each column with its few candidates
        (half the work of comparing every value with each candidate)."""
        branches, params = [], {}
        by_index = {col.index: col for col in self.columns}
        for col in self.columns:
            found = self.candidates.get(col.alias)
            if not found:
                continue
            a = col.alias
            value = f"CAST({col.ident} AS VARCHAR)" if col.kind == "other" else col.ident
            cast = "VARCHAR" if col.kind == "other" else col.storage
            params.update({f"k{a}_{j}": candidate for j, candidate in enumerate(found)})
            listed = ", ".join(f"({j}, CAST($k{a}_{j} AS {cast}))" for j in range(len(found)))
            branches.append(
                f"""SELECT {col.index} AS ci, k.j, count(*) AS n
                    FROM (SELECT {value} AS v FROM {self.table} WHERE {self.where}) t
                    JOIN (VALUES {listed}) k(j, v) ON t.v = k.v GROUP BY k.j""")
        if not branches:
            return
        for ci, j, n in self._query(" UNION ALL ".join(branches), params).fetchall():
            col = by_index[ci]
            self.stats[col.alias]["top"].append({"value": self.candidates[col.alias][j], "count": int(n)})
        for col in self.columns:
            if col.alias in self.candidates:
                self.stats[col.alias]["top"].sort(key=lambda t: (-t["count"], t["value"]))

    def _duplicates_needed(self) -> bool:
        """Duplicate rows are counted unless a column is known to be unique."""
        if self.rows < 2:
            return False
        for col in self.columns:
            s = self.stats[col.alias]
            if (s["exact"] and s.get("distinct") == self.rows) or \
                    (s["nn"] == self.rows and s.get("monotonicity", "").startswith("strictly")):
                return False
        return True

    # 7: from the sample: quantiles and MAD of high-cardinality numbers, normality, correlations

    def _sample_statistics(self) -> None:
        for col in self.columns:
            s = self.stats[col.alias]
            if col.numeric and s["min"] is not None:
                _finish_moments(s)
            if not col.numeric or "q" in s or col.alias not in self.sample:
                continue
            values = self.sample[col.alias]
            values = values[np.isfinite(values)]
            if values.size:
                s["q"] = [float(v) for v in np.quantile(values, [q for _, q in QUANTILES])]
                s["mad"] = float(np.median(np.abs(values - s["q"][3])))
        for col in self.columns:
            values = self.sample.get(col.alias) if col.numeric else None
            if values is None:
                continue
            values = values[np.isfinite(values)][: self.opts.normality_sample]
            result = normality_test(values, self.opts.gaussian_test)
            if result is not None:
                self.normality[col.alias] = result
        self.corr_columns = [c for c in self.columns if c.numeric and (self.stats[c.alias].get("std") or 0) > 0]
        self.corr_capped = len(self.corr_columns) > self.opts.correlation_max_columns
        self.corr_columns = self.corr_columns[: self.opts.correlation_max_columns]
        aliases = [c.alias for c in self.corr_columns if c.alias in self.sample]
        if len(aliases) >= 2:
            values = np.column_stack([self.sample[a] for a in aliases])
            pearson = _pearson_matrix(values)
            spearman = _spearman_matrix(values[: self.opts.correlation_sample])
            for i, a in enumerate(aliases):
                for j in range(i + 1, len(aliases)):
                    self.pearson[(a, aliases[j])] = _finite(pearson[i, j])
                    self.spearman[(a, aliases[j])] = _finite(spearman[i, j])

    # assembling the column and dataset profiles

    def _column_profile(self, col: _Column) -> ColumnProfile:
        s = self.stats[col.alias]
        rows = self.rows
        nn = int(s["nn"])
        nan = int(s.get("nan") or 0)
        m: dict[str, float | None] = {
            "row_count": rows, "null_count": rows - nn, "null_share": (rows - nn) / rows if rows else None,
            "blank_count": s.get("blank", 0) or 0, "nan_count": nan, "inf_count": s.get("inf", 0) or 0,
        }
        if s["exact"]:
            distinct, method = int(s.get("distinct") or 0), "exact"
        else:
            distinct, method = min(int(s["hll"]), nn), "hll"
        m["distinct_count"] = distinct
        m["uniqueness"] = distinct / nn if nn else None
        top = [dict(t) for t in (s.get("top") or [])]
        m["top_value_share"] = top[0]["count"] / nn if top and nn else None
        details: dict[str, Any] = {"distinct_method": method, "top_values": top}
        if col.numeric:
            q = s.get("q") or [None] * len(QUANTILES)
            m.update({
                "min": s.get("min"), "max": s.get("max"), "mean": s.get("mean"), "std": s.get("std"),
                "sum": s.get("sum"), "zeros": s.get("zeros"), "negatives": s.get("neg"),
                "skewness": s.get("skew"), "kurtosis": s.get("kurt"), "mad": s.get("mad"),
            })
            for (metric, _), value in zip(QUANTILES, q, strict=True):
                m[metric] = value
            m["iqr"] = q[4] - q[2] if q[4] is not None and q[2] is not None else None
        elif col.kind == "temporal":
            m.update(min=s.get("min"), max=s.get("max"))
            m["future_share"] = s["future"] / nn if nn else None
            m["before_floor_share"] = s["old"] / nn if nn else None
        elif col.kind in ("text", "other"):
            m.update(length_min=s.get("lmin"), length_mean=s.get("lmean"), length_max=s.get("lmax"))
        if s.get("edges") is not None and s.get("hist") is not None:
            counts = [0] * (len(s["edges"]) - 1)
            for bin_, count in s["hist"].items():
                counts[int(bin_)] = int(count)
            details["histogram"] = {"edges": s["edges"], "counts": counts}
        if s.get("shapes") is not None:
            total = s.get("shapes_total") or nn
            details["shapes"] = [{"shape": x["shape"], "share": x["count"] / total} for x in s["shapes"]] if total else []
        if col.alias in self.normality:
            details["normality"] = self.normality[col.alias]
        if "monotonicity" in s or col.numeric or col.kind == "temporal":
            details["monotonicity"] = s.get("monotonicity", "none")
        details["semantic_type"] = self._semantic_type(col, s, m)
        details["alerts"] = _column_alerts(col, s, m, details)
        return ColumnProfile(col.name, col.index, {k: _finite(v) for k, v in m.items()}, details)

    def _semantic_type(self, col: _Column, s: dict, m: dict) -> dict:
        nn = int(s["nn"])
        distinct = int(m["distinct_count"] or 0)
        out = {"type": "text", "storage_type": col.storage, "stored_as_text": False, "mixed_types": False}
        unique = nn > 1 and distinct == nn
        if col.kind == "boolean":
            out["type"] = "boolean"
        elif col.kind == "temporal":
            out["type"] = "datetime"
        elif col.kind == "float":
            out["type"] = "float"
        elif col.kind == "integer":
            out["type"] = "identifier" if unique and (KEY_NAME.search(col.name) or
                                                      s.get("monotonicity", "").startswith("strictly")) else "integer"
        else:
            present = nn - int(s.get("blank") or 0)
            shares = {}
            if col.kind == "text" and present > 0:
                shares = {"number": s["asnum"] / present, "datetime": s["asdate"] / present,
                          "boolean": s["asbool"] / present}
                out["parse_shares"] = {k: round(v, 6) for k, v in shares.items()}
            if shares and shares["number"] >= 1.0:
                out.update(type="integer" if s["asint"] >= present else "float", stored_as_text=True)
            elif shares and shares["datetime"] >= 1.0:
                out.update(type="datetime", stored_as_text=True)
            elif shares and shares["boolean"] >= 1.0:
                out.update(type="boolean", stored_as_text=True)
            else:
                if shares and max(shares.values()) >= MIXED_MIN_SHARE:
                    out["mixed_types"] = True
                    out["majority"] = max(shares, key=shares.get)
                if unique and (m.get("length_max") or 0) <= 64 and (KEY_NAME.search(col.name) or
                                                                    len(s.get("shapes") or []) <= 3):
                    out["type"] = "identifier"
                elif distinct <= CATEGORICAL_MAX_DISTINCT or (nn and distinct / nn <= CATEGORICAL_MAX_UNIQUENESS
                                                               and (m.get("length_mean") or 0) < 40):
                    out["type"] = "categorical"
                else:
                    out["type"] = "text"
        return out

    def _dataset_level(self, profile: TableProfile) -> None:
        names = {c.alias: c.name for c in self.columns}
        pearson: dict[str, dict[str, float | None]] = {}
        spearman: dict[str, dict[str, float | None]] = {}
        for (a, b), r in self.pearson.items():
            pearson.setdefault(names[a], {})[names[b]] = r
        for (a, b), r in self.spearman.items():
            spearman.setdefault(names[a], {})[names[b]] = r
        profile.correlations = {
            "pearson": pearson, "spearman": spearman,
            "columns": [c.name for c in self.corr_columns],
            "columns_capped_at": self.opts.correlation_max_columns, "capped": self.corr_capped,
            "spearman_sample": min(self.sample_size, self.opts.correlation_sample),
            "pearson_sample": self.sample_size,
        }
        if self.duplicates:
            profile.alerts.append({"alert": "duplicates",
                                   "detail": f"{self.duplicates} rows repeat an earlier row exactly"})
        null_shares = [c.metrics["null_share"] for c in profile.columns if c.metrics.get("null_share") is not None]
        profile.metrics.update(
            row_count=self.rows, column_count=len(self.columns), duplicate_rows=self.duplicates,
            bytes=_source_bytes(self.con, profile.dataset, profile.partition_key),
            max_null_share=max(null_shares) if null_shares else None,
        )
        profile.metrics["alert_count"] = len(profile.all_alerts())


def _edges(low: float, high: float, bins: int, integer: bool) -> list[float]:
    if high <= low:
        return [low, low + 1.0]
    if integer and high - low + 1 <= bins:  # one bin per integer value
        return [low + i - 0.5 for i in range(int(high - low) + 2)]
    width = (high - low) / bins
    return [low + i * width for i in range(bins)] + [high]


def _double(value: float) -> str:
    """A DOUBLE literal that is exactly `value` (a bare decimal literal would be parsed as DECIMAL)."""
    return f"CAST('{float(value)!r}' AS DOUBLE)"


def _bin_counts(values: np.ndarray, counts: np.ndarray | None, edges: list[float]) -> list[int]:
    """Counts per bin of the equal-width `edges`, binned exactly as the second scan's SQL bins them."""
    bins = len(edges) - 1
    width = (edges[-1] - edges[0]) / bins
    index = np.clip(np.floor((values - edges[0]) / width), 0, bins - 1).astype(np.int64)
    return [int(round(c)) for c in np.bincount(index, weights=counts, minlength=bins)]


def _weighted_quantiles(values: np.ndarray, counts: np.ndarray, qs: list[float]) -> list[float]:
    """np.quantile(np.repeat(values, counts), qs) (linear interpolation) without repeating; values ascending."""
    cumulative = np.cumsum(counts)
    total = int(cumulative[-1])
    out = []
    for q in qs:
        h = (total - 1) * q
        low = math.floor(h)
        a = float(values[np.searchsorted(cumulative, low, side="right")])
        b = float(values[np.searchsorted(cumulative, min(low + 1, total - 1), side="right")])
        out.append(a + (h - low) * (b - a))
    return out


def _finish_moments(s: dict) -> None:
    """std, skewness and excess kurtosis (pandas' bias-corrected definitions) from the central sums m2..m4."""
    n = int(s.get("finite") or 0)
    s["std"] = s["skew"] = s["kurt"] = None
    if n < 2 or s.get("m2") is None:
        return
    if s["min"] == s["max"]:
        s["std"] = 0.0
        return
    m2, m3, m4 = float(s["m2"]), float(s["m3"]), float(s["m4"])
    s["std"] = math.sqrt(m2 / (n - 1))
    if m2 <= 0:
        return
    if n >= 3:
        s["skew"] = n * math.sqrt(n - 1) / (n - 2) * m3 / m2 ** 1.5
    if n >= 4:
        s["kurt"] = (n * (n + 1) * (n - 1) * m4 / ((n - 2) * (n - 3) * m2 * m2)
                     - 3 * (n - 1) ** 2 / ((n - 2) * (n - 3)))


def _pearson_matrix(x: np.ndarray, min_periods: int = 3) -> np.ndarray:
    """Pearson correlations of the columns of x over the rows where both are finite, as pandas'
    DataFrame.corr computes them, in a few matrix products instead of a loop over pairs."""
    valid = np.isfinite(x)
    mask = valid.astype(float)
    with np.errstate(all="ignore"):
        means = np.nan_to_num(np.nanmean(np.where(valid, x, np.nan), axis=0))
    centred = np.where(valid, x - means, 0.0)  # centred first: the sums below then lose little precision
    n = mask.T @ mask
    sums = centred.T @ mask  # [i, j]: sum of column i over the rows where i and j are finite
    squares = (centred * centred).T @ mask
    products = centred.T @ centred
    with np.errstate(all="ignore"):
        covariance = products - sums * sums.T / n
        variance = squares - sums * sums / n
        r = covariance / np.sqrt(variance * variance.T)
    r[(n < min_periods) | (variance <= 0) | (variance.T <= 0)] = np.nan
    return np.clip(r, -1.0, 1.0)


def _spearman_matrix(x: np.ndarray, min_periods: int = 3) -> np.ndarray:
    """Spearman correlations as pandas computes them: Pearson of average ranks taken over the rows where
    both columns are finite (pairs whose columns are finite on different rows are ranked afresh)."""
    x = np.asfortranarray(x)  # column slices contiguous
    valid = np.isfinite(x)
    order = np.argsort(np.where(valid, x, np.inf), axis=0, kind="stable")  # each column sorted once
    ranks = np.full(x.shape, np.nan)
    for i in range(x.shape[1]):
        ranks[:, i] = _average_ranks(x[:, i], order[:, i], valid[:, i])
    r = _pearson_matrix(ranks, min_periods)
    for i in range(x.shape[1]):
        for j in range(i + 1, x.shape[1]):
            if np.array_equal(valid[:, i], valid[:, j]):
                continue
            both = valid[:, i] & valid[:, j]
            r[i, j] = r[j, i] = np.nan
            if both.sum() >= min_periods:
                a = _average_ranks(x[:, i], order[:, i], both)[both]
                b = _average_ranks(x[:, j], order[:, j], both)[both]
                a, b = a - a.mean(), b - b.mean()
                # einsum, not @: OpenBLAS threads spin on vectors this small when the cores are busy
                ab, aa, bb = (float(np.einsum("i,i->", u, v)) for u, v in ((a, b), (a, a), (b, b)))
                scale = math.sqrt(aa * bb)  # 0 when a column is constant over the rows both have
                r[i, j] = r[j, i] = np.clip(ab / scale, -1.0, 1.0) if scale > 0 else np.nan
    return r


def _average_ranks(values: np.ndarray, order: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """1-based ranks (ties averaged) of values[keep], NaN elsewhere; `order` sorts `values`."""
    rows = order[keep[order]]
    ordered = values[rows]
    ranks = np.full(values.shape, np.nan)
    if rows.size:
        starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])
        ends = np.r_[starts[1:], rows.size]
        ranks[rows] = np.repeat((starts + ends + 1) / 2, ends - starts)
    return ranks

def _column_alerts(col: _Column, s: dict, m: dict, details: dict) -> list[dict]:
    alerts: list[dict] = []
    rows, nn = int(m["row_count"]), int(s["nn"])
    distinct = int(m["distinct_count"] or 0)
    semantic = details.get("semantic_type") or {}

    def add(alert: str, detail: str) -> None:
        alerts.append({"alert": alert, "detail": detail})

    null_share = m["null_share"] or 0.0
    if rows and nn == 0:
        add("high_null_share", "every value is null")
    elif null_share >= HIGH_NULL_SHARE:
        add("high_null_share", f"{null_share:.1%} of values are null")
    if nn > 1 and distinct == 1:
        add("constant", f"one value ({_short(details['top_values'][0]['value']) if details.get('top_values') else '?'})")
    elif nn > 1 and (m.get("top_value_share") or 0) >= NEAR_CONSTANT_SHARE:
        add("near_constant", f"the top value is {m['top_value_share']:.1%} of the values")
    if nn > 1 and distinct == nn and details["distinct_method"] == "exact":
        add("unique", "every non-null value is distinct")
    elif semantic.get("type") in ("categorical", "text") and distinct > HIGH_CARDINALITY_DISTINCT \
            and nn and distinct / nn >= HIGH_CARDINALITY_UNIQUENESS:
        add("high_cardinality", f"{distinct} distinct values ({details['distinct_method']})")
    skew = m.get("skewness")
    if skew is not None and math.isfinite(skew) and abs(skew) > SKEWED_ABS:
        add("skewed", f"skewness {skew:.2f}")
    balance = s.get("balance")
    if balance is not None and 2 <= distinct <= CATEGORICAL_MAX_DISTINCT and 1 - balance > IMBALANCE \
            and semantic.get("type") in ("categorical", "boolean", "integer"):
        add("imbalanced", f"value entropy {balance:.2f} of its maximum")
    zeros = m.get("zeros")
    if zeros and nn and zeros / nn >= MANY_ZEROS_SHARE:
        add("many_zeros", f"{zeros / nn:.1%} of the values are 0")
    if semantic.get("mixed_types"):
        shares = semantic.get("parse_shares", {})
        add("mixed_types", f"{shares.get(semantic.get('majority'), 0):.1%} parse as {semantic.get('majority')}, "
                           "the rest do not")
    if semantic.get("stored_as_text"):
        if semantic["type"] in ("integer", "float"):
            add("numbers_stored_as_text", f"every value parses as {semantic['type']}")
        else:
            add(f"{semantic['type']}_stored_as_text", f"every value parses as {semantic['type']}")
    return alerts


def _short(value: Any, limit: int = 40) -> str:
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def normality_test(values: np.ndarray, test: str) -> dict | None:
    """A normality test of finite values: {"test", "statistic", "p_value", "sample"} (None if too few)."""
    from scipy import stats

    n = int(values.size)
    if n < 8 or float(np.nanstd(values)) == 0.0:
        return None
    with np.errstate(all="ignore"):
        if test == "dagostino":
            statistic, p_value = stats.normaltest(values)
        elif test == "shapiro":
            statistic, p_value = stats.shapiro(values)
        elif test == "ks":
            standard = (values - values.mean()) / values.std(ddof=1)
            statistic, p_value = stats.kstest(standard, "norm")
        elif test == "anderson":
            result = stats.anderson(values, dist="norm")
            statistic = result.statistic
            p_value = _anderson_p_value(statistic, n)
        else:
            raise ValueError(f"unknown normality test {test!r}")
    return {"test": test, "statistic": _finite(statistic), "p_value": _finite(p_value), "sample": n}


def _anderson_p_value(a2: float, n: int) -> float:
    """D'Agostino & Stephens (1986) p-value of the Anderson-Darling statistic, mean and variance estimated."""
    a = a2 * (1 + 0.75 / n + 2.25 / n ** 2)
    if a >= 0.6:
        return math.exp(1.2937 - 5.709 * a + 0.0186 * a ** 2)
    if a >= 0.34:
        return math.exp(0.9177 - 4.279 * a - 1.38 * a ** 2)
    if a >= 0.2:
        return 1 - math.exp(-8.318 + 42.796 * a - 59.938 * a ** 2)
    return 1 - math.exp(-13.436 + 101.14 * a - 223.73 * a ** 2)
