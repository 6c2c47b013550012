"""The state a profile is computed in: its options, its columns and what the steps found."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np

from quality_assets.profile.model import TableProfile
from quality_assets.warehouse import quote_ident

PARTITION_COLUMNS = ("_partition_key", "_source_row", "_run_id")
GAUSSIAN_TESTS = ("dagostino", "shapiro", "anderson", "ks")
QUANTILES = (("p1", 0.01), ("p5", 0.05), ("p25", 0.25), ("p50", 0.5), ("p75", 0.75), ("p95", 0.95), ("p99", 0.99))
INTEGER_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT", "UINTEGER",
                 "UBIGINT", "UHUGEINT")
FLOAT_TYPES = ("FLOAT", "DOUBLE", "REAL")
TEMPORAL_TYPES = ("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS")
KEY_NAME = re.compile(r"(^|_)(id|key|uuid|guid|code|number|no)$", re.IGNORECASE)
# semantic types (and the categorical alerts)
MIXED_MIN_SHARE = 0.5
CATEGORICAL_MAX_DISTINCT = 50
CATEGORICAL_MAX_UNIQUENESS = 0.5

FREQUENCY_BATCH = 64  # columns whose value counts are gathered in one query
PARSE_SAMPLE = 20_000  # sample values that estimate parse shares and shapes of high-cardinality text
PARSE_KEYS = ("asnum", "asint", "asdate", "asbool")
PARSE_CONDITIONS = (  # over a text value v (replaced by the column)
    "TRY_CAST({v} AS DOUBLE) IS NOT NULL",
    "regexp_full_match({v}, '\\s*[+-]?[0-9]+\\s*')",
    "TRY_CAST({v} AS TIMESTAMP) IS NOT NULL",
    "lower(trim({v})) IN ('true', 'false', 't', 'f', 'yes', 'no', 'y', 'n')",
)


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
class Column:
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


def column_kind(storage: str) -> str:
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


def source_bytes(con: duckdb.DuckDBPyConnection, dataset: str, partition_key: str) -> float | None:
    row = con.execute(
        """SELECT sum(bytes) FROM (
               SELECT bytes FROM qa.files WHERE dataset = ? AND partition_key = ? AND status <> 'rejected'
               QUALIFY row_number() OVER (PARTITION BY source_path ORDER BY finished DESC NULLS LAST) = 1)""",
        [dataset, partition_key],
    ).fetchone()
    return None if row is None or row[0] is None else float(row[0])


class Profiler:
    """The state of one partition's profile, which the steps (scans.py, frequencies.py) fill in as
    few reads of the table as measured best:

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

    def __init__(self, con, table: str, partition_key: str, columns: list[Column], opts: ProfileOptions,
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

    def query(self, sql: str, params: dict | None = None):
        return self.con.execute(sql, {"key": self.key, **(params or {})})

    def timed(self, profile: TableProfile, step: str, fn: Callable[[Profiler], None]) -> None:
        started = time.perf_counter()
        self.progress(step)
        fn(self)
        profile.timings[step] = round(time.perf_counter() - started, 4)

    def batched(self, items: list[tuple[str, str]], projections: dict[str, str], params: dict | None = None):
        """Yields (alias, value) of aggregates `items` over the projected partition rows, in batches;
        an item's expression may use the projections named in it."""
        for start in range(0, len(items), self.opts.aggregates_per_query):
            batch = items[start:start + self.opts.aggregates_per_query]
            aggs = ", ".join(f"{expr} AS {alias}" for alias, expr in batch)
            words = set(re.findall(r"\w+", " ".join(e for _, e in batch)))
            used = [f"{expr} AS {name}" for name, expr in projections.items() if name in words]
            sql = f"SELECT {aggs} FROM (SELECT {', '.join(used) or '1 AS _one'} FROM {self.table} WHERE {self.where})"
            wanted = {k: v for k, v in (params or {}).items() if re.search(rf"\${k}\b", sql)}
            yield from zip((a for a, _ in batch), self.query(sql, wanted).fetchone(), strict=True)
