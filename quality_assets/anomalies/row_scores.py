"""Row-level anomaly scores: fit on reference rows, score a partition in batches, explain.

The partition is exported once (under the warehouse lock) to a Parquet file holding only the
feature columns DuckDB computes (numbers, dates as seconds from the partition's median date,
categories, character shapes, lengths, duplicate flags); scoring then streams it in batches of
`batch_size` rows without the lock, so memory stays bounded by the batch and one float per row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from quality_assets.anomalies.features import TINY, Categories, Feature, NumericTail, _fmt
from quality_assets.anomalies.settings import AnomalySettings
from quality_assets.warehouse import quote_ident, quote_literal

SYSTEM_COLUMNS = ("_partition_key", "_source_row", "_run_id", "_source_file")
NUMERIC_TYPES = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                 "UINTEGER", "UBIGINT", "FLOAT", "REAL", "DOUBLE", "DECIMAL")
INTEGER_TYPES = NUMERIC_TYPES[:9]
TEMPORAL_TYPES = ("DATE", "TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_S", "TIMESTAMP_MS",
                  "TIMESTAMP_NS", "TIMESTAMPTZ")
MAX_CATEGORIES = 1000  # more distinct strings than this (or than 20% of the rows): text or codes
MAX_PAIR_CATEGORIES = 50
MIN_CRAMERS_V = 0.5  # a pair of categorical columns is judged together only when this dependent
MIN_SPEARMAN = 0.9  # a pair of numeric columns is judged on its residual only when this related
MIN_ETA_SQUARED = 0.5  # a number is judged within its category only when the category explains this much
MAX_PAIRS = 10
MAD_SIGMA = 1.4826
CONTRIBUTIONS = 3  # columns named in a flagged row's explanation


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    db_type: str
    index: int

    @property
    def kind(self) -> str | None:
        base = self.db_type.split("(")[0].upper()
        if base in NUMERIC_TYPES:
            return "numeric"
        if base in TEMPORAL_TYPES:
            return "temporal"
        if base == "TIME":
            return "numeric_time"
        if base == "BOOLEAN":
            return "boolean"
        if base == "VARCHAR":
            return "string"
        return None

    @property
    def integer(self) -> bool:
        return self.db_type.split("(")[0].upper() in INTEGER_TYPES


def raw_columns(con, dataset: str, exclude: tuple[str, ...] = ()) -> tuple[list[ColumnInfo], bool]:
    """The data columns of raw."<dataset>" that can be scored, and whether it has _source_file."""
    rows = con.execute(
        """SELECT column_name, data_type FROM information_schema.columns
           WHERE table_schema = 'raw' AND table_name = ? ORDER BY ordinal_position""", [dataset]).fetchall()
    names = {name for name, _ in rows}
    columns = [ColumnInfo(name, type_, i) for i, (name, type_) in enumerate(rows)
               if name not in SYSTEM_COLUMNS and name not in exclude]
    return [c for c in columns if c.kind], "_source_file" in names


def raw_table(dataset: str) -> str:
    return f"raw.{quote_ident(dataset)}"


def _sample_predicate(rate: float, has_file: bool, prefix: str = "") -> str:
    """A deterministic Bernoulli sample: the same rows every time, whatever the thread count."""
    if rate >= 1:
        return "TRUE"
    names = ["_partition_key", "_source_row"] + (["_source_file"] if has_file else [])
    parts = ", ".join(prefix + name for name in names)
    return f"(hash({parts}) % 1000000) < {int(rate * 1_000_000)}"


@dataclass
class RowModel:
    """The fitted detector: its features, and the SQL that exports a partition's inputs."""

    features: list[Feature]
    exports: dict[str, str]  # feature column -> SQL expression over raw (alias r)
    centers: dict[str, str]  # temporal column -> input name, centred on the partition's median
    key_sets: dict[str, tuple[str, ...]]  # duplicate input -> key columns
    columns: dict[str, ColumnInfo]
    reference_partitions: list[str]
    reference_rows: int
    fitted_on: str  # "history" or "partition"
    has_file: bool
    skipped: dict[str, str] = field(default_factory=dict)  # column -> why it is not scored
    daily: bool = False  # dates measured from the partition's day rather than its median

    def describe(self) -> list[dict]:
        return [{"feature": f.name, "signal": f.signal, "columns": list(f.columns)} for f in self.features]


def _value_expr(col: ColumnInfo) -> str:
    ident = f"r.{quote_ident(col.name)}"
    if col.kind == "temporal" or col.kind == "numeric_time":
        return f"epoch({ident})"
    if col.kind == "boolean":
        return f"CAST({ident} AS VARCHAR)"
    if col.kind == "numeric":
        return f"CAST({ident} AS DOUBLE)"
    return ident


COARSE = (("A+", "A"), ("a+", "a"), ("9+", "9"), ("\\s+", " "))
# byte -> shape byte: A-Z to A, a-z to a, 0-9 to 9; every other byte (UTF-8 included) unchanged
SHAPE_BYTES = np.arange(256, dtype=np.uint8)
SHAPE_BYTES[ord("A"):ord("Z") + 1] = ord("A")
SHAPE_BYTES[ord("a"):ord("z") + 1] = ord("a")
SHAPE_BYTES[ord("0"):ord("9") + 1] = ord("9")


def shapes(values: pa.Array | pa.ChunkedArray, coarse: bool = False) -> pa.Array:
    """Character shapes ('SKU-00042' -> 'AAA-99999'; coarse: runs collapsed, 'A-9'), mapped over
    the string buffer's bytes in one vectorised pass."""
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks() if values.num_chunks else pa.array([], pa.string())
    values = pc.cast(values, pa.large_string())
    validity, offsets, data = values.buffers()
    mapped = SHAPE_BYTES[np.frombuffer(data, dtype=np.uint8)] if data is not None and data.size else np.zeros(0, np.uint8)
    out = pa.Array.from_buffers(pa.large_string(), len(values), [validity, offsets, pa.py_buffer(mapped.tobytes())],
                                offset=values.offset)
    if coarse:
        for pattern, replacement in COARSE:
            out = pc.replace_substring_regex(out, pattern, replacement)
    return out


def _centre(col: ColumnInfo, daily: bool) -> str:
    """Where a partition's dates are measured from: its day for daily partitions, else its median."""
    if daily:
        return "epoch(TRY_CAST(r._partition_key AS DATE))"
    return f"median({_value_expr(col)})"


def read_sample(con, dataset: str, columns: list[ColumnInfo], partitions: list[str], rows: int, has_file: bool,
                skip_flagged: bool = False, daily: bool = False) -> pa.Table:
    """A deterministic sample of about `rows` rows of the partitions with every column's value as
    v<i> (dates as seconds from their partition's day or median date)."""
    table = raw_table(dataset)
    keys = "[" + ", ".join(quote_literal(k) for k in partitions) + "]"
    inside = f"list_contains({keys}, r._partition_key)"
    total = con.execute(f"SELECT count(*) FROM {table} r WHERE {inside}").fetchall()[0][0]
    flagged = ""
    if skip_flagged and con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'qa' AND table_name = 'row_anomalies'"
    ).fetchall()[0][0]:
        file_match = " AND a.source_file IS NOT DISTINCT FROM r._source_file" if has_file else ""
        flagged = (f" AND NOT EXISTS (SELECT 1 FROM qa.row_anomalies a WHERE a.dataset = {quote_literal(dataset)}"
                   f" AND a.partition_key = r._partition_key AND a._source_row = r._source_row{file_match})")
    select, ctes = ["r._partition_key AS _pk"], ""
    temporal = [c for c in columns if c.kind == "temporal"]
    if temporal:
        ctes = ("WITH centres AS (SELECT r._partition_key, "
                + ", ".join(f"{'any_value' if daily else ''}({_centre(c, daily)}) AS m{c.index}" for c in temporal)
                + f" FROM {table} r WHERE {inside} GROUP BY 1) ")
    for col in columns:
        expr = _value_expr(col)
        select.append(f"{expr} - centres.m{col.index} AS v{col.index}" if col.kind == "temporal" else f"{expr} AS v{col.index}")
    join = " JOIN centres ON centres._partition_key = r._partition_key" if temporal else ""
    rate = rows / total if total else 1.0
    return con.sql(
        f"{ctes}SELECT {', '.join(select)} FROM {table} r{join} WHERE {inside}"
        f" AND {_sample_predicate(rate, has_file, 'r.')}{flagged}").to_arrow_table()


def fit_row_model(con, dataset: str, partition_key: str, history: list[str], settings: AnomalySettings,
                  primary_key: tuple[str, ...] = (), reference_rows: int = 200_000, daily: bool = False) -> RowModel:
    """Fit on a deterministic sample of the history partitions (rows flagged before left out),
    or on the partition itself when there is no history."""
    columns, has_file = raw_columns(con, dataset, settings.exclude_columns)
    reference = history[-settings.reference_partitions:] if history else [partition_key]
    sample = read_sample(con, dataset, columns, reference, reference_rows, has_file, skip_flagged=bool(history),
                         daily=daily)
    keys = "[" + ", ".join(quote_literal(k) for k in reference) + "]"
    uniqueness = _key_stats(con, raw_table(dataset), keys, columns, primary_key, sample)
    model = _fit(sample, columns, uniqueness, reference, "history" if history else "partition", has_file)
    model.daily = daily
    return model


def _key_stats(con, table: str, keys: str, columns: list[ColumnInfo], primary_key: tuple[str, ...],
               sample: pa.Table) -> dict[tuple[str, ...], tuple[int, int]]:
    """(non-null rows, duplicate rows within their partition) of the candidate keys in the reference."""
    candidates: list[tuple[str, ...]] = []
    known = {c.name for c in columns}
    if primary_key and all(k in known for k in primary_key):
        candidates.append(tuple(primary_key))
    for col in columns:
        if col.kind == "string" or (col.kind == "numeric" and col.integer):
            values = pc.drop_null(sample.column(f"v{col.index}"))
            if len(values) >= 20 and pc.count_distinct(values).as_py() >= 0.9 * len(values):
                if (col.name,) not in candidates:
                    candidates.append((col.name,))
    if not candidates:
        return {}
    parts = []
    for key in candidates:
        cols = ", ".join(f"r.{quote_ident(k)}" for k in key)
        expr = cols if len(key) == 1 else f"row({cols})"
        present = " AND ".join(f"r.{quote_ident(k)} IS NOT NULL" for k in key)
        parts += [f"count(*) FILTER (WHERE {present})", f"count(DISTINCT {expr}) FILTER (WHERE {present})"]
    rows = con.execute(f"SELECT {', '.join(parts)} FROM {table} r WHERE list_contains({keys}, r._partition_key) "
                       f"GROUP BY r._partition_key").fetchall()
    out = {}
    for i, key in enumerate(candidates):
        present = sum(row[2 * i] for row in rows)
        distinct = sum(row[2 * i + 1] for row in rows)
        out[key] = (present, present - distinct)
    return out


def _numbers(array: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def _fit(sample: pa.Table, columns: list[ColumnInfo], key_stats: dict, reference: list[str], fitted_on: str,
         has_file: bool) -> RowModel:
    features: list[Feature] = []
    exports: dict[str, str] = {}
    centers: dict[str, str] = {}
    skipped: dict[str, str] = {}
    n = sample.num_rows
    unique_keys = {key: stats for key, stats in key_stats.items()
                   if stats[0] >= 20 and stats[1] <= 0.01 * stats[0]}
    numeric_inputs: dict[str, np.ndarray] = {}  # input -> transformed reference values, for pairs
    categorical: dict[str, tuple[Categories, pa.Array]] = {}
    for col in columns:
        value_input = f"v{col.index}"
        raw_values = sample.column(value_input)
        nulls = np.asarray(pc.is_null(raw_values).to_numpy(zero_copy_only=False), dtype=bool)
        if col.kind in ("numeric", "temporal", "numeric_time"):
            values = _numbers(raw_values)
            nulls |= np.isnan(values)
        features.append(Feature(f"{col.name}:null", (col.name,), "null", (value_input,),
                                model=(int(nulls.sum()), n)))
        exports[value_input] = _value_expr(col)
        if n == 0:
            continue
        if col.kind in ("numeric", "temporal", "numeric_time"):
            if col.kind == "numeric" and col.integer and (col.name,) in unique_keys:
                skipped[col.name] = "identifier: duplicates and nulls only"
                continue
            if col.kind == "temporal":
                centers[col.name] = value_input
            tail = NumericTail.fit(values, allow_log=col.kind == "numeric")
            if tail is None:
                skipped[col.name] = "fewer than 5 values in the reference"
                continue
            signal = "value" if col.kind != "temporal" else "date"
            features.append(Feature(col.name, (col.name,), signal, (value_input,), model=tail))
            finite = np.isfinite(values)
            numeric_inputs[value_input] = np.where(finite, np.log(np.where(values > 0, values, 1)) if tail.log
                                                   else values, np.nan)
            continue
        non_null = pc.drop_null(raw_values)
        distinct = pc.count_distinct(non_null).as_py() if len(non_null) else 0
        if col.kind == "boolean" or distinct <= max(2, min(MAX_CATEGORIES, 0.2 * len(non_null))):
            cats = Categories.fit(raw_values)
            if cats is not None:
                features.append(Feature(col.name, (col.name,), "category", (value_input,), model=cats))
                if cats.counts.size <= MAX_PAIR_CATEGORIES:
                    categorical[value_input] = (cats, raw_values)
            continue
        fine_shapes = shapes(raw_values)
        fine = Categories.fit(fine_shapes)
        top = np.sort(fine.counts)[::-1][:20].sum() / fine.n if fine else 0
        coarse = top < 0.9  # free text: shapes with runs collapsed, and the length
        model = Categories.fit(shapes(raw_values, coarse=True)) if coarse else fine
        if model is not None:
            features.append(Feature(f"{col.name}:shape", (col.name,), "shape", (value_input,),
                                    model=model, extra={"coarse": coarse}))
        if coarse:
            length = NumericTail.fit(_numbers(pc.utf8_length(raw_values)), allow_log=False)
            if length is not None:
                features.append(Feature(f"{col.name}:length", (col.name,), "length", (value_input,), model=length))
    key_sets = {}
    for i, (key, (present, dups)) in enumerate(unique_keys.items()):
        name = f"d{i}"
        key_sets[name] = key
        features.append(Feature(f"{'+'.join(key)}:duplicate", key, "duplicate", (name,),
                                model=(dups + 1) / (present + 1), extra={"duplicates": dups, "rows": present}))
    by_input = {f.inputs[0]: f for f in features if f.signal in ("value", "date")}
    features += _numeric_pairs(numeric_inputs, by_input)
    features += _conditional_numbers(categorical, numeric_inputs, by_input,
                                     {f.inputs[0]: f for f in features if f.signal == "category"})
    features += _category_pairs(categorical, {f.inputs[0]: f for f in features if f.signal == "category"})
    return RowModel(features=features, exports=exports, centers=centers, key_sets=key_sets,
                    columns={c.name: c for c in columns}, reference_partitions=reference, reference_rows=n,
                    fitted_on=fitted_on, has_file=has_file, skipped=skipped)


def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.arange(values.size)
    return ranks


def _numeric_pairs(inputs: dict[str, np.ndarray], features: dict[str, Feature]) -> list[Feature]:
    names = list(inputs)[:30]
    # Spearman on an evenly spaced subsample is stable at 20,000 rows and spares the sorts
    step = max(1, len(next(iter(inputs.values()), [])) // 20_000)
    ranks = {name: _ranks(np.nan_to_num(inputs[name][::step], nan=np.inf)) for name in names}
    candidates = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            both = np.isfinite(inputs[a][::step]) & np.isfinite(inputs[b][::step])
            if both.sum() < 50 or inputs[a][::step][both].std() == 0 or inputs[b][::step][both].std() == 0:
                continue
            rho = float(np.corrcoef(ranks[a][both], ranks[b][both])[0, 1])
            if abs(rho) >= MIN_SPEARMAN:
                candidates.append((abs(rho), rho, a, b))
    out = []
    for _, rho, a, b in sorted(candidates, key=lambda c: -c[0])[:MAX_PAIRS]:
        both = np.isfinite(inputs[a]) & np.isfinite(inputs[b])
        x, y = inputs[a][both], inputs[b][both]
        slope, intercept = np.polyfit(x, y, 1)
        residual = NumericTail.fit(y - (slope * x + intercept), allow_log=False)
        if residual is None:
            continue
        fa, fb = features[a], features[b]
        out.append(Feature(f"{fa.columns[0]}~{fb.columns[0]}", (fb.columns[0], fa.columns[0]), "pair", (a, b),
                           model=residual, extra={"slope": float(slope), "intercept": float(intercept),
                                                  "rho": rho, "x": fa, "y": fb}))
    return out


def _category_pairs(categorical: dict[str, tuple[Categories, pa.Array]], features: dict[str, Feature]) -> list[Feature]:
    names = list(categorical)
    candidates = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            (ca, va), (cb, vb) = categorical[a], categorical[b]
            ia, ib = ca.index(va), cb.index(vb)
            ok = (ia >= 0) & (ib >= 0)
            ka, kb = ca.counts.size, cb.counts.size
            if ok.sum() < 50 or ka < 2 or kb < 2:
                continue
            table = np.bincount(ia[ok] * kb + ib[ok], minlength=ka * kb).reshape(ka, kb).astype(np.float64)
            total = table.sum()
            expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / total
            chi2 = float(np.nansum((table - expected) ** 2 / np.where(expected > 0, expected, np.nan)))
            v = math.sqrt(chi2 / (total * (min(ka, kb) - 1)))
            if v >= MIN_CRAMERS_V:
                # condition on the column with more categories: its value says more about the other
                given, other, counts = (a, b, table) if ka >= kb else (b, a, table.T)
                candidates.append((v, given, other, counts))
    out = []
    for v, given, other, counts in sorted(candidates, key=lambda c: -c[0])[:MAX_PAIRS]:
        # the pair as one category: the mass of pairs at most as frequent; unseen: Good-Turing
        flat = counts.ravel()
        order = np.sort(flat)
        cumulative = np.cumsum(order)
        mass = cumulative[np.searchsorted(order, flat, side="right") - 1]
        total = flat.sum()
        p = ((mass + 1) / (total + 1)).reshape(counts.shape)
        p[counts == 0] = ((flat == 1).sum() + 1) / (total + 1)
        fg, fo = features[given], features[other]
        out.append(Feature(f"{fg.columns[0]}|{fo.columns[0]}", (fo.columns[0], fg.columns[0]), "combination",
                           (given, other), model=p,
                           extra={"given": fg, "other": fo, "counts": counts, "cramers_v": v}))
    return out


def _conditional_numbers(categorical: dict[str, tuple[Categories, pa.Array]], numeric: dict[str, np.ndarray],
                        numeric_features: dict[str, Feature], category_features: dict[str, Feature]) -> list[Feature]:
    """A number judged within its category (a price typical of another product category), for
    pairs where the category explains at least half of the number's variance."""
    candidates = []
    for a, (cats, values) in categorical.items():
        index = cats.index(values)
        for y_name, y in numeric.items():
            ok = np.isfinite(y) & (index >= 0)
            if ok.sum() < 100 or y[ok].var() == 0:
                continue
            groups, ys = index[ok], y[ok]
            sizes = np.bincount(groups, minlength=cats.counts.size)
            means = np.bincount(groups, weights=ys, minlength=cats.counts.size) / np.maximum(sizes, 1)
            eta2 = 1 - ((ys - means[groups]) ** 2).sum() / ((ys - ys.mean()) ** 2).sum()
            if eta2 >= MIN_ETA_SQUARED:
                candidates.append((eta2, a, y_name, groups, ys))
    out = []
    for eta2, a, y_name, groups, ys in sorted(candidates, key=lambda c: -c[0])[:MAX_PAIRS]:
        k = int(groups.max()) + 1
        overall = float(np.median(ys))
        overall_scale = MAD_SIGMA * float(np.median(np.abs(ys - overall))) or float(ys.std()) or 1.0
        centre, scale = np.full(k, overall), np.full(k, overall_scale)
        for g in range(k):
            members = ys[groups == g]
            if members.size >= 20:  # small categories keep the overall centre and spread
                centre[g] = np.median(members)
                scale[g] = MAD_SIGMA * float(np.median(np.abs(members - centre[g]))) or overall_scale
        tail = NumericTail.fit((ys - centre[groups]) / scale[groups], allow_log=False)
        if tail is None:
            continue
        fa, fy = category_features[a], numeric_features[y_name]
        out.append(Feature(f"{fy.columns[0]}|{fa.columns[0]}", (fy.columns[0], fa.columns[0]), "conditional",
                           (a, y_name), model=tail,
                           extra={"given": fa, "y": fy, "centre": centre, "scale": scale, "eta2": float(eta2)}))
    return out


def export_sql(model: RowModel, dataset: str, partition_key: str, sample_rate: float) -> str:
    """The query that writes a partition's feature inputs (and a drift-sample flag) to Parquet."""
    table = raw_table(dataset)
    where = f"r._partition_key = {quote_literal(partition_key)}"
    ctes, joins, select = [], [], ["r._source_row AS _row"]
    if model.has_file:
        select.append("r._source_file AS _file")
    position = "row(r._source_file, r._source_row)" if model.has_file else "r._source_row"
    centred = set(model.centers.values())
    for name, expr in model.exports.items():
        if name in centred:
            centre = (f"epoch(TRY_CAST({quote_literal(partition_key)} AS DATE))" if model.daily
                      else f"(SELECT median({expr}) FROM {table} r WHERE {where})")
            select.append(f"{expr} - {centre} AS {name}")
        else:
            select.append(f"{expr} AS {name}")
    for name, key in model.key_sets.items():
        cols = [quote_ident(k) for k in key]
        ctes.append(f"{name}_first AS (SELECT {', '.join(f'r.{c}' for c in cols)}, min({position}) AS first_pos "
                    f"FROM {table} r WHERE {where} AND {' AND '.join(f'r.{c} IS NOT NULL' for c in cols)} "
                    f"GROUP BY ALL HAVING count(*) > 1)")
        joins.append(f"LEFT JOIN {name}_first ON " + " AND ".join(f"r.{c} = {name}_first.{c}" for c in cols))
        select.append(f"coalesce({position} > {name}_first.first_pos, FALSE) AS {name}")
    select.append(f"{_sample_predicate(sample_rate, model.has_file, 'r.')} AS _sample")
    with_sql = f"WITH {', '.join(ctes)} " if ctes else ""
    return f"{with_sql}SELECT {', '.join(select)} FROM {table} r {' '.join(joins)} WHERE {where}"


def export_partition(con, model: RowModel, dataset: str, partition_key: str, path: Path,
                     drift_sample_rows: int = 50_000) -> int:
    """Write the partition's feature inputs to `path` (Parquet); returns the row count."""
    rows = con.execute(f"SELECT count(*) FROM {raw_table(dataset)} WHERE _partition_key = ?",
                       [partition_key]).fetchall()[0][0]
    rate = drift_sample_rows / rows if rows else 1.0
    sql = export_sql(model, dataset, partition_key, rate)
    con.execute(f"COPY ({sql}) TO {quote_literal(str(path))} (FORMAT parquet, ROW_GROUP_SIZE 100000)")
    return rows


def feature_p_values(feature: Feature, batch: pa.RecordBatch) -> np.ndarray:
    """p-values of one feature for the rows of a batch."""
    column = batch.column(feature.inputs[0])
    if feature.signal == "null":
        nulls_ref, n = feature.model
        values = column
        is_null = np.asarray(pc.is_null(values, nan_is_null=True).to_numpy(zero_copy_only=False), dtype=bool) \
            if pa.types.is_floating(values.type) else np.asarray(pc.is_null(values).to_numpy(zero_copy_only=False), dtype=bool)
        p_null, p_present = (nulls_ref + 1) / (n + 2), (n - nulls_ref + 1) / (n + 2)
        return np.where(is_null, p_null, p_present).clip(max=1.0)
    if feature.signal in ("value", "date"):
        return feature.model.p_values(_numbers(column))
    if feature.signal == "length":
        return feature.model.p_values(_numbers(pc.utf8_length(column)))
    if feature.signal == "shape":
        return feature.model.p_values(shapes(column, feature.extra["coarse"]))
    if feature.signal == "category":
        return feature.model.p_values(column)
    if feature.signal == "duplicate":
        flags = np.asarray(column.to_numpy(zero_copy_only=False), dtype=bool)
        return np.where(flags, feature.model, 1.0)
    if feature.signal == "pair":
        x = _transformed(feature.extra["x"], _numbers(column))
        y = _transformed(feature.extra["y"], _numbers(batch.column(feature.inputs[1])))
        residual = y - (feature.extra["slope"] * x + feature.extra["intercept"])
        return feature.model.p_values(residual)  # NaN where either is missing: p = 1
    if feature.signal == "conditional":
        index = feature.extra["given"].model.index(column)
        y = _transformed(feature.extra["y"], _numbers(batch.column(feature.inputs[1])))
        known = index >= 0
        z = np.full(index.size, np.nan)
        z[known] = (y[known] - feature.extra["centre"][index[known]]) / feature.extra["scale"][index[known]]
        return feature.model.p_values(z)
    if feature.signal == "combination":
        given, other = feature.extra["given"].model, feature.extra["other"].model
        ig, io = given.index(column), other.index(batch.column(feature.inputs[1]))
        p = np.ones(ig.size, dtype=np.float64)
        ok = (ig >= 0) & (io >= 0)
        p[ok] = feature.model[ig[ok], io[ok]]
        return p
    raise ValueError(f"unknown signal {feature.signal}")


def _transformed(feature: Feature, values: np.ndarray) -> np.ndarray:
    if feature.model.log:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(values > 0, np.log(np.where(values > 0, values, 1)), np.nan)
    return values


@dataclass
class RowScores:
    rows: int
    flagged: int
    threshold_p: float
    threshold_method: str
    top: list[dict]  # flagged rows (at most max_rows), best ranked first, with explanations
    features: int
    seconds_scoring: float = 0.0


def batch_p_matrix(model: RowModel, batch: pa.RecordBatch) -> np.ndarray:
    matrix = np.empty((batch.num_rows, len(model.features)), dtype=np.float64)
    for j, feature in enumerate(model.features):
        matrix[:, j] = feature_p_values(feature, batch)
    return matrix


def score_file(path: Path, model: RowModel, settings: AnomalySettings, batch_size: int = 100_000,
               max_rows: int = 1000) -> tuple[RowScores, pa.Table]:
    """Two streaming passes: row p-values and the threshold, then explanations of flagged rows.
    Also returns the rows marked `_sample` (the drift sample)."""
    d = max(1, len({f.group for f in model.features}))
    parquet = pq.ParquetFile(path)
    n = parquet.metadata.num_rows
    row_p = np.ones(n, dtype=np.float64)
    samples = []
    start = 0
    for batch in parquet.iter_batches(batch_size=batch_size):
        if model.features:
            row_p[start:start + batch.num_rows] = np.minimum(1.0, d * batch_p_matrix(model, batch).min(axis=1))
        samples.append(batch.filter(batch.column("_sample")))
        start += batch.num_rows
    sample = pa.Table.from_batches(samples, schema=parquet.schema_arrow)
    threshold, method = calibrated_threshold(row_p, settings)
    flagged = int((row_p <= threshold).sum())
    if flagged == 0:
        return RowScores(n, 0, threshold, method, [], d), sample
    # ranks by p (ties: file order); keep the best `max_rows`
    order = np.lexsort((np.arange(n), row_p))[:min(flagged, max_rows)]
    rank_of = dict(zip(order.tolist(), range(1, order.size + 1), strict=True))
    keep = np.zeros(n, dtype=bool)
    keep[order] = True
    top: list[dict] = []
    start = 0
    for batch in parquet.iter_batches(batch_size=batch_size):
        stop = start + batch.num_rows
        local = np.flatnonzero(keep[start:stop])
        if local.size:
            sub = batch.take(pa.array(local))
            matrix = batch_p_matrix(model, sub)
            for i, row_index in enumerate(local):
                index = start + int(row_index)
                top.append(_explain(model, sub, i, matrix[i], row_p[index], rank_of[index]))
        start = stop
    top.sort(key=lambda r: r["rank"])
    return RowScores(n, flagged, threshold, method, top, d), sample


def calibrated_threshold(row_p: np.ndarray, settings: AnomalySettings) -> tuple[float, str]:
    """The p-value at or below which rows are flagged.

    contamination auto: Benjamini-Hochberg at the contract's false discovery rate, so that with
    nothing wrong nothing is flagged (with probability 1 - fdr) and with many wrong rows the
    expected share of false alarms among the flagged stays below fdr. A number: that share of
    rows, the most anomalous first (never rows whose p-value is 1).
    """
    n = row_p.size
    if n == 0:
        return 0.0, "no rows"
    ordered = np.sort(row_p)
    if settings.contamination is not None:
        k = max(1, math.ceil(settings.contamination * n))
        value = float(ordered[k - 1])
        return (value if value < 1 else float(ordered[ordered < 1].max(initial=0.0))), \
            f"contamination {settings.contamination:g}"
    bound = settings.fdr * np.arange(1, n + 1) / n
    passing = np.flatnonzero(ordered <= bound)
    if passing.size == 0:
        return float(settings.fdr / n), f"Benjamini-Hochberg fdr {settings.fdr:g}"
    return float(ordered[passing[-1]]), f"Benjamini-Hochberg fdr {settings.fdr:g}"


def _py(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def _explain(model: RowModel, batch: pa.RecordBatch, i: int, p: np.ndarray, row_p: float, rank: int) -> dict:
    order = np.argsort(p, kind="stable")
    contributions = []
    for j in order[:CONTRIBUTIONS]:
        if p[j] >= 0.01 and contributions:
            break
        contributions.append(_contribution(model, model.features[j], batch, i, float(p[j])))
    row = {"_source_row": int(batch.column("_row")[i].as_py()), "p_value": row_p, "rank": rank,
           "score": round(-math.log10(max(row_p, TINY)), 4)}
    row["source_file"] = batch.column("_file")[i].as_py() if model.has_file else None
    row["explanation"] = {"score": row["score"], "p_value": row_p, "contributions": contributions}
    return row


def _contribution(model: RowModel, feature: Feature, batch: pa.RecordBatch, i: int, p: float) -> dict:
    value = batch.column(feature.inputs[0])[i].as_py()
    out = {"column": feature.columns[0], "signal": feature.signal, "p_value": p}
    if feature.signal == "null":
        nulls, n = feature.model
        share = nulls / n if n else 0.0
        is_null = value is None or (isinstance(value, float) and math.isnan(value))
        out["value"] = None if is_null else _py(value)
        out["why"] = (f"null; {share:.2%} of the history is null" if is_null else
                      f"present, but {share:.2%} of the history is null")
    elif feature.signal == "value":
        out["value"] = _py(value)
        out.update(feature.model.why(float(value)) if value is not None else {"why": "null"})
    elif feature.signal == "length":
        out["value"] = value
        out.update(feature.model.why(float(len(value))) if value is not None else {"why": "null"})
        out["why"] = f"length {out['why']}"
    elif feature.signal == "date":
        out["value"] = None if value is None else f"{_fmt(value / 86400)} days from the partition's median date"
        out["why"] = (f"{_fmt(value / 86400)} days from the partition's median date; the history spans "
                      f"{_fmt(feature.model.raw_min / 86400)} to {_fmt(feature.model.raw_max / 86400)} days around its own")
    elif feature.signal == "category":
        share = feature.model.share(value)
        common = ", ".join(f"{v!r} {s:.0%}" for v, s in feature.model.top())
        out["value"] = _py(value)
        out["why"] = (f"{value!r} never seen in {feature.model.n:,} history rows (most common: {common})"
                      if share == 0 else f"{value!r} is rare: {share:.3%} of the history")
    elif feature.signal == "shape":
        original, value = value, shapes(pa.array([value], pa.string()), feature.extra["coarse"])[0].as_py()
        share = feature.model.share(value)
        common = ", ".join(f"{v!r} {s:.0%}" for v, s in feature.model.top(2))
        out["value"] = original
        out["shape"] = value
        out["why"] = (f"shape {value!r} never seen in the history ({common})" if share == 0
                      else f"shape {value!r} is rare: {share:.3%} of the history ({common})")
    elif feature.signal == "duplicate":
        key = feature.columns
        out["value"] = {k: _py(batch.column(f"v{model.columns[k].index}")[i].as_py())
                        if f"v{model.columns[k].index}" in batch.schema.names else None for k in key}
        out["why"] = (f"repeats the {'+'.join(key)} of an earlier row of this partition; "
                      f"{feature.extra['duplicates']} duplicates in {feature.extra['rows']:,} history rows")
    elif feature.signal == "pair":
        x_feature, y_feature = feature.extra["x"], feature.extra["y"]
        x, y = value, batch.column(feature.inputs[1])[i].as_py()
        out["column"] = y_feature.columns[0]
        out["value"] = {y_feature.columns[0]: _py(y), x_feature.columns[0]: _py(x)}
        scale = "log " if y_feature.model.log or x_feature.model.log else ""
        out["why"] = (f"{y_feature.columns[0]}={_fmt(y) if isinstance(y, float) else y} does not fit "
                      f"{x_feature.columns[0]}={_fmt(x) if isinstance(x, float) else x}: in the history they move "
                      f"together ({scale}Spearman {feature.extra['rho']:+.2f}) and this residual is in the "
                      f"{p:.2g} tail")
    elif feature.signal == "conditional":
        given, y_feature = feature.extra["given"], feature.extra["y"]
        g, y = value, batch.column(feature.inputs[1])[i].as_py()
        index = int(given.model.index(pa.array([g], given.model.values.type))[0])
        centre = float(feature.extra["centre"][index])
        typical = math.exp(centre) if y_feature.model.log else centre
        out["column"] = y_feature.columns[0]
        out["value"] = {y_feature.columns[0]: _py(y), given.columns[0]: _py(g)}
        out["why"] = (f"{y_feature.columns[0]}={_fmt(y) if isinstance(y, float) else y} is unusual for "
                      f"{given.columns[0]}={g!r} (typical {_fmt(typical)} there; the category explains "
                      f"{feature.extra['eta2']:.0%} of its {'log ' if y_feature.model.log else ''}variance)")
    elif feature.signal == "combination":
        given, other = feature.extra["given"], feature.extra["other"]
        g, o = value, batch.column(feature.inputs[1])[i].as_py()
        ig = given.model.index(pa.array([g], given.model.values.type))[0]
        io = other.model.index(pa.array([o], other.model.values.type))[0]
        together = int(feature.extra["counts"][ig, io]) if ig >= 0 and io >= 0 else 0
        with_given = int(feature.extra["counts"][ig].sum()) if ig >= 0 else 0
        out["column"] = other.columns[0]
        out["value"] = {other.columns[0]: _py(o), given.columns[0]: _py(g)}
        usual = ""
        if ig >= 0:
            best = int(np.argmax(feature.extra["counts"][ig]))
            usual = (f"; usually {other.columns[0]}={other.model.values[best].as_py()!r} "
                     f"({feature.extra['counts'][ig, best] / max(with_given, 1):.0%})")
        out["why"] = (f"{other.columns[0]}={o!r} with {given.columns[0]}={g!r}: seen together in {together:,} of "
                      f"{with_given:,} history rows with {given.columns[0]}={g!r}{usual}")
    return out
