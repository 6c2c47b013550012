"""What the detector does where the history cannot say what is normal, each failure seen on the
hotel bookings it was never tuned on: a 0/1 flag set for the first time near Christmas (one value
in all the history), a month whose level and spread both moved, a combination never seen on a
large share of the rows, and a second month judged on the first alone."""

from __future__ import annotations

import numpy as np
from test_detection_roles import dataset as dataset  # noqa: F401 (a fixture)
from test_detection_roles import month, run_months
from test_detection_roles import warehouse as warehouse  # noqa: F401 (a fixture)


def _flagged_columns(result) -> list[str]:
    return [c["column"] for r in result.rows for c in r["explanation"]["contributions"]]


def test_a_column_that_held_one_value_and_varies_now_is_reported_once_not_flagged(warehouse, dataset):
    """near_christmas: 0 on every row for five months, 1 on 9% of December's rows. The old
    detector flagged those 94 rows one by one (9% stays under the flood share) and alarmed on the
    column's mean and std the month after."""
    rng = np.random.default_rng(31)
    months = [month(i, rng) for i in range(7)]
    for data in months:
        data["holiday"] = np.zeros(1000, dtype=np.int64)
    months[5]["holiday"][rng.choice(1000, 90, replace=False)] = 1
    months[6]["holiday"][rng.choice(1000, 40, replace=False)] = 1
    results = run_months(warehouse, dataset, months)
    december = results[5]
    assert "holiday" not in _flagged_columns(december), december.rows[:3]
    [cause] = [c for c in december.causes if c["columns"] == ["holiday"]]
    assert cause["level"] == "partition" and cause["rows"] == 90
    assert "holiday varies for the first time (it held one value, 0, in all the history's rows)" in cause["description"]
    [report] = [m for m in december.metrics if m.column_name == "holiday" and m.reason.startswith("first variation")]
    assert not report.is_anomaly and "one value in all 5 partitions" in report.reason
    assert not [m for m in december.metric_anomalies if m.column_name == "holiday"], december.metric_anomalies
    assert "holiday" not in december.drifted_columns
    # the month after: its history starts at the first variation, one partition is too short to judge
    january = results[6]
    assert not [m for m in january.metric_anomalies if m.column_name == "holiday"], january.metric_anomalies
    assert "holiday" not in january.drifted_columns and "holiday" not in _flagged_columns(january)


def test_a_few_odd_values_in_a_column_that_held_one_value_are_still_flagged_one_by_one(warehouse, dataset):
    rng = np.random.default_rng(32)
    months = [month(i, rng) for i in range(6)]
    for data in months:
        data["status"] = np.full(1000, "ok", dtype=object)
    months[5]["status"][[100, 200, 300]] = "ERROR"
    result = run_months(warehouse, dataset, months)[-1]
    assert {r["_source_row"] for r in result.rows if "status" in _flagged_columns_of(r)} == {101, 201, 301}


def _flagged_columns_of(row: dict) -> list[str]:
    return [c["column"] for c in row["explanation"]["contributions"]]


def test_a_number_whose_level_and_spread_both_moved_is_one_change_not_many_rows(warehouse, dataset):
    """historical_adr in September: its level fell to 0.59x and its spread widened. The history's
    shape moved to the new level still left 11% of the rows outside it: the old detector reported
    the flood, refitted the feature to the same moved shape, and flagged the same 117 rows."""
    rng = np.random.default_rng(33)
    months = [month(i, rng) for i in range(6)]
    for data in months:
        data["rate"] = np.round(rng.normal(150, 5, 1000), 2)
    months[5]["rate"] = np.round(rng.normal(90, 20, 1000), 2)
    result = run_months(warehouse, dataset, months)[-1]
    assert _flagged_columns(result).count("rate") <= 5, result.rows[:3]
    assert [c for c in result.causes if c["columns"] == ["rate"] and c["level"] == "partition"], result.causes


def test_a_combination_never_seen_on_a_large_share_of_the_rows_is_one_change(warehouse, dataset):
    """September's group bookings: a distribution channel with a market segment never seen
    together, on 16% of the rows. New pairs turn up now and then in the history, so each row alone
    is not significant: the old detector flagged them all as a cluster, past the flood check."""
    rng = np.random.default_rng(34)
    months = [month(i, rng) for i in range(6)]
    own = {store: [f"{store[0].upper()}{k}" for k in range(1, 5)] for store in ["north", "south", "east", "west",
                                                                               "central"]}
    everything = [r for regions in own.values() for r in regions]
    for data in months:
        data["region"] = np.array([rng.choice(own[s]) for s in data["store"]], dtype=object)
        stray = rng.choice(1000, 10, replace=False)  # now and then a region of another store's
        data["region"][stray] = [rng.choice([r for r in everything if not (s == "north" and r == "S1")])
                                 for s in data["store"][stray]]
    grouped = rng.choice(1000, 160, replace=False)
    months[5]["store"][grouped], months[5]["region"][grouped] = "north", "S1"
    result = run_months(warehouse, dataset, months)[-1]
    assert result.rows_flagged <= 5, [r["explanation"] for r in result.rows[:3]]
    [cause] = [c for c in result.causes if c["signal"] == "combination"]
    assert cause["level"] == "partition" and 160 <= cause["rows"] <= 170, result.causes


def test_relations_wait_for_min_history_partitions(warehouse, dataset):
    """hotel bookings' August, judged on July alone: a rate against earlier bookings learned from
    July flagged 57 of August's rows; September's group bookings came in combinations two months
    had not shown."""
    rng = np.random.default_rng(35)
    months = [month(i, rng) for i in range(4)]
    for data in months:
        data["nights"] = rng.integers(1, 8, 1000)
        data["price"] = np.round(data["nights"] * rng.normal(100, 3, 1000), 2)
    results = run_months(warehouse, dataset, months)
    for result in results[1:3]:
        assert not [f for f in result.features if f["signal"] in ("pair", "conditional", "combination")]
    assert [f for f in results[3].features if f["signal"] == "pair"], results[3].features


def test_a_number_that_moved_in_the_second_month_is_judged_by_the_partition_s_own_spread(warehouse, dataset):
    """hotel bookings' August: the historical rate's level rose 1.16x over July, whose spread was
    narrower. July's shape moved to August's level left 5% of August's rows below it, flagged one
    by one. That a shape holds at a new level takes min_history partitions to show."""
    rng = np.random.default_rng(36)
    months = [month(i, rng) for i in range(2)]
    months[0]["rate"] = np.round(rng.normal(140, 6, 1000), 2)
    months[1]["rate"] = np.round(rng.normal(160, 14, 1000), 2)
    august = run_months(warehouse, dataset, months)[1]
    assert _flagged_columns(august).count("rate") <= 3, august.rows[:3]
    [moved] = [c for c in august.causes if c["columns"] == ["rate"] and c["level"] == "partition"]
    assert "rate's level moved" in moved["description"]


def test_rows_of_a_flood_are_still_flagged_on_their_own_merit_after_the_refit(warehouse, dataset):
    """A sign flipped on 10% of the rows floods: it is reported once, and its rows still stand out
    against the refitted shape. Looking for floods again must not treat that feature's own rows
    as a second flood (which would fit the partition's spread, flips included, and flag none)."""
    rng = np.random.default_rng(37)
    months = [month(i, rng) for i in range(6)]
    flipped = rng.choice(1000, 120, replace=False)
    months[5]["amount"][flipped] *= -1
    result = run_months(warehouse, dataset, months)[-1]
    assert [c for c in result.causes if c["columns"] == ["amount"] and c["level"] == "partition"], result.causes
    found = {r["_source_row"] for r in result.rows if "amount" in _flagged_columns_of(r)}
    assert len(found & set(flipped + 1)) >= 110, len(found)
