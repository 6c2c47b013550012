"""Settings from environment variables, read when a run or command starts (never at import)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Variable:
    """One setting: its environment variable, its default as documented, what it means, and how
    its text becomes a value (the default when unset)."""

    name: str
    default: str
    meaning: str
    parse: Callable[[Mapping[str, str], str, Path], Any]


def _path(relative: str) -> Callable:
    return lambda env, name, base: Path(env.get(name) or base / relative).expanduser().resolve()


def _text(default: str | None) -> Callable:
    return lambda env, name, base: env.get(name) or default


def _count(default, kind=int, minimum=None) -> Callable:
    def parse(env, name, base):
        value = _number(env, name, default, kind)
        return value if minimum is None else max(minimum, value)
    return parse


# Settings field -> its variable; README.md and OPERATIONS.md document the same table.
TABLE: dict[str, Variable] = {
    "duckdb_path": Variable("QA_DUCKDB_PATH", "<contract folder>/warehouse/quality.duckdb", "the DuckDB warehouse file",
                            _path("warehouse/quality.duckdb")),
    "warehouse": Variable("QA_WAREHOUSE", "(the DuckDB file at QA_DUCKDB_PATH)",
                          "the warehouse backend: unset for the embedded DuckDB file, or a DuckLake "
                          "`ducklake:postgres:<libpq connection string>` (needs the `lake` extra)", _text(None)),
    "lake_data_path": Variable("QA_LAKE_DATA_PATH", "<contract folder>/lake",
                               "the DuckLake's data files: a folder every worker shares, or an object-store URL",
                               lambda env, name, base: _location(env.get(name) or str(base / "lake"))),
    "lake_retries": Variable("QA_LAKE_RETRIES", "5",
                             "times a step is run again after its lake commit conflicted with another writer's",
                             _count(5, int, 0)),
    "output_dir": Variable("QA_OUTPUT_DIR", "<contract folder>/output", "where reports and metrics files are written",
                           _path("output")),
    "memory_limit": Variable("QA_DUCKDB_MEMORY_LIMIT", "1GB",
                             "DuckDB memory limit per connection (spills to disk beyond it)", _text("1GB")),
    "duckdb_threads": Variable("QA_DUCKDB_THREADS", "0",
                               "DuckDB threads per process, 0 for one per core; with N run workers sharing a "
                               "host's cores, cores / N (their threads would contend otherwise)", _count(0, int, 0)),
    "lock_timeout_s": Variable("QA_DUCKDB_LOCK_TIMEOUT", "600",
                               "seconds a run waits for another process to release the warehouse", _count(600.0, float)),
    "sensor_interval_s": Variable("QA_SENSOR_INTERVAL", "30", "seconds between file-arrival sensor ticks", _count(30)),
    "sensor_settle_s": Variable("QA_SENSOR_SETTLE_SECONDS", "60",
                                "a file unchanged for this long counts as completely written", _count(60.0, float)),
    "sensor_hash_max_bytes": Variable("QA_SENSOR_HASH_MAX_BYTES", "8388608",
                                      "files up to this size are hashed by the sensor to ignore touches",
                                      _count(8 * 1024 * 1024)),
    "sensor_max_runs_per_tick": Variable("QA_SENSOR_MAX_RUNS_PER_TICK", "500",
                                         "run requests per sensor tick; the rest follow next tick", _count(500)),
    "files_per_run": Variable("QA_FILES_PER_RUN", "25",
                              "landed files of a dataset run together in one Dagster run (each keeps its own "
                              "partition, checks and report)", _count(25, int, 1)),
    "scorecard_start": Variable("QA_SCORECARD_START", "<earliest daily start, else 2026-01-01>",
                                "first day of the daily scorecard", _text(None)),
    "alert_webhook_url": Variable("QA_ALERT_WEBHOOK_URL", "(none)",
                                  "URL that alerts are POSTed to as JSON; alerts are always logged", _text(None)),
    "alert_webhook_timeout_s": Variable("QA_ALERT_WEBHOOK_TIMEOUT", "5", "seconds per webhook attempt",
                                        _count(5.0, float)),
    "alert_webhook_retries": Variable("QA_ALERT_WEBHOOK_RETRIES", "3",
                                      "webhook attempts per alert (retried on timeouts, 429 and 5xx)", _count(3, int, 1)),
    "top_values": Variable("QA_TOP_VALUES", "10",
                           "most frequent values (and character shapes) kept per column by the profile", _count(10, int, 1)),
    "gaussian_test": Variable("QA_GAUSSIAN_TEST", "dagostino",
                              "the profile's normality test: dagostino, shapiro, anderson or ks",
                              lambda env, name, base: _choice(env, name, "dagostino", GAUSSIAN_TESTS)),
    "anomaly_batch_rows": Variable("QA_ANOMALY_BATCH_ROWS", "100000",
                                   "rows the anomaly stage scores at a time (bounds its memory)", _count(100_000, int, 1)),
    "anomaly_reference_rows": Variable("QA_ANOMALY_REFERENCE_ROWS", "200000",
                                       "history rows (a deterministic sample) the row detector is fitted on",
                                       _count(200_000, int, 100)),
    "anomaly_max_rows": Variable("QA_ANOMALY_MAX_ROWS", "1000",
                                 "flagged rows stored in qa.row_anomalies per partition, best ranked first", _count(1000)),
}
GAUSSIAN_TESTS = ("dagostino", "shapiro", "anderson", "ks")
# name -> (default, meaning), for the command line's help and the docs' tests
VARIABLES = {"QA_CONTRACTS": ("quality.yaml", "the contract file"),
             **{v.name: (v.default, v.meaning) for v in TABLE.values()}}


@dataclass(frozen=True)
class Settings:
    """The settings of a run or command: the contract file and a field per row of TABLE."""

    contracts: Path
    duckdb_path: Path
    warehouse: str | None
    lake_data_path: str
    lake_retries: int
    output_dir: Path
    memory_limit: str
    duckdb_threads: int
    lock_timeout_s: float
    sensor_interval_s: int
    sensor_settle_s: float
    sensor_hash_max_bytes: int
    sensor_max_runs_per_tick: int
    files_per_run: int
    scorecard_start: str | None
    alert_webhook_url: str | None
    alert_webhook_timeout_s: float
    alert_webhook_retries: int
    top_values: int
    gaussian_test: str
    anomaly_batch_rows: int
    anomaly_reference_rows: int
    anomaly_max_rows: int


class SettingsError(ValueError):
    pass


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    contracts = Path(env.get("QA_CONTRACTS") or "quality.yaml").expanduser().resolve()
    return Settings(contracts=contracts,
                    **{field: v.parse(env, v.name, contracts.parent) for field, v in TABLE.items()})


def _location(text: str) -> str:
    """A folder, resolved; an object-store URL (s3://...), as given."""
    return text if "://" in text else str(Path(text).expanduser().resolve())


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    text = (env.get(name) or default).strip().lower()
    if text not in allowed:
        raise SettingsError(f"{name}={env.get(name)!r} must be one of {', '.join(allowed)}")
    return text


def _number(env: Mapping[str, str], name: str, default, kind):
    text = env.get(name)
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        raise SettingsError(f"{name}={text!r} is not a {kind.__name__}") from None
    if value < 0:
        raise SettingsError(f"{name}={text!r} must not be negative")
    return value
