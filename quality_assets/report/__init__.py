"""The report stage: a partition's self-contained HTML report and its machine-readable files.

`gather` reads what the warehouse knows about a partition (one short visit under the writer
lock; a range's partitions in one visit, `build_reports`), `render_report` turns it into HTML
after the lock is released, `write_outputs` writes the five files atomically under
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
    "ReportResult", "Verdict", "build_report", "build_reports", "gather", "partition_dir_name", "partition_key_of_dir",
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


GATHER_CHUNK = 10  # partitions gathered in one visit: the lock held once, their data held in memory


def build_report(warehouse: Warehouse, dataset: str, partition_key: str, output_dir: Path,
                 description: str = "") -> ReportResult:
    """Gather (under the warehouse lock), render and write one partition's report files."""
    return build_reports(warehouse, dataset, [partition_key], output_dir, description)[0]


def build_reports(warehouse: Warehouse, dataset: str, partition_keys: list[str], output_dir: Path,
                  description: str = "") -> list[ReportResult]:
    """Reports of several partitions (a run's range of files or days): up to GATHER_CHUNK gathered
    in one visit to the warehouse, then rendered and written after it is released, so that other
    runs' writers are not kept waiting behind HTML."""
    results = []
    for start in range(0, len(partition_keys), GATHER_CHUNK):
        chunk = partition_keys[start:start + GATHER_CHUNK]
        gathered: list[tuple[ReportData, float]] = []
        with warehouse.connect() as con:
            for partition_key in chunk:
                started = time.perf_counter()
                gathered.append((gather(con, dataset, partition_key, description), time.perf_counter() - started))
        for data, gather_s in gathered:
            folder = partition_output_dir(output_dir, dataset, data.partition_key)
            started = time.perf_counter()
            html = render_report(data)
            render_s = time.perf_counter() - started
            files = write_outputs(folder, data, html, generation_s=gather_s + render_s)
            results.append(ReportResult(data, folder, files, len(html.encode()), gather_s, render_s))
    return results
