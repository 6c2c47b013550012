"""The anomaly stage for one partition: read under the warehouse lock, compute without it, write
the results in one short transaction."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from quality_assets.anomalies.columns import raw_columns, raw_table
from quality_assets.anomalies.drift import DriftResult, categorical_drift, judge, numeric_drift
from quality_assets.anomalies.metric_anomalies import MetricResult, metric_anomalies
from quality_assets.anomalies.model import RowModel, fit_row_model
from quality_assets.anomalies.period import period_findings, time_gaps
from quality_assets.anomalies.references import reference_history
from quality_assets.anomalies.roles import ColumnRole, learn_roles
from quality_assets.anomalies.sampling import export_partition, read_sample
from quality_assets.anomalies.scoring import score_file
from quality_assets.anomalies.tables import (
    alarmed_partitions,
    column_alarms,
    ensure_anomaly_tables,
    write_results,
)
from quality_assets.anomalies.volume import volume_findings
from quality_assets.catalog import has_table
from quality_assets.contract import Dataset
from quality_assets.contract.anomalies import AnomalySettings, parse_anomaly_settings
from quality_assets.shapes import shapes
from quality_assets.warehouse import Warehouse

DRIFT_EXCLUDED_ROLES = ("time", "period")  # calendar-bound or one value per partition: not drift


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
    roles: dict[str, ColumnRole] = field(default_factory=dict)
    causes: list[dict] = field(default_factory=list)  # partition-level changes first, then row causes

    @property
    def partition_alarms(self) -> int:
        return len(self.metric_anomalies) + len(self.drifted_columns)

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
        row_causes = sum(1 for c in self.causes if c["level"] == "rows")
        return (f"{self.rows_flagged:,} of {self.rows_scored:,} rows flagged ({self.anomaly_rate:.2%}, "
                f"{self.threshold_method}) in {row_causes} cause(s); {len(self.metric_anomalies)} metric anomalies; "
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


def detect_anomalies(warehouse: Warehouse, dataset: Dataset, partition_key: str, run_id: str,
                     options: AnomalyOptions | None = None, work_dir: Path | None = None,
                     progress=None) -> AnomalyResult:
    """Roles, volume, row scores and their causes, metric anomalies, period consistency and drift
    for one partition; results written to the qa tables."""
    options = options or AnomalyOptions()
    settings = dataset_settings(dataset)
    result = AnomalyResult(dataset.name, partition_key, run_id, settings)
    started = time.perf_counter()
    say = progress or (lambda message: None)
    scratch = Path(tempfile.mkdtemp(prefix="anomalies-", dir=work_dir or warehouse.work_dir))
    daily = dataset.partitioning == "daily"
    try:
        model: RowModel | None = None
        reference_sample = None
        period_causes: list[dict] = []
        with warehouse.connect() as con:
            ensure_anomaly_tables(con)
            if not settings.enabled:
                result.notes.append("anomaly detection disabled in the contract")
            elif not has_table(con, "raw", dataset.name):
                result.notes.append(f"no table raw.\"{dataset.name}\" yet")
            else:
                history = history_partitions(con, dataset, partition_key)
                clean = reference_history(history, alarmed_partitions(con, dataset.name))
                alarms = column_alarms(con, dataset.name)
                if len(clean) < len(history):
                    result.notes.append(f"{len(history) - len(clean)} earlier partition(s) with alarms: each column "
                                        "is compared without the partitions where it alarmed")
                columns, has_file = raw_columns(con, dataset.name, settings.exclude_columns)
                result.roles = learn_roles(con, dataset.name, partition_key, history, columns, dataset.primary_key,
                                           settings.roles)
                say(f"fitting on {len(history[-settings.reference_partitions:]) or 'no'} history partition(s)")
                model = fit_row_model(con, dataset.name, partition_key, history, settings, result.roles,
                                      dataset.primary_key, options.reference_rows, daily=daily, alarms=alarms)
                result.rows_scored = export_partition(con, model, dataset.name, partition_key, scratch / "partition.arrow",
                                                      options.drift_sample_rows, options.batch_size)
                periods, period_causes = period_findings(con, dataset.name, partition_key, result.roles, has_file)
                volume = volume_findings(con, dataset.name, partition_key,
                                         reference_history(history, alarms.get(None, set())), settings, daily)
                columns_judged = metric_anomalies(con, dataset.name, partition_key, history, settings, daily,
                                                  result.roles)
                gaps = time_gaps(con, dataset.name, partition_key, clean, result.roles,
                                 {c.name: c for c in columns}, settings, daily)
                result.metrics = volume + explained_by_volume(columns_judged, volume) + periods + gaps
                pools = _drift_pools(settings, history, alarms, partition_key,
                                     list(model.columns), result)
                candidates = sorted({k for pool in pools.values() for k in pool}, key=history.index)
                if candidates:
                    scored = [model.columns[name] for name in model.columns]
                    # the same rows per partition as a pool of reference_pool partitions would get
                    rows = options.drift_sample_rows * max(1, len(candidates)) // max(1, settings.reference_pool)
                    reference_sample = read_sample(con, dataset.name, scored, candidates, rows,
                                                   model.has_file, daily=model.daily)
        if model is not None:
            say(f"scoring {result.rows_scored:,} rows with {len(model.features)} features")
            scores, current_sample = score_file(scratch / "partition.arrow", model, settings, options.batch_size,
                                                options.max_rows)
            result.rows_flagged, result.threshold_p = scores.flagged, scores.threshold_p
            result.threshold_method, result.rows = scores.threshold_method, scores.top
            result.fitted_on, result.reference_partitions = model.fitted_on, model.reference_partitions
            result.reference_rows, result.features = model.reference_rows, model.describe()
            result.skipped_columns = model.skipped
            # stray period values are counted exactly by period.py: the row tally's share of them is dropped
            counted = {c["columns"][0] for c in period_causes}
            result.causes = scores.floods + period_causes + [
                c for c in scores.causes if not (c["signal"] == "period" and c["columns"][0] in counted)]
            # a flood is a partition-level change, judged like a metric: from min_history partitions on
            if model.fitted_on == "history" and len(model.reference_partitions) >= settings.min_history:
                result.metrics += [_flood_metric(flood, len(result.reference_partitions)) for flood in scores.floods
                                   if not flood.get("moved")  # a level that moved is the metrics' to judge
                                   and not flood.get("first_values")  # see metric_anomalies.first_values
                                   and not _level_expected(flood, result.metrics)]
            if reference_sample is not None:
                result.drift = judge(_drift_tests(model, result.roles, current_sample, reference_sample, pools),
                                     settings)
        result.duration_s = round(time.perf_counter() - started, 3)
        with warehouse.connect() as con:
            write_results(con, result)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return result


def explained_by_volume(metrics: list[MetricResult], volume: list[MetricResult]) -> list[MetricResult]:
    """Volume is judged first: when the row count moved, distinct counts that moved the same way
    follow it and are not reported again."""
    [rows] = [m for m in volume if m.metric == "row_count"] or [None]
    if rows is None or not rows.is_anomaly:
        return metrics
    up = rows.value > rows.expected
    for m in metrics:
        if m.metric == "distinct_count" and m.is_anomaly and (m.value > m.expected) == up:
            m.is_anomaly = False
            m.reason = f"follows the row count ({rows.value:,.0f} rows, {rows.expected:,.0f} expected): " + m.reason
    return metrics


def _level_expected(flood: dict, metrics: list[MetricResult]) -> bool:
    """A number whose rows all left the history's range while its median stayed within the band
    its history predicts (a price that rises every year) changed as expected: the cause is kept,
    without an alarm."""
    if flood["signal"] != "value":
        return False
    median = next((m for m in metrics if m.column_name == flood["columns"][0] and m.metric == "p50"), None)
    if median is None or median.p_value is None or median.is_anomaly:
        return False
    flood["description"] = flood["description"].replace(
        "; a partition-level change", f"; its median is where its history predicts ({median.reason})")
    return True


def _flood_metric(flood: dict, history: int) -> MetricResult:
    return MetricResult(column_name=flood["columns"][0], metric="rows_departing", value=flood["share"], expected=None,
                        lower=None, upper=None, robust_z=None, direction=flood["condition"], history_size=history,
                        seasonal=False, is_anomaly=True, reason=flood["description"])


def _drift_pools(settings: AnomalySettings, history: list[str], alarms: dict[str, set[str]], partition_key: str,
                 columns: list[str], result: AnomalyResult) -> dict[str, list[str]]:
    """Column -> the partitions its drift test compares with: the recent partitions where that
    column raised no alarm (a change that persisted is the new normal), the previous partition,
    or a pinned one. A column with too few such partitions is not tested."""
    if settings.reference == "recent":
        needed = min(settings.min_history, settings.reference_pool)
        recent = history[-3 * settings.reference_pool:]  # room for partitions left out
        pools = {c: reference_history(recent, alarms.get(c, set()))[-settings.reference_pool:] for c in columns}
        longest = max((len(pool) for pool in pools.values()), default=0)
        pools = {c: pool for c, pool in pools.items() if len(pool) >= needed}
        if not pools:
            result.notes.append(f"no drift: {longest} earlier partition(s) without alarms, fewer than {needed}")
    elif settings.reference == "previous":
        pools = dict.fromkeys(columns, history[-1:]) if history else {}
    elif settings.reference == partition_key:
        result.notes.append("no drift: this is the pinned reference partition")
        pools = {}
    elif settings.reference not in history:
        result.notes.append(f"no drift: the pinned reference partition {settings.reference!r} is not loaded")
        pools = {}
    else:
        pools = dict.fromkeys(columns, [settings.reference])
    if pools:
        result.drift_reference = ", ".join(sorted({k for pool in pools.values() for k in pool}, key=history.index))
    return pools


def _drift_tests(model: RowModel, roles: dict[str, ColumnRole], current: pa.Table, sample: pa.Table,
                 pools: dict[str, list[str]]) -> list[DriftResult]:
    results = []
    partitions = np.asarray(sample.column("_pk").to_numpy(zero_copy_only=False))
    tested = set()
    for feature in model.features:
        column = feature.columns[0]
        role = roles[column].role if column in roles else None
        if (role in DRIFT_EXCLUDED_ROLES or feature.signal not in ("value", "category", "shape")
                or column not in pools or column in tested):
            continue
        tested.add(column)  # a category's coarse shapes are not tested beside its values
        mask = np.isin(partitions, pools[column])
        reference, groups = sample.filter(pa.array(mask)), partitions[mask]
        name = feature.inputs[0]
        if _distinct(reference.column(name)) <= 1 < _distinct(current.column(name)):
            continue  # a first variation: reported by the metrics, nothing to compare it with
        if feature.signal == "value":
            result = numeric_drift(column, _floats(current, name), _floats(reference, name), groups)
        elif feature.signal == "category":
            result = categorical_drift(column, current.column(name).combine_chunks(),
                                       reference.column(name).combine_chunks(), groups=groups)
        else:  # codes and text: the mix of their character shapes
            coarse = feature.extra["coarse"]
            result = categorical_drift(column, shapes(current.column(name), coarse),
                                       shapes(reference.column(name), coarse), "chi2-shape", groups)
        result.reference = ", ".join(pools[column])
        results.append(result)
    return results


def _distinct(column: pa.ChunkedArray) -> int:
    return len(pc.unique(pc.drop_null(column)))


def _floats(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
