"""Settings from environment variables, read when a run or command starts (never at import)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# name -> (default, meaning); README.md documents the same table.
VARIABLES = {
    "QA_CONTRACTS": ("quality.yaml", "the contract file"),
    "QA_DUCKDB_PATH": ("<contract folder>/warehouse/quality.duckdb", "the DuckDB warehouse file"),
    "QA_OUTPUT_DIR": ("<contract folder>/output", "where reports and metrics files are written"),
    "QA_DUCKDB_MEMORY_LIMIT": ("1GB", "DuckDB memory limit per connection (spills to disk beyond it)"),
    "QA_DUCKDB_LOCK_TIMEOUT": ("600", "seconds a run waits for another process to release the warehouse"),
    "QA_SENSOR_INTERVAL": ("30", "seconds between file-arrival sensor ticks"),
    "QA_SENSOR_SETTLE_SECONDS": ("60", "a file unchanged for this long counts as completely written"),
    "QA_SENSOR_HASH_MAX_BYTES": ("8388608", "files up to this size are hashed by the sensor to ignore touches"),
    "QA_SENSOR_MAX_RUNS_PER_TICK": ("500", "run requests per sensor tick; the rest follow next tick"),
    "QA_SCORECARD_START": ("<earliest daily start, else 2026-01-01>", "first day of the daily scorecard"),
    "QA_ALERT_WEBHOOK_URL": ("(none)", "URL that alerts are POSTed to as JSON; alerts are always logged"),
    "QA_ALERT_WEBHOOK_TIMEOUT": ("5", "seconds per webhook attempt"),
    "QA_ALERT_WEBHOOK_RETRIES": ("3", "webhook attempts per alert (retried on timeouts, 429 and 5xx)"),
    "QA_TOP_VALUES": ("10", "most frequent values (and character shapes) kept per column by the profile"),
    "QA_GAUSSIAN_TEST": ("dagostino", "the profile's normality test: dagostino, shapiro, anderson or ks"),
    "QA_ANOMALY_BATCH_ROWS": ("100000", "rows the anomaly stage scores at a time (bounds its memory)"),
    "QA_ANOMALY_REFERENCE_ROWS": ("200000", "history rows (a deterministic sample) the row detector is fitted on"),
    "QA_ANOMALY_MAX_ROWS": ("1000", "flagged rows stored in qa.row_anomalies per partition, best ranked first"),
}


@dataclass(frozen=True)
class Settings:
    contracts: Path
    duckdb_path: Path
    output_dir: Path
    memory_limit: str
    lock_timeout_s: float
    sensor_interval_s: int
    sensor_settle_s: float
    sensor_hash_max_bytes: int
    sensor_max_runs_per_tick: int
    scorecard_start: str | None = None
    alert_webhook_url: str | None = None
    alert_webhook_timeout_s: float = 5.0
    alert_webhook_retries: int = 3
    top_values: int = 10
    gaussian_test: str = "dagostino"
    anomaly_batch_rows: int = 100_000
    anomaly_reference_rows: int = 200_000
    anomaly_max_rows: int = 1000


class SettingsError(ValueError):
    pass


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    contracts = Path(env.get("QA_CONTRACTS") or "quality.yaml").expanduser().resolve()
    base = contracts.parent
    return Settings(
        contracts=contracts,
        duckdb_path=Path(env.get("QA_DUCKDB_PATH") or base / "warehouse" / "quality.duckdb").expanduser().resolve(),
        output_dir=Path(env.get("QA_OUTPUT_DIR") or base / "output").expanduser().resolve(),
        memory_limit=env.get("QA_DUCKDB_MEMORY_LIMIT") or "1GB",
        lock_timeout_s=_number(env, "QA_DUCKDB_LOCK_TIMEOUT", 600.0, float),
        sensor_interval_s=_number(env, "QA_SENSOR_INTERVAL", 30, int),
        sensor_settle_s=_number(env, "QA_SENSOR_SETTLE_SECONDS", 60.0, float),
        sensor_hash_max_bytes=_number(env, "QA_SENSOR_HASH_MAX_BYTES", 8 * 1024 * 1024, int),
        sensor_max_runs_per_tick=_number(env, "QA_SENSOR_MAX_RUNS_PER_TICK", 500, int),
        scorecard_start=env.get("QA_SCORECARD_START") or None,
        alert_webhook_url=env.get("QA_ALERT_WEBHOOK_URL") or None,
        alert_webhook_timeout_s=_number(env, "QA_ALERT_WEBHOOK_TIMEOUT", 5.0, float),
        alert_webhook_retries=max(1, _number(env, "QA_ALERT_WEBHOOK_RETRIES", 3, int)),
        top_values=max(1, _number(env, "QA_TOP_VALUES", 10, int)),
        gaussian_test=_choice(env, "QA_GAUSSIAN_TEST", "dagostino", ("dagostino", "shapiro", "anderson", "ks")),
        anomaly_batch_rows=max(1, _number(env, "QA_ANOMALY_BATCH_ROWS", 100_000, int)),
        anomaly_reference_rows=max(100, _number(env, "QA_ANOMALY_REFERENCE_ROWS", 200_000, int)),
        anomaly_max_rows=_number(env, "QA_ANOMALY_MAX_ROWS", 1000, int),
    )


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
