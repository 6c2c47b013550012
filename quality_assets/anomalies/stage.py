"""The anomaly stage for one partition: read under the warehouse lock, compute without it, write
the results in one short transaction."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from quality_assets.anomalies.drift import DriftResult, categorical_drift, judge, numeric_drift
from quality_assets.anomalies.metric_anomalies import MetricResult, metric_anomalies
from quality_assets.anomalies.row_scores import (
    RowModel,
    export_partition,
    fit_row_model,
    raw_table,
    read_sample,
    score_file,
    shapes,
)
from quality_assets.anomalies.settings import AnomalySettings, parse_anomaly_settings
from quality_assets.anomalies.tables import ensure_anomaly_tables
from quality_assets.contract import Dataset
from quality_assets.warehouse import Warehouse


@dataclass
class AnomalyOptions:
    """Limits of one run (QA_ANOMALY_* variables)."""

    batch_size: int = 100_000  # rows scored at a time
    reference_rows: int = 200_000  # history rows the detector is fitted on
    max_rows: int = 1000  # flagged rows stored per partition, best ranked first
    drift_sample_rows: int = 50_000  # rows per side of a drift test


@dataclass
class AnomalyResult:
    dataset: str
    partition_key: str
    run_id: str
    settings: AnomalySettings
    rows_scored: int = 0
    rows_flagged: int = 0
    threshold_p: float | None = None
    threshold_method: str = ""
    fitted_on: str = ""
    reference_partitions: list[str] = field(default_factory=list)
    reference_rows: int = 0
    features: list[dict] = field(default_factory=list)
    skipped_columns: dict[str, str] = field(default_factory=dict)
    rows: list[dict] = field(default_factory=list)
    metrics: list[MetricResult] = field(default_factory=list)
    drift_reference: str | None = None
    drift: list[DriftResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def anomaly_rate(self) -> float:
        return self.rows_flagged / self.rows_scored if self.rows_scored else 0.0

    @property
    def metric_anomalies(self) -> list[MetricResult]:
        return [m for m in self.metrics if m.is_anomaly]

    @property
    def drifted_columns(self) -> list[str]:
        return [d.column_name for d in self.drift if d.drifted]

    def summary(self) -> str:
        return (f"{self.rows_flagged:,} of {self.rows_scored:,} rows flagged ({self.anomaly_rate:.2%}, "
                f"{self.threshold_method}); {len(self.metric_anomalies)} metric anomalies; "
                f"{len(self.drifted_columns)} drifted column(s)"
                + (f" against {self.drift_reference}" if self.drift_reference else ""))


def dataset_settings(dataset: Dataset) -> AnomalySettings:
    settings, problems = parse_anomaly_settings(dataset.anomalies, {c.name for c in dataset.columns})
    if problems:  # the contract loader reports these; a Dataset built by hand may still carry them
        raise ValueError(f"dataset {dataset.name!r}, anomalies: " + "; ".join(f"{k}: {m}" for k, m in problems))
    return settings


def history_partitions(con, dataset: Dataset, partition_key: str) -> list[str]:
    """The partitions before this one, oldest first: earlier days, or files first loaded earlier."""
    keys = [k for (k,) in con.execute(f"SELECT DISTINCT _partition_key FROM {raw_table(dataset.name)}").fetchall()]
    keys = [k for k in keys if k != partition_key]
    if dataset.partitioning == "daily":
        return sorted(k for k in keys if k < partition_key)
    first = dict(con.execute("SELECT partition_key, min(started) FROM qa.files WHERE dataset = ? GROUP BY 1",
                             [dataset.name]).fetchall())
    current = first.get(partition_key)
    earliest = dt.datetime.min
    before = [k for k in keys if current is None or first.get(k) is None or first[k] < current]
    return sorted(before, key=lambda k: (first.get(k) or earliest, k))


def _has_raw(con, dataset: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'raw' "
                            "AND table_name = ?", [dataset]).fetchall()[0][0])


def detect_anomalies(warehouse: Warehouse, dataset: Dataset, partition_key: str, run_id: str,
                     options: AnomalyOptions | None = None, work_dir: Path | None = None,
                     progress=None) -> AnomalyResult:
    """Row scores, metric anomalies and drift for one partition; results written to the qa tables."""
    options = options or AnomalyOptions()
    settings = dataset_settings(dataset)
    result = AnomalyResult(dataset.name, partition_key, run_id, settings)
    started = time.perf_counter()
    say = progress or (lambda message: None)
    scratch = Path(tempfile.mkdtemp(prefix="anomalies-", dir=work_dir or warehouse.path.parent))
    try:
        model: RowModel | None = None
        reference_sample = None
        with warehouse.connect() as con:
            ensure_anomaly_tables(con)
            if not settings.enabled:
                result.notes.append("anomaly detection disabled in the contract")
            elif not _has_raw(con, dataset.name):
                result.notes.append(f"no table raw.\"{dataset.name}\" yet")
            else:
                history = history_partitions(con, dataset, partition_key)
                say(f"fitting on {len(history[-settings.reference_partitions:]) or 'no'} history partition(s)")
                model = fit_row_model(con, dataset.name, partition_key, history, settings, dataset.primary_key,
                                      options.reference_rows, daily=dataset.partitioning == "daily")
                result.rows_scored = export_partition(con, model, dataset.name, partition_key,
                                                      scratch / "partition.parquet", options.drift_sample_rows)
                result.metrics = metric_anomalies(con, dataset.name, partition_key, history, settings,
                                                  dataset.partitioning == "daily")
                reference = _drift_reference(settings, history, partition_key, result)
                if reference is not None:
                    columns = [model.columns[name] for name in model.columns]
                    reference_sample = read_sample(con, dataset.name, columns, [reference],
                                                   options.drift_sample_rows, model.has_file, daily=model.daily)
        if model is not None:
            say(f"scoring {result.rows_scored:,} rows with {len(model.features)} features")
            scores, current_sample = score_file(scratch / "partition.parquet", model, settings, options.batch_size,
                                                options.max_rows)
            result.rows_flagged, result.threshold_p = scores.flagged, scores.threshold_p
            result.threshold_method, result.rows = scores.threshold_method, scores.top
            result.fitted_on, result.reference_partitions = model.fitted_on, model.reference_partitions
            result.reference_rows, result.features = model.reference_rows, model.describe()
            result.skipped_columns = model.skipped
            if reference_sample is not None:
                result.drift = judge(_drift_tests(model, current_sample, reference_sample), settings)
        result.duration_s = round(time.perf_counter() - started, 3)
        with warehouse.connect() as con:
            write_results(con, result)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return result


def _drift_reference(settings: AnomalySettings, history: list[str], partition_key: str,
                     result: AnomalyResult) -> str | None:
    if settings.reference == "previous":
        if not history:
            result.notes.append("no drift: no earlier partition to compare with")
            return None
        result.drift_reference = history[-1]
    elif settings.reference == partition_key:
        result.notes.append("no drift: this is the pinned reference partition")
        return None
    elif settings.reference not in history:
        result.notes.append(f"no drift: the pinned reference partition {settings.reference!r} is not loaded")
        return None
    else:
        result.drift_reference = settings.reference
    return result.drift_reference


def _drift_tests(model: RowModel, current: pa.Table, reference: pa.Table) -> list[DriftResult]:
    results = []
    for feature in model.features:
        column = feature.columns[0]
        if feature.signal in ("value", "date"):
            name = feature.inputs[0]
            results.append(numeric_drift(column, _floats(current, name), _floats(reference, name)))
        elif feature.signal == "category":
            name = feature.inputs[0]
            results.append(categorical_drift(column, current.column(name).combine_chunks(),
                                             reference.column(name).combine_chunks()))
        elif feature.signal == "shape":  # codes and text: the mix of their character shapes
            name, coarse = feature.inputs[0], feature.extra["coarse"]
            results.append(categorical_drift(column, shapes(current.column(name), coarse),
                                             shapes(reference.column(name), coarse), "chi2-shape"))
    return results


def _floats(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)


def write_results(con, result: AnomalyResult) -> None:
    """Replace the partition's rows in the four anomaly tables in one transaction."""
    ensure_anomaly_tables(con)
    key = [result.dataset, result.partition_key]
    con.execute("BEGIN TRANSACTION")
    try:
        for table in ("anomaly_runs", "row_anomalies", "metric_anomalies", "drift"):
            con.execute(f"DELETE FROM qa.{table} WHERE dataset = ? AND partition_key = ?", key)
        con.execute(
            "INSERT INTO qa.anomaly_runs VALUES (?, ?, ?, now()::TIMESTAMP, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [*key, result.run_id, result.rows_scored, result.rows_flagged, result.anomaly_rate, len(result.rows),
             result.threshold_p, result.threshold_method, result.fitted_on, result.reference_partitions,
             result.reference_rows, json.dumps({"features": result.features, "skipped": result.skipped_columns,
                                                "notes": result.notes}),
             len(result.metric_anomalies), result.drift_reference, len(result.drifted_columns),
             json.dumps(result.settings.to_dict()), result.duration_s])
        if result.rows:
            con.executemany(
                "INSERT INTO qa.row_anomalies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [[*key, result.run_id, r["_source_row"], r["source_file"], r["score"], r["p_value"], r["rank"],
                  json.dumps(r["explanation"], default=str)] for r in result.rows])
        if result.metrics:
            con.executemany(
                "INSERT INTO qa.metric_anomalies VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [[*key, result.run_id, m.column_name, m.metric, m.value, m.expected, m.lower, m.upper, m.robust_z,
                  m.direction, m.history_size, m.seasonal, m.is_anomaly, m.reason] for m in result.metrics])
        if result.drift:
            con.executemany(
                "INSERT INTO qa.drift VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [[*key, result.run_id, result.drift_reference, d.column_name, d.test, d.statistic, d.p_value,
                  d.adjusted_p, d.psi, d.effect_size, d.effect_measure, d.sample_size, d.reference_size, d.drifted,
                  d.reason] for d in result.drift])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
