"""`quality-assets run`: each file's job in-process, then what a person reads: a table with one
outcome per file, why each file that is not a clean publication is not, and where to look.

A file's outcome uses the words of its report's verdict (and of the report asset in the UI):
`passed` (Pass), `warnings` (Warnings: published, with quarantined rows, failed warn rules or
anomalies), `blocked` (an error rule failed: not published), `rejected` (the file could not be
read), `empty` (no data rows), `failed` (the run failed for another reason).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

OUTCOMES = ("passed", "warnings", "blocked", "rejected", "empty", "failed")
TOP_CODES = 3
TOP_CAUSES = 3  # anomaly causes printed per file


@dataclass
class FileOutcome:
    dataset: str
    key: str
    rows: int | None = None
    quarantined: int | None = None
    status: str = ""  # the load's status, as in qa.files and the raw asset's metadata
    message: str = ""  # the load's message (why a file was rejected, or was empty)
    quarantined_by_code: dict[str, int] = field(default_factory=dict)
    failed_checks: list[str] = field(default_factory=list)
    blocked_by: list[str] = field(default_factory=list)  # error rules (or file_parsed) that kept it unpublished
    published: bool = False
    verdict: str = ""  # the report's: pass | warn | fail | no_data
    headline: str = ""  # the report's headline
    report_path: str | None = None
    causes: list[dict] = field(default_factory=list)  # the anomaly stage's top causes (level, rows, description)
    failure: str = ""  # why the run failed, when not because of a check
    error_failed: bool = False
    seconds: float = 0.0

    @property
    def outcome(self) -> str:
        if self.status == "rejected":
            return "rejected"
        if self.failure:
            return "failed"
        if self.blocked_by or self.error_failed:
            return "blocked"
        if self.status == "empty" or self.verdict == "no_data":
            return "empty"
        if self.verdict == "warn" or self.quarantined or self.failed_checks:
            return "warnings"
        return "passed"

    def reasons(self) -> list[str]:
        """Why the file is not simply passed: what a person needs to decide what to do."""
        outcome, parts = self.outcome, []
        if outcome == "rejected":
            parts.append(f"rejected: {self.message or 'the file could not be read'}")
        elif outcome == "failed":
            parts.append(f"run failed: {self.failure}")
        elif outcome == "blocked":
            parts.append(f"not published: blocked by {', '.join(self.blocked_by) or 'a failed error check'}")
        elif outcome == "empty":
            parts.append(f"empty: {self.message or 'the file holds no data rows'}")
        if self.quarantined:
            codes = sorted(self.quarantined_by_code.items(), key=lambda item: (-item[1], item[0]))
            top = ", ".join(f"{code} {count:,}" for code, count in codes[:TOP_CODES])
            more = f", {len(codes) - TOP_CODES} more code(s)" if len(codes) > TOP_CODES else ""
            parts.append(f"{self.quarantined:,} row(s) quarantined ({top}{more})" if top else
                         f"{self.quarantined:,} row(s) quarantined")
        warned = [c for c in self.failed_checks if c.endswith("(warn)") and not c.startswith("file_parsed")]
        if warned:
            parts.append("failed warn checks: " + ", ".join(warned))
        if outcome == "warnings" and self.headline:
            parts.append(f"verdict: {self.headline}")
        for cause in self.causes[:TOP_CAUSES]:
            what = "change" if cause.get("level") == "partition" else f"{cause.get('rows', 0):,} row(s)"
            parts.append(f"anomaly ({what}): {cause.get('description', '')}")
        return parts


def execute(contract, settings, work: list, force: bool) -> list[FileOutcome]:
    import dagster as dg  # slow to import: loaded when files run, not for --help or validate

    from quality_assets.defs.definitions import build_definitions, dataset_job_name
    from quality_assets.defs.raw import files_partitions

    defs = build_definitions(contract, settings)
    instance = dg.DagsterInstance.get() if os.environ.get("DAGSTER_HOME") else dg.DagsterInstance.ephemeral()
    outcomes = []
    progress = Progress(len(work))
    for ds, landed in work:
        partitions = files_partitions(ds)
        if ds.partitioning == "file" and not instance.has_dynamic_partition(partitions.name, landed.key):
            instance.add_dynamic_partitions(partitions.name, [landed.key])
        progress.start(f"{ds.name}/{landed.key}")
        started = time.perf_counter()
        job = defs.resolve_job_def(dataset_job_name(ds.name))
        result = job.execute_in_process(
            partition_key=landed.key,
            instance=instance,
            raise_on_error=False,
            run_config={
                "ops": {f"{ds.name}__raw": {"config": {"force": force}}},
                # failures are in the summary table; Dagster's own error log would add stack traces
                "loggers": {"console": {"config": {"log_level": "CRITICAL"}}},
            },
            tags={"quality_assets/source": "cli"},
        )
        outcome = outcome_of(ds.name, landed.key, result)
        outcome.seconds = time.perf_counter() - started
        outcomes.append(outcome)
        progress.done(f"{outcome.outcome}, {outcome.rows if outcome.rows is not None else '-'} rows")
    progress.finish()
    return outcomes


def outcome_of(dataset: str, key: str, result) -> FileOutcome:
    import dagster as dg  # slow to import: as in execute()

    outcome = FileOutcome(dataset, key)
    for event in result.get_asset_materialization_events():
        materialization = event.event_specific_data.materialization
        meta = {name: value.value for name, value in materialization.metadata.items()}
        stage = materialization.asset_key.path[-1]
        if stage == "raw":
            outcome.rows = meta.get("dagster/row_count")
            outcome.quarantined = meta.get("rows_quarantined")
            outcome.status = meta.get("status", "")
            outcome.message = meta.get("message", "")
            outcome.quarantined_by_code = dict(meta.get("quarantined_by_code") or {})
        elif stage == "published":
            outcome.published = True
        elif stage == "anomalies":
            outcome.causes = list(meta.get("top_causes") or [])
        if stage in ("raw", "report") and "verdict" in meta:  # raw has it when it wrote a rejected file's report
            outcome.verdict, outcome.headline = meta["verdict"], meta.get("headline", "")
            outcome.report_path = meta.get("report_path")
    for evaluation in result.get_asset_check_evaluations():
        if not evaluation.passed:
            outcome.failed_checks.append(f"{evaluation.check_name}({evaluation.severity.value.lower()})")
            if evaluation.severity == dg.AssetCheckSeverity.ERROR:
                outcome.error_failed = True
                rules = evaluation.metadata.get("failed_rules")
                if evaluation.blocking:
                    blocker = str(rules.value) if rules is not None and rules.value else evaluation.check_name
                    if blocker not in outcome.blocked_by:
                        outcome.blocked_by.append(blocker)
    if not result.success:
        outcome.error_failed = True
        failure = next((e for e in result.all_events if e.is_step_failure), None)
        if not (_is_blocking_check_failure(failure) and outcome.status):
            outcome.failure = _failure_message(failure)[:300]
    return outcome


def _is_blocking_check_failure(event) -> bool:
    if event is None or event.event_specific_data.error is None:
        return False
    error = event.event_specific_data.error
    while error.cause is not None:
        error = error.cause
    return error.cls_name == "DagsterAssetCheckFailedError"


def _failure_message(event) -> str:
    if event is None:
        return "run failed"
    data = event.event_specific_data
    if data.user_failure_data and data.user_failure_data.description:
        return data.user_failure_data.description
    error = data.error
    while error.cause is not None:
        error = error.cause  # the user's exception, not Dagster's wrapper
    return error.message.strip().splitlines()[0]


def summary_table(outcomes: list[FileOutcome]) -> str:
    headers = ["dataset", "file", "rows", "quarantined", "failed checks", "load", "outcome"]
    rows = [
        [o.dataset, o.key, _num(o.rows), _num(o.quarantined), ", ".join(o.failed_checks) or "-", o.status or "-",
         o.outcome + (", published" if o.published and o.outcome in ("passed", "warnings") else "")]
        for o in outcomes
    ]
    widths = [max(len(str(c)) for c in column) for column in zip(headers, *rows, strict=True)]
    right = {2, 3}

    def line(cells):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def why_lines(outcomes: list[FileOutcome]) -> list[str]:
    lines = []
    for o in outcomes:
        reasons = o.reasons()
        if reasons:
            lines.append(f"  {o.dataset}/{o.key}: " + "; ".join(reasons))
            if o.report_path:
                lines.append(f"      report: {o.report_path}")
    return lines


def counts_line(outcomes: list[FileOutcome]) -> str:
    counts = {word: sum(o.outcome == word for o in outcomes) for word in OUTCOMES}
    published = sum(o.published and o.outcome in ("passed", "warnings") for o in outcomes)
    return (f"{len(outcomes)} file(s): " + ", ".join(f"{n} {word}" for word, n in counts.items() if n)
            + f"; {published} published")


def print_results(outcomes: list[FileOutcome]) -> None:
    print(summary_table(outcomes))
    why = why_lines(outcomes)
    if why:
        print("\nWhy:")
        print("\n".join(why))
    print(f"\n{counts_line(outcomes)}")


def where_to_look(settings, outcomes: list[FileOutcome]) -> list[str]:
    """Commands and paths that work as printed: the venv's own programs, no other tool assumed."""
    from quality_assets.lake import is_lake

    bin_dir = Path(sys.executable).parent
    qa = bin_dir / "quality-assets"
    qa_cmd = shlex.quote(str(qa)) if qa.exists() else "quality-assets"
    show = '.sql("SELECT dataset, partition_key, status, message FROM qa.files ORDER BY finished").show()'
    if is_lake(settings.warehouse):  # read-only: never holds up a run
        where = f"{settings.warehouse} (data {settings.lake_data_path})"
        query = ("from quality_assets.lake import LakeWarehouse; LakeWarehouse("
                 f"{json.dumps(settings.warehouse)}, {json.dumps(settings.lake_data_path)}, "
                 f"{json.dumps(str(settings.duckdb_path.parent))}).attach(read_only=True){show}")
    else:
        where = str(settings.duckdb_path)
        query = f"import duckdb; duckdb.connect({json.dumps(str(settings.duckdb_path))}, read_only=True){show}"
    lines = [
        "Where to look:",
        f"  contract:   {settings.contracts}",
        f"  warehouse:  {where}  (tables raw.*, published.*, qa.files, qa.quarantine, qa.check_results, "
        "qa.failing_rows, qa.column_profiles, qa.anomaly_causes, qa.row_anomalies, qa.metric_anomalies, qa.drift, qa.column_roles)",
        f"  query it:   {shlex.quote(sys.executable)} -c {shlex.quote(query)}",
        f"  outputs:    {settings.output_dir}  (per dataset and file: report.html, profile.json, metrics.csv, "
        "audit.log.json, metrics.prom)",
    ]
    reports = [o.report_path for o in outcomes if o.report_path]
    if reports:
        worst = next((o.report_path for o in outcomes if o.report_path and o.outcome != "passed"), reports[-1])
        lines.append(f"  a report:   {worst}  (open it in a browser; {len(reports)} written by this run)")
    lines.append(f"  the UI:     {qa_cmd} --contracts {shlex.quote(str(settings.contracts))} ui  "
                 "(then http://127.0.0.1:3000)")
    return lines


def _num(value) -> str:
    return "-" if value is None else f"{value:,}"


class Progress:
    """A one-line progress bar on stderr (a line per file when stderr is not a terminal)."""

    def __init__(self, total: int, width: int = 24):
        self.total, self.width, self.count = total, width, 0
        self.tty = sys.stderr.isatty()
        self.started = time.perf_counter()
        self.label = ""

    def _bar(self) -> str:
        filled = int(self.width * self.count / max(self.total, 1))
        return "[" + "#" * filled + "." * (self.width - filled) + f"] {self.count}/{self.total}"

    def start(self, label: str) -> None:
        self.label = label
        if self.tty:
            sys.stderr.write(f"\r\033[K{self._bar()} {label} ...")
            sys.stderr.flush()

    def done(self, note: str) -> None:
        self.count += 1
        if self.tty:
            sys.stderr.write(f"\r\033[K{self._bar()} {self.label}: {note}")
        else:
            sys.stderr.write(f"{self._bar()} {self.label}: {note}\n")
        sys.stderr.flush()

    def finish(self) -> None:
        elapsed = time.perf_counter() - self.started
        if self.tty:
            sys.stderr.write("\n")
        sys.stderr.write(f"ran {self.total} file(s) in {elapsed:.1f}s\n")
