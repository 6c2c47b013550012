"""Row scores: each feature's p-values, the row's combined p-value, the false-discovery-rate
threshold, and floods (one reason flagging a large share of the partition) turned into one
partition-level finding.

The partition is exported once (under the warehouse lock) to an Arrow IPC file holding only the
feature columns DuckDB computes; scoring streams it in batches of `batch_size` rows without the
lock, so memory stays bounded by the batch and a few floats per row.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from quality_assets.anomalies.causes import (
    CauseTally,
    describe_flood,
    describe_groups,
    describe_level,
    summarise_causes,
)
from quality_assets.anomalies.explain import explain_row
from quality_assets.anomalies.features import TINY, Categories, Feature, NumericTail
from quality_assets.anomalies.model import PERIOD_EDGE, RowModel, numbers
from quality_assets.anomalies.pairs import group_input, recentred
from quality_assets.anomalies.pvalues import (
    batch_p_matrix,
    direction,
    judged_values,
    shape_p_values,
)
from quality_assets.anomalies.sampling import PartitionFile
from quality_assets.contract.anomalies import AnomalySettings
from quality_assets.shapes import shapes


def levelled(model: RowModel, sample: pa.Table, min_history: int = 1) -> tuple[RowModel, list[dict]]:
    """Rows are judged from where their partition sits: a number (or a pair's residual, or a
    number within its category) whose partition median left the history's middle half (a price
    that rose with the years, a unit change on every row) has its history's shape moved to that
    level. The move itself is a partition-level change, reported once as a cause; its size is the
    metrics' and the drift's to judge. That the shape holds at another level takes min_history
    partitions to show: before, a number that moved is judged by the partition's own spread."""
    candidates = [j for j, f in enumerate(model.features) if f.signal in LEVELLED and not f.extra.get("refit")]
    if not candidates or model.fitted_on != "history":
        return model, []
    names = sorted({i for j in candidates for i in model.features[j].inputs})
    table = sample.select(names).combine_chunks()
    if table.num_rows < 20:
        return model, []
    batch = table.to_batches()[0]
    features, causes = list(model.features), []
    for j in candidates:
        feature = features[j]
        if "given" in feature.extra:  # categories whose own level moved, first
            index = feature.extra["given"].model.index(batch.column(group_input(feature)))
            feature, groups = recentred(feature, index, judged_values(feature, batch))
            if groups:
                features[j] = feature
                known = feature.extra["given"].model.values
                in_groups = np.isin(index, np.flatnonzero(np.isin(known.to_pylist(), groups)))
                share = float(in_groups.mean()) if index.size else 0.0
                causes.append(describe_groups(feature, groups, share, model.rows_hint))
        values = judged_values(feature, batch)
        finite = values[np.isfinite(values)]
        if finite.size < 20:
            continue
        here = float(np.median(finite))
        if feature.model.q1 <= here <= feature.model.q3:
            continue
        short = len(model.reference_partitions) < min_history and feature.signal == "value"
        moved = NumericTail.fit(finite, allow_log=feature.model.log) if short else feature.model.moved_to(finite)
        if moved is None:
            continue
        features[j] = replace(feature, model=moved, extra={**feature.extra, "refit": "moved", "history": feature.model})
        if feature.signal == "value":
            causes.append(describe_level(feature, here, finite, model.rows_hint))
    return replace(model, features=features), causes


FLOOD_SHARE = 0.1  # one reason flagging more of the partition than this is a partition-level change
FLOOD_MIN_ROWS = 10
FLOOD_ROUNDS = 3
REFITTABLE = ("value", "date", "length", "category", "shape", "null")
RARE = 0.01  # an event this rare in the history can be counted as a cluster
VALUED = ("category", "shape")
LEVELLED = ("value", "pair", "conditional")


@dataclass
class RowScores:
    rows: int
    flagged: int
    threshold_p: float
    threshold_method: str
    top: list[dict]  # flagged rows (at most max_rows), best ranked first, with explanations
    features: int
    causes: list[dict] = field(default_factory=list)  # flagged rows grouped by reason, largest first
    floods: list[dict] = field(default_factory=list)  # reasons that touched a large share: partition-level


BUCKETS = 302  # -log10 of a feature's Bonferroni-scaled p-value, in whole decades


@dataclass
class _Pass:
    row_p: np.ndarray
    strength: np.ndarray  # sum of -log10 p over features: breaks ties between equal row p-values
    decades: dict[tuple[int, int], np.ndarray]  # (feature, direction) -> rows per decade of d * p
    sample: pa.Table
    rarest: dict[int, list[np.ndarray]]  # discrete feature -> rows at its smallest p (never seen)
    present: dict[int, int]  # category and shape features -> rows with a value
    chances: dict[int, float] = field(default_factory=dict)  # combinations -> expected rows with a new pair
    ties: np.ndarray | None = None  # candidates' keys from their place in the source (see tie_keys)

    def rows_flagged_by(self, key: tuple[int, int], threshold: float) -> int:
        """Rows the feature alone would flag at this row threshold (to within a decade: the
        threshold's own decade counts whole, so rows tied at the threshold are never missed)."""
        first = math.floor(-math.log10(max(threshold, TINY)) + 1e-9)
        return int(self.decades[key][max(0, first):].sum())


def bonferroni_factor(model: RowModel, settings: AnomalySettings) -> int:
    """The number of tests a row's smallest p-value is multiplied by: one per column (its null,
    value, shape... are one test) and per pair, counting only features that can reach the
    false discovery rate at all."""
    level = settings.fdr if settings.contamination is None else 1.0
    return max(1, len({f.group for f in model.features if f.smallest_p() <= level}))


def _score_pass(partition: PartitionFile, model: RowModel, batch_size: int, d: int, cutoff: float) -> _Pass:
    """`cutoff`: the largest row p-value that can be flagged (the false discovery rate, or 1 with a
    contamination): strength and floods are only worked out for rows at or below it."""
    n = partition.num_rows
    row_p, strength, ties = np.ones(n), np.zeros(n), np.zeros(n, dtype=np.uint64)
    decades: dict[tuple[int, int], np.ndarray] = {}
    rarest: dict[int, list[np.ndarray]] = {}
    present: dict[int, int] = {}
    chances: dict[int, float] = {}
    # discrete events at most 1% of the history had (never, or almost never, seen before)
    smallest = np.array([cluster_p(f) for f in model.features])
    floors = np.where((smallest > 0) & (smallest <= RARE) & (smallest * d < 1), smallest * d * (1 + 1e-9), 0.0)
    samples, start = [], 0
    buffer = np.empty((min(batch_size, n), len(model.features)), dtype=np.float64, order="F")
    for batch in partition.iter_batches(batch_size=batch_size):
        stop = start + batch.num_rows
        if model.features:
            pairs: dict[int, tuple[np.ndarray, float]] = {}
            matrix = batch_p_matrix(model, batch, pairs, out=buffer)
            matrix *= d
            np.minimum(matrix, 1.0, out=matrix)
            lowest = matrix.min(axis=0)
            for j in np.flatnonzero((floors > 0) & (lowest <= floors)):
                feature = model.features[j]
                if feature.signal == "combination":
                    continue  # counted below, against each row's own chance
                # categories and shapes: rows never seen; a rare value seen more often than usual is drift
                at_floor = unseen(feature, batch) if feature.signal in VALUED else matrix[:, j] <= floors[j]
                rarest.setdefault(int(j), []).append(start + np.flatnonzero(at_floor))
            for j in np.flatnonzero(floors > 0):
                if model.features[j].signal in VALUED:  # only rows with a value can carry an unseen one
                    present[int(j)] = present.get(int(j), 0) + len(batch) - batch.column(
                        model.features[j].inputs[0]).null_count
            for j, (new, chance) in pairs.items():  # rows with a pair never seen, against the rate of new pairs
                chances[j] = chances.get(j, 0.0) + chance
                if new.any():
                    rarest.setdefault(j, []).append(start + np.flatnonzero(new))
            row_p[start:stop] = matrix.min(axis=1)
            candidates = np.flatnonzero(row_p[start:stop] <= max(cutoff, floors.max(initial=0.0)))
            rows = np.ascontiguousarray(matrix[candidates])  # row-major: the same sums, to the bit, as always
            strength[start + candidates] = -np.log10(np.clip(rows, TINY, 1.0)).sum(axis=1)
            ties[start + candidates] = tie_keys(batch)[candidates]
            for j in np.flatnonzero(lowest <= cutoff):
                low = matrix[:, j] <= cutoff
                signs = direction(model.features[j], batch)[low]
                bucket = np.minimum(BUCKETS - 1, np.floor(-np.log10(np.clip(matrix[low, j], TINY, 1.0)))).astype(int)
                for sign in np.unique(signs):
                    counts = np.bincount(bucket[signs == sign], minlength=BUCKETS)
                    key = (int(j), int(sign))
                    decades[key] = decades[key] + counts if key in decades else counts
        samples.append(batch.filter(batch.column("_sample")))
        start = stop
    return _Pass(row_p, strength, decades, pa.Table.from_batches(samples, schema=partition.schema),
                 {j: np.concatenate(rows) for j, rows in rarest.items()}, present, chances, ties)


def tie_keys(batch: pa.RecordBatch) -> np.ndarray:
    """A pseudo-random key per row from its place in the source (file and row number): rows with
    equal evidence are ranked by it, the same on every run (the export's row order is not, and
    the file's order is no ranking)."""
    with np.errstate(over="ignore"):
        key = batch.column("_row").to_numpy(zero_copy_only=False).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        if "_file" in batch.schema.names:
            files = batch.column("_file")
            names = pc.unique(files)
            codes = np.array([zlib.crc32(str(v).encode()) for v in names.to_pylist()], dtype=np.uint64)
            key ^= codes[pc.index_in(files, value_set=names).fill_null(0).to_numpy(zero_copy_only=False)] \
                * np.uint64(0xC2B2AE3D27D4EB4F)
    return key ^ (key >> np.uint64(29))


def poisson_tail(k: int, mean: float) -> float:
    """P(X >= k) for X ~ Poisson(mean), summed from k upwards in log space (no scipy to import
    for one number)."""
    if mean <= 0:
        return 0.0 if k > 0 else 1.0
    if k <= mean:  # the bulk: 1 - P(X < k)
        return max(0.0, 1.0 - sum(math.exp(i * math.log(mean) - mean - math.lgamma(i + 1)) for i in range(k)))
    total, i = 0.0, k
    while True:
        term = math.exp(i * math.log(mean) - mean - math.lgamma(i + 1))
        total += term
        if term < total * 1e-12 or i > k + 10_000:
            return min(1.0, total)
        i += 1


def cluster_p(feature: Feature) -> float:
    """The chance per row of the event clusters are counted on: a value never seen (categories and
    shapes), else the feature's smallest p-value."""
    return float(feature.model.p_unseen) if feature.signal in VALUED else feature.smallest_p()


def unseen(feature: Feature, batch: pa.RecordBatch) -> np.ndarray:
    """Rows whose category (or character shape) the reference never had."""
    column = batch.column(feature.inputs[0])
    if feature.signal == "shape":
        return shape_p_values(feature, column) <= feature.model.p_unseen * (1 + 1e-9)
    return feature.model.index(column) == -1


def clustered_rows(scored: _Pass, model: RowModel, d: int, settings: AnomalySettings) -> np.ndarray:
    """Rows sharing an event their feature has never (or most rarely) seen, when there are more of
    them than the history makes plausible: ten rows of an unseen category in a partition are
    strong evidence even when each alone is not (a Poisson tail on the count, Bonferroni across
    the features)."""
    return np.unique(np.concatenate([np.zeros(0, dtype=np.int64), *clusters(scored, model, d, settings).values()]))


def clusters(scored: _Pass, model: RowModel, d: int, settings: AnomalySettings) -> dict[int, np.ndarray]:
    """Feature -> the rows of its cluster, for each feature whose cluster is significant. The rate
    a cluster is judged against is the history's: from min_history partitions on (new companies
    come with September's group bookings, a month the first two did not show)."""
    n = scored.row_p.size
    out = {}
    if model.fitted_on == "history" and len(model.reference_partitions) < settings.min_history:
        return out
    for j, rows in scored.rarest.items():
        feature = model.features[j]
        if feature.signal == "duplicate" and feature.extra["duplicates"]:
            continue  # a code that repeats at all repeats more in a larger partition: no per-row rate
        expected = scored.chances[j] if j in scored.chances else scored.present.get(j, n) * cluster_p(feature)
        if rows.size >= 2 and d * poisson_tail(rows.size, expected) <= settings.fdr:
            out[j] = rows
    return out


def _refit(feature: Feature, sample: pa.Table) -> Feature | None:
    """The feature fitted on the partition's own sample (its new normal), or None to drop it."""
    if feature.signal not in REFITTABLE or feature.extra.get("constant"):
        return None  # never varied: no shape to judge its variation by
    column = sample.column(feature.inputs[0])
    if feature.signal in ("value", "date") and feature.extra.get("refit") == "moved":
        # moved to its level before scoring and still flooding: the history's shape does not fit
        # there, the partition's own spread is its new normal
        model = NumericTail.fit(numbers(column), allow_log=feature.model.log,
                                edge=PERIOD_EDGE if feature.signal == "date" else 1e-3)
    elif feature.signal in ("value", "date"):  # the history's shape around the partition's level
        model = feature.model.moved_to(numbers(column))
    elif feature.signal == "length":
        model = NumericTail.fit(numbers(pc.utf8_length(column)), allow_log=False)
    elif feature.signal == "shape":
        model = Categories.fit(shapes(column, feature.extra["coarse"]))
    elif feature.signal == "category":
        model = Categories.fit(column)
    else:
        nulls = pc.is_null(column, nan_is_null=True) if pa.types.is_floating(column.type) else pc.is_null(column)
        model = (int(pc.sum(nulls).as_py() or 0), len(column))
    if model is None:
        return None
    moved = feature.signal in ("value", "date") and feature.extra.get("refit") != "moved"
    return replace(feature, model=model, extra={**feature.extra, "refit": "moved" if moved else "partition",
                                                "history": feature.model})


def _floods(scored: _Pass, model: RowModel, settings: AnomalySettings) -> list[tuple[int, int, int]]:
    """(feature, direction, rows) of each reason that alone would flag a large share of the rows,
    one by one or as a cluster of a never-seen event. A column that held one value in all its
    reference floods from FLOOD_MIN_ROWS rows on: its first variation (a 0/1 flag set for the first
    time near Christmas) is the partition's change, not many odd rows."""
    n = scored.row_p.size
    threshold, _ = calibrated_threshold(scored.row_p, settings)
    counts = {(j, sign): scored.rows_flagged_by((j, sign), threshold) for j, sign in scored.decades}
    for j, rows in clusters(scored, model, bonferroni_factor(model, settings), settings).items():
        if model.features[j].signal in (*VALUED, "combination"):  # events without a direction
            counts[(j, 0)] = max(counts.get((j, 0), 0), rows.size)
    # a feature refitted after its own flood flags rows on their own merit (a sign flipped on 10%
    # of the rows still stands out against the moved shape)
    limits = [math.inf if f.extra.get("flooded") else FLOOD_MIN_ROWS if f.extra.get("constant")
              else max(FLOOD_MIN_ROWS, FLOOD_SHARE * n) for f in model.features]
    return sorted(((j, sign, c) for (j, sign), c in counts.items() if c > limits[j]), key=lambda f: (-f[2], f[0]))


def score_file(path: Path, model: RowModel, settings: AnomalySettings, batch_size: int = 100_000,
               max_rows: int = 1000) -> tuple[RowScores, pa.Table]:
    """Row p-values and the threshold; a reason that would flag a large share of the partition
    becomes one partition-level finding and its feature is refitted on the partition (rows are
    then flagged on their own merit); then the flagged rows' explanations and causes. Also
    returns the rows marked `_sample` (the drift sample)."""
    partition = PartitionFile(path)
    n = partition.num_rows
    cutoff = settings.fdr if settings.contamination is None else 1.0
    first = _score_pass(partition, model, batch_size, bonferroni_factor(model, settings), cutoff)
    model, levels = levelled(replace(model, rows_hint=n), first.sample, settings.min_history)
    if levels or any(f.extra.get("refit") == "moved" for f in model.features):  # scored again from the new levels
        first = _score_pass(partition, model, batch_size, bonferroni_factor(model, settings), cutoff)
    floods, scored = list(levels), first
    for _ in range(FLOOD_ROUNDS):  # a flood lifted can let another reason reach the threshold
        flooding = _floods(scored, model, settings)
        if not flooding:
            break
        features = list(model.features)
        for j, sign, count in flooding:
            floods.append(describe_flood(model.features[j], sign, count, n, first.sample))
        for j in sorted({j for j, _, _ in flooding}, reverse=True):
            refitted = _refit(model.features[j], first.sample)
            if refitted is None:
                del features[j]
            else:
                features[j] = replace(refitted, extra={**refitted.extra, "flooded": True})
        model = replace(model, features=features)
        scored = _score_pass(partition, model, batch_size, bonferroni_factor(model, settings), cutoff)
    d = bonferroni_factor(model, settings)
    threshold, method = calibrated_threshold(scored.row_p, settings)
    flagged_mask = scored.row_p <= threshold
    if settings.contamination is None:
        flagged_mask[clustered_rows(scored, model, d, settings)] = True
    flagged = int(flagged_mask.sum())
    if flagged == 0:
        return RowScores(n, 0, threshold, method, [], d, [], floods), first.sample
    # rank by p, then by strength; equal evidence in a pseudo-random order of the rows' source
    # positions: never file order, the same on every run
    candidates = np.flatnonzero(flagged_mask)
    order = candidates[np.lexsort((scored.ties[candidates], -scored.strength[candidates], scored.row_p[candidates]))]
    rank = np.zeros(n, dtype=np.int64)
    rank[order] = np.arange(1, flagged + 1)
    top, causes = explain_flagged(partition, model, batch_size, flagged_mask, rank, scored.row_p, max_rows)
    return RowScores(n, flagged, threshold, method, top, d, summarise_causes(causes, n), floods), first.sample


def explain_flagged(partition: PartitionFile, model: RowModel, batch_size: int, flagged: np.ndarray,
                    rank: np.ndarray, row_p: np.ndarray, max_rows: int) -> tuple[list[dict], CauseTally]:
    """Explanations of the best-ranked `max_rows` flagged rows, and every flagged row's cause."""
    top: list[dict] = []
    tally = CauseTally(model)
    start = 0
    for batch in partition.iter_batches(batch_size=batch_size):
        stop = start + batch.num_rows
        local = np.flatnonzero(flagged[start:stop])
        if local.size:
            sub = batch.take(pa.array(local))
            matrix = batch_p_matrix(model, sub)
            for i, row_index in enumerate(local):
                index = start + int(row_index)
                tally.add(sub, i, matrix[i], int(rank[index]))
                if rank[index] <= max_rows:
                    top.append(explain_row(model, sub, i, matrix[i], row_p[index], int(rank[index])))
        start = stop
    top.sort(key=lambda r: r["rank"])
    return top, tally


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
