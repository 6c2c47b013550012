"""The predictions a metric is judged against (anomalies/series.py): leave-one-out medians and a
leave-one-out Theil-Sen line, computed for every held-out value at once. They must be the very
numbers of their definition (one median per held-out value), or a metric's verdict would depend
on how it was computed."""

from __future__ import annotations

import numpy as np
import pytest

from quality_assets.anomalies import series


def _leave_one_out_by_definition(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    out = np.full(values.size, np.nan)
    for g in np.unique(groups):
        members = np.flatnonzero(groups == g)
        if members.size < 2:
            continue
        for i in members:
            out[i] = values[i] - np.median(values[members[members != i]])
    return out


def _trend_by_definition(values: np.ndarray) -> tuple[np.ndarray, float]:
    x = np.arange(values.size, dtype=np.float64)
    residual = np.empty(values.size)
    for k in range(values.size):
        others = np.arange(values.size) != k
        i, j = np.triu_indices(int(others.sum()), k=1)
        xo, yo = x[others], values[others]
        slope = float(np.median((yo[j] - yo[i]) / (xo[j] - xo[i])))
        residual[k] = values[k] - (float(np.median(yo - slope * xo)) + slope * x[k])
    slope, intercept = series.theil_sen(x, values)
    return residual, intercept + slope * values.size


def _series(rng: np.random.Generator, n: int, case: int) -> np.ndarray:
    values = rng.normal(size=n) * 10.0 ** rng.integers(-3, 6)
    if case % 3 == 0:
        values = np.round(values)  # ties, as counts and whole-number quantiles have
    if case % 5 == 0:
        values = values + np.arange(n) * rng.normal()  # a steady rise or fall
    return values


@pytest.mark.parametrize("max_cells", [series.MAX_CELLS, 37])  # 37: many small chunks
def test_leave_one_out_medians_and_lines_are_the_numbers_of_their_definition(monkeypatch, max_cells):
    monkeypatch.setattr(series, "MAX_CELLS", max_cells)
    rng = np.random.default_rng(20261207)
    for case in range(400):
        n = int(rng.integers(1, 36))
        values = _series(rng, n, case)
        groups = rng.integers(0, 7, n) if case % 2 else np.zeros(n, dtype=int)
        assert np.array_equal(series.leave_one_out(values, groups), _leave_one_out_by_definition(values, groups),
                              equal_nan=True), (case, values, groups)
        if n >= 3:  # a line needs a pair of points after one is held out
            residual, predicted = series.trend(values)
            expected_residual, expected_prediction = _trend_by_definition(values)
            assert np.array_equal(residual, expected_residual), (case, values)
            assert predicted == expected_prediction, (case, values)


def test_a_steady_rise_is_predicted_and_a_lone_value_has_no_leave_one_out_error():
    rising = 100.0 + 5.0 * np.arange(10)
    residual, predicted = series.trend(rising)
    assert predicted == pytest.approx(150.0)
    assert np.allclose(residual, 0.0)
    spiked = rising.copy()
    spiked[4] = 500.0  # one outlier neither tilts the line nor hides from its own prediction
    residual, predicted = series.trend(spiked)
    assert predicted == pytest.approx(150.0)
    assert residual[4] == pytest.approx(500.0 - 120.0)
    out = series.leave_one_out(np.array([1.0, 2.0, 9.0, 4.0]), np.array([0, 0, 1, 0]))
    assert np.isnan(out[2])  # alone in its group
    assert out.tolist()[:2] == [1.0 - 3.0, 2.0 - 2.5] and out[3] == 4.0 - 1.5
