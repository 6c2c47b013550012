"""Alerts: the structured alert, the webhook (timeout, retries) and the two alert sensors."""

import http.server
import json
import threading
import time
from pathlib import Path

import dagster as dg
import pytest

from quality_assets.alerts import Alert, deliver, read_alerts, report_path, send_webhook
from quality_assets.config import settings_from_env
from quality_assets.contract import load_contract
from quality_assets.defs.alerts import CHECK_FAILURE_SENSOR, RUN_FAILURE_SENSOR
from quality_assets.defs.definitions import build_definitions
from quality_assets.report.outputs import partition_output_dir

ALERT = Alert(kind="check_failure", dataset="orders", partition="a.csv", rule="file_parsed", severity="warn",
              message="1 of 2 rows quarantined", run_id="r1", job="orders_job", report_path="/out/orders/a.csv/report.html")


class Hook:
    """A local webhook answering with the given statuses in turn (or sleeping for 'slow')."""

    def __init__(self, answers: list):
        self.answers, self.bodies = list(answers), []
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                hook.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                answer = hook.answers.pop(0) if hook.answers else 200
                if answer == "slow":
                    time.sleep(1.5)
                    answer = 200
                self.send_response(answer)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook(request):
    made = []

    def make(answers):
        made.append(Hook(answers))
        return made[-1]

    yield make
    for h in made:
        h.close()


def test_alert_is_one_json_object_naming_dataset_partition_rule_and_report():
    data = json.loads(ALERT.to_json())
    assert {k: data[k] for k in ("kind", "dataset", "partition", "rule", "severity", "report_path")} == {
        "kind": "check_failure", "dataset": "orders", "partition": "a.csv", "rule": "file_parsed",
        "severity": "warn", "report_path": "/out/orders/a.csv/report.html"}
    assert ALERT.log_line().startswith("QA_ALERT {") and json.loads(ALERT.log_line()[len("QA_ALERT "):]) == data
    assert ALERT.title() == "[warn] orders/a.csv: check file_parsed failed: 1 of 2 rows quarantined"


def test_report_path_stays_inside_the_output_folder(tmp_path):
    assert report_path(tmp_path, "orders", "sub/a.csv") == str(tmp_path / "orders" / "sub" / "a.csv" / "report.html")
    escaped = report_path(tmp_path, "orders", "../../etc")  # the report stage's encoded folder name
    assert escaped == str(partition_output_dir(tmp_path, "orders", "../../etc") / "report.html")
    assert (tmp_path / "orders") in Path(escaped).parents
    assert report_path(tmp_path, None, "a.csv") is None


def test_webhook_retries_server_errors_then_succeeds(hook):
    h = hook([503, 500, 200])
    result = send_webhook(h.url, ALERT, timeout_s=2, attempts=3, backoff_s=0.01)
    assert (result.ok, result.attempts, result.status) == (True, 3, 200)
    assert h.bodies[0]["alert"]["partition"] == "a.csv" and h.bodies[0]["text"] == ALERT.title()


def test_webhook_does_not_retry_a_client_error(hook):
    h = hook([400, 200])
    result = send_webhook(h.url, ALERT, attempts=3, backoff_s=0.01)
    assert (result.ok, result.attempts, result.status) == (False, 1, 400)


def test_webhook_attempts_are_bounded_by_the_timeout(hook):
    h = hook(["slow", "slow", "slow"])
    started = time.monotonic()
    result = send_webhook(h.url, ALERT, timeout_s=0.3, attempts=2, backoff_s=0.01)
    assert not result.ok and result.attempts == 2 and "timed out" in result.error.lower()
    assert time.monotonic() - started < 1.5


def test_webhook_gives_up_when_the_time_budget_is_spent(hook):
    h = hook([503] * 5)
    result = send_webhook(h.url, ALERT, timeout_s=1, attempts=5, backoff_s=0.3, deadline_s=0.5)
    assert not result.ok and result.attempts < 5 and "time budget" in result.error


def test_webhook_connection_refused_is_reported():
    result = send_webhook("http://127.0.0.1:9/none", ALERT, timeout_s=0.5, attempts=2, backoff_s=0.01)
    assert not result.ok and result.attempts == 2 and result.status is None


def test_deliver_logs_appends_and_posts(tmp_path, hook):
    h = hook([200])
    lines = []
    result = deliver(ALERT, tmp_path, lines.append, webhook_url=h.url)
    assert result.ok and lines == [ALERT.log_line()]
    deliver(ALERT, tmp_path, lines.append)  # no webhook: logged and appended only
    assert [a["partition"] for a in read_alerts(tmp_path)] == ["a.csv", "a.csv"]
    failed = deliver(ALERT, tmp_path, lines.append, webhook_url="http://127.0.0.1:9/none", timeout_s=0.2, attempts=1)
    assert not failed.ok and lines[-1].startswith("QA_ALERT_WEBHOOK_FAILED after 1 attempt(s)")


# ---------------------------------------------------------------------------------------------
# The sensors, evaluated against real runs in a test instance


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "quality.yaml").write_text(
        "datasets:\n  orders:\n    landing: {path: landing/orders}\n    columns: {id: bigint}\n")
    (tmp_path / "landing" / "orders").mkdir(parents=True)
    monkeypatch.setenv("QA_CONTRACTS", str(tmp_path / "quality.yaml"))
    monkeypatch.setenv("QA_OUTPUT_DIR", str(tmp_path / "out"))
    monkeypatch.setenv("QA_DUCKDB_PATH", str(tmp_path / "w.duckdb"))
    monkeypatch.delenv("QA_ALERT_WEBHOOK_URL", raising=False)
    return tmp_path


def run_file(defs, instance, name: str):
    instance.add_dynamic_partitions("orders_files", [name])
    return defs.resolve_job_def("orders_job").execute_in_process(partition_key=name, instance=instance, raise_on_error=False)


def status_context(name, instance, result, event_type):
    run = instance.get_run_by_id(result.run_id)
    event = next(e for e in result.all_events if e.event_type == event_type)
    return dg.build_run_status_sensor_context(
        sensor_name=name, dagster_instance=instance, dagster_run=run, dagster_event=event)


def test_check_failure_sensor_alerts_for_each_failed_check_of_a_successful_run(project, hook, monkeypatch):
    h = hook([200, 200])
    monkeypatch.setenv("QA_ALERT_WEBHOOK_URL", h.url)
    defs = build_definitions(load_contract(project / "quality.yaml"), settings_from_env())
    sensor = defs.get_repository_def().get_sensor_def(CHECK_FAILURE_SENSOR)
    (project / "landing/orders/ok.csv").write_text("id\n1\n")
    (project / "landing/orders/bad.csv").write_text("id\n1\nx\n")
    with dg.instance_for_test() as instance:
        ok = run_file(defs, instance, "ok.csv")
        bad = run_file(defs, instance, "bad.csv")
        assert ok.success and bad.success  # a warn-level failure: the run succeeds
        sensor(status_context(CHECK_FAILURE_SENSOR, instance, ok, dg.DagsterEventType.RUN_SUCCESS))
        assert read_alerts(project / "out") == []
        sensor(status_context(CHECK_FAILURE_SENSOR, instance, bad, dg.DagsterEventType.RUN_SUCCESS))
    [alert] = read_alerts(project / "out")
    assert (alert["kind"], alert["dataset"], alert["partition"], alert["rule"], alert["severity"]) == (
        "check_failure", "orders", "bad.csv", "file_parsed", "warn")
    assert alert["report_path"] == str(project / "out" / "orders" / "bad.csv" / "report.html")
    assert alert["message"] == "1 of 2 rows quarantined" and alert["job"] == "orders_job"
    assert alert["run_id"] == bad.run_id
    assert [b["alert"]["partition"] for b in h.bodies] == ["bad.csv"]


def test_run_failure_sensor_alerts_with_the_cause(project):
    defs = build_definitions(load_contract(project / "quality.yaml"), settings_from_env())
    sensor = defs.get_repository_def().get_sensor_def(RUN_FAILURE_SENSOR)
    with dg.instance_for_test() as instance:
        result = run_file(defs, instance, "gone.csv")  # the file is not in the landing folder
        assert not result.success
        sensor(status_context(RUN_FAILURE_SENSOR, instance, result, dg.DagsterEventType.RUN_FAILURE).for_run_failure())
        (project / "landing/orders/blob.csv").write_bytes(b"\x00\x01binary" * 50)
        blob = run_file(defs, instance, "blob.csv")  # the blocking check fails with error severity
        assert not blob.success
        sensor(status_context(RUN_FAILURE_SENSOR, instance, blob, dg.DagsterEventType.RUN_FAILURE).for_run_failure())
    gone, blob_check, blob_run = read_alerts(project / "out")
    assert (gone["kind"], gone["dataset"], gone["partition"], gone["rule"], gone["severity"]) == (
        "run_failure", "orders", "gone.csv", None, "error")
    assert gone["run_id"] == result.run_id and gone["job"] == "orders_job"
    assert gone["message"].startswith("orders__raw: ") and "no longer in" in gone["message"]
    assert (blob_check["kind"], blob_check["partition"], blob_check["rule"], blob_check["severity"]) == (
        "check_failure", "blob.csv", "file_parsed", "error")
    assert "binary" in blob_check["message"]
    assert (blob_run["kind"], blob_run["partition"]) == ("run_failure", "blob.csv")


def test_alert_sensors_run_by_default(project):
    repo = build_definitions(load_contract(project / "quality.yaml"), settings_from_env()).get_repository_def()
    for name in (RUN_FAILURE_SENSOR, CHECK_FAILURE_SENSOR):
        assert repo.get_sensor_def(name).default_status == dg.DefaultSensorStatus.RUNNING
