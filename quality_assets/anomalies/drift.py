"""Distribution drift of each column against a robust reference: a pool of recent partitions that
raised no alarm on the column (or the previous partition, or a pinned one).

Numbers (dates as offsets from their partition's median date): two-sample Kolmogorov-Smirnov,
with the Wasserstein distance in units of the reference's spread and the population stability
index over the reference's deciles. Categories and the character shapes of text: chi-square on
the contingency table (categories expected fewer than 5 times pooled), with PSI and the
Jensen-Shannon distance. p-values are adjusted across columns with Benjamini-Hochberg, and a
column drifts only when the adjusted p-value is below the level AND the PSI reaches the minimum
effect, so that huge samples do not flag trivial shifts, AND the PSI is beyond what the pool's own
partitions reach: each pool partition's PSI against the rest of the pool (leave one out) gives a
log-normal upper prediction bound at the drift level, Bonferroni across the tested columns. A
column that differs this much between partitions that were fine (seasonal weather, storm seasons,
prices that trend) is not drifting when it differs by as much again. Samples are deterministic
(hash-based), so the same data always gives the same result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from quality_assets.contract.anomalies import AnomalySettings

MIN_SAMPLE = 20
PSI_BINS = 10
PSI_EPSILON = 1e-4  # empty bins: a small share instead of log(0)
MIN_LOG_SPREAD = 0.5  # the pool's log-PSI spread is never taken as smaller: five values can agree by chance


@dataclass
class DriftResult:
    column_name: str
    test: str | None
    statistic: float | None
    p_value: float | None
    adjusted_p: float | None
    psi: float | None
    effect_size: float | None
    effect_measure: str | None
    sample_size: int
    reference_size: int
    drifted: bool
    reason: str
    reference_spread: float | None = None  # largest PSI of a pool partition against the rest
    pool_psi: list[float] | None = None  # each pool partition's PSI against the rest
    reference: str | None = None  # the partitions compared with

    def as_row(self) -> dict:
        return dict(self.__dict__)


def psi(expected_share: np.ndarray, actual_share: np.ndarray) -> float:
    e = np.clip(expected_share, PSI_EPSILON, None)
    a = np.clip(actual_share, PSI_EPSILON, None)
    return float(np.sum((a - e) * np.log(a / e)))


def _numeric_psi(current: np.ndarray, reference: np.ndarray) -> float:
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, PSI_BINS + 1)[1:-1]))
    ref_share = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=edges.size + 1) / reference.size
    cur_share = np.bincount(np.searchsorted(edges, current, side="right"), minlength=edges.size + 1) / current.size
    return psi(ref_share, cur_share)


def _pool_spread(reference, groups: np.ndarray | None, distance, select=lambda values, mask: values[mask]
                 ) -> list[float] | None:
    """Each pool partition's distance from the rest of the pool (None: < 2 partitions with enough
    values)."""
    if groups is None:
        return None
    labels = [g for g in np.unique(groups) if (groups == g).sum() >= MIN_SAMPLE and (groups != g).sum() >= MIN_SAMPLE]
    if len(labels) < 2:
        return None
    return [distance(select(reference, groups == g), select(reference, groups != g)) for g in labels]


def ordinary_bound(pool: list[float], level: float) -> float:
    """The largest PSI a partition like the pool's reaches at `level`: a one-sided upper prediction
    bound for one more log-PSI from the pool's (Student t, k - 1 degrees of freedom)."""
    from scipy import stats  # lazy: scipy takes about a second to import

    logs = np.log(np.maximum(pool, PSI_EPSILON))
    k = logs.size
    spread = max(float(logs.std(ddof=1)), MIN_LOG_SPREAD)
    return float(np.exp(logs.mean() + stats.t.ppf(1 - level, k - 1) * spread * np.sqrt(1 + 1 / k)))


def numeric_drift(column: str, current: np.ndarray, reference: np.ndarray,
                  groups: np.ndarray | None = None) -> DriftResult:
    """`groups`: the pool partition of each reference value, to measure the pool's own spread."""
    from scipy import stats  # lazy: scipy takes about a second to import

    finite = np.isfinite(reference)
    current, reference = current[np.isfinite(current)], reference[finite]
    groups = groups[finite] if groups is not None else None
    if current.size < MIN_SAMPLE or reference.size < MIN_SAMPLE:
        return _too_small(column, current.size, reference.size)
    ks = stats.ks_2samp(current, reference, method="asymp")
    spread = float(np.subtract(*np.quantile(reference, [0.75, 0.25]))) or float(reference.std()) or 1.0
    distance = stats.wasserstein_distance(current, reference) / spread
    return DriftResult(column, "ks", float(ks.statistic), float(ks.pvalue), None, _numeric_psi(current, reference),
                       float(distance), "wasserstein/iqr", int(current.size), int(reference.size), False, "",
                       pool_psi=_pool_spread(reference, groups, _numeric_psi))


def _shares(current: pa.Array, reference: pa.Array) -> tuple[np.ndarray, list[str]]:
    ref_counts = {str(v): c for v, c in _counts(reference)}
    cur_counts = {str(v): c for v, c in _counts(current)}
    categories = sorted(set(ref_counts) | set(cur_counts))
    return np.array([[ref_counts.get(c, 0) for c in categories], [cur_counts.get(c, 0) for c in categories]],
                    dtype=np.float64), categories


def _categorical_psi(current: pa.Array, reference: pa.Array) -> float:
    table, _ = _shares(current, reference)
    return psi(table[0] / table[0].sum(), table[1] / table[1].sum())


def categorical_drift(column: str, current: pa.Array, reference: pa.Array, test: str = "chi2",
                      groups: np.ndarray | None = None) -> DriftResult:
    from scipy import stats  # lazy: scipy takes about a second to import
    from scipy.spatial.distance import jensenshannon

    if groups is not None:
        present = np.asarray(pc.is_valid(reference).to_numpy(zero_copy_only=False), dtype=bool)
        groups = groups[present]
    current, reference = pc.drop_null(current), pc.drop_null(reference)
    if len(current) < MIN_SAMPLE or len(reference) < MIN_SAMPLE:
        return _too_small(column, len(current), len(reference))
    table, _ = _shares(current, reference)
    ref_share, cur_share = table[0] / table[0].sum(), table[1] / table[1].sum()
    effect = float(jensenshannon(ref_share, cur_share, base=2))
    drift_psi = psi(ref_share, cur_share)
    between = _pool_spread(reference, groups, _categorical_psi, lambda values, mask: values.filter(pa.array(mask)))
    expected = table.sum(0) * table.sum(1, keepdims=True) / table.sum()
    small = expected.min(0) < 5
    if small.any():  # pool the rare categories so the chi-square approximation holds
        table = np.column_stack([table[:, ~small], table[:, small].sum(1)]) if (~small).any() else table[:, small].sum(1, keepdims=True)
    if table.shape[1] < 2:
        return DriftResult(column, test, 0.0, 1.0, None, drift_psi, effect, "jensen-shannon",
                           int(len(current)), int(len(reference)), False, "", pool_psi=between)
    chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
    return DriftResult(column, test, float(chi2), float(p), None, drift_psi, effect, "jensen-shannon",
                       int(len(current)), int(len(reference)), False, "", pool_psi=between)


def _counts(array: pa.Array) -> list[tuple]:
    counted = pc.value_counts(array)
    return list(zip(counted.field("values").to_pylist(), counted.field("counts").to_pylist(), strict=True))


def _too_small(column: str, n: int, m: int) -> DriftResult:
    return DriftResult(column, None, None, None, None, None, None, None, int(n), int(m), False,
                       f"not tested: {n} values here, {m} in the reference (at least {MIN_SAMPLE} each)")


def benjamini_hochberg(p_values: list[float]) -> list[float]:
    """Adjusted p-values (step-up, monotone), in the input order."""
    p = np.asarray(p_values, dtype=np.float64)
    n = p.size
    if n == 0:
        return []
    order = np.argsort(p, kind="stable")
    ranked = p[order] * n / np.arange(1, n + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
    out = np.empty(n)
    out[order] = adjusted
    return out.tolist()


def judge(results: list[DriftResult], settings: AnomalySettings) -> list[DriftResult]:
    """Adjust across the tested columns and decide which drifted."""
    tested = [r for r in results if r.p_value is not None]
    for result, adjusted in zip(tested, benjamini_hochberg([r.p_value for r in tested]), strict=True):
        result.adjusted_p = adjusted
        if result.pool_psi and len(result.pool_psi) >= 2:
            result.reference_spread = ordinary_bound(result.pool_psi, settings.drift_alpha / len(tested))
        significant = adjusted < settings.drift_alpha
        large = (result.psi or 0.0) >= settings.drift_min_psi
        ordinary = result.reference_spread is not None and (result.psi or 0.0) <= result.reference_spread
        result.drifted = bool(significant and large and not ordinary)
        pool = (f", beyond what the pool's own partitions reach (PSI {result.reference_spread:.3f})"
                if result.reference_spread is not None else "")
        if result.drifted:
            result.reason = (f"{result.test} adjusted p {adjusted:.3g} < {settings.drift_alpha:g} and PSI "
                             f"{result.psi:.3f} >= {settings.drift_min_psi:g}{pool} ({result.effect_measure} "
                             f"{result.effect_size:.3f})")
        elif significant and large:
            result.reason = (f"PSI {result.psi:.3f}, but the reference partitions differ from each other as much "
                             f"(PSI up to {result.reference_spread:.3f}): ordinary variation between partitions")
        elif significant:
            result.reason = (f"significant (adjusted p {adjusted:.3g}) but PSI {result.psi:.3f} < "
                             f"{settings.drift_min_psi:g}: too small a shift to matter")
        else:
            result.reason = f"no evidence of drift (adjusted p {adjusted:.3g})"
    return results
