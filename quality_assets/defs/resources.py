"""The warehouse as a Dagster resource; its settings resolve from the environment at launch."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from quality_assets.warehouse import Warehouse


class WarehouseResource(dg.ConfigurableResource):
    """The DuckDB warehouse file; connections queue behind other processes using it."""

    path: str
    memory_limit: str = "1GB"
    lock_timeout_s: float = 600.0

    def get(self) -> Warehouse:
        return Warehouse(self.path, lock_timeout_s=self.lock_timeout_s, memory_limit=self.memory_limit)


class OutputFolderResource(dg.ConfigurableResource):
    """QA_OUTPUT_DIR: where reports and metrics files are written, one folder per dataset and partition."""

    path: str

    def get(self) -> Path:
        return Path(self.path).expanduser().resolve()


class QualitySettings(dg.ConfigurableResource):
    """The stages' tuning knobs (QA_TOP_VALUES, QA_GAUSSIAN_TEST, QA_ANOMALY_*), shown in the UI
    and overridable per run in the launchpad's resources config."""

    top_values: int = 10
    gaussian_test: str = "dagostino"
    anomaly_batch_rows: int = 100_000
    anomaly_reference_rows: int = 200_000
    anomaly_max_rows: int = 1000
