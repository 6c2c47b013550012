"""The report stage: a partition's self-contained HTML report and its machine-readable files.

`gather` reads what the warehouse knows about a partition (one short visit under the writer
lock), `render_report` turns it into HTML, `write_outputs` writes the five files atomically under
`<output>/<dataset>/<partition>/`. No Dagster here; quality_assets/defs/report.py wires it as
`<dataset>/report`, and `quality-assets compare` (compare.py) renders two partitions side by side.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from quality_assets.report.gather import ReportData, Verdict, gather
from quality_assets.report.outputs import (
    AUDIT_FILE,
    METRICS_FILE,
    PROFILE_FILE,
    PROM_FILE,
    REPORT_FILE,
    OutputPathError,
    partition_dir_name,
    partition_key_of_dir,
    partition_output_dir,
    profile_schema,
    write_outputs,
)
from quality_assets.report.render import render_report
from quality_assets.warehouse import Warehouse

__all__ = [
    "AUDIT_FILE", "METRICS_FILE", "PROFILE_FILE", "PROM_FILE", "REPORT_FILE", "OutputPathError", "ReportData",
    "ReportResult", "Verdict", "build_report", "gather", "partition_dir_name", "partition_key_of_dir",
    "partition_output_dir", "profile_schema", "render_report", "write_outputs",
]


@dataclass
class ReportResult:
    data: ReportData
    folder: Path
    files: dict[str, Path]
    report_bytes: int
    gather_s: float
    render_s: float

    @property
    def report_path(self) -> Path:
        return self.files[REPORT_FILE]


def build_report(warehouse: Warehouse, dataset: str, partition_key: str, output_dir: Path,
                 description: str = "") -> ReportResult:
    """Gather (under the warehouse lock), render and write one partition's report files."""
    folder = partition_output_dir(output_dir, dataset, partition_key)
    started = time.perf_counter()
    with warehouse.connect() as con:
        data = gather(con, dataset, partition_key, description)
    gathered = time.perf_counter()
    html = render_report(data)
    rendered = time.perf_counter()
    files = write_outputs(folder, data, html, generation_s=rendered - started)
    return ReportResult(data, folder, files, len(html.encode()), gathered - started, rendered - gathered)
