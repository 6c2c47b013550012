"""Whole numbers that are labels, and pairs of categories where one has many values: the police
stops' precinct (1-5) that never covers a neighbourhood (87 of them) was missed, because the
precinct was judged as a number and the neighbourhoods were past the pair search's 50 values."""

from __future__ import annotations

import numpy as np
from test_detection_roles import dataset as dataset  # noqa: F401 (a fixture)
from test_detection_roles import month, run_months
from test_detection_roles import warehouse as warehouse  # noqa: F401 (a fixture)

from quality_assets.anomalies.roles import names_a_code


def test_a_name_calls_whole_numbers_a_label_by_its_last_word():
    assert names_a_code("policePrecinct") and names_a_code("zone_no") and names_a_code("DISTRICT")
    assert not names_a_code("precinct_population") and not names_a_code("stays_in_week_nights")
    assert not names_a_code("adults") and not names_a_code("wind")


def test_a_precinct_never_seen_with_its_neighbourhood_is_flagged(warehouse, dataset):
    rng = np.random.default_rng(41)
    neighbourhoods = [f"hood-{k:02d}" for k in range(80)]
    precinct_of = {h: 1 + k % 5 for k, h in enumerate(neighbourhoods)}
    months = [month(i, rng, 2000) for i in range(6)]
    for data in months:
        data["neighborhood"] = rng.choice(neighbourhoods, 2000).astype(object)
        data["policePrecinct"] = np.array([precinct_of[h] for h in data["neighborhood"]])
    wrong = [100, 700, 1300]
    for row in wrong:
        months[5]["policePrecinct"][row] = precinct_of[months[5]["neighborhood"][row]] % 5 + 1
    result = run_months(warehouse, dataset, months)[-1]
    assert result.roles["policePrecinct"].role == "category"
    assert result.roles["policePrecinct"].reason == "whole numbers the name calls a label"
    flagged = {r["_source_row"] for r in result.rows
               if any(c["signal"] == "combination" for c in r["explanation"]["contributions"])}
    assert flagged == {row + 1 for row in wrong}, result.rows[:3]


def test_a_many_valued_column_pairs_only_where_it_nearly_determines_the_other(warehouse, dataset):
    """Hotel bookings' companies come mostly with one kind of guest but not only: paired with
    `is_repeated_guest`, a guest of a company seen a few dozen times was "rare together" on
    clean months. Knowing the company leaves too many errors in guessing the guest's kind."""
    rng = np.random.default_rng(42)
    agents = [f"agent-{k:03d}" for k in range(60)]
    rate = {a: 0.03 if k % 2 else 0.85 for k, a in enumerate(agents)}
    months = [month(i, rng, 2000) for i in range(6)]
    for data in months:
        data["agent"] = rng.choice(agents, 2000).astype(object)
        data["repeated"] = (rng.random(2000) < np.array([rate[a] for a in data["agent"]])).astype(np.int64)
    result = run_months(warehouse, dataset, months)[-1]
    assert not [f for f in result.features if f["signal"] == "combination" and "agent" in f["columns"]]
    assert result.rows_flagged <= 3, result.rows[:3]
