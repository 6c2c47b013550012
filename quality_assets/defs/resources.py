"""The warehouse as a Dagster resource; its settings resolve from the environment at launch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import dagster as dg

from quality_assets.config import Settings, settings_from_env
from quality_assets.lake import LakeWarehouse, is_lake
from quality_assets.warehouse import Warehouse


class WarehouseResource(dg.ConfigurableResource):
    """The warehouse: the DuckDB file at `path` (connections queue behind other processes using
    it), or, when `lake` names one (QA_WAREHOUSE), a DuckLake with its data under `lake_data_path`
    (no queue; `path`'s folder keeps the worker's staging files)."""

    path: str
    memory_limit: str = "1GB"
    threads: int = 0  # DuckDB's threads; 0: one per core
    lock_timeout_s: float = 600.0
    lake: str = ""
    lake_data_path: str = ""

    def get(self) -> Warehouse:
        if is_lake(self.lake):
            return LakeWarehouse(self.lake, self.lake_data_path, Path(self.path).expanduser().resolve().parent,
                                 memory_limit=self.memory_limit, threads=self.threads or None,
                                 lock_timeout_s=self.lock_timeout_s)
        return Warehouse(self.path, lock_timeout_s=self.lock_timeout_s, memory_limit=self.memory_limit,
                         threads=self.threads or None)

    @contextmanager
    def for_step(self, partitions: int) -> Iterator[Warehouse]:
        """The warehouse for a step over `partitions` partitions. Several (a run over a range of
        files or days) share one connection, opened once for the step instead of for every
        partition and query: with small files, opening the file costs more than their work."""
        if partitions <= 1:
            yield self.get()
        else:
            with self.get().held() as warehouse:
                yield warehouse


class OutputFolderResource(dg.ConfigurableResource):
    """QA_OUTPUT_DIR: where reports and metrics files are written, one folder per dataset and partition."""

    path: str

    def get(self) -> Path:
        return Path(self.path).expanduser().resolve()


class QualitySettings(dg.ConfigurableResource):
    """The stages' tuning knobs, shown in the UI and overridable per run in the launchpad's
    resources config; a knob left unset takes its environment variable (QA_TOP_VALUES,
    QA_GAUSSIAN_TEST, QA_ANOMALY_*) when the run starts."""

    top_values: int | None = None
    gaussian_test: str | None = None
    anomaly_batch_rows: int | None = None
    anomaly_reference_rows: int | None = None
    anomaly_max_rows: int | None = None

    def resolved(self) -> Settings:
        """The environment's settings with this run's overrides."""
        overrides = {name: getattr(self, name) for name in (
            "top_values", "gaussian_test", "anomaly_batch_rows", "anomaly_reference_rows", "anomaly_max_rows")}
        return replace(settings_from_env(), **{k: v for k, v in overrides.items() if v is not None})
