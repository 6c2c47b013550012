"""The report's files on disk: where a partition's outputs go, and how each file is written.

Every file is written to a temporary file in the same folder, flushed to disk and renamed over
the old one (`os.replace`, atomic on POSIX), so a reader or a crash sees the old file or the new
one, never half of either. The report itself is written last.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import tempfile
import time
import urllib.parse
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from quality_assets.report.gather import ReportData

REPORT_FILE = "report.html"
PROFILE_FILE = "profile.json"
METRICS_FILE = "metrics.csv"
AUDIT_FILE = "audit.log.json"
PROM_FILE = "metrics.prom"
PROFILE_SCHEMA_VERSION = 1
PROFILE_SCHEMA_FILE = Path(__file__).with_name("profile.schema.json")
TEMP_PREFIX = ".qa-tmp-"
STALE_TEMP_SECONDS = 3600

# A partition key is a path relative to the landing folder (or a day). Plain keys become the same
# relative path under <output>/<dataset>/ (what retention and alerts expect); any other key becomes
# one percent-encoded folder name, which urllib.parse.unquote turns back into the key.
_PLAIN_SEGMENT = re.compile(r"^[^\x00-\x1f\x7f-\x9f%\\]+$")
MAX_SEGMENT_BYTES = 200
SHORTENED_MARK = "%7E"  # quote() never writes "~" as %7E, so this marks a shortened name


class OutputPathError(ValueError):
    """A dataset name or partition key that cannot be turned into a folder under the output root."""


def partition_dir_name(partition_key: str) -> str:
    """The folder (relative, POSIX) of a partition's outputs under `<output>/<dataset>/`."""
    if not partition_key:
        raise OutputPathError("an empty partition key has no output folder")
    segments = partition_key.split("/")
    if all(_plain(segment) for segment in segments):
        return partition_key
    encoded = urllib.parse.quote(partition_key, safe="").replace(".", "%2E")
    if len(encoded.encode()) > MAX_SEGMENT_BYTES:
        # too long to reverse from the name: the key is recorded inside every output file
        digest = hashlib.sha256(partition_key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        head = re.sub(r"%[0-9A-F]?$", "", encoded[: MAX_SEGMENT_BYTES - 24])
        encoded = head + SHORTENED_MARK + digest
    return encoded


def _plain(segment: str) -> bool:
    return (segment not in ("", ".", "..") and bool(_PLAIN_SEGMENT.match(segment))
            and len(segment.encode("utf-8", "surrogatepass")) <= MAX_SEGMENT_BYTES
            and segment.isprintable())


def partition_key_of_dir(name: str) -> str | None:
    """The partition key a folder name stands for (None for a shortened, hashed name)."""
    if re.search(SHORTENED_MARK + r"[0-9a-f]{16}$", name):
        return None
    return urllib.parse.unquote(name) if "%" in name else name


def partition_output_dir(output_dir: Path, dataset: str, partition_key: str) -> Path:
    """`<output>/<dataset>/<partition folder>`, guaranteed to stay inside `<output>/<dataset>`."""
    if not re.fullmatch(r"[a-z][a-z0-9_]{0,62}", dataset):
        raise OutputPathError(f"{dataset!r} is not a dataset name")
    root = (Path(output_dir).resolve() / dataset)
    folder = (root / partition_dir_name(partition_key)).resolve()
    if root not in folder.parents:
        raise OutputPathError(f"partition key {partition_key!r} would leave {root}")
    return folder


def atomic_write(path: Path, data: bytes | str) -> int:
    """Write data to path through a temporary file and a rename; returns the bytes written."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, 0o644)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return len(payload)


def remove_stale_temps(folder: Path, older_than_s: float = STALE_TEMP_SECONDS) -> list[Path]:
    """Temporary files a crashed writer left behind (older than an hour, so never a live writer's)."""
    removed = []
    if not folder.is_dir():
        return removed
    cutoff = time.time() - older_than_s
    for path in folder.glob(f"{TEMP_PREFIX}*"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed.append(path)
        except FileNotFoundError:
            pass
    return removed


def finite(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null, recursively."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def to_json(document: Any) -> str:
    return json.dumps(finite(document), ensure_ascii=False, indent=1, default=_json_default, allow_nan=False) + "\n"


def _json_default(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return str(value)


def profile_document(data: ReportData) -> dict:
    """profile.json: the stored profile (`read_profile`'s shape) with a schema version on top."""
    profile = data.profile or {}
    return {
        "schema_version": PROFILE_SCHEMA_VERSION,
        "dataset": data.dataset,
        "partition_key": data.partition_key,
        "profiled": data.profile is not None,
        "run_id": profile.get("run_id"),
        "profiled_at": profile.get("profiled_at"),
        "generated_at": data.generated_at,
        "metrics": profile.get("metrics") or {},
        "correlations": profile.get("correlations") or {},
        "alerts": profile.get("alerts") or [],
        "columns": [{**column, "role": data.roles().get(column.get("name"))} for column in profile.get("columns") or []],
    }


def profile_schema() -> dict:
    return json.loads(PROFILE_SCHEMA_FILE.read_text())


# Spreadsheets evaluate a cell starting with one of these as a formula (OWASP "CSV injection").
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_text(value: Any) -> str:
    """A text cell safe to open in a spreadsheet: a leading formula character is quoted with '."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_PREFIXES) else text


def metrics_rows(data: ReportData) -> Iterable[list]:
    profile = data.profile
    if profile is None:
        return
    run_id = profile.get("run_id")
    for metric, value in sorted((profile.get("metrics") or {}).items()):
        yield [data.dataset, data.partition_key, run_id, "", "", metric, value, ""]
    for name in ("correlations", "alerts"):
        if profile.get(name):
            yield [data.dataset, data.partition_key, run_id, "", "", name, None, profile[name]]
    for column in profile.get("columns") or []:
        for metric, value in (column.get("metrics") or {}).items():
            yield [data.dataset, data.partition_key, run_id, column["name"], column["index"], metric, value, ""]
        for metric, detail in column.items():
            if metric not in ("name", "index", "metrics") and detail not in (None, [], {}):
                yield [data.dataset, data.partition_key, run_id, column["name"], column["index"], metric, None, detail]


METRICS_HEADER = ["dataset", "partition_key", "run_id", "column", "column_index", "metric", "value", "detail"]


def metrics_csv(data: ReportData) -> str:
    """metrics.csv: one row per column and metric (dataset-level ones with an empty column)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(METRICS_HEADER)
    for dataset, key, run_id, column, index, metric, value, detail in metrics_rows(data):
        number = "" if value is None or (isinstance(value, float) and not math.isfinite(value)) else repr(float(value))
        detail_text = "" if detail == "" else json.dumps(finite(detail), ensure_ascii=False, default=_json_default)
        # numbers are written as numbers (a negative value is not a formula); every text cell is escaped
        writer.writerow([csv_text(dataset), csv_text(key), csv_text(run_id), csv_text(column), index, csv_text(metric),
                         number, csv_text(detail_text)])
    return out.getvalue()


def audit_document(data: ReportData) -> dict:
    """audit.log.json: the partition's file load as qa.files recorded it, with quarantine counts."""
    load = data.load or {}
    return {
        "schema_version": 1,
        "dataset": data.dataset,
        "partition_key": data.partition_key,
        "generated_at": data.generated_at,
        "loaded": data.load is not None,
        "run_id": load.get("run_id"),
        "status": load.get("status"),
        "message": load.get("message"),
        "source_path": load.get("source_path"),
        "format": load.get("format"),
        "compression": load.get("compression"),
        "sha256": load.get("sha256"),
        "bytes": load.get("bytes"),
        "mtime": load.get("mtime"),
        "rows_read": load.get("rows_read"),
        "rows_loaded": load.get("rows_loaded"),
        "rows_quarantined": load.get("rows_quarantined"),
        "columns": load.get("columns") or [],
        "column_count": len(load.get("columns") or []),
        "delimiter": load.get("delimiter"),
        "quote": load.get("quote"),
        "header": load.get("header"),
        "encoding": load.get("encoding"),
        "utf8_valid": load.get("utf8_valid"),
        "parser": load.get("parser"),
        "started": load.get("started"),
        "finished": load.get("finished"),
        "duration_s": load.get("duration_s"),
        "error_codes": dict(sorted((load.get("error_codes") or {}).items())),
        "quarantined_by_code": dict(data.quarantine_by_code),
        "duplicate_of": load.get("duplicate_of"),
        "contract_fingerprint": load.get("contract_fingerprint"),
        "last_attempt": data.last_attempt,
        "loads": data.load_attempts,
    }


def prom_label(value: Any) -> str:
    """A label value escaped as the Prometheus text exposition format asks: backslash, quote, newline."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _prom_number(value: float | int | None) -> str:
    if value is None:
        return "NaN"
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def prometheus_text(data: ReportData, generation_s: float | None = None) -> str:
    """metrics.prom for node_exporter's textfile collector: gauges labelled with dataset and partition."""
    base = {"dataset": data.dataset, "partition": data.partition_key}
    load = data.load or {}
    summary = data.summary()
    families: list[tuple[str, str, list[tuple[dict, Any]]]] = [
        ("qa_rows_read", "Data records read from the partition's file.", [({}, load.get("rows_read"))]),
        ("qa_rows_loaded", "Rows loaded into the warehouse.", [({}, load.get("rows_loaded"))]),
        ("qa_rows_quarantined", "Rows quarantined, by error code.",
         [({"code": code}, count) for code, count in data.quarantine_by_code] or [({"code": "none"}, 0)]),
        ("qa_load_duration_seconds", "Seconds the file load took.", [({}, load.get("duration_s"))]),
        ("qa_file_bytes", "Size of the partition's file in bytes.", [({}, load.get("bytes"))]),
        ("qa_checks_total", "Rules evaluated on the partition.", [({}, len(data.checks))]),
        ("qa_checks_failed", "Rules that failed, by severity.",
         [({"severity": severity}, summary["checks_failed"][severity]) for severity in ("error", "warn")]),
        ("qa_row_anomalies", "Rows flagged as anomalous.", [({}, summary["row_anomalies"])]),
        ("qa_metric_anomalies", "Profile metrics flagged against the partition history.",
         [({}, summary["metric_anomalies"])]),
        ("qa_drifted_columns", "Columns whose distribution drifted from the reference.",
         [({}, summary["drifted_columns"])]),
        ("qa_profile_alerts", "Profile alerts (columns and dataset).", [({}, summary["profile_alerts"])]),
        ("qa_verdict", "Verdict of the partition: 0 pass, 1 warn, 2 fail, 3 no data.",
         [({"verdict": data.verdict.level}, data.verdict.code)]),
        ("qa_report_generated_timestamp_seconds", "When the report was written (Unix time).",
         [({}, time.time())]),
    ]
    if generation_s is not None:
        families.append(("qa_report_duration_seconds", "Seconds the report took to gather and render.",
                         [({}, generation_s)]))
    lines = []
    for name, help_text, samples in families:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} gauge")
        for labels, value in samples:
            merged = {**base, **labels}
            rendered = ",".join(f'{key}="{prom_label(val)}"' for key, val in merged.items())
            lines.append(f"{name}{{{rendered}}} {_prom_number(value)}")
    return "\n".join(lines) + "\n"


def write_outputs(folder: Path, data: ReportData, report_html: str, generation_s: float | None = None) -> dict[str, Path]:
    """Write the five files of a partition (report last); returns name -> path."""
    remove_stale_temps(folder)
    files = {
        PROFILE_FILE: to_json(profile_document(data)),
        METRICS_FILE: metrics_csv(data),
        AUDIT_FILE: to_json(audit_document(data)),
        PROM_FILE: prometheus_text(data, generation_s),
        REPORT_FILE: report_html,
    }
    written = {}
    for name, content in files.items():
        atomic_write(folder / name, content)
        written[name] = folder / name
    return written
