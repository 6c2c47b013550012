"""Column profiles checked against independent references (pandas, numpy, scipy) on partitions
built in a real DuckDB warehouse, the history kept in qa.column_profiles, and a real
materialization of raw + profile with the metadata the UI shows.

Exact (floating point aside): counts, min/max/sum/mean, std, skewness, kurtosis (central moments
in a second pass), histograms, top values with their counts, duplicate rows, and quantiles, MAD and
correlations whenever the column has at most `exact_distinct_max` distinct values or the partition
fits in the sample. Approximate, from the deterministic uniform sample of n rows (the defaults
n = 100,000): quantiles within 4 / (2 sqrt(n)) in rank (0.6% at the default; the tests use smaller
samples and the matching bound), MAD within twice that rank error among the absolute deviations,
Pearson within 4 (1 - r^2) / sqrt(n); HyperLogLog distinct counts (DuckDB's approx_count_distinct)
within 10%.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import warnings
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from scipy import stats

from quality_assets.config import SettingsError, settings_from_env
from quality_assets.contract import load_contract
from quality_assets.defs.definitions import build_definitions
from quality_assets.defs.profile import build_profile_asset
from quality_assets.defs.raw import build_raw_asset, files_partitions
from quality_assets.defs.resources import OutputFolderResource, QualitySettings, WarehouseResource
from quality_assets.profile import (
    COLUMN_METRICS,
    ProfileOptions,
    TableProfile,
    metric_history,
    normality_test,
    profile_partition,
    read_profile,
    write_profile,
)
from quality_assets.warehouse import Warehouse

NOW = dt.datetime(2026, 6, 1)
QUANTILES = {"p1": 0.01, "p5": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95, "p99": 0.99}


def warehouse(tmp_path: Path) -> Warehouse:
    return Warehouse(tmp_path / "wh" / "w.duckdb", lock_timeout_s=30, memory_limit="512MB", threads=2)


def load_partition(wh: Warehouse, table: pa.Table, partition: str = "p1", dataset: str = "ds") -> None:
    """Append `table` as one partition of raw."<dataset>" with the load bookkeeping columns."""
    n = table.num_rows
    table = table.append_column("_partition_key", pa.array([partition] * n, pa.string()))
    table = table.append_column("_source_row", pa.array(range(1, n + 1), pa.int64()))
    table = table.append_column("_run_id", pa.array(["load"] * n, pa.string()))
    with wh.connect() as con:
        con.register("incoming", table)
        exists = con.execute("SELECT 1 FROM information_schema.tables WHERE table_schema = 'raw' AND table_name = ?",
                             [dataset]).fetchone()
        if exists:
            con.execute(f'INSERT INTO raw."{dataset}" SELECT * FROM incoming')
        else:
            con.execute(f'CREATE TABLE raw."{dataset}" AS SELECT * FROM incoming')


def profile_of(wh: Warehouse, partition: str = "p1", **options) -> TableProfile:
    with wh.connect() as con:
        return profile_partition(con, "ds", partition, options=ProfileOptions(now=NOW, **options))


def shape_of(value: str) -> str:
    shape = re.sub(r"[^\W\d_]+", lambda m: "".join("A" if c.isupper() else "a" for c in m.group()), value)
    shape = re.sub(r"A+", "A", re.sub(r"a+", "a", shape))
    return re.sub(r"\s+", " ", re.sub(r"[0-9]+", "9", shape))[:40]


@pytest.fixture(scope="module")
def mixed(tmp_path_factory) -> tuple[pd.DataFrame, TableProfile, Warehouse]:
    """5,000 rows with nulls, NaN, infinities, blanks, unicode, an all-null, a constant, a unique, a
    very long text and a high-cardinality column."""
    rng = np.random.default_rng(7)
    n = 5000
    amount = rng.normal(100, 15, n)
    amount_null = rng.random(n) < 0.1
    amount[rng.random(n) < 0.02] = np.nan
    amount[[3, 10]] = [np.inf, -np.inf]
    counts = rng.poisson(3, n)
    counts[rng.random(n) < 0.3] = 0
    city = rng.choice(["Lisbon", "Oslo", "Zürich", "東京", "", "  "], n, p=[0.4, 0.3, 0.1, 0.1, 0.05, 0.05])
    city_null = rng.random(n) < 0.05
    long_text = ["x" * (1000 + i % 50_000) if i % 500 == 0 else f"Note {i} ok" for i in range(n)]
    sku = [f"SKU-{i % 1200:05d}" for i in range(n)]
    start = dt.datetime(2020, 1, 1)
    when = [start + dt.timedelta(hours=int(h)) for h in rng.integers(0, 24 * 365 * 7, n)]
    when[5], when[6] = dt.datetime(1850, 1, 1), dt.datetime(2031, 1, 1)
    skewed = rng.lognormal(0, 1.5, n)
    table = pa.table({
        "id": pa.array(range(1, n + 1), pa.int64()),
        "amount": pa.array(amount, pa.float64(), mask=amount_null),
        "counts": pa.array(counts, pa.int64()),
        "city": pa.array(city, pa.string(), mask=city_null),
        "long_text": pa.array(long_text, pa.string()),
        "sku": pa.array(sku, pa.string()),
        "when": pa.array(when, pa.timestamp("us")),
        "nothing": pa.array([None] * n, pa.string()),
        "constant": pa.array([7] * n, pa.int64()),
        "skewed": pa.array(skewed, pa.float64()),
        "flag": pa.array(rng.random(n) < 0.02, pa.bool_()),
    })
    wh = warehouse(tmp_path_factory.mktemp("mixed"))
    load_partition(wh, table)
    frame = table.to_pandas()
    frame["amount"] = pd.Series(amount).where(~amount_null)
    frame.attrs["amount_nulls"] = int(amount_null.sum())
    frame.attrs["amount_nans"] = int((np.isnan(amount) & ~amount_null).sum())
    return frame, profile_of(wh), wh


def finite(series: pd.Series) -> pd.Series:
    values = series.dropna().astype(float)
    return values[np.isfinite(values)]


def test_numeric_statistics_match_pandas_and_numpy(mixed):
    frame, profile, _ = mixed
    n = len(frame)
    raw_amount = frame["amount"]
    amount = profile.column("amount").metrics
    truth = finite(raw_amount)
    # nulls are SQL NULLs; NaN and infinities are counted apart and left out of the moments
    assert amount["row_count"] == n
    assert amount["null_count"] == frame.attrs["amount_nulls"]
    assert amount["nan_count"] == frame.attrs["amount_nans"] > 0
    assert amount["inf_count"] == 2
    assert amount["min"] == pytest.approx(truth.min()) and amount["max"] == pytest.approx(truth.max())
    assert amount["mean"] == pytest.approx(truth.mean(), rel=1e-9)
    assert amount["std"] == pytest.approx(truth.std(), rel=1e-9)
    assert amount["sum"] == pytest.approx(truth.sum(), rel=1e-9)
    assert amount["skewness"] == pytest.approx(truth.skew(), rel=1e-6, abs=1e-9)
    assert amount["kurtosis"] == pytest.approx(truth.kurt(), rel=1e-6, abs=1e-9)
    ordered = np.sort(truth.to_numpy())
    for metric, q in QUANTILES.items():
        rank = np.searchsorted(ordered, amount[metric]) / len(ordered)
        assert abs(rank - q) <= 0.01, (metric, rank)
    assert amount["iqr"] == pytest.approx(amount["p75"] - amount["p25"])
    true_mad = np.median(np.abs(ordered - np.median(ordered)))
    assert abs(amount["mad"] - true_mad) <= 0.01 * (np.quantile(ordered, 0.75) - np.quantile(ordered, 0.25))

    counts = profile.column("counts")
    assert counts.metrics["zeros"] == int((frame["counts"] == 0).sum())
    assert counts.metrics["negatives"] == 0
    assert counts.metrics["distinct_count"] == frame["counts"].nunique()
    assert counts.details["distinct_method"] == "exact"
    assert {a["alert"] for a in counts.alerts} >= {"many_zeros"}

    histogram = profile.column("amount").details["histogram"]
    expected, _ = np.histogram(truth.to_numpy(), bins=np.array(histogram["edges"]))
    assert histogram["counts"] == expected.tolist() and sum(histogram["counts"]) == len(truth)
    skewed = profile.column("skewed")
    assert skewed.metrics["skewness"] == pytest.approx(frame["skewed"].skew(), rel=1e-6)
    assert "skewed" in {a["alert"] for a in skewed.alerts}


def test_nan_null_and_blank_counts(mixed):
    frame, profile, _ = mixed
    amount = profile.column("amount").metrics
    nan_mask = frame["amount"].isna()  # pandas' view: null or NaN
    assert amount["nan_count"] + amount["null_count"] == int(nan_mask.sum())
    assert amount["nan_count"] > 0 and amount["null_count"] > 0
    city = profile.column("city")
    values = frame["city"].dropna()
    assert city.metrics["null_count"] == int(frame["city"].isna().sum())
    assert city.metrics["null_share"] == pytest.approx(frame["city"].isna().mean())
    assert city.metrics["blank_count"] == int((values.str.strip() == "").sum())
    assert city.metrics["length_min"] == values.str.len().min()
    assert city.metrics["length_max"] == values.str.len().max()
    assert city.metrics["length_mean"] == pytest.approx(values.str.len().mean())
    long_text = profile.column("long_text").metrics
    assert long_text["length_max"] == frame["long_text"].str.len().max()


def test_top_values_and_shapes_match_pandas(mixed):
    frame, profile, _ = mixed
    city = profile.column("city")
    expected = frame["city"].dropna().value_counts()
    top = city.details["top_values"]
    assert [(t["value"], t["count"]) for t in top] == sorted(expected.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
    assert city.metrics["top_value_share"] == pytest.approx(expected.iloc[0] / expected.sum())
    assert city.metrics["distinct_count"] == frame["city"].nunique()
    shapes = frame["city"].dropna().map(shape_of).value_counts(normalize=True)
    got = {s["shape"]: s["share"] for s in city.details["shapes"]}
    assert got == pytest.approx(shapes.to_dict())
    sku = profile.column("sku")
    assert sku.details["shapes"] == [{"shape": "A-9", "share": 1.0}]


def test_semantic_types_alerts_and_dates(mixed):
    frame, profile, _ = mixed
    types = {c.name: c.semantic_type for c in profile.columns}
    assert types["id"] == "identifier" and types["amount"] == "float" and types["counts"] == "integer"
    assert types["city"] == "categorical" and types["when"] == "datetime" and types["flag"] == "boolean"
    alerts = {c.name: {a["alert"] for a in c.alerts} for c in profile.columns}
    assert alerts["nothing"] == {"high_null_share"}
    assert "constant" in alerts["constant"] and "unique" in alerts["id"]
    assert "imbalanced" in alerts["flag"] or "near_constant" in alerts["flag"]
    assert profile.column("nothing").metrics["null_share"] == 1.0
    assert profile.column("id").details["monotonicity"] == "strictly_increasing"
    assert profile.column("amount").details["monotonicity"] == "none"
    when = profile.column("when").metrics
    stamps = frame["when"]
    assert when["min"] == pytest.approx(stamps.min().timestamp()) and when["max"] == pytest.approx(stamps.max().timestamp())
    assert when["future_share"] == pytest.approx((stamps > NOW).mean())
    assert when["before_floor_share"] == pytest.approx((stamps < dt.datetime(1900, 1, 1)).mean())
    assert profile.metrics["max_null_share"] == 1.0
    assert profile.metrics["alert_count"] == len(profile.all_alerts()) > 0


def test_correlations_and_normality_match_pandas_and_scipy(mixed):
    frame, profile, _ = mixed
    numeric = frame[["amount", "counts", "skewed"]].replace([np.inf, -np.inf], np.nan)
    pearson = numeric.corr(method="pearson")
    spearman = numeric.corr(method="spearman")
    corr = profile.correlations
    assert corr["pearson"]["amount"]["skewed"] == pytest.approx(pearson.loc["amount", "skewed"], abs=1e-9)
    assert corr["pearson"]["amount"]["counts"] == pytest.approx(pearson.loc["amount", "counts"], abs=1e-9)
    # the sample holds every row here, so Spearman is the full-data value
    assert corr["spearman"]["counts"]["skewed"] == pytest.approx(spearman.loc["counts", "skewed"], abs=1e-9)
    assert "constant" not in corr["columns"]  # zero variance has no correlation
    normality = profile.column("amount").details["normality"]
    expected = stats.normaltest(finite(frame["amount"]).to_numpy())
    assert normality["test"] == "dagostino" and normality["sample"] == len(finite(frame["amount"]))
    assert normality["statistic"] == pytest.approx(expected.statistic, rel=1e-9)
    assert normality["p_value"] == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-300)


@pytest.mark.parametrize("n", [8, 12, 19, 20, 137, 5000])
@pytest.mark.parametrize("shape", ["normal", "exponential", "three_values", "heavy_tails_far_from_zero"])
def test_the_default_normality_test_is_scipys_normaltest_without_scipy(n, shape):
    """The D'Agostino-Pearson test is computed in numpy (scipy costs a second to import): the same
    statistic and p-value as scipy.stats.normaltest, small samples and far-from-zero values included."""
    rng = np.random.default_rng(n)
    values = {"normal": lambda: rng.normal(5, 2, n), "exponential": lambda: rng.exponential(1, n),
              "three_values": lambda: rng.integers(0, 3, n).astype(float),
              "heavy_tails_far_from_zero": lambda: rng.standard_t(2, n) * 1e6 + 1e9}[shape]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns that the kurtosis test wants n >= 20
        expected = stats.normaltest(values)
    result = normality_test(values, "dagostino")
    assert result["test"] == "dagostino" and result["sample"] == n
    assert result["statistic"] == pytest.approx(expected.statistic, rel=1e-9)
    assert result["p_value"] == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-300)


@pytest.mark.parametrize("test", ["shapiro", "anderson", "ks"])
def test_each_normality_test(tmp_path, test):
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.normal(0, 1, 600), rng.exponential(1, 400)])
    wh = warehouse(tmp_path)
    load_partition(wh, pa.table({"x": pa.array(values)}))
    result = profile_of(wh, gaussian_test=test).column("x").details["normality"]
    assert result["test"] == test and result["sample"] == 1000
    if test == "shapiro":
        expected = stats.shapiro(values)
        assert (result["statistic"], result["p_value"]) == pytest.approx((expected.statistic, expected.pvalue), rel=1e-6)
    elif test == "ks":
        standard = (values - values.mean()) / values.std(ddof=1)
        expected = stats.kstest(standard, "norm")
        assert (result["statistic"], result["p_value"]) == pytest.approx((expected.statistic, expected.pvalue), rel=1e-9)
    else:
        assert result["statistic"] == pytest.approx(stats.anderson(values, dist="norm").statistic, rel=1e-9)
        assert 0 <= result["p_value"] < 0.01  # clearly not normal
    with pytest.raises(ValueError, match="normality test"):
        profile_of(wh, gaussian_test="bogus")


def test_text_holding_numbers_dates_and_a_mix(tmp_path):
    n = 400
    table = pa.table({
        "num_text": pa.array([str(i * 3) for i in range(n)]),
        "float_text": pa.array([f"{i / 7:.3f}" for i in range(n)]),
        "date_text": pa.array([f"2024-01-{1 + i % 28:02d}" for i in range(n)]),
        "mixed": pa.array([str(i) if i % 10 else "n/a" for i in range(n)]),
        "words": pa.array([f"word {i % 97} and more words" for i in range(n)]),
        "dup": pa.array([i % 150 for i in range(n)], pa.int64()),
    })
    wh = warehouse(tmp_path)
    load_partition(wh, table)
    profile = profile_of(wh)
    semantic = {c.name: c.details["semantic_type"] for c in profile.columns}
    assert semantic["num_text"] | {} == {**semantic["num_text"], "type": "integer", "stored_as_text": True}
    assert semantic["float_text"]["type"] == "float" and semantic["float_text"]["stored_as_text"]
    assert semantic["date_text"]["type"] == "datetime" and semantic["date_text"]["stored_as_text"]
    assert semantic["mixed"]["mixed_types"] and not semantic["mixed"]["stored_as_text"]
    alerts = {c.name: {a["alert"] for a in c.alerts} for c in profile.columns}
    assert "numbers_stored_as_text" in alerts["num_text"] and "mixed_types" in alerts["mixed"]
    assert "datetime_stored_as_text" in alerts["date_text"]
    # no single column is unique ("dup" repeats), so duplicate rows are counted: none here
    expected_dups = int(table.to_pandas().duplicated().sum())
    assert profile.metrics["duplicate_rows"] == expected_dups


def test_duplicate_rows_counted_like_pandas(tmp_path):
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.integers(0, 5, 3000), "b": rng.choice(["x", "y", None], 3000),
                          "c": rng.integers(0, 3, 3000).astype(float)})
    wh = warehouse(tmp_path)
    load_partition(wh, pa.Table.from_pandas(frame, preserve_index=False))
    profile = profile_of(wh)
    assert profile.metrics["duplicate_rows"] == int(frame.duplicated().sum()) > 0
    assert "duplicates" in {a["alert"] for a in profile.alerts}


def test_high_cardinality_uses_hyperloglog_and_exact_top_counts(tmp_path):
    n = 60_000
    values = [f"user{i}" if i % 20 else "guest" for i in range(n)]  # 'guest' is 5% of the rows
    wh = warehouse(tmp_path)
    load_partition(wh, pa.table({"user": pa.array(values), "score": pa.array(np.arange(n) % 40_000, pa.float64())}))
    profile = profile_of(wh, exact_distinct_max=1000, sample_rows=5000)
    user = profile.column("user")
    truth = len(set(values))
    assert user.details["distinct_method"] == "hll"
    assert abs(user.metrics["distinct_count"] - truth) <= 0.10 * truth
    assert user.details["top_values"][0] == {"value": "guest", "count": n // 20}
    assert user.metrics["top_value_share"] == pytest.approx(0.05)
    assert {"high_cardinality"} <= {a["alert"] for a in user.alerts}
    assert user.details["shapes"][0]["shape"] == "a9"
    assert user.details["shapes"][0]["share"] == pytest.approx(0.95, abs=0.02)  # from the 5,000-row sample
    score = profile.column("score")
    assert score.details["distinct_method"] == "hll"
    assert score.details["top_values"][0]["count"] == 2  # values below 20,000 occur twice
    assert profile.correlations["spearman_sample"] == 5000


def test_sampled_statistics_within_their_tolerance(tmp_path):
    """Columns above the exact-distinct threshold in a partition larger than the sample: moments and
    histograms from the second scan (exact), quantiles, MAD and Pearson from the sample."""
    n, sample = 60_000, 10_000
    rng = np.random.default_rng(11)
    x = rng.lognormal(3, 0.7, n)
    y = 2 * x + rng.normal(0, 20, n)
    x[rng.random(n) < 0.01] = np.nan
    x[[5, 7]] = [np.inf, -np.inf]
    x_null = rng.random(n) < 0.05
    start = dt.datetime(2021, 1, 1)
    when = [start + dt.timedelta(seconds=int(s)) for s in rng.integers(0, 3 * 365 * 86400, n)]
    table = pa.table({"x": pa.array(x, pa.float64(), mask=x_null), "y": pa.array(y),
                      "when": pa.array(when, pa.timestamp("us")), "small": pa.array(rng.integers(0, 4, n))})
    wh = warehouse(tmp_path)
    load_partition(wh, table)
    profile = profile_of(wh, exact_distinct_max=1000, sample_rows=sample)
    col = profile.column("x")
    assert col.details["distinct_method"] == "hll" and profile.correlations["pearson_sample"] == pytest.approx(sample, rel=0.05)
    truth = pd.Series(x[~x_null & np.isfinite(x)])
    nans = int(np.isnan(x[~x_null]).sum())
    assert col.details["top_values"][0] == {"value": "nan", "count": nans}  # counted over every row
    m = col.metrics
    assert (m["nan_count"], m["inf_count"], m["null_count"]) == (nans, 2, int(x_null.sum()))
    assert m["mean"] == pytest.approx(truth.mean(), rel=1e-9) and m["std"] == pytest.approx(truth.std(), rel=1e-9)
    assert m["skewness"] == pytest.approx(truth.skew(), rel=1e-6) and m["kurtosis"] == pytest.approx(truth.kurt(), rel=1e-6)
    expected, _ = np.histogram(truth.to_numpy(), bins=np.array(col.details["histogram"]["edges"]))
    assert col.details["histogram"]["counts"] == expected.tolist()
    ordered = np.sort(truth.to_numpy())
    rank_error = 4 / (2 * math.sqrt(sample))
    for metric, q in QUANTILES.items():
        assert abs(np.searchsorted(ordered, m[metric]) / len(ordered) - q) <= rank_error, metric
    deviations = np.sort(np.abs(ordered - np.median(ordered)))
    assert abs(np.searchsorted(deviations, m["mad"]) / len(deviations) - 0.5) <= 2 * rank_error
    finite_x = np.where(x_null | ~np.isfinite(x), np.nan, x)
    r = pd.DataFrame({"x": finite_x, "y": y}).corr().loc["x", "y"]
    assert abs(profile.correlations["pearson"]["x"]["y"] - r) <= 4 * (1 - r * r) / math.sqrt(sample)
    stamps = pd.Series(when)
    when_hist = profile.column("when").details["histogram"]
    expected, _ = np.histogram(stamps.astype("int64").to_numpy() / 1e6, bins=np.array(when_hist["edges"]))
    assert when_hist["counts"] == expected.tolist()
    small = profile.column("small")
    assert small.details["distinct_method"] == "exact" and small.metrics["p50"] == np.median(table["small"].to_numpy())


def test_hyperloglog_columns_of_a_partition_inside_the_sample_are_exact(mixed):
    """With every column past the exact-distinct threshold but every row in the sample, the sample path
    gives what the group-by path gives."""
    _, exact, wh = mixed
    sampled = profile_of(wh, exact_distinct_max=3)
    for name in ("amount", "skewed", "id", "when", "city", "long_text"):
        a, b = exact.column(name), sampled.column(name)
        assert b.details["distinct_method"] == "hll" or b.metrics["distinct_count"] <= 3
        for metric, value in a.metrics.items():
            if metric not in ("distinct_count", "uniqueness"):
                assert b.metrics[metric] == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True), (name, metric)
        assert b.details.get("histogram") == a.details.get("histogram"), name
        assert b.details["top_values"] == a.details["top_values"], name
        assert b.details.get("shapes") == a.details.get("shapes"), name
    assert sampled.correlations["pearson"] == exact.correlations["pearson"]
    assert sampled.metrics["duplicate_rows"] == exact.metrics["duplicate_rows"] == 0


def test_monotonicity_follows_record_numbers_not_storage_order(tmp_path):
    n = 3000
    wh = warehouse(tmp_path)
    load_partition(wh, pa.table({"up": pa.array(np.arange(n) * 2.0), "down": pa.array(np.arange(n)[::-1] // 2),
                                 "wobble": pa.array(np.arange(n) % 7, pa.int64())}))
    in_order = profile_of(wh)
    with wh.connect() as con:  # the same rows stored shuffled: the lag must follow _source_row
        con.execute('CREATE OR REPLACE TABLE raw."ds" AS SELECT * FROM raw."ds" ORDER BY hash(_source_row)')
    shuffled = profile_of(wh)
    for profile in (in_order, shuffled):
        found = {c.name: c.details["monotonicity"] for c in profile.columns}
        assert found == {"up": "strictly_increasing", "down": "decreasing", "wobble": "none"}


def test_monotonicity_skips_nulls(tmp_path):
    """Nulls between values do not break an order (each such column is checked over its non-null
    rows), in storage order and shuffled."""
    n = 3000
    up = [None if i % 10 == 3 else i * 1.5 for i in range(n)]
    down = [None if i % 7 == 0 else n - i // 3 for i in range(n)]
    broken = [None if i % 5 == 0 else float(i) for i in range(n)]
    broken[n // 2 + 1] = 2.0  # out of order, though the first and last values are still the extremes
    wh = warehouse(tmp_path)
    load_partition(wh, pa.table({"up": pa.array(up), "down": pa.array(down, pa.int64()), "broken": pa.array(broken),
                                 "full": pa.array(np.arange(n), pa.int64())}))
    in_order = profile_of(wh)
    with wh.connect() as con:
        con.execute('CREATE OR REPLACE TABLE raw."ds" AS SELECT * FROM raw."ds" ORDER BY hash(_source_row)')
    shuffled = profile_of(wh)
    for profile in (in_order, shuffled):
        found = {c.name: c.details["monotonicity"] for c in profile.columns}
        assert found == {"up": "strictly_increasing", "down": "decreasing", "broken": "none",
                         "full": "strictly_increasing"}


def test_one_row_empty_partition_and_missing_table(tmp_path):
    wh = warehouse(tmp_path)
    with wh.connect() as con:  # no raw table at all (nothing loaded yet)
        empty = profile_partition(con, "ds", "p1")
    assert empty.metrics["row_count"] == 0 and empty.columns == []
    load_partition(wh, pa.table({"x": pa.array([2.5]), "s": pa.array(["ü"]), "n": pa.array([None], pa.int64())}))
    one = profile_of(wh)
    x = one.column("x").metrics
    assert (x["row_count"], x["min"], x["max"], x["mean"], x["std"]) == (1, 2.5, 2.5, 2.5, None)
    assert one.column("s").metrics["length_max"] == 1
    assert one.metrics["duplicate_rows"] == 0
    nothing = profile_of(wh, partition="other")
    assert nothing.metrics["row_count"] == 0 and all(c.metrics["null_share"] is None for c in nothing.columns)


def test_wide_table_of_500_columns_round_trips(tmp_path):
    rng = np.random.default_rng(5)
    n = 300
    data = {f"c{i:03d}": pa.array(rng.normal(i, 1, n)) if i % 2 else pa.array([f"v{j % (i + 1)}" for j in range(n)])
            for i in range(500)}
    wh = warehouse(tmp_path)
    load_partition(wh, pa.table(data))
    profile = profile_of(wh)
    assert profile.metrics["column_count"] == 500 and len(profile.columns) == 500
    assert profile.column("c101").metrics["mean"] == pytest.approx(np.asarray(data["c101"]).mean())
    assert profile.column("c100").metrics["distinct_count"] == 101
    assert profile.correlations["capped"] and len(profile.correlations["columns"]) == 20
    with wh.connect() as con:
        write_profile(con, "ds", "p1", "run-1", profile)
        stored = read_profile(con, "ds", "p1")
    assert stored["run_id"] == "run-1" and len(stored["columns"]) == 500
    assert stored["columns"][101]["metrics"]["mean"] == pytest.approx(profile.column("c101").metrics["mean"])


def test_history_keeps_every_run(mixed, tmp_path):
    _, profile, _ = mixed
    wh = warehouse(tmp_path)
    with wh.connect() as con:
        write_profile(con, "ds", "2026-01-01", "run-a", profile, profiled_at=dt.datetime(2026, 1, 1, 1))
        write_profile(con, "ds", "2026-01-02", "run-b", profile, profiled_at=dt.datetime(2026, 1, 2, 1))
        second = TableProfile("ds", "2026-01-01", metrics={**profile.metrics, "row_count": 42},
                              columns=profile.columns, correlations=profile.correlations)
        write_profile(con, "ds", "2026-01-01", "run-c", second, profiled_at=dt.datetime(2026, 1, 3, 1))
        runs = con.execute("SELECT DISTINCT run_id FROM qa.column_profiles ORDER BY 1").fetchall()
        history = metric_history(con, "ds", "row_count")
        mean_history = metric_history(con, "ds", "mean", column_name="amount", exclude_partition="2026-01-02")
        latest = read_profile(con, "ds", "2026-01-01")
        first = read_profile(con, "ds", "2026-01-01", run_id="run-a")
        rows_per_run = con.execute(
            "SELECT count(*) FROM qa.column_profiles WHERE run_id = 'run-a' AND column_name = 'amount' AND detail IS NULL"
        ).fetchone()[0]
    assert runs == [("run-a",), ("run-b",), ("run-c",)]
    assert [(p, r, v) for p, r, _, v in history] == [("2026-01-02", "run-b", 5000), ("2026-01-01", "run-c", 42)]
    assert [(p, r) for p, r, _, _ in mean_history] == [("2026-01-01", "run-c")]
    assert latest["metrics"]["row_count"] == 42 and first["metrics"]["row_count"] == 5000
    assert rows_per_run == len(COLUMN_METRICS)
    assert latest["columns"][1]["histogram"] == profile.column("amount").details["histogram"]
    assert first == {**read_profile_dict(profile), "partition_key": "2026-01-01", "run_id": "run-a",
                     "profiled_at": dt.datetime(2026, 1, 1, 1)}


def read_profile_dict(profile: TableProfile) -> dict:
    """to_dict() as it reads back from JSON and DOUBLE columns (tuples become lists, ints floats)."""
    import json

    data = json.loads(json.dumps(profile.to_dict(), default=str))
    for section in [data["metrics"]] + [c["metrics"] for c in data["columns"]]:
        for key, value in section.items():
            section[key] = None if value is None else float(value)
    return data


def test_settings_for_the_profile():
    settings = settings_from_env({"QA_TOP_VALUES": "3", "QA_GAUSSIAN_TEST": "Shapiro"})
    assert (settings.top_values, settings.gaussian_test) == (3, "shapiro")
    assert settings_from_env({}).gaussian_test == "dagostino"
    with pytest.raises(SettingsError, match="QA_GAUSSIAN_TEST"):
        settings_from_env({"QA_GAUSSIAN_TEST": "normal-ish"})


CONTRACT = """\
datasets:
  orders:
    landing: {path: landing/orders, glob: "*.csv"}
    columns: {order_id: bigint, amount: double, currency: string, note: string}
"""


def test_materialize_raw_and_profile_twice_keeps_history(tmp_path, monkeypatch):
    (tmp_path / "quality.yaml").write_text(CONTRACT)
    landing = tmp_path / "landing" / "orders"
    landing.mkdir(parents=True)
    lines = ["order_id,amount,currency,note"] + [
        f"{i},{i % 17 if i % 9 else ''},{'EUR' if i % 4 else 'USD'},{'<b>' if i % 50 == 0 else 'ok'}" for i in range(1, 301)
    ] + ["300,16,EUR,ok"]
    (landing / "a.csv").write_text("\n".join(lines) + "\n")
    monkeypatch.setenv("QA_TOP_VALUES", "3")
    settings = settings_from_env({"QA_CONTRACTS": str(tmp_path / "quality.yaml"),
                                  "QA_DUCKDB_PATH": str(tmp_path / "wh.duckdb")})
    contract = load_contract(settings.contracts)
    dataset = contract.dataset("orders")
    partitions = files_partitions(dataset)
    assert dg.AssetKey(["orders", "profile"]) in {
        key for a in build_definitions(contract, settings).assets for key in a.keys}
    resources = {"warehouse": WarehouseResource(path=str(settings.duckdb_path)),
                 "output_folder": OutputFolderResource(path=str(settings.output_dir)),
                 "quality_settings": QualitySettings()}
    assets = [build_raw_asset(dataset, partitions), build_profile_asset(dataset, partitions)]
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("orders_files", ["a.csv"])
        results = [dg.materialize(assets, partition_key="a.csv", instance=instance, resources=resources)
                   for _ in range(2)]
        event = instance.get_latest_materialization_event(dg.AssetKey(["orders", "profile"]))
    assert all(r.success for r in results)
    metadata = event.asset_materialization.metadata
    assert metadata["dagster/row_count"].value == 301
    assert metadata["duplicate_rows"].value == 0  # order_id 300 repeats with other values
    assert metadata["max_null_share"].value == pytest.approx(33 / 301)
    assert metadata["alert_count"].value >= 1
    schema = {c.name: c.type for c in metadata["dagster/column_schema"].schema.columns}
    assert schema == {"order_id": "integer", "amount": "float", "currency": "categorical", "note": "categorical"}
    markdown = metadata["columns"].value
    assert "| order\\_id | integer | 0\\.0% | 300 | 1 | 300 | 150\\.997 | 300 \\(0\\.7%\\) |" in markdown, markdown
    with Warehouse(settings.duckdb_path).connect() as con:
        runs = con.execute("SELECT DISTINCT run_id FROM qa.column_profiles WHERE dataset = 'orders'").fetchall()
        stored = read_profile(con, "orders", "a.csv")
    assert {r for (r,) in runs} == {r.run_id for r in results}
    assert stored["run_id"] == results[1].run_id
    currency = next(c for c in stored["columns"] if c["name"] == "currency")
    assert currency["top_values"][0] == {"value": "EUR", "count": 226}
    assert len(next(c for c in stored["columns"] if c["name"] == "order_id")["top_values"]) == 3  # QA_TOP_VALUES
    assert math.isclose(currency["metrics"]["top_value_share"], 226 / 301)


def test_a_runs_quality_settings_override_the_environment(tmp_path, monkeypatch):
    (tmp_path / "quality.yaml").write_text(CONTRACT)
    landing = tmp_path / "landing" / "orders"
    landing.mkdir(parents=True)
    (landing / "a.csv").write_text("order_id,amount,currency,note\n" + "".join(f"{i},{i},EUR,ok\n" for i in range(1, 51)))
    monkeypatch.setenv("QA_TOP_VALUES", "3")
    settings = settings_from_env({"QA_CONTRACTS": str(tmp_path / "quality.yaml"),
                                  "QA_DUCKDB_PATH": str(tmp_path / "wh.duckdb")})
    dataset = load_contract(settings.contracts).dataset("orders")
    partitions = files_partitions(dataset)
    assets = [build_raw_asset(dataset, partitions), build_profile_asset(dataset, partitions)]
    kept = {}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("orders_files", ["a.csv"])
        for override in (None, 5):
            resources = {"warehouse": WarehouseResource(path=str(settings.duckdb_path)),
                         "output_folder": OutputFolderResource(path=str(settings.output_dir)),
                         "quality_settings": QualitySettings(top_values=override)}
            assert dg.materialize(assets, partition_key="a.csv", instance=instance, resources=resources).success
            with Warehouse(settings.duckdb_path).connect() as con:
                order_id = next(c for c in read_profile(con, "orders", "a.csv")["columns"] if c["name"] == "order_id")
            kept[override] = len(order_id["top_values"])
    assert kept == {None: 3, 5: 5}  # unset: QA_TOP_VALUES; set: the run's own
