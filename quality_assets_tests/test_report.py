"""The report stage: the files a partition gets, from a real run of the dataset's job, the
comparison command, safe output folders and atomic writes."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

from quality_assets import cli
from quality_assets.config import settings_from_env
from quality_assets.contract import load_contract, parse_contract
from quality_assets.defs.definitions import build_definitions, dataset_job_name
from quality_assets.defs.raw import files_partitions
from quality_assets.ingest import load_file
from quality_assets.report import (
    AUDIT_FILE,
    METRICS_FILE,
    PROFILE_FILE,
    PROM_FILE,
    REPORT_FILE,
    OutputPathError,
    build_report,
    partition_dir_name,
    partition_key_of_dir,
    partition_output_dir,
    profile_schema,
)
from quality_assets.report.gather import ReportData
from quality_assets.report.outputs import (
    atomic_write,
    csv_text,
    metrics_csv,
    prom_label,
    prometheus_text,
    remove_stale_temps,
)
from quality_assets.report.render import render_report
from quality_assets.warehouse import Warehouse

HOSTILE_COLUMN = "<img src=x onerror=alert(1)>"
SCRIPT_VALUE = "<script>alert(1)</script>"
FORMULA_VALUE = '=HYPERLINK("http://evil","x")'
ODD_FILE = 'orders "4" back\\slash.csv'  # a quote and a backslash: an encoded output folder, escaped labels

CONTRACT = f"""\
datasets:
  orders:
    description: Orders from the shop.
    landing: {{path: landing, glob: "*.csv"}}
    columns:
      id: bigint
      amount: double
      day: date
      '{HOSTILE_COLUMN}': string
      note: string
    primary_key: [id]
    rules:
      - not_null: id
      - range: {{column: amount, min: 0}}
      - accepted_values: {{column: '{HOSTILE_COLUMN}', values: [a, b, c]}}
        severity: warn
"""


def orders_csv(rows: int, seed: int, bad: bool) -> str:
    """Clean orders, or (bad) with a negative amount, a hostile category, a formula note and an unparseable id."""
    import random

    rng = random.Random(seed)
    lines = [f'id,amount,day,"{HOSTILE_COLUMN}",note']
    for i in range(1, rows + 1):
        amount = -5.0 if bad and i == 7 else round(rng.gauss(100, 15), 2)
        category = SCRIPT_VALUE if bad and i == 3 else rng.choice("abc")
        note = f'"{FORMULA_VALUE.replace(chr(34), chr(34) * 2)}"' if bad and i == 5 else f"n{i % 5}"
        lines.append(f"{i},{amount},2026-11-{1 + i % 28:02d},{category},{note}")
    if bad:
        lines.append("oops,1.0,2026-11-01,a,x")
    return "\n".join(lines) + "\n"


def run_file(defs, dataset, instance, key: str):
    """One landed file through the dataset's job, as `quality-assets run` does."""
    instance.add_dynamic_partitions(files_partitions(dataset).name, [key])
    job = defs.resolve_job_def(dataset_job_name(dataset.name))
    return job.execute_in_process(partition_key=key, instance=instance, raise_on_error=False,
                                  run_config={"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}})


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    """Three clean partitions and a bad one, each through the orders job (every stage wired)."""
    root = tmp_path_factory.mktemp("report")
    (root / "quality.yaml").write_text(CONTRACT)
    (root / "landing").mkdir()
    env = {"QA_CONTRACTS": str(root / "quality.yaml"), "QA_DUCKDB_PATH": str(root / "wh.duckdb"),
           "QA_OUTPUT_DIR": str(root / "output")}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        settings = settings_from_env()
        contract = load_contract(settings.contracts)
        defs = build_definitions(contract, settings)
        dataset = contract.dataset("orders")
        instance = dg.DagsterInstance.ephemeral()
        results = {}
        for n in range(3):
            name = f"orders_{n}.csv"
            (root / "landing" / name).write_text(orders_csv(300, n, bad=False))
            results[name] = run_file(defs, dataset, instance, name)
        (root / "landing" / ODD_FILE).write_text(orders_csv(300, 9, bad=True))
        results[ODD_FILE] = run_file(defs, dataset, instance, ODD_FILE)
        yield root, settings, results
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def report_materialization(result) -> dict:
    [event] = [e for e in result.get_asset_materialization_events()
               if e.event_specific_data.materialization.asset_key == dg.AssetKey(["orders", "report"])]
    return event.event_specific_data.materialization.metadata


def test_report_runs_on_a_blocked_partition_and_writes_every_file(pipeline):
    root, settings, results = pipeline
    result = results[ODD_FILE]
    steps = {e.step_key for e in result.all_events if e.is_step_success}
    assert "orders__report" in steps  # the failed error rule did not stop the report
    assert "orders__published" not in steps
    folder = partition_output_dir(settings.output_dir, "orders", ODD_FILE)
    assert folder.parent == settings.output_dir / "orders" and folder.name == partition_dir_name(ODD_FILE)
    assert partition_key_of_dir(folder.name) == ODD_FILE
    assert sorted(p.name for p in folder.iterdir()) == sorted([REPORT_FILE, PROFILE_FILE, METRICS_FILE, AUDIT_FILE, PROM_FILE])

    meta = report_materialization(result)
    assert meta["verdict"].value == "fail"
    assert meta["report_path"].value == str(folder / REPORT_FILE)
    summary = meta["summary"].value
    assert summary.startswith("**FAIL**") and "range\\_amount" in summary and "E\\_NUMERIC\\_FORMAT" in summary
    assert "<img" not in summary and "<script" not in summary
    assert meta["rows_loaded"].value == 300 and meta["rows_quarantined"].value == 1
    assert meta["checks_failed_error"].value == 1 and meta["checks_failed_warn"].value == 1
    assert meta["columns"].value == 5
    assert 0 < meta["report_bytes"].value == (folder / REPORT_FILE).stat().st_size

    clean = report_materialization(results["orders_1.csv"])
    assert clean["checks_failed_error"].value == 0 and clean["rows_quarantined"].value == 0


def test_report_html_puts_failures_first_and_escapes_data(pipeline):
    root, settings, _ = pipeline
    page = (partition_output_dir(settings.output_dir, "orders", ODD_FILE) / REPORT_FILE).read_text()
    order = [page.index(f'id="{section}"') for section in ("verdict", "failures", "overview", "columns", "correlations")]
    assert order == sorted(order)
    assert "range_amount" in page[order[1]:order[2]] and "E_NUMERIC_FORMAT" in page[order[1]:order[2]]
    # hostile names and values appear only escaped; the one script is the page's own
    assert HOSTILE_COLUMN not in page and SCRIPT_VALUE not in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert page.count("<script") == 1
    assert "http://" not in page.replace("http://evil", "") and "https://" not in page
    # a failing-row sample names the row that broke the rule
    assert ">7<" in page[page.index("range_amount: failing rows"):]


def test_report_shows_profile_trend_and_anomaly_sections(pipeline):
    root, settings, _ = pipeline
    page = (partition_output_dir(settings.output_dir, "orders", ODD_FILE) / REPORT_FILE).read_text()
    assert page.count('<details class="col"') == 5
    assert "Histogram" in page and "Top values" in page and "Patterns" in page
    assert "Trend over past partitions" in page  # three earlier partitions were profiled
    assert "No profile for this partition" not in page
    assert "the anomalies stage has not run" not in page


def test_profile_json_validates_against_the_shipped_schema(pipeline):
    root, settings, _ = pipeline
    schema = profile_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    document = json.loads((partition_output_dir(settings.output_dir, "orders", ODD_FILE) / PROFILE_FILE).read_text())
    jsonschema.validate(document, schema)
    assert document["profiled"] is True and document["partition_key"] == ODD_FILE
    assert [c["name"] for c in document["columns"]] == ["id", "amount", "day", HOSTILE_COLUMN, "note"]
    assert document["metrics"]["row_count"] == 300
    broken = {**document, "columns": [{"name": "x", "index": -1, "metrics": {}}]}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_metrics_csv_escapes_formulas_and_keeps_numbers(pipeline):
    root, settings, _ = pipeline
    text = (partition_output_dir(settings.output_dir, "orders", ODD_FILE) / METRICS_FILE).read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows and {r["metric"] for r in rows} >= {"row_count", "null_share", "mean", "top_values"}
    for row in rows:
        for name in ("dataset", "partition_key", "run_id", "column", "metric", "detail"):
            assert not row[name].startswith(("=", "+", "-", "@", "\t", "\r")), row
    top_notes = next(r for r in rows if r["column"] == "note" and r["metric"] == "top_values")
    assert top_notes["detail"].startswith("[") and FORMULA_VALUE in [v["value"] for v in json.loads(top_notes["detail"])]
    # a formula as a column name (and a dataset-level structure) is escaped too
    data = ReportData("orders", "+p.csv", "2026-11-01T00:00:00")
    data.profile = {"run_id": "@run", "metrics": {"row_count": 3.0}, "alerts": [{"alert": "=x"}],
                    "columns": [{"name": "=cmd|' /C calc'!A0", "index": 0, "metrics": {"min": -3.0}, "top_values": None}]}
    crafted = list(csv.reader(io.StringIO(metrics_csv(data))))
    assert ["orders", "'+p.csv", "'@run", "'=cmd|' /C calc'!A0", "0", "min", "-3.0", ""] in crafted
    assert ["orders", "'+p.csv", "'@run", "", "", "row_count", "3.0", ""] in crafted
    amount_min = next(r for r in rows if r["column"] == "amount" and r["metric"] == "min")
    assert float(amount_min["value"]) == -5.0  # a number, not escaped
    assert csv_text("=1+1") == "'=1+1" and csv_text("@SUM(A1)") == "'@SUM(A1)" and csv_text("\tx") == "'\tx"
    assert csv_text("-2") == "'-2" and csv_text("plain") == "plain"


def test_audit_log_matches_the_file(pipeline):
    root, settings, _ = pipeline
    audit = json.loads((partition_output_dir(settings.output_dir, "orders", ODD_FILE) / AUDIT_FILE).read_text())
    data = (root / "landing" / ODD_FILE).read_bytes()
    assert audit["sha256"] == hashlib.sha256(data).hexdigest() and audit["bytes"] == len(data)
    assert audit["rows_read"] == 301 and audit["rows_loaded"] == 300 and audit["rows_quarantined"] == 1
    assert audit["column_count"] == 5 and audit["delimiter"] == "," and audit["encoding"] == "utf-8"
    assert audit["utf8_valid"] is True and audit["duration_s"] > 0
    assert audit["error_codes"] == {"E_NUMERIC_FORMAT": 1} == audit["quarantined_by_code"]
    assert audit["partition_key"] == ODD_FILE and audit["status"] == "loaded_with_errors"


def test_prometheus_file_parses_with_escaped_labels(pipeline):
    root, settings, _ = pipeline
    text = (partition_output_dir(settings.output_dir, "orders", ODD_FILE) / PROM_FILE).read_text()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted((k, v) for k, v in sample.labels.items() if k not in ("dataset", "partition"))))] = sample
            assert sample.labels["partition"] == ODD_FILE  # the quote and backslash came back intact
    assert samples[("qa_rows_read", ())].value == 301
    assert samples[("qa_rows_quarantined", (("code", "E_NUMERIC_FORMAT"),))].value == 1
    assert samples[("qa_checks_failed", (("severity", "error"),))].value == 1
    assert samples[("qa_checks_failed", (("severity", "warn"),))].value == 1
    assert ("qa_row_anomalies", ()) in samples and ("qa_drifted_columns", ()) in samples
    assert samples[("qa_load_duration_seconds", ())].value > 0
    assert prom_label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


def test_report_without_later_stages_says_so(tmp_path):
    dataset = parse_contract("datasets:\n  solo:\n    landing: in\n", tmp_path / "quality.yaml").dataset("solo")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.csv").write_text("x,y\n1,2\n3,4\n")
    warehouse = Warehouse(tmp_path / "wh.duckdb", lock_timeout_s=30)
    load_file(warehouse, tmp_path / "in" / "a.csv", dataset, "a.csv", "run-1")
    result = build_report(warehouse, "solo", "a.csv", tmp_path / "out")
    page = result.report_path.read_text()
    assert result.data.verdict.level == "pass"
    assert "No rule results for this partition" in page
    assert "No profile for this partition" in page and "<code>x</code>, <code>y</code>" in page
    assert page.count("the anomalies stage has not run on it") == 3
    document = json.loads((result.folder / PROFILE_FILE).read_text())
    jsonschema.validate(document, profile_schema())
    assert document["profiled"] is False and document["columns"] == []
    assert (result.folder / METRICS_FILE).read_text().strip() == "dataset,partition_key,run_id,column,column_index,metric,value,detail"

    missing = build_report(warehouse, "solo", "never.csv", tmp_path / "out")
    assert missing.data.verdict.level == "no_data" and "No load recorded" in missing.report_path.read_text()


@pytest.mark.parametrize("key", ["orders_1.csv", "2026/11/a b.csv", "2026-11-01", "../escape", "..", "a/../../b",
                                 "/abs/x.csv", "a//b", "50%.csv", "back\\slash", "tab\tkey", "dot/./x", "é/ü.csv",
                                 "x" * 400, "y/" * 150 + "z"])
def test_partition_folders_stay_inside_and_map_back(tmp_path, key):
    folder = partition_output_dir(tmp_path, "orders", key)
    root = (tmp_path / "orders").resolve()
    assert root in folder.parents
    name = folder.relative_to(root).as_posix()
    assert name == partition_dir_name(key)
    if partition_key_of_dir(name) is not None:
        assert partition_key_of_dir(name) == key
    else:
        assert len(key) > 150  # only names too long for a folder are shortened (the key is in every file)
    if key in ("orders_1.csv", "2026/11/a b.csv", "2026-11-01", "é/ü.csv"):
        assert name == key  # plain keys keep the layout retention and alerts expect
    assert partition_dir_name(key) != partition_dir_name(key + "2")


def test_output_path_refuses_bad_dataset_names(tmp_path):
    for name in ("../x", "Orders", "", "a/b"):
        with pytest.raises(OutputPathError):
            partition_output_dir(tmp_path, name, "k")
    with pytest.raises(OutputPathError):
        partition_dir_name("")


CRASHING_WRITER = """
import os, sys
from pathlib import Path
import quality_assets.report.outputs as outputs
target = Path(sys.argv[1])
real_fsync = os.fsync
def crash(fd):
    os.write(fd, b"...half of the new report")
    os._exit(3)  # the process dies between writing the temporary file and renaming it
os.fsync = crash
outputs.atomic_write(target, "<html>new report</html>" * 1000)
"""


def test_a_crash_mid_write_leaves_the_old_report(tmp_path):
    target = tmp_path / "out" / REPORT_FILE
    atomic_write(target, "<html>old report</html>")
    done = subprocess.run([sys.executable, "-c", CRASHING_WRITER, str(target)], capture_output=True, text=True)
    assert done.returncode == 3, done.stderr
    assert target.read_text() == "<html>old report</html>"
    leftovers = [p for p in target.parent.iterdir() if p != target]
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".qa-tmp-report.html.")
    assert remove_stale_temps(target.parent, older_than_s=0) == leftovers
    atomic_write(target, "<html>new</html>")
    assert [p.name for p in target.parent.iterdir()] == [REPORT_FILE] and target.read_text() == "<html>new</html>"


def test_failed_write_raises_and_keeps_old_file(tmp_path, monkeypatch):
    target = tmp_path / PROFILE_FILE
    atomic_write(target, "{}")

    def refuse(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, '{"new": 1}')
    assert target.read_text() == "{}" and [p.name for p in tmp_path.iterdir()] == [PROFILE_FILE]


def synthetic_profile(columns: int, rows: int = 10_000_000) -> dict:
    cols = []
    for i in range(columns):
        cols.append({
            "name": f"column_{i}", "index": i,
            "metrics": {m: float(i + j) for j, m in enumerate(("row_count", "null_count", "null_share", "distinct_count",
                                                                 "min", "max", "mean", "std", "p1", "p5", "p25", "p50",
                                                                 "p75", "p95", "p99", "iqr", "mad", "skewness"))},
            "semantic_type": {"type": "float", "storage_type": "DOUBLE"}, "distinct_method": "hll",
            "histogram": {"edges": [float(e) for e in range(21)], "counts": [rows // 20] * 20},
            "top_values": [{"value": f"value {v} " + "x" * 60, "count": 1000 - v} for v in range(10)],
            "shapes": [{"shape": "9.9", "share": 0.9}, {"shape": "99.9", "share": 0.1}],
            "normality": {"test": "dagostino", "statistic": 3.2, "p_value": 0.2, "sample": 5000},
            "monotonicity": None, "alerts": [{"alert": "skewed", "detail": "skewness 2.1"}],
        })
    names = [c["name"] for c in cols[:30]]
    return {"dataset": "wide", "partition_key": "p", "run_id": "r", "profiled_at": "2026-11-01T00:00:00",
            "metrics": {"row_count": rows, "column_count": columns}, "alerts": [],
            "correlations": {"pearson": {a: {b: 0.5 for b in names} for a in names}, "columns_capped_at": 30},
            "columns": cols}


def test_wide_partition_report_stays_small(tmp_path):
    data = ReportData("wide", "p", "2026-11-01T00:00:00", load={"run_id": "r", "status": "loaded", "rows_loaded": 10**7,
                                                                 "columns": [], "error_codes": {}})
    data.profile = synthetic_profile(200)
    data.history = {(f"column_{i}", m): [(f"p{k}", float(k)) for k in range(30)] for i in range(200)
                    for m in ("null_share", "mean", "p50")}
    page = render_report(data)
    assert len(page.encode()) < 5 * 1024 * 1024
    assert page.count('<details class="col"') == 200 and "open" not in page.split('<details class="col"')[1][:60]


def test_prometheus_text_for_a_partition_never_loaded():
    data = ReportData("orders", 'we"ird', "2026-11-01T00:00:00")
    families = {f.name: f for f in text_string_to_metric_families(prometheus_text(data))}
    assert families["qa_verdict"].samples[0].labels["verdict"] == "no_data"
    assert families["qa_verdict"].samples[0].labels["partition"] == 'we"ird'


def test_compare_partitions_and_files_from_the_command_line(pipeline, capsys):
    root, settings, _ = pipeline
    output = root / "cmp.html"
    status = cli.main(["compare", "orders_0.csv", ODD_FILE, "--output", str(output), "--json"])
    out = capsys.readouterr().out
    assert status == 0
    summary = json.loads(out[out.index("{"):])
    assert summary["added"] == summary["removed"] == 0 and summary["notable_changes"] >= 1
    page = output.read_text()
    for section in ("sides", "schema", "changes", "columns", "drift"):
        assert f'id="{section}"' in page
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and HOSTILE_COLUMN not in page

    landing = root / "landing"
    (root / "b_widened.csv").write_text(
        "id,amount,day,extra\n" + "".join(f"{i},{i * 1000.0},2026-11-02,e{i}\n" for i in range(1, 101)))
    status = cli.main(["compare", str(landing / "orders_0.csv"), str(root / "b_widened.csv"), "--dataset", "orders",
                       "--output", str(root / "files.html")])
    out = capsys.readouterr().out
    assert status == 0 and "1 added, 2 removed" in out
    page = (root / "files.html").read_text()
    assert "Added in B" in page and "extra" in page and "Removed in B" in page and "note" in page
    assert "amount" in page[page.index('id="changes"'):]

    assert cli.main(["compare", "orders_0.csv", "nope.csv"]) == 2
    assert "no dataset has both partitions" in capsys.readouterr().err


CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium driven by Playwright (no browser download). CI installs it
    (.ci/run); there a missing browser fails the suite instead of skipping it."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install -y chromium (.ci/run does)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield browser
        browser.close()


def open_page(browser, path: Path):
    """Load a file, recording console errors, page errors, requests and dialogs."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    seen: dict[str, list] = {"errors": [], "requests": [], "dialogs": []}
    page.on("console", lambda m: seen["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("request", lambda r: seen["requests"].append(r.url))
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    page.goto(path.as_uri(), wait_until="load")
    return page, seen


@pytest.mark.slow
def test_report_in_chromium_loads_offline_with_every_section(pipeline, browser):
    root, settings, _ = pipeline
    path = partition_output_dir(settings.output_dir, "orders", ODD_FILE) / REPORT_FILE
    page, seen = open_page(browser, path)
    for section in ("verdict", "failures", "failed-checks", "quarantine", "anomalous-rows", "drift", "metric-anomalies",
                    "overview", "file-audit", "columns", "correlations"):
        assert page.locator(f"#{section}").count() == 1, section
    assert "Fail" in page.locator("#verdict h2").inner_text()
    columns = page.locator("details.col")
    assert columns.count() == 5 and page.locator("details.col[open]").count() == 0
    page.click("#expand-all")
    assert page.locator("details.col[open]").count() == 5
    assert page.locator("details.col svg").count() >= 5  # histograms and trends drawn
    page.fill("#column-filter", "amo")
    assert [columns.nth(i).is_visible() for i in range(5)] == [False, True, False, False, False]
    page.fill("#column-filter", "")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000
    assert seen["errors"] == [] and seen["dialogs"] == []
    assert seen["requests"] == [path.as_uri()]  # the page itself, nothing else
    page.close()


@pytest.mark.slow
@pytest.mark.parametrize("strip_csp", [False, True], ids=["as-written", "without-csp"])
def test_hostile_names_and_values_render_as_text(pipeline, browser, tmp_path, strip_csp):
    """Escaping alone keeps data inert: also checked with the page's Content-Security-Policy removed."""
    root, settings, _ = pipeline
    path = partition_output_dir(settings.output_dir, "orders", ODD_FILE) / REPORT_FILE
    if strip_csp:
        text = path.read_text()
        start = text.index('<meta http-equiv="Content-Security-Policy"')
        text = text[:start] + text[text.index(">", start) + 1:]
        path = tmp_path / "no-csp.html"
        path.write_text(text)
    page, seen = open_page(browser, path)
    page.click("#expand-all")
    body = page.evaluate("document.body.textContent")
    assert HOSTILE_COLUMN in body and SCRIPT_VALUE in body
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    assert page.evaluate("document.scripts.length") == 1
    assert page.locator("details.col summary b", has_text=HOSTILE_COLUMN).count() == 1
    page.wait_for_timeout(200)
    assert seen["dialogs"] == [] and seen["errors"] == []
    assert all(url == path.as_uri() for url in seen["requests"])
    page.close()


@pytest.mark.slow
def test_comparison_in_chromium(pipeline, browser):
    root, settings, _ = pipeline
    output = root / "cmp-browser.html"
    assert cli.main(["compare", "orders_1.csv", ODD_FILE, "--output", str(output)]) == 0
    page, seen = open_page(browser, output)
    for section in ("sides", "schema", "changes", "columns", "drift"):
        assert page.locator(f"#{section}").count() == 1
    assert HOSTILE_COLUMN in page.evaluate("document.body.textContent")
    page.screenshot(path=str(ARTIFACTS / "compare.png"), full_page=True)
    assert seen["errors"] == [] and seen["dialogs"] == [] and seen["requests"] == [output.as_uri()]
    page.close()
