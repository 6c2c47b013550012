"""Wide tables through the stages after the load: the anomaly stage's pair search and statistics
stay bounded, and the report keeps full sections for a bounded number of columns."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from quality_assets.anomalies.features import Categories, Feature, sorted_quantiles
from quality_assets.anomalies.pairs import MAX_PAIR_COLUMNS, category_pairs, conditional_numbers
from quality_assets.anomalies.stage import detect_anomalies
from quality_assets.contract import parse_contract
from quality_assets.ingest import load_file
from quality_assets.report.gather import ReportData
from quality_assets.report.render import COLUMN_SECTIONS, render_report
from quality_assets.warehouse import Warehouse


@pytest.mark.parametrize("n", [4097, 10_000, 123_457])
def test_sorted_quantiles_are_numpys_to_the_bit(n):
    rng = np.random.default_rng(n)
    q = (np.arange(4096) + 0.5) / 4096
    for values in (rng.normal(size=n), rng.integers(0, 50, size=n).astype(float), rng.standard_cauchy(n)):
        ordered = np.sort(values)
        assert np.array_equal(sorted_quantiles(ordered, q), np.quantile(ordered, q))


def test_pairs_are_searched_among_a_bounded_number_of_columns():
    # 40 categorical columns that all determine each other, and 40 numbers each fixed by them:
    # every pair qualifies, but only the first MAX_PAIR_COLUMNS columns are searched.
    rows = 2_000
    base = np.arange(rows) % 5
    categorical, features, numeric = {}, {}, {}
    for i in range(40):
        values = pa.array([f"c{v}" for v in base])
        cats = Categories.fit(values)
        categorical[f"k{i}"] = (cats, values)
        features[f"k{i}"] = Feature(f"k{i}", (f"k{i}",), "category", (f"k{i}",), model=cats)
        numeric[f"x{i}"] = base * (i + 1) + np.random.default_rng(i).normal(0, 0.01, rows)
    number_features = {name: Feature(name, (name,), "value", (name,)) for name in numeric}
    allowed = {f"k{i}" for i in range(MAX_PAIR_COLUMNS)} | {f"x{i}" for i in range(MAX_PAIR_COLUMNS)}
    partitions = np.arange(rows) // 500  # four history partitions, in order
    pairs = category_pairs(categorical, features, partitions) + conditional_numbers(categorical, numeric, number_features, features)
    assert pairs and all(set(f.inputs) <= allowed for f in pairs)


@pytest.mark.slow
def test_a_2000_column_table_gets_its_anomaly_stage_with_bounded_pairs(tmp_path):
    # Before: DuckDB died on SIGFPE computing 8,000 column statistics in one query, and every
    # pair of 667 categorical and 1,333 numeric columns was tested.
    columns, rows = 2000, 200
    names = [f"{'ifs'[c % 3]}{c}" for c in range(columns)]
    lines = [",".join(names)] + [",".join(
        str((r * 7 + c) % 1000) if c % 3 == 0 else f"{((r + c) % 997) / 10:.1f}" if c % 3 == 1 else f"t{(r + c) % 50}"
        for c in range(columns)) for r in range(rows)]
    (tmp_path / "w.csv").write_text("\n".join(lines) + "\n")
    dataset = parse_contract("datasets:\n  w:\n    landing: .\n", tmp_path / "quality.yaml").dataset("w")
    warehouse = Warehouse(tmp_path / "wh.duckdb", lock_timeout_s=30, memory_limit="1GB")
    load_file(warehouse, tmp_path / "w.csv", dataset, "w.csv", "run-1")
    result = detect_anomalies(warehouse, dataset, "w.csv", "run-1")
    assert result.rows_scored == rows and len(result.roles) == columns
    paired = [f for f in result.features if f["signal"] in ("pair", "combination", "conditional")]
    assert len(paired) <= 30
    with warehouse.connect() as con:
        assert con.execute("SELECT count(*) FROM qa.column_roles WHERE partition_key = 'w.csv'").fetchone()[0] == columns


def test_the_report_keeps_full_sections_for_a_bounded_number_of_columns():
    columns = [{"name": f"c{i}", "index": i, "semantic_type": {"type": "numeric"},
                "metrics": {"null_share": 0.0, "distinct_count": 7}, "alerts": []} for i in range(COLUMN_SECTIONS + 10)]
    columns[-1]["alerts"] = [{"alert": "constant", "detail": "one value"}]  # a column with an alert keeps its section
    page = render_report(ReportData("wide", "w.csv", "2026-01-01 00:00:00", profile={"columns": columns}))
    assert page.count('<details class="col"') == COLUMN_SECTIONS
    assert f'id="col-{COLUMN_SECTIONS + 9}"' in page and f'id="col-{COLUMN_SECTIONS - 1}"' not in page
    assert "10 more columns" in page and f"<td>c{COLUMN_SECTIONS - 1}</td>" in page
