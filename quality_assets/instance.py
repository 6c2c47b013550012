"""The deployment's Dagster instance storage (dagster.yaml `storage: custom:`): dagster-postgres
with pooled connections in every process.

dagster-postgres opens a new PostgreSQL connection for every storage call (SQLAlchemy's
NullPool) except in the webserver, which pools them (`optimize_for_webserver`). A run writes ~25
events a small file, each several calls, and the daemon polls runs, queues and pools: on the
2-core machine PostgreSQL spent more CPU starting backends than the run workers spent on the
files (benchmarks/deployment.py counts the connections opened per file). This is
dagster-postgres's storage with run and event log connections pooled in every process that loads
the instance: run workers, the daemon, the code server's sensor evaluations.
"""

from __future__ import annotations

from dagster_postgres import DagsterPostgresStorage, PostgresEventLogStorage, PostgresRunStorage
from dagster_postgres.schedule_storage import PostgresScheduleStorage
from dagster_postgres.utils import (
    create_pg_engine,
    get_token_provider_from_config,
    pg_url_from_config,
)

# Connections a process keeps open per storage once it has needed them at once (the daemon's
# threads, a run worker's step and its heartbeat); beyond that, up to POOL_MAX_OVERFLOW more are
# opened and closed after use, as NullPool does. Idle connections are not opened in advance.
POOL_SIZE = 4
POOL_MAX_OVERFLOW = 10
POOL_RECYCLE_S = 3600  # the webserver's default: a connection is replaced after an hour


def _pool(storage) -> None:
    storage._engine = create_pg_engine(
        storage.postgres_url, storage._token_provider, isolation_level="AUTOCOMMIT", pool_size=POOL_SIZE,
        max_overflow=POOL_MAX_OVERFLOW, pool_recycle=POOL_RECYCLE_S, pool_pre_ping=True,
    )


class _PooledRunStorage(PostgresRunStorage):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _pool(self)

    def dispose(self) -> None:  # the instance's dispose closes the pool's connections
        super().dispose()
        self._engine.dispose()


class _PooledEventLogStorage(PostgresEventLogStorage):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _pool(self)

    def dispose(self) -> None:
        super().dispose()
        self._engine.dispose()


class PooledPostgresStorage(DagsterPostgresStorage):
    """dagster-postgres storage whose run and event log connections are pooled. Schedule storage
    (sensor ticks and cursors, a few calls a tick) keeps a connection per call: an instance's
    dispose does not reach it, so a pool there would keep connections of short-lived instances
    (the code server's, one per sensor evaluation) open until garbage collection."""

    def __init__(self, postgres_url: str, should_autocreate_tables: bool = True, inst_data=None,
                 token_provider=None):
        self.postgres_url = postgres_url
        self.should_autocreate_tables = should_autocreate_tables
        self._inst_data = inst_data
        self._run_storage = _PooledRunStorage(postgres_url, should_autocreate_tables, token_provider=token_provider)
        self._event_log_storage = _PooledEventLogStorage(postgres_url, should_autocreate_tables,
                                                         token_provider=token_provider)
        self._schedule_storage = PostgresScheduleStorage(postgres_url, should_autocreate_tables,
                                                         token_provider=token_provider)
        super(DagsterPostgresStorage, self).__init__()

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> PooledPostgresStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )
