"""The row detector's model: per-column null models fitted on reference rows (by role), plus the
pairs of related columns judged together."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from quality_assets.anomalies.columns import ColumnInfo, raw_columns, raw_table
from quality_assets.anomalies.features import Categories, Feature, NumericTail, novelty
from quality_assets.anomalies.pairs import (
    MAX_PAIR_CATEGORIES,
    category_pairs,
    conditional_numbers,
    numeric_pairs,
)
from quality_assets.anomalies.references import reference_history
from quality_assets.anomalies.roles import ColumnRole
from quality_assets.anomalies.sampling import read_sample, value_expr
from quality_assets.contract.anomalies import AnomalySettings
from quality_assets.shapes import shapes
from quality_assets.warehouse import quote_ident, quote_literal

NUMERIC_KINDS = ("numeric", "temporal", "numeric_time")
PAIRED_ROLES = ("measure",)
PERIOD_EDGE = 0.25  # a partition's period ends at a soft edge: a quarter of its dates' interquartile span  # only measures enter the numeric pairs; categories the category pairs


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
    periods: set[str] = field(default_factory=set)  # inputs: differs from the partition's commonest value
    rows_hint: int = 0  # rows of the partition being scored (for describing partition-level changes)

    def describe(self) -> list[dict]:
        return [{"feature": f.name, "signal": f.signal, "columns": list(f.columns)} for f in self.features]


def fit_row_model(con, dataset: str, partition_key: str, history: list[str], settings: AnomalySettings,
                  roles: dict[str, ColumnRole], primary_key: tuple[str, ...] = (), reference_rows: int = 200_000,
                  daily: bool = False, alarms: dict[str, set[str]] | None = None) -> RowModel:
    """Fit on a deterministic sample of the latest history partitions, each column on those where
    it raised no alarm (`alarms`: column -> partitions; see references.py), or on the partition
    itself when there is no history. Rows flagged before stay in: a value seen is not new.
    Relations between columns learned from fewer than min_history partitions carry those
    months' mix (group bookings that start in September): they wait for min_history partitions,
    as the metrics do (a partition with no history is its own reference, with its own relations)."""
    columns, has_file = raw_columns(con, dataset, settings.exclude_columns)
    fitted_on = "history" if history else "partition"
    reference = history[-settings.reference_partitions:] if history else [partition_key]
    kept = {c.name: reference_history(reference, (alarms or {}).get(c.name, set())) for c in columns} \
        if history else {}
    centred = {name for name, role in roles.items() if role.centred}
    sample = read_sample(con, dataset, columns, reference, reference_rows, has_file, daily=daily, centred=centred)
    keys = "[" + ", ".join(quote_literal(k) for k in reference) + "]"
    identifiers = tuple(name for name, role in roles.items() if role.role == "identifier")
    uniqueness = _key_stats(con, raw_table(dataset), keys, columns, primary_key, identifiers)
    model = _fit(sample, columns, roles, uniqueness, reference, fitted_on, has_file, kept,
                 related=not history or len(reference) >= settings.min_history)
    model.daily = daily
    return model


KEYS_PER_QUERY = 50


def _key_stats(con, table: str, keys: str, columns: list[ColumnInfo], primary_key: tuple[str, ...],
               identifiers: tuple[str, ...]) -> dict[tuple[str, ...], tuple[int, int]]:
    """(non-null rows, duplicate rows within their partition) of the primary key and of each
    identifier column in the reference."""
    candidates: list[tuple[str, ...]] = []
    known = {c.name for c in columns}
    if primary_key and all(k in known for k in primary_key):
        candidates.append(tuple(primary_key))
    candidates += [(name,) for name in identifiers if name in known and (name,) not in candidates]
    if not candidates:
        return {}
    out = {}
    # A few dozen keys per query: one with thousands of distinct counts (a wide table of short
    # partitions, every column unique) runs for many minutes where batches take seconds.
    for start in range(0, len(candidates), KEYS_PER_QUERY):
        batch = candidates[start:start + KEYS_PER_QUERY]
        parts = []
        for key in batch:
            cols = ", ".join(f"r.{quote_ident(k)}" for k in key)
            expr = cols if len(key) == 1 else f"row({cols})"
            present = " AND ".join(f"r.{quote_ident(k)} IS NOT NULL" for k in key)
            parts += [f"count(*) FILTER (WHERE {present})", f"count(DISTINCT {expr}) FILTER (WHERE {present})"]
        rows = con.execute(f"SELECT {', '.join(parts)} FROM {table} r WHERE list_contains({keys}, r._partition_key) "
                           f"GROUP BY r._partition_key").fetchall()
        for i, key in enumerate(batch):
            present = sum(row[2 * i] for row in rows)
            distinct = sum(row[2 * i + 1] for row in rows)
            out[key] = (present, present - distinct)
    return out


def numbers(array: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.cast(array, pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def _fit(sample: pa.Table, columns: list[ColumnInfo], roles: dict[str, ColumnRole], key_stats: dict,
         reference: list[str], fitted_on: str, has_file: bool, kept: dict[str, list[str]],
         related: bool = True) -> RowModel:
    features: list[Feature] = []
    exports: dict[str, str] = {}
    centers: dict[str, str] = {}
    skipped: dict[str, str] = {}
    periods: set[str] = set()
    partitions = sample.column("_pk")
    unique_keys = {key: stats for key, stats in key_stats.items()
                   if stats[0] >= 20 and stats[1] <= 0.01 * stats[0]}
    numeric_inputs: dict[str, np.ndarray] = {}  # input -> transformed reference values, for pairs
    categorical: dict[str, tuple[Categories, pa.Array]] = {}
    for col in columns:
        role = roles[col.name].role if col.name in roles else "measure"
        value_input = f"v{col.index}"
        everywhere = sample.column(value_input)
        # the column's own reference: partitions where it raised an alarm are left out (pairs
        # read the rows aligned, with those values missing)
        keep = pc.is_in(partitions, value_set=pa.array(kept[col.name], partitions.type)) if col.name in kept else None
        raw_values = everywhere.filter(keep) if keep is not None else everywhere
        aligned = pc.if_else(keep, everywhere, pa.scalar(None, everywhere.type)) if keep is not None else everywhere
        n = len(raw_values)
        nulls = np.asarray(pc.is_null(raw_values).to_numpy(zero_copy_only=False), dtype=bool)
        if col.kind in NUMERIC_KINDS:
            values = numbers(raw_values)
            nulls |= np.isnan(values)
        features.append(Feature(f"{col.name}:null", (col.name,), "null", (value_input,),
                                model=(int(nulls.sum()), n)))
        exports[value_input] = value_expr(col)
        if n == 0:
            continue
        if role == "period":  # its value is judged against the partition's, never against the history's
            features.append(Feature(f"{col.name}:period", (col.name,), "period", (f"c{col.index}",),
                                    model=1 / (n + 1)))
            exports[f"c{col.index}"] = value_expr(col)
            periods.add(f"c{col.index}")
            continue
        if col.kind in NUMERIC_KINDS and role != "category":
            if role == "identifier":
                skipped[col.name] = "identifier: duplicates and nulls only"
                continue
            bounds = roles[col.name].bounds if col.name in roles else None
            if bounds:  # a calendar part: judged against the calendar, not the history's months or days
                features.append(Feature(f"{col.name}:calendar", (col.name,), "calendar", (value_input,),
                                        model=(bounds[0], bounds[1], 1 / (n + 1))))
                continue
            centred = col.kind == "temporal" or (col.name in roles and roles[col.name].centred)
            if centred:
                centers[col.name] = value_input
            tail = NumericTail.fit(values, allow_log=col.kind == "numeric" and role == "measure" and not centred,
                                   edge=PERIOD_EDGE if centred else 1e-3)
            if tail is None:
                skipped[col.name] = "fewer than 5 values in the reference"
                continue
            signal = "date" if centred else "value"
            finite = values[np.isfinite(values)]
            features.append(Feature(col.name, (col.name,), signal, (value_input,), model=tail,
                                    extra={"constant": True} if finite.min() == finite.max() else {}))
            if role in PAIRED_ROLES:
                values = numbers(aligned)
                finite = np.isfinite(values)
                numeric_inputs[value_input] = np.where(finite, np.log(np.where(values > 0, values, 1)) if tail.log
                                                       else values, np.nan)
            continue
        if role == "category":
            own = partitions.filter(keep) if keep is not None else partitions
            cats = Categories.fit(raw_values, novelty(raw_values, own, reference))
            if cats is not None and keep is not None:
                cats.elsewhere = frozenset(pc.unique(pc.drop_null(everywhere)).to_pylist()) - set(cats.values.to_pylist())
            if cats is not None:
                features.append(Feature(col.name, (col.name,), "category", (value_input,), model=cats,
                                        extra={"constant": True} if cats.counts.size == 1 else {}))
                if cats.counts.size <= MAX_PAIR_CATEGORIES:
                    categorical[value_input] = (cats, aligned)
                if col.kind == "string":  # a new value may be no surprise; a new shape ('pp' among 'PP') is
                    for shape in _shape_features(col, value_input, raw_values, text=True, length=False, few=True):
                        shape.extra["known"] = cats.values  # only values not among these need a shape
                        features.append(shape)
            continue
        coarse = role == "text" or (col.name in roles and roles[col.name].coarse)
        features += _shape_features(col, value_input, raw_values, text=coarse)
    key_sets = {}
    for i, (key, (present, dups)) in enumerate(unique_keys.items()):
        name = f"d{i}"
        key_sets[name] = key
        features.append(Feature(f"{'+'.join(key)}:duplicate", key, "duplicate", (name,),
                                model=(dups + 1) / (present + 1), extra={"duplicates": dups, "rows": present}))
    by_input = {f.inputs[0]: f for f in features if f.signal in ("value", "date")}
    by_category = {f.inputs[0]: f for f in features if f.signal == "category"}
    indexes: dict[str, np.ndarray] = {}  # each category's reference index, shared by the pair searches
    if related:
        features += numeric_pairs(numeric_inputs, by_input, categorical, by_category, indexes)
        features += conditional_numbers(categorical, numeric_inputs, by_input, by_category, indexes)
        position = pc.index_in(partitions, value_set=pa.array(reference, partitions.type)).fill_null(-1)
        features += category_pairs(categorical, {f.inputs[0]: f for f in features if f.signal == "category"},
                                   position.to_numpy(zero_copy_only=False).astype(np.int64), indexes)
    return RowModel(features=features, exports=exports, centers=centers, key_sets=key_sets,
                    columns={c.name: c for c in columns}, reference_partitions=reference, reference_rows=sample.num_rows,
                    fitted_on=fitted_on, has_file=has_file, skipped=skipped, periods=periods)


def _shape_features(col: ColumnInfo, value_input: str, raw_values: pa.ChunkedArray, text: bool,
                    length: bool = True, few: bool = False) -> list[Feature]:
    """Codes: the mix of their character shapes. Free text (and categories): shapes with runs
    collapsed, and (free text) length. `few`: a category's values, each distinct one shaped once."""
    out = []
    shaped = _each_distinct_shaped if few else shapes
    fine = None if text else Categories.fit(shaped(raw_values))  # text is judged by its coarse shapes alone
    top = np.sort(fine.counts)[::-1][:20].sum() / fine.n if fine else 0
    coarse = text or top < 0.9
    model = Categories.fit(shaped(raw_values, coarse=True)) if coarse else fine
    if model is not None:
        out.append(Feature(f"{col.name}:shape", (col.name,), "shape", (value_input,),
                           model=model, extra={"coarse": coarse}))
    if coarse and length:
        lengths = NumericTail.fit(numbers(pc.utf8_length(raw_values)), allow_log=False)
        if lengths is not None:
            out.append(Feature(f"{col.name}:length", (col.name,), "length", (value_input,), model=lengths))
    return out


def _each_distinct_shaped(values: pa.ChunkedArray, coarse: bool = False) -> pa.Array:
    """shapes(values, coarse) of a column of few distinct values: each shaped once, then spread back
    over the rows (the same array, in a fraction of the time)."""
    encoded = pc.dictionary_encode(values.combine_chunks())
    return pc.take(shapes(encoded.dictionary, coarse), encoded.indices)
