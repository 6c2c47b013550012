"""The detector on monthly files shaped like real exports: a period number constant within each
file, a day-of-month column, a store, a product code and an amount. Each test names a failure
the detector had on real data (every row flagged, drift in a short month, a volume drop not seen
with a short history, drift back after a shifted file, a unit change flooding the rows, rows
instead of causes)."""

from __future__ import annotations

import calendar
import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from quality_assets.anomalies import read_anomalies
from quality_assets.anomalies.period import next_value
from quality_assets.anomalies.roles import calendar_part
from quality_assets.anomalies.stage import AnomalyResult, detect_anomalies
from quality_assets.contract import parse_contract
from quality_assets.profile import profile_partition, write_profile
from quality_assets.warehouse import Warehouse

CONTRACT = """\
version: 1
datasets:
  sales:
    landing: landing
    rules:
      - schema: {}
"""
STORES = ["north", "south", "east", "west", "central"]


@pytest.fixture
def warehouse(tmp_path: Path) -> Warehouse:
    return Warehouse(tmp_path / "wh" / "quality.duckdb", lock_timeout_s=30, memory_limit="512MB", threads=2)


@pytest.fixture
def dataset(tmp_path: Path):
    (tmp_path / "landing").mkdir()
    return parse_contract(CONTRACT, tmp_path / "quality.yaml").dataset("sales")


def month(index: int, rng: np.random.Generator, rows: int = 1000) -> dict:
    """Month `index` (0 = January 2025) of the export."""
    year, number = 2025 + index // 12, index % 12 + 1
    days = calendar.monthrange(year, number)[1]
    return {
        "period": np.full(rows, index + 1),
        "day": rng.integers(1, days + 1, rows),
        "store": rng.choice(STORES, rows, p=[0.3, 0.25, 0.2, 0.15, 0.1]),
        "sku": np.array([f"SKU-{x:05d}" for x in rng.integers(0, 99999, rows)]),
        "amount": np.round(rng.lognormal(3.5, 0.5, rows), 2),
    }


def load(warehouse: Warehouse, dataset, key: str, data: dict) -> None:
    """Append one file's rows to raw."sales" (as the raw stage would) and profile them."""
    n = len(data["amount"])
    table = pa.table({**data, "_partition_key": np.full(n, key), "_source_row": np.arange(1, n + 1),
                      "_run_id": np.full(n, "load")})
    with warehouse.connect() as con:
        con.register("incoming", table)
        exists = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'raw' "
                             "AND table_name = 'sales'").fetchall()[0][0]
        con.execute('INSERT INTO raw."sales" SELECT * FROM incoming' if exists
                    else 'CREATE TABLE raw."sales" AS SELECT * FROM incoming')
        con.unregister("incoming")
        write_profile(con, "sales", key, f"profile-{key}", profile_partition(con, dataset, key))


def run_months(warehouse, dataset, months: list[dict]) -> list[AnomalyResult]:
    results = []
    for i, data in enumerate(months):
        key = f"sales_{i + 1:02d}.csv"
        load(warehouse, dataset, key, data)
        results.append(detect_anomalies(warehouse, dataset, key, f"run-{i + 1}"))
    return results


def test_a_period_column_is_a_role_not_a_row_outlier_and_its_next_value_is_checked(warehouse, dataset):
    rng = np.random.default_rng(11)
    months = [month(i, rng) for i in range(8)]
    months[7]["period"][:] = 10  # skips 8 and 9
    results = run_months(warehouse, dataset, months)
    for result in results[1:7]:  # the old detector flagged every row of these files
        assert result.roles["period"].role == "period"
        assert result.rows_flagged <= 3, [r["explanation"] for r in result.rows[:3]]
        assert result.metric_anomalies == [], [m.reason for m in result.metric_anomalies]
    [jump] = [m for m in results[7].metrics if m.metric == "period_next"]
    assert jump.is_anomaly and jump.value == 10 and jump.expected == 8
    assert "advances to 8 next" in jump.reason
    assert results[7].rows_flagged <= 3
    with warehouse.connect() as con:
        stored = read_anomalies(con, "sales", "sales_08.csv")
    assert stored["roles"]["period"] == {"role": "period", "source": "learned",
                                         "reason": "one value per partition in 7 earlier partition(s), changing between them"}
    assert stored["roles"]["sku"]["role"] == "identifier" and stored["roles"]["amount"]["role"] == "measure"


def test_rows_with_another_period_value_are_flagged_one_by_one(warehouse, dataset):
    rng = np.random.default_rng(12)
    months = [month(i, rng) for i in range(6)]
    months[5]["period"][[10, 20, 30]] = 5  # three rows left over from the previous file
    result = run_months(warehouse, dataset, months)[-1]
    [values] = [m for m in result.metrics if m.metric == "period_values"]
    assert values.is_anomaly and "this partition has 2: 6 99.7%, 5 0.3%" in values.reason
    assert {r["_source_row"] for r in result.rows} >= {11, 21, 31}  # three never-seen events together
    [stray] = [c for c in result.causes if c["signal"] == "period"]
    assert stray["rows"] == 3 and {e["source_row"] for e in stray["examples"]} == {11, 21, 31}
    assert stray["description"] == ("period differs from the partition's own value 6 (one value per partition "
                                    "in the history)")


def test_a_day_of_month_column_does_not_drift_in_a_short_month(warehouse, dataset):
    rng = np.random.default_rng(13)
    results = run_months(warehouse, dataset, [month(i, rng) for i in range(4)])  # January to April
    february = results[1]
    assert february.roles["day"].role == "time" and "calendar part: day" in february.roles["day"].reason
    assert "day" not in {d.column_name for d in february.drift}
    assert all(r.drifted_columns == [] for r in results), [r.drifted_columns for r in results]


def test_a_volume_drop_or_spike_is_found_with_three_partitions_of_history(warehouse, dataset):
    rng = np.random.default_rng(14)
    sizes = [1000, 1030, 980, 500, 1010, 2000]
    results = run_months(warehouse, dataset, [month(i, rng, rows=n) for i, n in enumerate(sizes)])
    volume = [next(m for m in r.metrics if m.metric == "row_count") for r in results[3:]]
    assert volume[0].is_anomaly and volume[0].history_size == 3 and "short history (3 partitions)" in volume[0].reason
    assert not volume[1].is_anomaly  # the drop is left out of the reference
    assert volume[2].is_anomaly and volume[2].value == 2000


def test_the_file_after_a_shifted_file_does_not_drift_back(warehouse, dataset):
    rng = np.random.default_rng(15)
    months = [month(i, rng) for i in range(8)]
    months[6]["amount"] = months[6]["amount"] * 3  # a genuinely shifted file
    results = run_months(warehouse, dataset, months)
    assert "amount" in results[6].drifted_columns
    assert results[7].drifted_columns == []
    # left out of amount's reference only: the other columns still compare with it
    drift = {d.column_name: d for d in results[7].drift}
    assert "sales_07.csv" not in drift["amount"].reference and "sales_07.csv" in drift["store"].reference


def test_a_unit_change_on_every_row_is_one_partition_finding_not_a_flood_of_rows(warehouse, dataset):
    rng = np.random.default_rng(16)
    months = [month(i, rng) for i in range(6)]
    months[5]["amount"] = months[5]["amount"] * 60
    months[5]["amount"][[100, 200]] = 1_000_000.0  # still wrong within the new scale
    result = run_months(warehouse, dataset, months)[-1]
    assert result.rows_flagged <= 10, result.rows_flagged  # the old detector flagged all 1,000
    assert {101, 201} <= {r["_source_row"] for r in result.rows}
    [level] = [c for c in result.causes if c["level"] == "partition"]
    assert level["columns"] == ["amount"] and level["rows"] >= 900 and level["condition"] == "above"
    assert re.search(r"6[01](\.\d+)?x;", level["description"]) and "reported once" in level["description"]
    # the size of the change is the metrics' to judge: the partition alarms on amount's level
    assert {m.metric for m in result.metric_anomalies if m.column_name == "amount"} >= {"mean", "p50"}


def test_flagged_rows_are_grouped_into_causes_with_examples(warehouse, dataset):
    rng = np.random.default_rng(17)
    months = [month(i, rng) for i in range(6)]
    last = months[5]
    unit, unseen = np.arange(5, 1000, 100), np.arange(50, 1000, 100)  # 10 rows each
    last["amount"][unit] *= 1000
    last["store"][unseen] = "XX"
    result = run_months(warehouse, dataset, months)[-1]
    causes = {(tuple(c["columns"]), c["condition"]): c for c in result.causes}
    amount, store = causes[(("amount",), "above")], causes[(("store",), "unseen")]
    assert amount["rows"] == 10 and store["rows"] == 10
    assert re.search(r"about [5-9]\d\dx the typical value", amount["description"]), amount["description"]
    assert store["description"] == "store never seen before: 'XX' (10)"
    assert len(amount["examples"]) == 3 and {e["source_row"] for e in amount["examples"]} <= set(unit + 1)
    assert store["share"] == pytest.approx(0.01)
    with warehouse.connect() as con:
        rows = con.execute("SELECT cause_rank, level, column_name, rows, description FROM qa.anomaly_causes "
                           "WHERE partition_key = 'sales_06.csv' ORDER BY cause_rank").fetchall()
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1)) and {r[2] for r in rows} >= {"amount", "store"}


def test_next_value_follows_numbers_days_and_months():
    import datetime as dt

    assert next_value([1, 2, 3]) == 4
    assert next_value([2024, 2025]) == 2026
    assert next_value([1, 2, 4]) is None
    assert next_value([dt.date(2025, 1, 1), dt.date(2025, 2, 1), dt.date(2025, 3, 1)]) == dt.date(2025, 4, 1)
    assert next_value([dt.date(2025, 1, 6), dt.date(2025, 1, 13)]) == dt.date(2025, 1, 20)
    assert next_value(["a", "b"]) is None


def test_a_number_within_its_category_scores_a_category_whose_history_values_were_all_missing():
    """Real data (portal_rodents) crashed here: a category whose numbers were all null in the
    reference had no centre, and scoring one of its rows indexed past the end."""
    from quality_assets.anomalies.features import Categories, Feature, NumericTail
    from quality_assets.anomalies.pairs import conditional_numbers
    from quality_assets.anomalies.pvalues import feature_p_values

    rng = np.random.default_rng(3)
    species = np.array(["a"] * 300 + ["b"] * 300 + ["z"] * 50)
    weight = np.concatenate([rng.normal(10, 1, 300), rng.normal(50, 3, 300), np.full(50, np.nan)])
    cats = Categories.fit(pa.array(species))
    given = Feature("species", ("species",), "category", ("v0",), model=cats)
    number = Feature("weight", ("weight",), "value", ("v1",), model=NumericTail.fit(weight))
    [feature] = conditional_numbers({"v0": (cats, pa.array(species))}, {"v1": weight}, {"v1": number}, {"v0": given})
    batch = pa.record_batch({"v0": pa.array(["z", "a", "b"]), "v1": pa.array([12.0, 10.5, 10.5])})
    p = feature_p_values(feature, batch)
    assert p.shape == (3,) and p[1] > 0.05 and p[2] < 1e-6  # 10.5 is ordinary for a, impossible for b


def test_spearman_of_a_column_constant_where_the_other_has_values_is_undefined_not_a_crash():
    from quality_assets.profile.kernels import spearman_matrix as _spearman_matrix

    x = np.array([[1.0, 7.0], [2.0, 7.0], [3.0, np.nan], [4.0, 7.0], [5.0, 7.0]])
    r = _spearman_matrix(x)
    assert np.isnan(r[0, 1]) and np.isnan(r[1, 0])


def test_a_calendar_part_is_judged_against_the_calendar_not_the_months_history_happened_to_have(warehouse, dataset):
    rng = np.random.default_rng(18)
    months = [month(i, rng) for i in range(6)]
    for data in months[:5]:  # the history only ever saw the first half of each month
        data["day"] = rng.integers(1, 16, len(data["day"]))
    months[5]["day"][[7, 70, 700]] = 32  # no month has a 32nd day
    result = run_months(warehouse, dataset, months)[-1]
    assert result.roles["day"].bounds == (1, 31)
    assert {r["_source_row"] for r in result.rows} == {8, 71, 701}  # the 16th to the 31st are fine
    [cause] = [c for c in result.causes if c["columns"] == ["day"]]
    assert cause["description"] == "day outside the calendar's 1..31" and cause["rows"] == 3


def test_a_calendar_part_is_what_the_name_is_about_not_any_word_in_it():
    # hotel bookings (modeldata's hotel_rates): `stays_in_week_nights` counts nights
    assert calendar_part("stays_in_week_nights", 0, 10) is None
    assert calendar_part("pickup_hour", 0, 23) == "hour"
    assert calendar_part("week_number", 1, 52) == "week"
    assert calendar_part("day_of_week", 1, 7) == "day"
    assert calendar_part("month", 1, 12) == "month"
    assert calendar_part("month", 1, 13) is None


def test_a_count_that_is_nearly_always_zero_is_not_the_hour_of_a_date(warehouse, dataset):
    # hotel bookings: `days_in_waiting_list` is 0 on over 99% of the rows, as is the hour of the
    # arrival DATE; it was judged a calendar part and a wait of 113 days "outside the calendar's 0..23"
    rng = np.random.default_rng(24)
    months = [month(i, rng) for i in range(6)]
    for i, data in enumerate(months):
        data["sold_on"] = np.datetime64(f"{2025 + i // 12}-{i % 12 + 1:02d}-01") + (data["day"] - 1).astype("timedelta64[D]")
        data["days_waiting"] = np.zeros(len(data["day"]), dtype=np.int64)
        data["days_waiting"][[5 + i, 500 + i]] = [3, 12]
    months[5]["days_waiting"][[9, 90]] = [40, 113]
    last = run_months(warehouse, dataset, months)[-1]
    assert last.roles["days_waiting"].role == "measure", last.roles["days_waiting"]
    assert not [c for c in last.causes if c["signal"] == "calendar"]


def test_labels_that_turn_over_each_partition_are_identifiers_not_a_flood_of_unseen_categories(warehouse, dataset):
    rng = np.random.default_rng(19)
    months = [month(i, rng) for i in range(6)]
    for i, data in enumerate(months):  # each file's campaigns have names of their own
        data["campaign"] = np.array([f"Wave{i}{c}" for c in rng.choice(list("ABCDEFGH"), len(data["amount"]))])
    results = run_months(warehouse, dataset, months)
    last = results[-1]
    assert last.roles["campaign"].role == "identifier" and "turn over" in last.roles["campaign"].reason
    assert last.rows_flagged <= 3 and not [c for c in last.causes if c["level"] == "partition"]


def test_a_pair_never_seen_where_independence_expects_many_is_flagged(warehouse, dataset):
    rng = np.random.default_rng(20)
    sizes = np.array(["S", "M", "L"])
    months = [month(i, rng) for i in range(6)]
    for data in months:  # the north store never sells size S: a forbidden pair, the columns otherwise independent
        data["size"] = rng.choice(sizes, len(data["amount"]))
        data["size"][(data["store"] == "north") & (data["size"] == "S")] = "M"
    last = months[5]
    north = np.flatnonzero(last["store"] == "north")[:6]
    last["size"][north] = "S"
    result = run_months(warehouse, dataset, months)[-1]
    assert set(north + 1) <= {r["_source_row"] for r in result.rows}
    assert any(c["signal"] == "combination" and c["rows"] >= 6 for c in result.causes)


def test_unseen_values_are_one_cause_however_many_rows_carry_them(warehouse, dataset):
    rng = np.random.default_rng(21)
    months = [month(i, rng) for i in range(6)]
    last = months[5]
    last["store"][:60] = "harbour"  # 6% of the rows
    last["store"][[500, 600, 700]] = "nrth"  # a typo on three rows
    result = run_months(warehouse, dataset, months)[-1]
    flagged = {r["_source_row"] for r in result.rows}
    assert {501, 601, 701} <= flagged and set(range(1, 61)) <= flagged
    [unseen] = [c for c in result.causes if c["columns"] == ["store"] and c["condition"] == "unseen"]
    assert unseen["rows"] == 63 and unseen["description"] == "store never seen before: 'harbour' (60), 'nrth' (3)"


def test_a_week_missing_from_a_months_dates_is_a_gap(warehouse, dataset):
    import datetime as dt

    rng = np.random.default_rng(22)
    months = [month(i, rng) for i in range(6)]
    for i, data in enumerate(months):
        data["sold_on"] = np.array([dt.date(2025, i + 1, int(d)) for d in data["day"]])
    last = months[5]
    keep = (last["day"] < 8) | (last["day"] > 14)  # the second week never arrived
    months[5] = {name: values[keep] for name, values in last.items()}
    results = run_months(warehouse, dataset, months)
    assert not [m for r in results[:5] for m in r.metrics if m.metric == "date_coverage" and m.is_anomaly]
    result = results[-1]
    [gap] = [m for m in result.metrics if m.metric == "date_coverage"]
    assert gap.column_name == "sold_on" and gap.is_anomaly and gap.value < 0.8
    assert gap.reason.startswith("gaps: share of days with a row")
    assert gap.reason.endswith("; no rows on 2025-06-08, 2025-06-09, 2025-06-10, 2025-06-11, 2025-06-12 and 2 more"), \
        gap.reason


def test_a_cause_of_negative_values_in_a_positive_column_says_so():
    from quality_assets.anomalies.causes import _ratio

    assert _ratio([-5.0, -7.0], 32.5) == ", of the opposite sign"
    assert _ratio([32_000.0], 32.0) == ", about 1000x the typical value"
