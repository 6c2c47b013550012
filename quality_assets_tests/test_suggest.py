"""`quality-assets suggest`: a draft contract that validates and passes on the data it came from,
with confident rules as errors and guesses as warnings."""

import datetime as dt
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
import yaml

from quality_assets.contract import load_contract, parse_contract
from quality_assets.contract.document import dataset_name_for
from quality_assets.rules import evaluate_partition
from quality_assets.suggest import (
    SURE_ROWS,
    ColumnProfile,
    _range_bounds,
    shape_regex,
    suggest_for_dataset,
    suggest_for_file,
)

SCRIPT = shutil.which("quality-assets") or str(Path(sys.executable).with_name("quality-assets"))


def orders_csv(rows: int, seed: int = 3) -> str:
    rng = random.Random(seed)
    lines = ['order_id,customer,amount,currency,sku,email,day,note,"we""ird;col",prénom']
    for i in range(1, rows + 1):
        lines.append(",".join([
            str(i), str(rng.randint(1, 300)), f"{rng.lognormvariate(3, 1):.2f}", rng.choice(["EUR", "USD", "GBP"]),
            f"SKU-{i % 997:05d}", f"user.{i}@example.com", f"2026-11-{1 + i % 20:02d}",
            "" if i % 7 == 0 else f"note {i}", rng.choice(["x;y", "a'b", "🙂"]), rng.choice(["Zoë", "Ann", "Émile"]),
        ]))
    return "\n".join(lines) + "\n"


def rules_of(text: str, tmp_path: Path, name: str) -> dict:
    document = yaml.safe_load(text)
    return document["datasets"][name]


def run_draft(harness, tmp_path: Path, text: str, path: Path, name: str):
    """Validate the draft, load the file with it and evaluate every rule."""
    contract = parse_contract(text, tmp_path / "quality.yaml")  # raises if the draft does not validate
    ds = contract.dataset(name)
    loaded = harness.load(path, ds)
    assert loaded.audit.rows_quarantined == 0, loaded.quarantine[:3]
    with harness.warehouse.connect() as con:
        return ds, evaluate_partition(con, ds, path.name, "run-1")


@pytest.mark.parametrize("rows", [40, SURE_ROWS])
def test_a_drafted_contract_validates_and_passes_on_its_own_file(harness, tmp_path, rows):
    path = harness.write("orders.csv", orders_csv(rows))
    text, counted = suggest_for_file(path, base=tmp_path)
    assert counted == rows
    ds, evaluation = run_draft(harness, tmp_path, text, path, "orders")
    assert evaluation.rows == rows
    assert not evaluation.failed, [(r.rule.name, r.message, r.error) for r in evaluation.failed]
    spec = rules_of(text, tmp_path, "orders")
    assert spec["columns"] == {"order_id": "bigint", "customer": "bigint", "amount": "double", "currency": "string",
                               "sku": "string", "email": "string", "day": "date", "note": "string",
                               'we"ird;col': "string", "prénom": "string"}
    assert spec["primary_key"] == ["order_id"]
    kinds = {(r.kind, r.params.get("column") or tuple(r.params.get("columns") or ())): r for r in ds.rules}
    assert ("not_null", "note") not in kinds  # it has nulls
    assert kinds[("accepted_values", "currency")].params["values"] == ["EUR", "GBP", "USD"]
    assert kinds[("accepted_values", 'we"ird;col')].params["values"] == ["a'b", "x;y", "🙂"]
    assert kinds[("regex", "sku")].params["pattern"] == "^[A-Z]{3}-[0-9]{5}$"
    email = kinds[("regex", "email")]  # one exact shape covers >= 90% of 1,000 rows; 40 rows need the loose one
    assert email.params["pattern"] == (r"^[a-z]{4}\.[0-9]{3}@[a-z]{7}\.[a-z]{3}$" if rows >= SURE_ROWS
                                       else r"^[a-z]+\.[0-9]+@[a-z]+\.[a-z]+$")
    assert kinds[("range", "amount")].params["min"] == 0
    assert kinds[("range", "day")].params == {"column": "day", "min": dt.date(2026, 10, 30)}
    sure = rows >= SURE_ROWS
    assert kinds[("unique", ("order_id",))].severity == ("error" if sure else "warn")
    assert kinds[("not_null", "order_id")].severity == ("error" if sure else "warn")
    guesses = [r for r in ds.rules if r.kind in ("range", "accepted_values", "regex", "schema")]
    assert guesses and all(r.severity == "warn" for r in guesses)
    assert text.startswith("# Drafted by `quality-assets suggest orders.csv`")


def test_a_dominant_shape_with_exceptions_becomes_a_tolerant_regex(harness, tmp_path):
    codes = [f"AB-{n:03d}" for n in range(95)] + ["odd one", "x", "??", "AB-1", "zz-99"]
    path = harness.write("codes.csv", "code\n" + "\n".join(codes) + "\n")
    text, _ = suggest_for_file(path, base=tmp_path)
    ds, evaluation = run_draft(harness, tmp_path, text, path, "codes")
    [regex] = [r for r in ds.rules if r.kind == "regex"]
    assert regex.params["pattern"] == "^[A-Z]{2}-[0-9]{3}$" and regex.mostly == 0.95 and regex.severity == "warn"
    assert not evaluation.failed


def test_json_lines_and_odd_names_round_trip(harness, tmp_path):
    lines = [f'{{"id": "ev-{n:04d}", "ts": "2026-11-03T08:{n % 60:02d}:00", "value": {n / 3:.3f}, "ok": {str(n % 2 == 0).lower()}}}'
             for n in range(300)]
    path = harness.write("2026 events (v2).jsonl", "\n".join(lines) + "\n")
    assert dataset_name_for(path) == "ds_2026_events_v2"
    text, _ = suggest_for_file(path, base=tmp_path)
    ds, evaluation = run_draft(harness, tmp_path, text, path, "ds_2026_events_v2")
    assert not evaluation.failed, [(r.rule.name, r.message) for r in evaluation.failed]
    columns = rules_of(text, tmp_path, "ds_2026_events_v2")["columns"]
    assert columns["id"] == "string" and columns["value"] == "double" and columns["ok"] == "boolean"
    assert columns["ts"] in ("date", "timestamp")  # as the raw stage infers it


def test_a_loaded_dataset_is_drafted_from_the_warehouse_keeping_its_settings(harness, tmp_path):
    contract = tmp_path / "quality.yaml"
    contract.write_text(
        "datasets:\n  orders:\n    landing: {path: landing, glob: '*.csv'}\n    csv: {delimiter: ';'}\n"
        "    columns:\n      order_id: {type: bigint, aliases: [OrderID]}\n")
    ds = load_contract(contract).dataset("orders")
    for n in (1, 2):
        harness.load(harness.write(f"o{n}.csv", "OrderID;amount\n" + "".join(f"{n}{i};{i}.5\n" for i in range(30))), ds)
    text, rows = suggest_for_dataset(ds, harness.warehouse, base=tmp_path)
    assert rows == 60
    spec = rules_of(text, tmp_path, "orders")
    assert spec["landing"] == {"path": "landing", "glob": "*.csv"} and spec["csv"] == {"delimiter": ";"}
    assert spec["columns"]["order_id"] == {"type": "bigint", "aliases": ["OrderID"]}
    (tmp_path / "draft.yaml").write_text(text)
    drafted = load_contract(tmp_path / "draft.yaml").dataset("orders")
    with harness.warehouse.connect() as con:
        for n in (1, 2):
            assert not evaluate_partition(con, drafted, f"o{n}.csv", "run-2").failed


def test_shapes_become_regexes_that_python_and_duckdb_read_alike():
    assert shape_regex("AAA-99999", loose=False) == "^[A-Z]{3}-[0-9]{5}$"
    assert shape_regex("a.9@a.a", loose=True) == r"^[a-z]+\.[0-9]+@[a-z]+\.[a-z]+$"
    tricky = "9(a)+[A]{9}|$^\\ ....é"
    pattern = shape_regex(tricky, loose=False)
    sample = "1(b)+[C]{2}|$^\\ ....é"
    assert re.search(pattern, sample)
    assert duckdb.execute("SELECT regexp_matches(?, ?)", [sample, pattern]).fetchone()[0]  # RE2 agrees
    assert not re.search(pattern, "1(b)+[C]{2}|$^\\ ...xé")


def test_ranges_get_a_margin_and_contain_the_data():
    def bounds(low, high, type_="DOUBLE"):
        return _range_bounds(ColumnProfile("c", type_, 10, 0, 10, low, high))

    assert bounds(3.2, 97.4) == {"min": 0, "max": 110}  # 97.4 + 10% of the span, rounded up to 2 digits
    assert bounds(-12.5, 40.0) == {"min": -18, "max": 46}
    assert bounds(5, 5, "BIGINT") == {"min": 0, "max": 6}
    low = bounds(0.0012, 0.0031)
    assert low["min"] == 0 and 0.0031 <= low["max"] <= 0.0034
    assert bounds(dt.date(2026, 1, 1), dt.date(2026, 1, 31), "DATE") == {"min": dt.date(2025, 12, 29)}  # no max: dates move on


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "DAGSTER_HOME"))}
    return subprocess.run([SCRIPT, *args], cwd=cwd, env=environ, capture_output=True, text=True, timeout=300)


def test_suggest_validate_run_from_the_command_line(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "orders.csv").write_text(orders_csv(SURE_ROWS), encoding="utf-8")
    drafted = run_cli("suggest", "landing/orders.csv", "--output", "quality.yaml", cwd=tmp_path)
    assert drafted.returncode == 0, drafted.stderr
    assert f"drafted from {SURE_ROWS:,} rows" in drafted.stderr
    assert run_cli("validate", cwd=tmp_path).returncode == 0
    ran = run_cli("run", cwd=tmp_path)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    [line] = [line for line in ran.stdout.splitlines() if line.startswith("orders ")]  # its row in the table
    assert line.endswith(", published") and " - " in line  # no failed check
    assert run_cli("suggest", "nothing-here", cwd=tmp_path).returncode == 2


def test_roles_shape_the_draft_quartile_ranges_calendar_parts_no_range_on_keys_one_value_per_period(harness, tmp_path):
    rng = random.Random(5)
    lines = ["row_no,period,month,amount,store"]
    for i in range(1, 1201):
        amount = 1_000_000.0 if i == 600 else round(rng.lognormvariate(3, 0.5), 2)  # one wild value
        lines.append(f"{1000 + i},7,{1 + i % 12},{amount},{rng.choice(['n', 's', 'e'])}")
    path = harness.write("sales_07.csv", "\n".join(lines) + "\n")
    text = suggest_for_file(path, name="sales")[0]
    spec = rules_of(text, tmp_path, "sales")
    ranges = {r["range"]["column"]: r for r in spec["rules"] if "range" in r}
    assert ranges["month"]["range"] == {"column": "month", "min": 1, "max": 12}  # not 0..14
    amount = ranges["amount"]
    assert 50 < amount["range"]["max"] < 500 and amount["mostly"] >= 0.99  # not 1,100,000
    assert "row_no" not in ranges and "period" not in ranges  # a key and a period get no range
    [period] = [r for r in spec["rules"] if "assert" in r]
    assert period["assert"] == 'count(DISTINCT "period") <= 1' and period["severity"] == "warn"
    assert not any(r.get("accepted_values", {}).get("column") == "period" for r in spec["rules"])
    _, evaluation = run_draft(harness, tmp_path, text, path, "sales")
    assert not evaluation.failed, [(r.rule.name, r.message, r.error) for r in evaluation.failed]


def test_a_dataset_draft_finds_its_period_columns_across_partitions(harness, tmp_path):
    contract = tmp_path / "quality.yaml"
    contract.write_text("datasets:\n  sales:\n    landing: {path: landing}\n")
    ds = load_contract(contract).dataset("sales")
    for month in (1, 2, 3):
        harness.load(harness.write(f"s{month}.csv", "batch,qty\n" + "".join(f"B{month},{i}\n" for i in range(20))), ds)
    spec = rules_of(suggest_for_dataset(ds, harness.warehouse, base=tmp_path)[0], tmp_path, "sales")
    assert {"assert": 'count(DISTINCT "batch") <= 1', "description": "batch holds one value per partition (its period)",
            "severity": "warn"} in spec["rules"]
    assert not any(r.get("accepted_values", {}).get("column") == "batch" for r in spec["rules"])
