"""Structured alerts: a failed run or a failed check, named by dataset, partition and rule.

Every alert is one JSON object. It is always logged (a `QA_ALERT {...}` line) and appended to
`<QA_OUTPUT_DIR>/alerts/alerts.jsonl`; when `QA_ALERT_WEBHOOK_URL` is set it is also POSTed
there, each attempt bounded by a timeout and retried with backoff on timeouts, connection
errors, 429 and 5xx (never on other 4xx: the request itself is wrong).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from quality_assets.report.outputs import REPORT_FILE, OutputPathError, partition_output_dir

ALERT_LOG = Path("alerts") / "alerts.jsonl"
LOG_PREFIX = "QA_ALERT"


@dataclass(frozen=True)
class Alert:
    kind: str  # run_failure | check_failure
    dataset: str | None
    partition: str | None
    rule: str | None  # the failed check (a contract rule or file_parsed); None for a run failure
    severity: str  # error | warn
    message: str
    run_id: str | None = None
    job: str | None = None
    report_path: str | None = None
    dagster_url: str | None = None
    at: str = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, ensure_ascii=False, default=str)

    def log_line(self) -> str:
        return f"{LOG_PREFIX} {self.to_json()}"

    def title(self) -> str:
        where = "/".join(p for p in (self.dataset, self.partition) if p) or self.job or "?"
        what = f"check {self.rule} failed" if self.kind == "check_failure" else "run failed"
        return f"[{self.severity}] {where}: {what}: {self.message[:200]}"


def report_path(output_dir: Path, dataset: str | None, partition: str | None) -> str | None:
    """Where the partition's report is (or will be) written, as the report stage names its folder."""
    if not dataset or not partition:
        return None
    try:
        return str(partition_output_dir(output_dir, dataset, partition) / REPORT_FILE)
    except OutputPathError:
        return None


@dataclass
class WebhookResult:
    ok: bool
    attempts: int
    status: int | None = None
    error: str | None = None


def send_webhook(
    url: str,
    alert: Alert,
    timeout_s: float = 5.0,
    attempts: int = 3,
    backoff_s: float = 1.0,
    deadline_s: float | None = None,
    opener: Callable = urllib.request.urlopen,
    sleep: Callable[[float], None] = time.sleep,
) -> WebhookResult:
    """POST the alert as JSON; retried with exponential backoff, never longer than deadline_s overall."""
    body = json.dumps({"text": alert.title(), "alert": asdict(alert)}, default=str).encode()
    started = time.monotonic()
    result = WebhookResult(ok=False, attempts=0)
    for attempt in range(1, max(1, attempts) + 1):
        remaining = None if deadline_s is None else deadline_s - (time.monotonic() - started)
        if remaining is not None and remaining <= 0:
            result.error = (result.error or "") + " (gave up: time budget spent)"
            break
        request = urllib.request.Request(
            url, data=body, method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "quality-assets-alerts"},
        )
        result.attempts = attempt
        try:
            with opener(request, timeout=min(timeout_s, remaining) if remaining else timeout_s) as response:
                result.status = response.status
                result.ok, result.error = True, None
                return result
        except urllib.error.HTTPError as exc:
            result.status, result.error = exc.code, f"HTTP {exc.code} {exc.reason}"
            if exc.code != 429 and exc.code < 500:
                return result  # a 4xx will not get better
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            result.status, result.error = None, f"{type(reason).__name__}: {reason}"
        if attempt < attempts:
            sleep(backoff_s * 2 ** (attempt - 1))
    return result


def append_alert(output_dir: Path, alert: Alert) -> Path:
    """Append the alert to the alert log (one write, so concurrent writers do not interleave)."""
    path = output_dir / ALERT_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (alert.to_json() + "\n").encode())
    finally:
        os.close(fd)
    return path


def read_alerts(output_dir: Path) -> list[dict]:
    path = output_dir / ALERT_LOG
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def deliver(
    alert: Alert,
    output_dir: Path,
    log: Callable[[str], None],
    webhook_url: str | None = None,
    timeout_s: float = 5.0,
    attempts: int = 3,
    deadline_s: float | None = None,
    opener: Callable = urllib.request.urlopen,
) -> WebhookResult | None:
    """Log the alert, append it to the alert log and, when configured, send it to the webhook."""
    log(alert.log_line())
    append_alert(output_dir, alert)
    if not webhook_url:
        return None
    result = send_webhook(webhook_url, alert, timeout_s=timeout_s, attempts=attempts,
                          deadline_s=deadline_s, opener=opener)
    if not result.ok:
        log(f"{LOG_PREFIX}_WEBHOOK_FAILED after {result.attempts} attempt(s): {result.error}")
    return result
