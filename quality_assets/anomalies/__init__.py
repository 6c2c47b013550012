"""The anomaly stage: explainable row scores, metric anomalies against history, drift.

No Dagster here; quality_assets/defs/anomalies.py wires it as `<dataset>/anomalies`.
"""

from quality_assets.anomalies.tables import (
    ANOMALY_TABLES_DDL,
    ensure_anomaly_tables,
    latest_anomaly_run,
    read_anomalies,
)

__all__ = ["ANOMALY_TABLES_DDL", "ensure_anomaly_tables", "latest_anomaly_run", "read_anomalies"]
