"""The row detector's fast paths give, to the bit, what the plain computations they replace give."""

from __future__ import annotations

import numpy as np
import pytest

from quality_assets.anomalies.features import NumericTail, sorted_quantiles
from quality_assets.anomalies.grid import GridCounts


def _grids():
    rng = np.random.default_rng(17)
    normal = np.sort(rng.normal(0, 1, 200_000))
    yield "normal quantile grid", sorted_quantiles(normal, (np.arange(4096) + 0.5) / 4096)
    yield "uniform", np.sort(rng.random(3000))
    yield "whole numbers", np.sort(rng.integers(-100, 100, 4096).astype(float))
    yield "few values", np.sort(rng.integers(0, 12, 4096).astype(float))
    yield "heavy tail", np.sort(np.concatenate([rng.random(4000), [1e6, 1e12]]))
    yield "log-normal", np.sort(np.log(rng.lognormal(3, 1.5, 5000)))
    yield "piles", np.sort(np.concatenate([np.full(2000, 5.0), rng.random(2000) * 10, np.full(96, 10.0)]))
    yield "one value", np.full(4096, 3.25)
    yield "tiny spread", np.sort(1.0 + np.arange(500) * np.finfo(float).eps)
    yield "huge spread", np.sort(np.concatenate([[-1e308, 1e308], rng.normal(0, 1, 300)]))


@pytest.mark.parametrize("name,grid", list(_grids()), ids=[name for name, _ in _grids()])
def test_grid_counts_equal_binary_search_on_the_grid(name, grid):
    rng = np.random.default_rng(5)
    lo, hi = grid[0], grid[-1]
    with np.errstate(over="ignore"):
        span = (hi - lo) if np.isfinite(hi - lo) and hi > lo else 1.0
    t = np.concatenate([
        grid,  # every grid value exactly: ties
        np.nextafter(grid, np.inf), np.nextafter(grid, -np.inf),  # one step either side
        lo + span * rng.random(20_000), lo - span * rng.random(100), hi + span * rng.random(100),
        [-1e308, 1e308, 0.0, -0.0, np.finfo(float).tiny],
    ])
    t = t[np.isfinite(t)]
    at_or_below, below = GridCounts(grid).counts(t)
    assert np.array_equal(at_or_below, np.searchsorted(grid, t, side="right"))
    assert np.array_equal(below, np.searchsorted(grid, t, side="left"))


def test_the_buckets_are_used_on_an_evenly_spread_grid_and_not_on_a_heavy_tail():
    grids = dict(_grids())
    assert GridCounts(grids["normal quantile grid"]).first is not None
    assert GridCounts(grids["heavy tail"]).first is None  # all but two values in the first bucket
    assert GridCounts(grids["few values"]).first is None  # a dozen values: a binary search is short


def test_numeric_tail_p_values_are_the_binary_search_ones():
    """The tail's p-values against the formula they replaced (two binary searches on the grid)."""
    rng = np.random.default_rng(11)
    for values in (rng.normal(50, 10, 200_000), rng.integers(0, 30, 200_000).astype(float),
                   rng.lognormal(2, 1, 100_000)):
        tail = NumericTail.fit(values)
        x = np.concatenate([values[:5000], rng.normal(50, 40, 5000), [np.nan, np.inf, -np.inf, 0.0, -5.0]])
        grid, n = tail.sorted_values, tail.n
        with np.errstate(invalid="ignore", divide="ignore"):
            t = np.log(x) if tail.log else x
            ok = np.isfinite(x) & np.isfinite(t)
        t = t[ok]
        left = (np.searchsorted(grid, t, side="right") * (n / grid.size) + 1) / (n + 1)
        right = ((grid.size - np.searchsorted(grid, t, side="left")) * (n / grid.size) + 1) / (n + 1)
        low, high = t < tail.q_lo, t > tail.q_hi
        left[low] = tail.share_lo * np.exp(-(tail.q_lo - t[low]) / tail.beta_lo)
        right[high] = tail.share_hi * np.exp(-(t[high] - tail.q_hi) / tail.beta_hi)
        expected = np.clip(2 * np.minimum(left, right), 1e-300, 1.0)
        assert np.array_equal(tail.p_values(x)[ok], expected)


def _regex_shapes(values, coarse: bool):
    import pyarrow.compute as pc

    from quality_assets.shapes import COARSE, LETTERS
    out = values
    for pattern, replacement in LETTERS + (COARSE if coarse else ()):
        out = pc.replace_substring_regex(out, pattern, replacement)
    return out.to_pylist()


@pytest.mark.parametrize("coarse", [False, True])
def test_ascii_shapes_equal_the_regex_definition(coarse):
    """The byte-mapped shapes (and runs collapsed in NumPy) against the regexes that define them,
    on random ASCII text with every kind of whitespace, nulls, empty values and sliced arrays."""
    import pyarrow as pa

    from quality_assets.shapes import shapes
    rng = np.random.default_rng(23)
    alphabet = list("AZaz09Qq5 \t\n\x0b\f\r-_.@/'\"%") + [chr(c) for c in range(32, 127, 7)]
    values = ["".join(rng.choice(alphabet, rng.integers(0, 12))) for _ in range(3000)]
    values += ["", "  ", "AAAaaa999", "a\t \nb", "SKU-00042", None, "x" * 500]
    array = pa.array([None if i % 97 == 5 else v for i, v in enumerate(values)], pa.string())
    for part in (array, array.slice(7), array.slice(100, 900), pa.chunked_array([array.slice(0, 50), array.slice(50)])):
        expected = _regex_shapes(part.combine_chunks() if isinstance(part, pa.ChunkedArray) else part, coarse)
        assert shapes(part, coarse).to_pylist() == expected


@pytest.mark.parametrize("coarse", [False, True])
def test_a_categorys_shapes_from_its_distinct_values_are_the_rows_shapes(coarse):
    import pyarrow as pa

    from quality_assets.anomalies.model import _each_distinct_shaped
    from quality_assets.shapes import shapes
    rng = np.random.default_rng(29)
    labels = ["EU", "us", "Apac 1", "x-9  y", "Zürich", ""]
    values = [None if i % 13 == 0 else str(rng.choice(labels)) for i in range(5000)]
    column = pa.chunked_array([pa.array(values[:1700]), pa.array(values[1700:])])
    assert _each_distinct_shaped(column, coarse).equals(shapes(column, coarse))


def test_numeric_tail_fit_takes_numpys_quantiles_of_the_sorted_values():
    rng = np.random.default_rng(31)
    for values in (rng.normal(3, 2, 150_000), rng.integers(0, 9, 30_000).astype(float), rng.random(40),
                   np.round(rng.exponential(5, 20_000), 1)):
        tail = NumericTail.fit(values, allow_log=False)
        ordered = np.sort(values)
        u = min(0.1, max(0.01, 20 / values.size))
        assert [tail.q_lo, tail.q_hi] == list(np.quantile(ordered, [u, 1 - u]))
        assert [tail.q1, tail.median, tail.q3] == list(np.quantile(ordered, [0.25, 0.5, 0.75]))
        assert tail.raw_min == ordered[0] and tail.raw_max == ordered[-1]


def test_pair_p_values_from_the_padded_table_are_the_masked_ones():
    """A combination's p-values and new pairs, against the masked formula they replaced, on rows
    with every kind of index: known, a value the reference lacks (-1) and null (-2), either side."""
    import pyarrow as pa

    from quality_assets.anomalies.features import Categories, Feature
    from quality_assets.anomalies.pvalues import pair_p_values
    rng = np.random.default_rng(37)
    given_values, other_values = ["a", "b", "c", "d"], ["x", "y", "z"]
    given = Feature("g", ("g",), "category", ("v0",), model=Categories.fit(pa.array(given_values * 5)))
    other = Feature("o", ("o",), "category", ("v1",), model=Categories.fit(pa.array(other_values * 5)))
    counts = rng.integers(0, 3, (4, 3))
    model = rng.random((4, 3))
    feature = Feature("g|o", ("g", "o"), "combination", ("v0", "v1"), model=model,
                      extra={"given": given, "other": other, "counts": counts, "unseen": 0.0123})

    def pick(values: list[str], n: int) -> list[str | None]:  # a tenth null, a tenth new, the rest known
        return [None if r < 0.1 else "new" if r < 0.2 else values[int(r * 100) % len(values)] for r in rng.random(n)]
    batch = pa.record_batch({"v0": pa.array(pick(given_values, 4000)), "v1": pa.array(pick(other_values, 4000))})
    p, new, chance = pair_p_values(feature, batch)

    ig, io = given.model.index(batch.column("v0")), other.model.index(batch.column("v1"))
    known = ig >= 0
    expected_p = np.ones(ig.size)
    seen = known & (io >= 0)
    expected_p[seen] = model[ig[seen], io[seen]]
    expected_new = known & (io == -1)
    expected_new[seen] = counts[ig[seen], io[seen]] == 0
    expected_p[expected_new] = 0.0123
    assert {-2, -1} <= set(ig) and {-2, -1} <= set(io)
    assert np.array_equal(p, expected_p) and np.array_equal(new, expected_new)
    assert chance == 0.0123 * known.sum()
