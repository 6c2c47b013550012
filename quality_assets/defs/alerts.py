"""Alert sensors: one for failed runs, one for failed asset checks."""

import time
from pathlib import Path

import dagster as dg

from quality_assets.alerts import Alert, deliver, report_path
from quality_assets.config import Settings

RUN_FAILURE_SENSOR = "qa_run_failure_alerts"
CHECK_FAILURE_SENSOR = "qa_check_failure_alerts"
TICK_BUDGET_S = 30.0  # webhook time per tick, well inside Dagster's sensor timeout
PARTITION_TAG = "dagster/partition"
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")


def run_partition(run: dg.DagsterRun) -> str | None:
    if run.tags.get(PARTITION_TAG):
        return run.tags[PARTITION_TAG]
    start, end = (run.tags.get(tag) for tag in RANGE_TAGS)
    return f"{start}...{end}" if start and end else None


def run_dataset(run: dg.DagsterRun, datasets: set[str]) -> str | None:
    tagged = run.tags.get("quality_assets/dataset")
    if tagged:
        return tagged
    if run.job_name.endswith("_job") and run.job_name[: -len("_job")] in datasets:
        return run.job_name[: -len("_job")]
    for key in run.asset_selection or ():
        if key.path[0] in datasets:
            return key.path[0]
    return None


def _send(context, alert: Alert, started: float, settings: Settings) -> None:
    remaining = TICK_BUDGET_S - (time.monotonic() - started)
    deliver(
        alert, settings.output_dir, context.log.error,
        webhook_url=settings.alert_webhook_url if remaining > 0 else None,
        timeout_s=settings.alert_webhook_timeout_s, attempts=settings.alert_webhook_retries,
        deadline_s=max(remaining, 0.0),
    )


def check_alerts(instance: dg.DagsterInstance, run: dg.DagsterRun, datasets: set[str], output_dir: Path) -> list[Alert]:
    """An alert for every failed asset check of a run (read from the run's own events)."""
    alerts = []
    for entry in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION):
        evaluation = entry.dagster_event.event_specific_data
        dataset = evaluation.asset_key.path[0]
        if evaluation.passed or dataset not in datasets:
            continue
        partition = evaluation.partition or run_partition(run)
        meta = evaluation.metadata
        message = str(meta["message"].value) if "message" in meta else (evaluation.description or "check failed")
        alerts.append(Alert(
            kind="check_failure", dataset=dataset, partition=partition, rule=evaluation.check_name,
            severity=evaluation.severity.value.lower(), message=message, run_id=run.run_id, job=run.job_name,
            report_path=report_path(output_dir, dataset, partition),
        ))
    return alerts


def build_alert_sensors(datasets: list[str], settings: Settings) -> list[dg.SensorDefinition]:
    """Both sensors follow finished runs (Dagster keeps their cursors, starting from when they are
    first turned on); a failed run also gets the alerts of its failed checks. The webhook and the
    output folder are the code location's settings, read from the environment when it loads."""
    names = set(datasets)

    @dg.run_failure_sensor(
        name=RUN_FAILURE_SENSOR,
        minimum_interval_seconds=settings.sensor_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Writes a structured alert (log line, alerts.jsonl, optional webhook) for every failed run "
                    "and for each failed check in it.",
    )
    def run_failure_alerts(context: dg.RunFailureSensorContext) -> None:
        started = time.monotonic()
        run = context.dagster_run
        dataset, partition = run_dataset(run, names), run_partition(run)
        message = context.failure_event.message or "run failed"
        steps = context.get_step_failure_events()
        if steps and steps[0].event_specific_data and steps[0].event_specific_data.error:
            error = steps[0].event_specific_data.error
            while error.cause is not None:
                error = error.cause  # the user's exception, not Dagster's wrapper
            if error.message.strip():
                message = f"{steps[0].step_key}: {error.message.strip().splitlines()[0]}"
        for alert in check_alerts(context.instance, run, names, settings.output_dir):
            _send(context, alert, started, settings)
        _send(context, Alert(
            kind="run_failure", dataset=dataset, partition=partition, rule=None, severity="error",
            message=message, run_id=run.run_id, job=run.job_name,
            report_path=report_path(settings.output_dir, dataset, partition),
        ), started, settings)

    @dg.run_status_sensor(
        name=CHECK_FAILURE_SENSOR,
        run_status=dg.DagsterRunStatus.SUCCESS,
        minimum_interval_seconds=settings.sensor_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Writes a structured alert (dataset, partition, rule, report path) for every failed asset "
                    "check of a run that succeeded (warn-severity failures do not fail the run).",
    )
    def check_failure_alerts(context: dg.RunStatusSensorContext) -> None:
        started = time.monotonic()
        for alert in check_alerts(context.instance, context.dagster_run, names, settings.output_dir):
            _send(context, alert, started, settings)

    return [run_failure_alerts, check_failure_alerts]
