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
    )


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
