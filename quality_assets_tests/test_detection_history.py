"""What the detector learns from a dataset's history, on monthly files like the real exports that
broke it: a value seen once is not new again, a column whose files often bring new values is not
flagged for one more, a change on one column leaves the partition in the other columns'
references, a change that persists becomes the new normal, a group whose numbers moved together
is one cause, and floods only alarm once the history is long enough to judge them."""

from __future__ import annotations

import numpy as np
from test_detection_roles import dataset as dataset  # noqa: F401 (a fixture)
from test_detection_roles import month, run_months
from test_detection_roles import warehouse as warehouse  # noqa: F401 (a fixture)

from quality_assets.anomalies import read_anomalies
from quality_assets.anomalies.references import reference_history


def _flagged_values(warehouse, key: str, column: str) -> list:
    with warehouse.connect() as con:
        rows = read_anomalies(con, "sales", key)["rows"]
    return [c["value"] for r in rows for c in r["explanation"]["contributions"] if c["column"] == column]


def test_the_reference_leaves_out_alarmed_partitions_until_a_change_persists():
    history = ["m1", "m2", "m3", "m4", "m5", "m6"]
    assert reference_history(history, {"m3"}) == ["m1", "m2", "m4", "m5", "m6"]
    # two alarms in a row: the change persisted, the reference starts where it began
    assert reference_history(history, {"m5", "m6"}) == ["m5", "m6"]
    # partitions after the new normal began that alarmed again are left out
    assert reference_history(history, {"m2", "m3", "m5"}) == ["m2", "m3", "m4", "m6"]


def test_a_value_flagged_once_is_not_never_seen_again(warehouse, dataset):
    rng = np.random.default_rng(1)
    months = [month(i, rng, 600) for i in range(6)]
    for data in months[4:]:  # a new store opens in month 5 and stays
        data["store"][:40] = "harbour"
    results = run_months(warehouse, dataset, months)
    assert "harbour" in _flagged_values(warehouse, "sales_05.csv", "store")
    assert all("never seen" not in c["description"] or "harbour" not in c["description"]
               for c in results[5].causes), results[5].causes


def test_a_column_whose_files_often_bring_new_values_is_not_flagged_for_one_more(warehouse, dataset):
    rng = np.random.default_rng(2)
    months = [month(i, rng, 1000) for i in range(7)]
    for i, data in enumerate(months):  # every month a new region code joins on 3% of rows
        data["region"] = rng.choice([f"R{k:02d}" for k in range(1, 6)], 1000).astype(object)
        data["region"][:30] = f"R{10 + i:02d}"
    months[6]["region"][30:34] = "r03"  # a code in a shape never seen: lower case
    months[6]["store"][40:44] = "nowhere"  # a store in a column that never brought a new value
    run_months(warehouse, dataset, months)
    regions = _flagged_values(warehouse, "sales_07.csv", "region")
    assert "R16" not in regions, "a new region code is what this column's files bring"
    assert regions.count("r03") == 4
    assert _flagged_values(warehouse, "sales_07.csv", "store").count("nowhere") == 4


def test_a_change_on_one_column_leaves_the_partition_in_the_other_columns_references(warehouse, dataset):
    rng = np.random.default_rng(3)
    months = [month(i, rng, 600) for i in range(6)]
    months[4]["amount"] = months[4]["amount"] * 60  # a unit change in month 5 only
    results = run_months(warehouse, dataset, months)
    assert "amount" in results[4].drifted_columns or any(m.column_name == "amount" for m in results[4].metric_anomalies)
    drift = {d.column_name: d for d in results[5].drift}
    assert "sales_05.csv" in drift["store"].reference
    assert "sales_05.csv" not in drift["amount"].reference
    assert results[5].partition_alarms == 0


def test_a_change_that_persists_becomes_the_new_normal(warehouse, dataset):
    rng = np.random.default_rng(4)
    months = [month(i, rng, 600) for i in range(8)]
    for data in months[4:]:  # prices double from month 5 on, for good
        data["amount"] = data["amount"] * 2
    results = run_months(warehouse, dataset, months)

    def amount_alarms(result):
        return [m.metric for m in result.metric_anomalies if m.column_name == "amount"] + \
            [d for d in result.drifted_columns if d == "amount"]

    assert amount_alarms(results[4]) and amount_alarms(results[5])
    assert [amount_alarms(r) for r in results[6:]] == [[], []]


def test_a_group_whose_numbers_moved_together_is_one_cause_not_flagged_rows(warehouse, dataset):
    rng = np.random.default_rng(5)
    stores = [f"store-{k}" for k in range(10)]
    base = dict(zip(stores, np.geomspace(10, 5000, len(stores)), strict=True))
    months = []
    for i in range(6):
        data = month(i, rng, 1000)
        data["store"] = rng.choice(stores, 1000).astype(object)
        data["amount"] = np.round([base[s] * rng.lognormal(0, 0.1) for s in data["store"]], 2)
        months.append(data)
    last = months[5]
    moved = last["store"] == "store-4"
    last["amount"][moved] = last["amount"][moved] * 1.8  # one store's prices rose together
    odd = np.flatnonzero(last["store"] == "store-2")[:2]
    last["amount"][odd] = base["store-9"]  # two rows with another store's price
    results = run_months(warehouse, dataset, months)
    with warehouse.connect() as con:
        flagged = {r["_source_row"] for r in read_anomalies(con, "sales", "sales_06.csv")["rows"]}
    assert {int(i) + 1 for i in odd} <= flagged
    assert not flagged & {int(i) + 1 for i in np.flatnonzero(moved)}
    [group] = [c for c in results[5].causes if c["level"] == "partition" and "store-4" in c["description"]]
    assert group["rows"] == int(moved.sum()) and group["signal"] == "conditional"


def test_a_flood_is_not_an_alarm_before_the_history_can_judge_it(warehouse, dataset):
    rng = np.random.default_rng(6)
    months = [month(i, rng, 600) for i in range(2)]
    months[1]["store"] = np.array([f"town-{k}" for k in rng.integers(0, 5, 600)], dtype=object)
    results = run_months(warehouse, dataset, months)
    assert any(c["level"] == "partition" and c["columns"][0] == "store" for c in results[1].causes)
    assert not [m for m in results[1].metric_anomalies if m.metric == "rows_departing"]


def test_drift_is_judged_against_how_far_the_pools_own_partitions_differ():
    from quality_assets.anomalies.drift import DriftResult, judge
    from quality_assets.contract.anomalies import AnomalySettings

    def tested(name, psi, pool):
        return DriftResult(name, "chi2", 1.0, 1e-9, None, psi, 0.3, "jensen-shannon", 500, 2500, False, "",
                           pool_psi=pool)

    seasons = [0.15, 0.05, 0.6, 0.1, 0.3]  # storm seasons: good partitions differ a lot
    steady = [0.010, 0.012, 0.009, 0.011, 0.010]
    results = judge([tested("category", 1.3, seasons), tested("wind", 1.3, steady)] +
                    [tested(f"c{i}", 0.01, steady) for i in range(3)], AnomalySettings())
    drifted = {r.column_name: r for r in results if r.drifted}
    assert list(drifted) == ["wind"]
    category = results[0]
    assert category.reference_spread > 1.3 and "ordinary variation" in category.reason


def test_a_known_value_beside_a_partner_it_never_had_is_judged_by_the_historys_rate_of_new_pairs(
        warehouse, dataset):
    """A species always recorded with its own genus (portal_rodents): a common species recorded
    with a rare genus it never had is a pair never seen, however rare that genus; independence
    alone would expect the pair under one time and call it no surprise."""
    rng = np.random.default_rng(7)
    species = np.array([f"S{k}" for k in range(8)])
    months = [month(i, rng) for i in range(6)]
    for data in months:
        data["species"] = rng.choice(species, 1000, p=[0.4, 0.2, 0.15, 0.1, 0.08, 0.05, 0.019, 0.001])
        data["genus"] = np.char.replace(data["species"].astype(str), "S", "G").astype(object)
    last = months[5]
    common = np.flatnonzero(last["species"] == "S0")[:6]
    last["genus"][common] = "G7"  # the rarest genus, about one row a month, beside the commonest species
    result = run_months(warehouse, dataset, months)[-1]
    assert set(common + 1) <= {r["_source_row"] for r in result.rows}
    assert any(c["signal"] == "combination" and c["rows"] >= 6 for c in result.causes)


def test_the_rate_of_new_pairs_leaves_out_the_first_partition_and_new_given_values():
    from quality_assets.anomalies.pairs import pair_novelty

    given = np.array([0, 0, 1, 0, 0, 2, 0, 1])
    pair = np.array([0, 0, 1, 0, 3, 5, 0, 4])  # row 5: given 0 with a new partner; row 6: given 2 is new
    partitions = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    # judged: rows of partitions 1 and 2 whose given value was known before (rows 4, 5, 7, 8);
    # new pairs among them: rows 5 and 8; one pseudo-event each side
    assert pair_novelty(given, pair, partitions) == (2 + 1) / (4 + 1)


def test_a_whole_number_that_is_only_ever_0_or_1_is_a_flag_a_number_can_depend_on(warehouse, dataset):
    """movies' `Short` 0/1 column: a 10-minute feature film is typical of a short, not of a film."""
    rng = np.random.default_rng(8)
    months = [month(i, rng) for i in range(6)]
    for data in months:
        data["short"] = (rng.random(1000) < 0.15).astype(np.int64)
        data["length"] = np.round(np.where(data["short"] == 1, rng.lognormal(2.3, 0.4, 1000),
                                           rng.lognormal(4.6, 0.15, 1000)))
    last = months[5]
    films = np.flatnonzero(last["short"] == 0)[:5]
    last["length"][films] = 10
    results = run_months(warehouse, dataset, months)
    assert results[-1].roles["short"].role == "category" and results[-1].roles["length"].role == "measure"
    flagged = {r["_source_row"]: r for r in results[-1].rows}
    assert set(films + 1) <= set(flagged)
    assert all(any(c["signal"] == "conditional" for c in flagged[int(i) + 1]["explanation"]["contributions"])
               for i in films)
