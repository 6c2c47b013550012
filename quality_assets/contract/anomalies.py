"""The contract's `anomalies:` block: validation (called while the contract loads) and defaults;
the detectors read the parsed settings."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

# sensitivity -> false discovery rate of flagged rows, robust z of a metric anomaly, family-wise
# level of the metrics tested per partition, drift test level, minimum PSI of a drift. Medium uses
# the conventional 5% levels.
SENSITIVITY = {
    "low": {"fdr": 0.01, "z_threshold": 5.0, "metric_alpha": 0.01, "drift_alpha": 0.01, "drift_min_psi": 0.25},
    "medium": {"fdr": 0.05, "z_threshold": 4.0, "metric_alpha": 0.05, "drift_alpha": 0.05, "drift_min_psi": 0.2},
    "high": {"fdr": 0.1, "z_threshold": 3.0, "metric_alpha": 0.1, "drift_alpha": 0.1, "drift_min_psi": 0.1},
}
CHECKS = ("anomaly_rate", "metric_anomalies", "drift")
DIRECTIONS = ("both", "up", "down")
ROLES = ("identifier", "period", "time", "measure", "category", "text")
SEVERITIES = ("warn", "error")

KEYS = {
    "enabled": "true | false",
    "contamination": "auto (false discovery rate control) or the share of rows to flag, 0 < c <= 0.5",
    "sensitivity": "low | medium | high",
    "fdr": "false discovery rate of flagged rows with contamination auto, 0 < q < 1",
    "z_threshold": "robust z beyond which a metric is anomalous, > 0",
    "metric_alpha": "family-wise level of the metrics tested per partition (Holm), 0 < a < 1",
    "min_history": "partitions of history before metrics are judged, >= 1",
    "window": "trailing partitions a metric is compared with, >= min_history",
    "min_relative_change": "smallest relative change of a metric that can alert, >= 0",
    "direction": "both | up | down, or a mapping metric -> direction",
    "reference": "drift reference: recent (a pool of recent partitions where the column raised no alarm), previous, or a pinned partition key",
    "reference_pool": "partitions in the recent drift reference pool, >= 1",
    "roles": "column -> role (identifier, period, time, measure, category, text), overriding the learned role",
    "reference_partitions": "history partitions the row detector is fitted on, >= 1",
    "exclude_columns": "columns left out of every detector",
    "max_anomaly_rate": "share of flagged rows the anomaly_rate check tolerates, 0..1",
    "drift_alpha": "significance level of drift tests after Benjamini-Hochberg, 0 < a < 1",
    "drift_min_psi": "smallest population stability index that counts as drift, >= 0",
    "severity": "warn | error for every check, or a mapping check -> warn | error",
}


@dataclass(frozen=True)
class AnomalySettings:
    enabled: bool = True
    contamination: float | None = None  # None: auto
    sensitivity: str = "medium"
    fdr: float = 0.05
    z_threshold: float = 4.0
    metric_alpha: float = 0.05
    min_history: int = 3
    window: int = 28
    min_relative_change: float = 0.1
    direction: dict[str, str] = field(default_factory=dict)  # metric (or "*") -> direction
    reference: str = "recent"
    reference_pool: int = 5
    roles: dict[str, str] = field(default_factory=dict)
    reference_partitions: int = 30
    exclude_columns: tuple[str, ...] = ()
    max_anomaly_rate: float = 0.01
    drift_alpha: float = 0.05
    drift_min_psi: float = 0.2
    severity: dict[str, str] = field(default_factory=lambda: dict.fromkeys(CHECKS, "warn"))

    def direction_of(self, metric: str) -> str:
        return self.direction.get(metric, self.direction.get("*", "both"))

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["contamination"] = "auto" if self.contamination is None else self.contamination
        out["exclude_columns"] = list(self.exclude_columns)
        return out


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parse_anomaly_settings(block: dict | None, column_names: set[str] | None = None
                           ) -> tuple[AnomalySettings, list[tuple[str, str]]]:
    """The settings of an `anomalies:` block and its problems as (key, message) pairs."""
    block = dict(block or {})
    problems: list[tuple[str, str]] = []
    for key in block:
        if key not in KEYS:
            problems.append((key, f"unknown key {key!r} (expected one of: {', '.join(sorted(KEYS))})"))
    values: dict[str, Any] = {}
    sensitivity = block.get("sensitivity", "medium")
    if sensitivity not in SENSITIVITY:
        problems.append(("sensitivity", f"expected one of {', '.join(SENSITIVITY)}, got {sensitivity!r}"))
        sensitivity = "medium"
    values["sensitivity"] = sensitivity
    values.update(SENSITIVITY[sensitivity])

    if "enabled" in block:
        if not isinstance(block["enabled"], bool):
            problems.append(("enabled", "expected true or false"))
        else:
            values["enabled"] = block["enabled"]
    contamination = block.get("contamination", "auto")
    if contamination != "auto":
        if not _number(contamination) or not 0 < contamination <= 0.5:
            problems.append(("contamination", f"expected auto or a share 0 < c <= 0.5, got {contamination!r}"))
        else:
            values["contamination"] = float(contamination)

    def share(key: str, low: float, high: float, open_low: bool = True, open_high: bool = True) -> None:
        if key not in block:
            return
        value = block[key]
        ok = _number(value) and (value > low if open_low else value >= low) and (
            value < high if open_high else value <= high)
        if not ok:
            problems.append((key, f"expected {KEYS[key].split(', ')[-1]}, got {value!r}"))
        else:
            values[key] = float(value)

    share("fdr", 0, 1)
    share("drift_alpha", 0, 1)
    share("metric_alpha", 0, 1)
    share("max_anomaly_rate", 0, 1, open_low=False, open_high=False)
    share("min_relative_change", 0, float("inf"), open_low=False)
    share("drift_min_psi", 0, float("inf"), open_low=False)
    share("z_threshold", 0, float("inf"))
    for key in ("min_history", "window", "reference_partitions", "reference_pool"):
        if key in block:
            value = block[key]
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                problems.append((key, f"expected a whole number >= 1, got {value!r}"))
            else:
                values[key] = value
    if values.get("window", 28) < values.get("min_history", 3):
        problems.append(("window", f"window {values.get('window', 28)} is shorter than min_history "
                                   f"{values.get('min_history', 3)}"))

    direction = block.get("direction", {})
    if isinstance(direction, str):
        direction = {"*": direction}
    if not isinstance(direction, dict):
        problems.append(("direction", "expected both, up, down or a mapping metric -> direction"))
        direction = {}
    for metric, value in direction.items():
        if value not in DIRECTIONS:
            problems.append(("direction", f"{metric if metric != '*' else 'direction'}: expected one of "
                                          f"{', '.join(DIRECTIONS)}, got {value!r}"))
    values["direction"] = {str(k): v for k, v in direction.items() if v in DIRECTIONS}

    reference = block.get("reference", "recent")
    if not isinstance(reference, str) or not reference:
        problems.append(("reference", f"expected recent, previous or a partition key, got {reference!r}"))
    else:
        values["reference"] = reference

    excluded = block.get("exclude_columns", [])
    if isinstance(excluded, str):
        excluded = [excluded]
    if not isinstance(excluded, list) or not all(isinstance(c, str) for c in excluded):
        problems.append(("exclude_columns", "expected a list of column names"))
        excluded = []
    for name in excluded:
        if column_names and name not in column_names:
            problems.append(("exclude_columns", f"unknown column {name!r}"))
    values["exclude_columns"] = tuple(excluded)

    roles = block.get("roles", {})
    if not isinstance(roles, dict):
        problems.append(("roles", "expected a mapping column -> role"))
        roles = {}
    for name, role in roles.items():
        if role not in ROLES:
            problems.append(("roles", f"{name}: expected one of {', '.join(ROLES)}, got {role!r}"))
        elif column_names and name not in column_names:
            problems.append(("roles", f"unknown column {name!r}"))
    values["roles"] = {str(k): v for k, v in roles.items() if v in ROLES}

    severity = block.get("severity", "warn")
    levels = dict.fromkeys(CHECKS, "warn")
    if isinstance(severity, str):
        severity = dict.fromkeys(CHECKS, severity)
    if not isinstance(severity, dict):
        problems.append(("severity", "expected warn, error or a mapping check -> severity"))
        severity = {}
    for check, level in severity.items():
        if check not in CHECKS:
            problems.append(("severity", f"unknown check {check!r} (expected one of: {', '.join(CHECKS)})"))
        elif level not in SEVERITIES:
            problems.append(("severity", f"{check}: expected warn or error, got {level!r}"))
        else:
            levels[check] = level
    values["severity"] = levels
    return AnomalySettings(**values), problems
