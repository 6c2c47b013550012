"""The deployment's Dagster instance storage (dagster.yaml `storage: custom:`): dagster-postgres
with one pool of connections per process.

dagster-postgres opens a new PostgreSQL connection for every storage call (SQLAlchemy's
NullPool) except in the webserver, which pools them (`optimize_for_webserver`); and every
instance checks for its tables when it is made, which the code server does for each sensor
evaluation and the daemon's run requests. A run writes ~25 events a small file, each several
calls, and the daemon polls runs, queues and pools: on the 2-core machine PostgreSQL spent more
CPU starting backends than the run workers spent on the files (benchmarks/deployment.py counts
the connections opened per file). Here every instance a process makes shares that process's
pool, and only its first instance checks for (and creates) the tables.
"""

from __future__ import annotations

import os
import threading

import sqlalchemy
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

_engines: dict[tuple[int, str, str], sqlalchemy.engine.Engine] = {}
_tables_checked: set[tuple[int, str]] = set()
_lock = threading.Lock()


def shared_engine(kind: str, postgres_url: str, token_provider=None) -> sqlalchemy.engine.Engine:
    """This process's pooled engine for one storage (`kind`) of a database (a child process
    started by fork makes its own: a pooled connection cannot cross processes)."""
    key = (os.getpid(), kind, postgres_url)
    with _lock:
        if key not in _engines:
            _engines[key] = create_pg_engine(
                postgres_url, token_provider, isolation_level="AUTOCOMMIT", pool_size=POOL_SIZE,
                max_overflow=POOL_MAX_OVERFLOW, pool_recycle=POOL_RECYCLE_S, pool_pre_ping=True,
            )
        return _engines[key]


def _shared(storage_class: type, kind: str):
    class Shared(storage_class):
        def __init__(self, postgres_url, should_autocreate_tables=True, token_provider=None):
            super().__init__(postgres_url, should_autocreate_tables, token_provider=token_provider)
            self._engine = shared_engine(kind, postgres_url, token_provider)

    Shared.__name__ = Shared.__qualname__ = f"Shared{storage_class.__name__}"
    return Shared


_Runs = _shared(PostgresRunStorage, "runs")
_Events = _shared(PostgresEventLogStorage, "events")
_Schedules = _shared(PostgresScheduleStorage, "schedules")


class PooledPostgresStorage(DagsterPostgresStorage):
    """dagster-postgres storage whose connections are pooled once per process and database,
    shared by every instance the process makes (an instance's dispose leaves them open)."""

    def __init__(self, postgres_url: str, should_autocreate_tables: bool = True, inst_data=None,
                 token_provider=None):
        self.postgres_url = postgres_url
        self.should_autocreate_tables = should_autocreate_tables
        self._inst_data = inst_data
        first = (os.getpid(), postgres_url) not in _tables_checked
        check = should_autocreate_tables and first
        self._run_storage = _Runs(postgres_url, check, token_provider=token_provider)
        self._event_log_storage = _Events(postgres_url, check, token_provider=token_provider)
        self._schedule_storage = _Schedules(postgres_url, check, token_provider=token_provider)
        with _lock:
            _tables_checked.add((os.getpid(), postgres_url))
        super(DagsterPostgresStorage, self).__init__()

    @classmethod
    def from_config_value(cls, inst_data, config_value) -> PooledPostgresStorage:
        return cls(
            inst_data=inst_data,
            postgres_url=pg_url_from_config(config_value),
            should_autocreate_tables=config_value.get("should_autocreate_tables", True),
            token_provider=get_token_provider_from_config(config_value),
        )
