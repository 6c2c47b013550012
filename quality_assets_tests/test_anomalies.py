"""The anomaly stage: row scores with explanations, metric anomalies, drift, the contract block and
a real Dagster materialization of raw -> profile -> anomalies."""

from __future__ import annotations

import datetime as dt
import json
import math
import textwrap
from pathlib import Path

import dagster as dg
import numpy as np
import pyarrow as pa
import pytest

from quality_assets.anomalies import read_anomalies
from quality_assets.anomalies.drift import (
    benjamini_hochberg,
    categorical_drift,
    judge,
    numeric_drift,
)
from quality_assets.anomalies.metric_anomalies import evaluate_series, holm, judge_family
from quality_assets.anomalies.stage import AnomalyOptions, detect_anomalies
from quality_assets.contract import ContractError, parse_contract
from quality_assets.contract.anomalies import AnomalySettings, parse_anomaly_settings
from quality_assets.defs.anomalies import (
    ANOMALY_RATE_CHECK,
    DRIFT_CHECK,
    METRIC_ANOMALIES_CHECK,
    build_anomalies_asset,
)
from quality_assets.defs.profile import build_profile_asset
from quality_assets.defs.raw import build_raw_asset, files_partitions
from quality_assets.defs.resources import OutputFolderResource, QualitySettings, WarehouseResource
from quality_assets.profile import profile_partition, write_profile
from quality_assets.warehouse import Warehouse

COUNTRIES = {"US": "USD", "DE": "EUR", "FR": "EUR", "GB": "GBP", "JP": "JPY"}
START = dt.date(2026, 3, 2)  # a Monday


def orders(day: dt.date, n: int, first_id: int, rng: np.random.Generator, shift: float = 0.0) -> dict:
    country = rng.choice(list(COUNTRIES), n, p=[0.4, 0.2, 0.15, 0.15, 0.1])
    return {
        "order_id": np.arange(first_id, first_id + n),
        "amount": np.round(rng.lognormal(3.5 + shift, 0.6, n), 2),
        "quantity": rng.integers(1, 10, n),
        "country": country,
        "currency": np.array([COUNTRIES[c] for c in country]),
        "sku": np.array([f"SKU-{x:05d}" for x in rng.integers(0, 99999, n)]),
        "order_date": np.full(n, np.datetime64(day)),
        "ship_date": np.full(n, np.datetime64(day)) + rng.integers(0, 6, n).astype("timedelta64[D]"),
    }


def seasonal_volume(day: dt.date, base: int = 1500) -> int:
    """Quieter weekends, and a few percent of day-to-day noise."""
    return int(base * (0.5 if day.weekday() >= 5 else 1.0) * (1 + 0.04 * math.sin(day.toordinal() * 7.3)))


DAILY_CONTRACT = """\
version: 1
datasets:
  orders:
    landing: landing
    partitioning: daily
    daily: {start: 2026-03-01, file_pattern: 'orders_(?P<date>\\d{8})'}
    primary_key: [order_id]
    anomalies: {extra}
"""


def daily_dataset(tmp_path: Path, anomalies: str = "{}"):
    return parse_contract(DAILY_CONTRACT.replace("{extra}", anomalies), tmp_path / "quality.yaml").dataset("orders")


def build_history(warehouse: Warehouse, dataset, days: int, rng, last: dict | None = None, profile: bool = False,
                  volume=seasonal_volume) -> list[str]:
    """raw."orders" with one partition per day (the last one replaced by `last` when given)."""
    keys, tables, first_id = [], [], 1
    for i in range(days):
        day = START + dt.timedelta(days=i)
        data = orders(day, volume(day), first_id, rng) if (last is None or i < days - 1) else last
        n = len(data["order_id"])
        first_id += n
        data = {**data, "_partition_key": np.full(n, day.isoformat()), "_source_row": np.arange(1, n + 1),
                "_run_id": np.full(n, "load")}
        tables.append(pa.table(data))
        keys.append(day.isoformat())
    with warehouse.connect() as con:
        con.register("history", pa.concat_tables(tables))
        con.execute('CREATE OR REPLACE TABLE raw."orders" AS SELECT * FROM history')
        con.unregister("history")
        if profile:
            for key in keys:
                write_profile(con, "orders", key, f"profile-{key}", profile_partition(con, dataset, key))
    return keys


def plant(data: dict, rng) -> dict[int, tuple[str, str]]:
    """Plant 1% each of five error types; returns source row -> (type, column that explains it)."""
    n = len(data["order_id"])
    rows = rng.permutation(np.arange(1, n))[: 5 * (n // 100)].reshape(5, -1)
    truth = {}
    for i in rows[0]:
        data["amount"][i] *= 1000
        truth[int(i) + 1] = ("unit x1000", "amount")
    for i in rows[1]:
        data["country"][i] = "XX"
        truth[int(i) + 1] = ("invalid category", "country")
    for i in rows[2]:
        data["sku"][i] = data["sku"][i].replace("-", "")
        truth[int(i) + 1] = ("broken identifier", "sku")
    for i in rows[3]:
        data["order_id"][i] = data["order_id"][i - 1]
        truth[int(i) + 1] = ("duplicate key", "order_id")
    for i in rows[4]:
        data["currency"][i] = "EUR" if data["country"][i] == "US" else "USD"
        truth[int(i) + 1] = ("impossible combination", "currency")
    return truth


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    return Warehouse(tmp_path / "wh" / "quality.duckdb", lock_timeout_s=30, memory_limit="512MB", threads=2)


def test_planted_outliers_are_found_with_the_right_explanation(tmp_path, warehouse):
    rng = np.random.default_rng(7)
    dataset = daily_dataset(tmp_path)
    last_day = START + dt.timedelta(days=13)
    last = orders(last_day, 3000, 10_000_000, rng)
    truth = plant(last, rng)
    keys = build_history(warehouse, dataset, 14, rng, last=last)

    result = detect_anomalies(warehouse, dataset, keys[-1], "run-1", AnomalyOptions(max_rows=5000))

    flagged = {row["_source_row"]: row for row in result.rows}
    found = set(flagged) & set(truth)
    assert len(found) / len(truth) >= 0.8, sorted({truth[r][0] for r in set(truth) - found})
    assert len(found) / len(flagged) >= 0.95  # precision: false discovery rate control at 5%
    for kind in ("unit x1000", "invalid category", "broken identifier", "duplicate key"):
        rows = [r for r, (k, _) in truth.items() if k == kind]
        assert all(r in flagged for r in rows), kind  # never seen in history: each one found
    for source_row in found:
        kind, column = truth[source_row]
        top = flagged[source_row]["explanation"]["contributions"][0]
        assert top["column"] == column, (kind, top)
    amount = next(flagged[r] for r in found if truth[r][0] == "unit x1000")["explanation"]["contributions"][0]
    assert "above the history's range" in amount["why"] and amount["robust_z"] > 10
    country = next(flagged[r] for r in found if truth[r][0] == "invalid category")["explanation"]["contributions"][0]
    assert country["value"] == "XX" and "never seen" in country["why"]
    sku = next(flagged[r] for r in found if truth[r][0] == "broken identifier")["explanation"]["contributions"][0]
    assert sku["shape"] == "AAA99999" and "'AAA-99999' 100%" in sku["why"]
    assert result.fitted_on == "history" and len(result.reference_partitions) == 13
    assert result.skipped_columns == {"order_id": "identifier: duplicates and nulls only"}

    with warehouse.connect() as con:
        stored = read_anomalies(con, "orders", keys[-1])
        ranks = con.execute("SELECT rank, score FROM qa.row_anomalies WHERE partition_key = ? ORDER BY rank",
                            [keys[-1]]).fetchall()
    assert stored["run_id"] == "run-1" and stored["summary"]["rows_flagged"] == result.rows_flagged
    assert [r["_source_row"] for r in stored["rows"]] == [r["_source_row"] for r in result.rows]
    assert [r for r, _ in ranks] == list(range(1, len(ranks) + 1))
    assert [s for _, s in ranks] == sorted((s for _, s in ranks), reverse=True)


def test_clean_seasonal_history_raises_no_alarm_but_a_volume_drop_does(tmp_path, warehouse):
    rng = np.random.default_rng(11)
    dataset = daily_dataset(tmp_path)
    keys = build_history(warehouse, dataset, 28, rng, profile=True)
    for key in keys[-3:]:  # a weekend and a weekday, each against its own past
        result = detect_anomalies(warehouse, dataset, key, f"run-{key}")
        assert result.metric_anomalies == [], [m.reason for m in result.metric_anomalies]
        assert result.drifted_columns == []
        assert result.rows_flagged <= 2  # false discoveries are rare with fdr 0.05
        row_count = next(m for m in result.metrics if m.metric == "row_count")
        assert row_count.seasonal and not row_count.is_anomaly

    # the last day (a Sunday) brings a third of its usual volume
    with warehouse.connect() as con:
        con.execute('DELETE FROM raw."orders" WHERE _partition_key = ? AND _source_row > 250', [keys[-1]])
        write_profile(con, "orders", keys[-1], "profile-again", profile_partition(con, dataset, keys[-1]))
    result = detect_anomalies(warehouse, dataset, keys[-1], "run-drop")
    [alarm] = [m for m in result.metric_anomalies if m.metric == "row_count"]
    assert alarm.value == 250 and alarm.seasonal and alarm.direction == "both"
    assert 700 < alarm.expected < 800 and alarm.robust_z < -5
    assert "row_count 250 below the seasonal (same weekday) log-scale expected" in alarm.reason


def test_metric_series_rules_minimum_history_direction_and_minimum_change():
    settings = AnomalySettings(min_history=5)
    history = [(f"p{i}", v) for i, v in enumerate([100, 102, 98, 101, 99, 100])]
    short = evaluate_series(300, history[:3], "p9", "row_count", settings, daily=False)
    assert not short.is_anomaly and "min_history 5" in short.reason
    high = evaluate_series(300, history, "p9", "row_count", settings, daily=False)
    assert high.is_anomaly and high.robust_z > 4 and high.expected == pytest.approx(100)
    up_only = AnomalySettings(min_history=5, direction={"row_count": "up"})
    assert not evaluate_series(10, history, "p9", "row_count", up_only, daily=False).is_anomaly
    assert evaluate_series(300, history, "p9", "row_count", up_only, daily=False).is_anomaly
    # a large z on a tiny relative change is noise: the band is at least 10% of the level
    tight = [(f"p{i}", 1000.0 + (i % 2) * 0.01) for i in range(10)]
    small = evaluate_series(1005.0, tight, "p9", "mean", settings, daily=False)
    assert not small.is_anomaly and small.upper >= 1100
    shares = [(f"p{i}", 0.0) for i in range(10)]
    assert not evaluate_series(0.004, shares, "p9", "null_share", settings, daily=False).is_anomaly
    assert evaluate_series(0.05, shares, "p9", "null_share", settings, daily=False).is_anomaly


def test_drift_found_on_a_shifted_column_not_on_a_resample():
    rng = np.random.default_rng(3)
    reference = rng.normal(50, 10, 20_000)
    same = numeric_drift("same", rng.normal(50, 10, 20_000), reference)
    shifted = numeric_drift("shifted", rng.normal(60, 10, 20_000), reference)
    tiny = numeric_drift("tiny", rng.normal(50.4, 10, 20_000), reference)  # significant, but trivial
    cats = ["a", "b", "c", "d"]
    cat_ref = pa.array(rng.choice(cats, 20_000, p=[0.4, 0.3, 0.2, 0.1]))
    cat_same = categorical_drift("cat_same", pa.array(rng.choice(cats, 20_000, p=[0.4, 0.3, 0.2, 0.1])), cat_ref)
    cat_moved = categorical_drift("cat_moved", pa.array(rng.choice(cats, 20_000, p=[0.1, 0.2, 0.3, 0.4])), cat_ref)
    results = {r.column_name: r for r in judge([same, shifted, tiny, cat_same, cat_moved], AnomalySettings())}
    assert results["shifted"].drifted and results["shifted"].psi > 0.2 and results["shifted"].effect_size > 0.5
    assert results["cat_moved"].drifted and results["cat_moved"].test == "chi2"
    assert not results["same"].drifted and not results["cat_same"].drifted
    assert not results["tiny"].drifted and results["tiny"].adjusted_p < 0.05 and "too small" in results["tiny"].reason
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.16 / 3, 0.16 / 3, 0.5])


@pytest.mark.parametrize("reference", ["recent", "previous"])
def test_drift_in_the_stage_against_recent_partitions_or_the_previous_one(tmp_path, warehouse, reference):
    rng = np.random.default_rng(5)
    dataset = daily_dataset(tmp_path, f"{{reference: {reference}}}")
    last_day = START + dt.timedelta(days=9)
    last = orders(last_day, 2000, 10_000_000, rng, shift=0.7)  # amounts doubled across the board
    keys = build_history(warehouse, dataset, 10, rng, last=last)
    result = detect_anomalies(warehouse, dataset, keys[-1], "run-1")
    expected = ", ".join(keys[-6:-1]) if reference == "recent" else keys[-2]
    assert result.drift_reference == expected
    assert result.drifted_columns == ["amount"]
    with warehouse.connect() as con:
        [row] = con.execute("SELECT column_name, test, drifted, reference_partition FROM qa.drift "
                            "WHERE drifted AND partition_key = ?", [keys[-1]]).fetchall()
    assert row == ("amount", "ks", True, expected)


def test_same_data_same_result_and_small_batches_change_nothing(tmp_path, warehouse):
    rng = np.random.default_rng(9)
    dataset = daily_dataset(tmp_path)
    last = orders(START + dt.timedelta(days=7), 2000, 10_000_000, rng)
    plant(last, rng)
    keys = build_history(warehouse, dataset, 8, rng, last=last)
    runs = [detect_anomalies(warehouse, dataset, keys[-1], "run-a", AnomalyOptions(batch_size=100_000)),
            detect_anomalies(warehouse, dataset, keys[-1], "run-b", AnomalyOptions(batch_size=100_000)),
            detect_anomalies(warehouse, dataset, keys[-1], "run-c", AnomalyOptions(batch_size=37))]
    assert runs[0].rows_flagged > 50
    # the same data twice, and in 37-row batches (the bounded-memory path): identical results
    for other in runs[1:]:
        assert [(r["_source_row"], r["score"], r["explanation"]) for r in runs[0].rows] == \
            [(r["_source_row"], r["score"], r["explanation"]) for r in other.rows]
        assert [d.as_row() for d in runs[0].drift] == [d.as_row() for d in other.drift]
        assert [m.as_row() for m in runs[0].metrics] == [m.as_row() for m in other.metrics]
        assert other.threshold_p == runs[0].threshold_p
    # a rerun replaces the partition's results
    with warehouse.connect() as con:
        assert con.execute("SELECT DISTINCT run_id FROM qa.row_anomalies").fetchall() == [("run-c",)]


def test_no_history_fits_on_the_partition_itself(tmp_path, warehouse):
    rng = np.random.default_rng(2)
    dataset = daily_dataset(tmp_path)
    only = orders(START, 3000, 1, rng)
    only["amount"][[5, 500, 1500]] = [1e6, 2e6, -5e5]
    keys = build_history(warehouse, dataset, 1, rng, last=only)
    result = detect_anomalies(warehouse, dataset, keys[0], "run-1")
    assert result.fitted_on == "partition" and result.drift_reference is None
    assert {r["_source_row"] for r in result.rows} == {6, 501, 1501}
    assert "no drift: 0 earlier partition(s) without alarms, fewer than 3" in result.notes


def test_contamination_flags_that_share_of_rows(tmp_path, warehouse):
    rng = np.random.default_rng(4)
    dataset = daily_dataset(tmp_path, "{contamination: 0.02, exclude_columns: [sku]}")
    keys = build_history(warehouse, dataset, 5, rng)
    result = detect_anomalies(warehouse, dataset, keys[-1], "run-1")
    assert result.rows_flagged == pytest.approx(0.02 * result.rows_scored, abs=2)
    assert result.threshold_method == "contamination 0.02"
    assert all("sku" not in f["columns"] for f in result.features)


def contract_problems(block: str) -> list[str]:
    """Problems of a contract whose `anomalies:` block (given unindented) starts on line 6."""
    text = ("version: 1\ndatasets:\n  orders:\n    columns: {amount: double, sku: string}\n    anomalies:\n"
            + textwrap.indent(textwrap.dedent(block), "      "))
    with pytest.raises(ContractError) as error:
        parse_contract(text, Path("/srv/quality.yaml"))
    return error.value.problems


def test_contract_anomalies_block_errors_name_the_line_and_the_key():
    problems = contract_problems("""\
        contamination: lots
        sensitivity: extreme
        colour: red
        min_history: 0
        window: 2
        severity: {drift: fatal, rows: error}
        exclude_columns: [nope]
        direction: {row_count: sideways}
        max_anomaly_rate: 2
        """)
    text = "\n".join(problems)
    assert "/srv/quality.yaml:6: dataset 'orders', anomalies.contamination: expected auto or a share" in text
    assert "anomalies.sensitivity: expected one of low, medium, high, got 'extreme'" in text
    assert "/srv/quality.yaml:8: dataset 'orders', anomalies.colour: unknown key 'colour'" in text
    assert "anomalies.min_history: expected a whole number >= 1, got 0" in text
    assert "anomalies.severity: drift: expected warn or error, got 'fatal'" in text
    assert "anomalies.severity: unknown check 'rows'" in text
    assert "anomalies.exclude_columns: unknown column 'nope'" in text
    assert "anomalies.direction: row_count: expected one of both, up, down, got 'sideways'" in text
    assert "anomalies.max_anomaly_rate: expected 0..1, got 2" in text
    assert "/srv/quality.yaml:10: dataset 'orders', anomalies.window: window 2 is shorter than min_history 3" in text
    assert len(problems) == 10


def test_contract_anomalies_block_parses_into_settings():
    settings, problems = parse_anomaly_settings({
        "contamination": 0.01, "sensitivity": "high", "min_history": 3, "window": 10, "reference": "2026-01-01",
        "severity": {"drift": "error"}, "direction": {"row_count": "down"}, "exclude_columns": ["note"],
        "drift_min_psi": 0.3})
    assert problems == []
    assert settings.contamination == 0.01 and settings.fdr == 0.1 and settings.z_threshold == 3.0
    assert settings.drift_min_psi == 0.3 and settings.reference == "2026-01-01"
    assert settings.severity == {"anomaly_rate": "warn", "metric_anomalies": "warn", "drift": "error"}
    assert settings.direction_of("row_count") == "down" and settings.direction_of("mean") == "both"
    assert parse_anomaly_settings({})[0] == AnomalySettings()


FILE_CONTRACT = """\
version: 1
datasets:
  orders:
    landing: landing
    columns: {order_id: bigint, amount: double, country: string, day: date}
    primary_key: [order_id]
    anomalies: {min_history: 3, severity: {metric_anomalies: error}}
"""


def write_orders_csv(path: Path, n: int, first_id: int, rng, day: dt.date, bad: bool = False) -> None:
    lines = ["order_id,amount,country,day"]
    for i in range(n):
        amount = round(float(rng.lognormal(3, 0.5)), 2)
        country = rng.choice(["US", "DE", "FR"])
        if bad and i % 50 == 7:
            amount *= 1000
        lines.append(f"{first_id + i},{amount},{country},{day.isoformat()}")
    path.write_text("\n".join(lines) + "\n")


def test_materialize_raw_profile_anomalies_over_several_partitions(tmp_path):
    (tmp_path / "quality.yaml").write_text(FILE_CONTRACT)
    landing = tmp_path / "landing"
    landing.mkdir()
    dataset = parse_contract(FILE_CONTRACT, tmp_path / "quality.yaml").dataset("orders")
    partitions = files_partitions(dataset)
    assets = [build_raw_asset(dataset, partitions), build_profile_asset(dataset, partitions),
              build_anomalies_asset(dataset, partitions)]
    resources = {"warehouse": WarehouseResource(path=str(tmp_path / "wh.duckdb")),
                 "output_folder": OutputFolderResource(path=str(tmp_path / "output")),
                 "quality_settings": QualitySettings()}
    instance = dg.DagsterInstance.ephemeral()
    rng = np.random.default_rng(1)
    names = [f"orders_{i}.csv" for i in range(5)]
    for i, name in enumerate(names):
        last = i == len(names) - 1
        write_orders_csv(landing / name, 400 if last else 1000, 1 + i * 1000, rng, START + dt.timedelta(days=i), bad=last)
    instance.add_dynamic_partitions(partitions.name, names)
    for name in names:
        result = dg.materialize(assets, partition_key=name, instance=instance, resources=resources)
        assert result.success
    checks = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert not checks[ANOMALY_RATE_CHECK].passed  # 8 of 400 rows are 1000x: 2% > 1%
    assert checks[ANOMALY_RATE_CHECK].severity == dg.AssetCheckSeverity.WARN
    assert checks[ANOMALY_RATE_CHECK].metadata["rows_flagged"].value == 8
    assert not checks[METRIC_ANOMALIES_CHECK].passed  # 400 rows against ~1000: and the contract says error
    assert checks[METRIC_ANOMALIES_CHECK].severity == dg.AssetCheckSeverity.ERROR
    assert "row_count" in checks[METRIC_ANOMALIES_CHECK].metadata["message"].value
    assert DRIFT_CHECK in checks
    materialization = result.asset_materializations_for_node("orders__anomalies")[0]
    metadata = materialization.metadata
    assert metadata["rows_flagged"].value == 8 and metadata["anomaly_rate"].value == 0.02
    table = metadata["top_anomalous_rows"].value
    assert "amount" in table and "above the history" in table
    assert metadata["fitted_on"].value == "4 history partition(s), 4,000 rows"
    with Warehouse(tmp_path / "wh.duckdb").connect() as con:
        stored = read_anomalies(con, "orders", names[-1])
        earlier = read_anomalies(con, "orders", names[1])
    assert {r["_source_row"] for r in stored["rows"]} == {8 + 50 * k for k in range(8)}
    assert all(r["explanation"]["contributions"][0]["column"] == "amount" for r in stored["rows"])
    alarms = {(m["column_name"], m["metric"]) for m in stored["metric_anomalies"]}
    assert {(None, "row_count"), ("amount", "mean")} <= alarms, alarms
    # a key's distinct count follows the volume: judged once, as the row count
    assert ("order_id", "distinct_count") not in alarms and stored["roles"]["order_id"]["role"] == "identifier"
    # the std is far above its band too (robust z ~86 with 4 partitions of history): grouped with
    # the other metrics of amount, the correction does not swallow it
    [std] = [m for m in stored["metrics"] if (m["column_name"], m["metric"]) == ("amount", "std")]
    assert std["value"] > std["upper"] and std["is_anomaly"]
    assert earlier["summary"]["rows_flagged"] == 0 and earlier["metric_anomalies"] == []
    assert json.loads(json.dumps(stored["summary"]["settings"]))["severity"]["metric_anomalies"] == "error"


def heavy_tailed_metrics(rng, n: int, scale: float = 1.0) -> dict[str, float]:
    """Profile-like metrics of an order amount: lognormal price x a geometric quantity (a heavy
    right tail), and the quantity itself (a p95 of whole numbers that sits on a step)."""
    quantity = np.minimum(rng.geometric(0.45, n), 30)
    amount = np.exp(rng.normal(3.5, 0.9, n)) * quantity * scale
    nulls = rng.random(n) < 0.05
    return {("amount", "mean"): amount.mean(), ("amount", "std"): amount.std(ddof=1),
            ("amount", "p5"): np.quantile(amount, 0.05), ("amount", "p50"): np.median(amount),
            ("amount", "p95"): np.quantile(amount, 0.95), ("amount", "null_share"): nulls.mean(),
            ("quantity", "p95"): float(np.quantile(quantity, 0.95, method="inverted_cdf")),
            ("quantity", "std"): quantity.std(ddof=1), (None, "row_count"): float(n)}


def test_clean_heavy_tailed_history_raises_no_metric_alarm_but_a_real_shift_does():
    rng = np.random.default_rng(7)
    days = [START + dt.timedelta(days=i) for i in range(36)]

    def volume(day):  # quieter weekends: their metrics are noisier
        return 2400 if day.weekday() >= 5 else 4000

    series = [(day.isoformat(), heavy_tailed_metrics(rng, volume(day))) for day in days]
    settings = AnomalySettings()

    def judge(i: int, metrics: dict) -> list:
        history = series[max(0, i - settings.window):i]
        tested = [(column, metric, value, [(k, m[(column, metric)]) for k, m in history])
                  for (column, metric), value in metrics.items()]
        stds = {c: float(np.median([m[(c, "std")] for _, m in history])) for c in ("amount", "quantity")}
        sizes = {k: m[(None, "row_count")] for k, m in history}
        return judge_family(tested, series[i][0], settings, True, metrics[(None, "row_count")], stds, sizes)

    alarms = []
    for i in range(14, len(series)):  # every clean day against its own past
        results = judge(i, series[i][1])
        assert all(r.adjusted_p is not None for r in results)
        alarms += [f"{series[i][0]} {r.column_name}.{r.metric}: {r.reason}" for r in results if r.is_anomaly]
    assert alarms == []
    # the same history still catches a real change: amounts 40% higher, and a null burst
    shifted = heavy_tailed_metrics(np.random.default_rng(99), 4000, scale=1.4)
    shifted[("amount", "null_share")] = 0.12
    found = {f"{r.column_name}.{r.metric}" for r in judge(len(series) - 1, shifted) if r.is_anomaly}
    assert {"amount.mean", "amount.p50", "amount.null_share"} <= found, found
    [median] = [r for r in judge(len(series) - 1, shifted) if r.metric == "p50"]
    assert median.adjusted_p < settings.metric_alpha and "adjusted p" in median.reason
    # Holm across the family is stricter than one metric alone
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
