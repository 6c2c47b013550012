"""What a profile holds: a column's metrics and details, and the partition's."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

COLUMN_METRICS = (
    "row_count", "null_count", "null_share", "blank_count", "nan_count", "inf_count",
    "distinct_count", "uniqueness", "min", "max", "mean", "std", "sum", "zeros", "negatives",
    "skewness", "kurtosis", "p1", "p5", "p25", "p50", "p75", "p95", "p99", "iqr", "mad",
    "top_value_share", "length_min", "length_mean", "length_max", "future_share",
    "before_floor_share",
)
COLUMN_DETAILS = (
    "semantic_type", "distinct_method", "histogram", "top_values", "shapes", "normality",
    "monotonicity", "alerts",
)
DATASET_METRICS = ("row_count", "column_count", "duplicate_rows", "bytes", "alert_count", "max_null_share")
DATASET_DETAILS = ("correlations", "alerts")


@dataclass
class ColumnProfile:
    name: str
    index: int
    metrics: dict[str, float | None] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def semantic_type(self) -> str:
        return (self.details.get("semantic_type") or {}).get("type", "text")

    @property
    def alerts(self) -> list[dict]:
        return self.details.get("alerts") or []

    def to_dict(self) -> dict:
        out: dict[str, Any] = {"name": self.name, "index": self.index,
                               "metrics": {m: self.metrics.get(m) for m in COLUMN_METRICS}}
        for key in COLUMN_DETAILS:
            out[key] = self.details.get(key)
        return out


@dataclass
class TableProfile:
    dataset: str
    partition_key: str
    metrics: dict[str, float | None] = field(default_factory=dict)
    columns: list[ColumnProfile] = field(default_factory=list)
    correlations: dict[str, Any] = field(default_factory=dict)
    alerts: list[dict] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per step, not stored

    def column(self, name: str) -> ColumnProfile:
        for col in self.columns:
            if col.name == name:
                return col
        raise KeyError(name)

    def all_alerts(self) -> list[dict]:
        out = list(self.alerts)
        for col in self.columns:
            out.extend({"column": col.name, **a} for a in col.alerts)
        return out

    def to_dict(self) -> dict:
        return {
            "dataset": self.dataset,
            "partition_key": self.partition_key,
            "metrics": {m: self.metrics.get(m) for m in DATASET_METRICS},
            "correlations": self.correlations,
            "alerts": self.alerts,
            "columns": [c.to_dict() for c in self.columns],
        }


