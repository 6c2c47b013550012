"""One definition of a value's character shape: the row detector's (Arrow), the SQL form, the
profile's top shapes and `suggest`'s dominant shape and regex all agree on the same values."""

from __future__ import annotations

import re
from collections import Counter

import duckdb
import pyarrow as pa

from quality_assets.contract import parse_contract
from quality_assets.profile import profile_partition
from quality_assets.shapes import shape_regex, shape_sql, shapes
from quality_assets.suggest import draft_dataset, profile_table

VALUES = ["SKU-00042", "SKU-00317", "sku-7", "ab  12", "Foo Bar", "x_y.z@q.io", "Müller 3", "tab\there", "",
          "A1b2C3", "(555) 123-4567", "SKU-00042"]


def test_the_sql_form_is_the_arrow_form():
    arrow = pa.array(VALUES)
    with duckdb.connect() as con:
        for coarse in (False, True):
            sql = [r[0] for r in con.execute(f"SELECT {shape_sql('v', coarse)} FROM unnest(?) t(v)", [VALUES]).fetchall()]
            assert sql == shapes(arrow, coarse=coarse).to_pylist()
    assert shapes(pa.array(["SKU-00042", "ab  12", "Zürich", "東京"])).to_pylist() == ["AAA-99999", "aa  99", "Aaaaaa", "aa"]
    assert shapes(pa.array(["SKU-00042", "ab  12", "Zürich", "東京"]), coarse=True).to_pylist() == ["A-9", "a 9", "Aa", "a"]


def test_a_shapes_regex_matches_every_ascii_value_of_that_shape_in_re2_and_python():
    ascii_values = [v for v in VALUES if v.isascii()]
    exact, coarse = shapes(pa.array(ascii_values)).to_pylist(), shapes(pa.array(ascii_values), coarse=True).to_pylist()
    with duckdb.connect() as con:
        for value, shape, loose_shape in zip(ascii_values, exact, coarse, strict=True):
            for pattern in (shape_regex(shape, loose=False), shape_regex(loose_shape, loose=True)):
                assert re.fullmatch(pattern, value), (pattern, value)
                assert con.execute("SELECT regexp_full_match(?, ?)", [value, pattern]).fetchone()[0], (pattern, value)


def test_the_profile_and_suggest_show_the_row_detectors_shapes(harness, tmp_path):
    values = VALUES * 3 + [f"SKU-{n:05d}" for n in range(60)]  # more distinct values than accepted_values takes
    text = "id,code\n" + "".join(f'{n},"{v}"\n' for n, v in enumerate(values) if v and "\t" not in v)
    kept = [v for v in values if v and "\t" not in v]
    contract = "datasets:\n  codes:\n    landing: landing\n    columns: {id: bigint, code: string}\n"
    ds = parse_contract(contract, tmp_path / "quality.yaml").dataset("codes")
    harness.load(harness.write("a.csv", text), ds, partition="a.csv")
    exact = Counter(shapes(pa.array(kept)).to_pylist())
    coarse = Counter(shapes(pa.array(kept), coarse=True).to_pylist())
    with harness.warehouse.connect() as con:
        profile = profile_partition(con, ds, "a.csv")
        rows, profiles = profile_table(con, 'raw."codes"', {"code": "VARCHAR"})
    shown = {s["shape"]: s["share"] for s in profile.column("code").details["shapes"]}
    assert shown == {shape: count / len(kept) for shape, count in coarse.most_common(len(shown))}
    [code] = profiles
    assert code.shape == (exact.most_common(1)[0][0], exact.most_common(1)[0][1] / len(kept))
    assert code.loose_shape == (coarse.most_common(1)[0][0], coarse.most_common(1)[0][1] / len(kept))


def test_suggest_measures_a_shapes_regex_on_letters_beyond_ascii(harness, tmp_path):
    # 'Aa' covers every city, but its regex spells letters in ASCII: it accepts 60% of them
    cities = ["Zürich", "Genève", "Oslo", "Lisbon", "Porto"] * 20
    text = "city\n" + "".join(f"{c}\n" for c in cities) + "".join(f"Town{n}x\n" for n in range(1, 3))
    contract = "datasets:\n  cities:\n    landing: landing\n    columns: {city: string}\n"
    ds = parse_contract(contract, tmp_path / "quality.yaml").dataset("cities")
    harness.load(harness.write("a.csv", text), ds, partition="a.csv")
    with harness.warehouse.connect() as con:
        _, block = draft_dataset(con, 'raw."cities"', {"city": "VARCHAR"})
    assert not [r for r in block["rules"] if "regex" in r]  # under SHAPE_SHARE accepted: no regex proposed
