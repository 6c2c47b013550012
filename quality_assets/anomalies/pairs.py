"""Pairs of strongly related columns, judged together: two numbers on their residual, two
categories on the frequency of the pair, a number within its category."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa

from quality_assets.anomalies.features import Categories, Feature, NumericTail

MAX_PAIR_CATEGORIES = 50
MAX_PAIR_CELLS = 2_500  # a pair of categories with more combinations than this is not searched
MIN_CRAMERS_V = 0.5  # a pair of categorical columns is judged together only when this dependent
MIN_SPEARMAN = 0.9  # a pair of numeric columns is judged on its residual only when this related
MIN_ETA_SQUARED = 0.5  # a number is judged within its category only when the category explains this much
MAX_PAIRS = 10
# Pairs are searched among the first this many numeric and categorical columns (in table order):
# all pairs of a 2,000-column table are millions of tests, and their arrays gigabytes.
MAX_PAIR_COLUMNS = 30
MIN_FORBIDDEN_EXPECTED = 10  # a pair never seen where independence expects this many is forbidden
MAD_SIGMA = 1.4826

def _ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.arange(values.size)
    return ranks


def reference_index(categorical: dict[str, tuple[Categories, pa.Array]], name: str,
                   indexes: dict[str, np.ndarray] | None) -> np.ndarray:
    """Categories.index of a categorical input's reference values, found once (`indexes`, shared
    by the pair searches) rather than for every pair it is tried in. Never written to."""
    if indexes is None:
        cats, values = categorical[name]
        return cats.index(values)
    if name not in indexes:
        cats, values = categorical[name]
        indexes[name] = cats.index(values)
    return indexes[name]


def strongest(candidates: list[tuple], names) -> list[tuple]:
    """The MAX_PAIRS candidates of greatest strength (each candidate's first item), the same
    whatever the sample's row order: a sum taken in another order moves a strength in its last
    bits, so strengths equal to 9 decimals rank by their columns' `names` instead."""
    return sorted(candidates, key=lambda c: (-round(c[0], 9), names(c)))[:MAX_PAIRS]


def numeric_pairs(inputs: dict[str, np.ndarray], features: dict[str, Feature],
                  categorical: dict[str, tuple[Categories, pa.Array]] | None = None,
                  category_features: dict[str, Feature] | None = None,
                  indexes: dict[str, np.ndarray] | None = None) -> list[Feature]:
    """Pairs of numbers judged on their residual; where a category explains most of the residual
    (each city's own price level in volume against sales), within that category (`indexes`: see
    reference_index)."""
    names = list(inputs)[:MAX_PAIR_COLUMNS]
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
    for _, rho, a, b in strongest(candidates, lambda c: c[2:]):
        both = np.isfinite(inputs[a]) & np.isfinite(inputs[b])
        x, y = inputs[a][both], inputs[b][both]
        slope, intercept = np.polyfit(x, y, 1)
        residual = np.full(both.size, np.nan)
        residual[both] = y - (slope * x + intercept)
        within = _within(residual, categorical or {}, category_features or {}, indexes)
        judged = residual[both] if within is None else within.pop("z")
        tail = NumericTail.fit(judged, allow_log=False)
        if tail is None:
            continue
        fa, fb = features[a], features[b]
        extra = {"slope": float(slope), "intercept": float(intercept), "rho": rho, "x": fa, "y": fb, **(within or {})}
        out.append(Feature(f"{fa.columns[0]}~{fb.columns[0]}", (fb.columns[0], fa.columns[0]), "pair",
                           (a, b, within["input"]) if within else (a, b), model=tail, extra=extra))
    return out


def _levels(groups: np.ndarray, ys: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Each category's centre and spread (median, MAD), with one more slot for a value the
    reference lacks (unseen or null); categories with fewer than 20 values keep the overall ones."""
    overall = float(np.median(ys))
    overall_scale = MAD_SIGMA * float(np.median(np.abs(ys - overall))) or float(ys.std()) or 1.0
    centre, scale = np.full(k + 1, overall), np.full(k + 1, overall_scale)
    for g in range(k):
        members = ys[groups == g]
        if members.size >= 20:
            centre[g] = np.median(members)
            scale[g] = MAD_SIGMA * float(np.median(np.abs(members - centre[g]))) or overall_scale
    return centre, scale


def _eta_squared(groups: np.ndarray, ys: np.ndarray, k: int) -> float:
    """The share of the variance of `ys` the categories explain."""
    sizes = np.bincount(groups, minlength=k)
    means = np.bincount(groups, weights=ys, minlength=k) / np.maximum(sizes, 1)
    return float(1 - ((ys - means[groups]) ** 2).sum() / ((ys - ys.mean()) ** 2).sum())


def _within(residual: np.ndarray, categorical: dict[str, tuple[Categories, pa.Array]],
            category_features: dict[str, Feature], indexes: dict[str, np.ndarray] | None = None) -> dict | None:
    """The category explaining most (at least MIN_ETA_SQUARED) of a pair's residual, with its
    levels and the residual standardised within it (`z`, over the rows where the residual is
    known); None when no category does."""
    known = np.isfinite(residual)
    best = None
    for name, (cats, _) in list(categorical.items())[:MAX_PAIR_COLUMNS]:
        index = reference_index(categorical, name, indexes)
        ok = known & (index >= 0)
        if ok.sum() < 100 or residual[ok].var() == 0 or name not in category_features:
            continue
        eta2 = _eta_squared(index[ok], residual[ok], cats.counts.size)
        if eta2 >= MIN_ETA_SQUARED and (best is None or eta2 > best[0]):
            best = (eta2, name, index)
    if best is None:
        return None
    eta2, name, index = best
    k = categorical[name][0].counts.size
    ok = known & (index >= 0)
    centre, scale = _levels(index[ok], residual[ok], k)
    groups = np.where(index[known] >= 0, index[known], k)
    return {"input": name, "given": category_features[name], "centre": centre, "scale": scale, "eta2": eta2,
            "z": (residual[known] - centre[groups]) / scale[groups]}


def pair_novelty(given: np.ndarray, pair: np.ndarray, partitions: np.ndarray) -> float:
    """How often the history brought a pair never seen before, among rows whose given value was
    already known (partitions in order, the first left out), with one pseudo-event: a column that
    follows from another (a species' genus) has a rate near zero, a loose pairing (species by plot)
    a higher one. `partitions`: each row's position in the history, -1 outside it."""
    inside = partitions >= 0
    given, pair, partitions = given[inside], pair[inside], partitions[inside]
    if partitions.size == 0:
        return 1.0
    first_given = np.full(given.max() + 1, np.iinfo(np.int64).max)
    np.minimum.at(first_given, given, partitions)
    first_pair = np.full(pair.max() + 1, np.iinfo(np.int64).max)
    np.minimum.at(first_pair, pair, partitions)
    judged = (partitions > partitions.min()) & (first_given[given] < partitions)
    return (int((judged & (first_pair[pair] == partitions)).sum()) + 1) / (int(judged.sum()) + 1)


DETERMINED = 0.9  # a many-valued column pairs only where it removes this share of the errors in guessing the other
DETERMINED_ROWS = 20  # ... judged on its values with this many rows, which must hold 90% of the rows


def _determines(table: np.ndarray) -> bool:
    """Whether the rows' column (many values: a neighbourhood) nearly determines the other's (its
    precinct): knowing its value removes DETERMINED of the errors in guessing the other's
    (Goodman and Kruskal's lambda), on its values with enough rows, which hold 90% of the rows.
    Companies that turn over, seen a few times each, with any kind of guest, do not."""
    sizes = table.sum(axis=1)
    known = table[sizes >= DETERMINED_ROWS]
    total = known.sum()
    if total < 0.9 * sizes.sum():
        return False
    commonest = known.sum(axis=0).max()
    return total > commonest and (known.max(axis=1).sum() - commonest) / (total - commonest) >= DETERMINED


def category_pairs(categorical: dict[str, tuple[Categories, pa.Array]], features: dict[str, Feature],
                   partitions: np.ndarray, indexes: dict[str, np.ndarray] | None = None) -> list[Feature]:
    """Pairs of categories that depend on each other, each judged as one category; `partitions`:
    each sample row's position in the history (for the rate of new pairs); `indexes`: see
    reference_index."""
    names = list(categorical)[:MAX_PAIR_COLUMNS]
    candidates = []
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ca, cb = categorical[a][0], categorical[b][0]
            ia, ib = reference_index(categorical, a, indexes), reference_index(categorical, b, indexes)
            ok = (ia >= 0) & (ib >= 0)
            ka, kb = ca.counts.size, cb.counts.size
            if ok.sum() < 50 or ka < 2 or kb < 2 or ka * kb > MAX_PAIR_CELLS:
                continue
            table = np.bincount(ia[ok] * kb + ib[ok], minlength=ka * kb).reshape(ka, kb).astype(np.float64)
            total = table.sum()
            expected = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / total
            chi2 = float(np.nansum((table - expected) ** 2 / np.where(expected > 0, expected, np.nan)))
            v = math.sqrt(chi2 / (total * (min(ka, kb) - 1)))
            # pairs that never occur where independence would expect many (a pizza in a size it
            # never comes in) make the pair worth judging even when the columns are loosely related
            forbidden = bool(((table == 0) & (expected >= MIN_FORBIDDEN_EXPECTED)).any())
            if max(ka, kb) > MAX_PAIR_CATEGORIES and not _determines(table if ka >= kb else table.T):
                continue
            if v >= MIN_CRAMERS_V or forbidden:
                # condition on the column with more categories: its value says more about the other
                given, other, counts = (a, b, table) if ka >= kb else (b, a, table.T)
                codes = (ia, ib, kb) if ka >= kb else (ib, ia, ka)
                candidates.append((v, given, other, counts, codes))
    out = []
    for v, given, other, counts, (ig, io, ko) in strongest(candidates, lambda c: c[1:3]):
        # the pair as one category: the mass of pairs at most as frequent; unseen: Good-Turing
        flat = counts.ravel()
        order = np.sort(flat)
        cumulative = np.cumsum(order)
        mass = cumulative[np.searchsorted(order, flat, side="right") - 1]
        total = flat.sum()
        p = ((mass + 1) / (total + 1)).reshape(counts.shape)
        # a pair never seen (a known value beside a partner it never had, known or not): as likely
        # as the history's own rate of new pairs, a surprise however rare the partner is
        ok = (ig >= 0) & (io >= 0)
        rate = pair_novelty(ig[ok], ig[ok] * ko + io[ok], partitions[ok])
        p[counts == 0] = rate
        fg, fo = features[given], features[other]
        out.append(Feature(f"{fg.columns[0]}|{fo.columns[0]}", (fo.columns[0], fg.columns[0]), "combination",
                           (given, other), model=p,
                           extra={"given": fg, "other": fo, "counts": counts, "cramers_v": v, "unseen": rate}))
    return out


def conditional_numbers(categorical: dict[str, tuple[Categories, pa.Array]], numeric: dict[str, np.ndarray],
                        numeric_features: dict[str, Feature], category_features: dict[str, Feature],
                        indexes: dict[str, np.ndarray] | None = None) -> list[Feature]:
    """A number judged within its category (a price typical of another product category), for
    pairs where the category explains at least half of the number's variance (`indexes`: see
    reference_index)."""
    candidates = []
    numbers = list(numeric.items())[:MAX_PAIR_COLUMNS]
    for a, (cats, _) in list(categorical.items())[:MAX_PAIR_COLUMNS]:
        index = reference_index(categorical, a, indexes)
        for y_name, y in numbers:
            ok = np.isfinite(y) & (index >= 0)
            if ok.sum() < 100 or y[ok].var() == 0:
                continue
            groups, ys = index[ok], y[ok]
            eta2 = _eta_squared(groups, ys, cats.counts.size)
            if eta2 >= MIN_ETA_SQUARED:
                candidates.append((eta2, a, y_name, groups, ys))
    out = []
    for eta2, a, y_name, groups, ys in strongest(candidates, lambda c: c[1:3]):
        k = categorical[a][0].counts.size  # every category the scorer can index, seen here or not
        centre, scale = _levels(groups, ys, k)
        tail = NumericTail.fit((ys - centre[groups]) / scale[groups], allow_log=False)
        if tail is None:
            continue
        fa, fy = category_features[a], numeric_features[y_name]
        out.append(Feature(f"{fy.columns[0]}|{fa.columns[0]}", (fy.columns[0], fa.columns[0]), "conditional",
                           (a, y_name), model=tail,
                           extra={"given": fa, "y": fy, "centre": centre, "scale": scale, "eta2": float(eta2)}))
    return out


def group_input(feature: Feature) -> str:
    """The category input of a number judged within its category, or of a pair judged within one."""
    return feature.inputs[2] if feature.signal == "pair" else feature.inputs[0]


GROUP_LEVEL_ROWS = 5  # rows of a category in the partition before its own level can be told


def recentred(feature: Feature, index: np.ndarray, z: np.ndarray) -> tuple[Feature, list[str]]:
    """A number within its category whose whole category moved in this partition (one city's
    listings that grew over the years): that category's centre moves to where its rows are, so
    they are judged against each other, not flagged together. Returns the feature and the
    categories that moved."""
    ok = np.isfinite(z) & (index >= 0)
    tail = feature.model
    centre, moved = feature.extra["centre"].copy(), []
    values = feature.extra["given"].model.values
    for g in np.unique(index[ok]):
        members = z[ok & (index == g)]
        if members.size < GROUP_LEVEL_ROWS:
            continue
        here = float(np.median(members))
        if tail.q1 <= here <= tail.q3:
            continue
        centre[g] += (here - tail.median) * feature.extra["scale"][g]
        moved.append(str(values[int(g)].as_py()))
    if not moved:
        return feature, []
    return Feature(feature.name, feature.columns, feature.signal, feature.inputs, feature.model,
                   {**feature.extra, "centre": centre, "moved_groups": moved}), moved
