"""A run worker killed in the middle of replacing a partition on the DuckLake, for real:
PostgreSQL (Dagster's storage and the lake's catalog, each a fresh database), the gRPC code server,
dagster-daemon and dagster-webserver as plain processes with the repository's dagster.yaml on the
lake backend, and a read-only reader attached throughout.

A loaded file lands again, larger; its run's worker is killed (SIGKILL, as when a host or
container dies) while the raw step loads it: while it parses the file, or inside the lake
transaction that replaces the partition. The partition must then hold the old load or the new
one, whole; the run is marked failed, Dagster retries it (run_retries in dagster.yaml), the retry
succeeds and the partition holds the new file with loaded + quarantined = read. The reader never
sees half a partition. The same deployment shows the warehouse pool raised to one slot per run
worker (dagster.yaml gives pools 2 slots and runs 4 at once)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from deployment_support import (
    REPO,
    Deployment,
    cmdline,
    command_lines,
    fresh_database,
    operations_blocks,
    wait_for,
)
from lake_support import CONTRACT, READER, Lake, require_lake, write_csv

from quality_assets.defs.common import WAREHOUSE_POOL

OLD_ROWS = 2_000
NEW_ROWS = 600_000  # parsing and staging it takes seconds: long enough to kill the worker during the load
TERMINAL = ("SUCCESS", "FAILURE", "CANCELED")


def land(path: Path, rows: int, seed: int) -> None:
    """A complete file renamed into the landing folder: the sensor never sees it half-written."""
    part = path.parent / f".{path.name}.part"
    write_csv(part, rows, seed)
    os.replace(part, path)


def run_workers(deployment: Deployment) -> list[int]:
    """Run worker processes: the code server's multiprocessing children executing a run."""
    return [pid for pid in deployment.code_server_children() if "spawn_main" in cmdline(pid)
            and "resource_tracker" not in cmdline(pid)]


def partition_state(lake: Lake) -> tuple:
    """What the lake holds for big.csv: raw's rows and the runs that wrote them, the newest audit row."""
    with lake.warehouse().connect(read_only=True) as con:
        rows, writers = con.execute("SELECT count(*), list(DISTINCT _run_id ORDER BY _run_id) FROM raw.alpha "
                                    "WHERE _partition_key = 'big.csv'").fetchone()
        audit = con.execute("SELECT run_id, status, rows_read, rows_loaded, rows_quarantined FROM qa.files "
                            "WHERE dataset = 'alpha' AND partition_key = 'big.csv' ORDER BY finished DESC LIMIT 1").fetchone()
    return rows, writers, audit


def parquet_files(lake: Lake) -> set[Path]:
    return set(lake.data_path.rglob("*.parquet"))


@pytest.mark.slow
@pytest.mark.parametrize("kill_during", ["staging", "lake transaction"])
def test_a_run_worker_killed_mid_load_leaves_a_whole_partition_and_the_retry_succeeds(tmp_path: Path, kill_during):
    require_lake()
    project = tmp_path / "project"
    (project / "landing" / "alpha").mkdir(parents=True)
    (project / "landing" / "beta").mkdir(parents=True)
    (project / "quality.yaml").write_text(CONTRACT)
    big = project / "landing" / "alpha" / "big.csv"
    instance = yaml.safe_load((REPO / "dagster.yaml").read_text())
    workers = instance["concurrency"]["runs"]["max_concurrent_runs"]
    assert instance["concurrency"]["pools"]["default_limit"] < workers  # so that raising it shows

    with fresh_database("qa_dagster") as dagster_db, fresh_database("qa_lake") as lake_db:
        lake = Lake(lake_db, tmp_path / "lake-data", tmp_path / "lake-work")
        deployment = Deployment(tmp_path / "deployment", dagster_db, project,
                                extra_env={**lake.env(), "QA_ALERT_WEBHOOK_URL": ""})
        stop = tmp_path / "stop-reader"
        reader = None
        try:
            for name, line in zip(("code", "webserver", "daemon"), command_lines(operations_blocks()["processes"]),
                                  strict=True):
                deployment.start(name, line)
            deployment.wait_ready()
            reader = subprocess.Popen([sys.executable, "-c", READER, lake.spec, str(lake.data_path),
                                       str(tmp_path / "reader"), str(stop)], env=deployment.env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

            def runs_of_big(count: int):
                runs = [r for r in deployment.runs() if r["tags"].get("dagster/partition") == "big.csv"]
                return runs if len(runs) >= count and all(r["status"] in TERMINAL for r in runs) else None

            # The file's first version: loaded whole.
            land(big, OLD_ROWS, seed=4)  # an even seed: no quarantined row
            [first] = wait_for(lambda: runs_of_big(1), 300, "the first version's run", interval=1,
                               on_timeout=deployment.diagnostics)
            assert first["status"] == "SUCCESS", deployment.diagnostics()
            old = partition_state(lake)
            assert old == (OLD_ROWS, [first["run_id"]], (first["run_id"], "loaded", OLD_ROWS, OLD_ROWS, 0))

            # Its second version, larger; the worker is killed while the raw step loads it: while it
            # parses the file into its staging database, or once its lake transaction writes the
            # partition's new Parquet files (before their commit, unless the commit is quicker).
            written = parquet_files(lake)
            land(big, NEW_ROWS, seed=5)  # an odd seed: one quarantined row

            def loading():
                runs = [r for r in deployment.runs() if r["tags"].get("dagster/partition") == "big.csv"]
                if len(runs) < 2:
                    return None
                if runs[1]["status"] in TERMINAL:
                    pytest.fail(f"the run ended before its worker could be killed: {runs[1]}")
                started = deployment.sql("SELECT 1 FROM event_logs WHERE run_id = %s AND step_key = 'alpha__raw' "
                                         "AND dagster_event_type = 'STEP_START'", [runs[1]["run_id"]])
                staging = list((deployment.warehouse.parent / ".staging").glob("stage-*"))
                return runs[1] if started and staging else None

            killed = wait_for(loading, 300, "the raw step loading the second version", interval=0.05,
                              on_timeout=deployment.diagnostics)
            if kill_during == "staging":
                time.sleep(1.0)  # into the parse
            else:
                wait_for(lambda: parquet_files(lake) - written, 300, "the load's new Parquet files", interval=0.01)
            pids = run_workers(deployment)
            assert pids, deployment.diagnostics()
            for pid in pids:
                os.kill(pid, signal.SIGKILL)

            # Whatever the kill interrupted, the partition is one load whole: the old or the new.
            after_kill = partition_state(lake)
            new_audit = (killed["run_id"], "loaded_with_errors", NEW_ROWS + 1, NEW_ROWS, 1)
            assert after_kill in (old, (NEW_ROWS, [killed["run_id"]], new_audit)), after_kill

            # Dagster marks the run failed and retries it; the retry replaces the partition.
            runs = wait_for(lambda: runs_of_big(3), 600, "the killed run's retry", interval=1,
                            on_timeout=deployment.diagnostics)
            pool = deployment.sql('SELECT "limit" FROM concurrency_limits WHERE concurrency_key = %s', [WAREHOUSE_POOL])
        finally:
            stop.touch()
            deployment.stop_all()
            seen, reader_err = reader.communicate(timeout=120) if reader else ("", "")

        assert [r["status"] for r in runs] == ["SUCCESS", "FAILURE", "SUCCESS"], runs
        retry = runs[2]
        assert retry["tags"].get("dagster/parent_run_id") == killed["run_id"], retry["tags"]
        rows, writers, audit = partition_state(lake)
        assert (rows, writers) == (NEW_ROWS, [retry["run_id"]])
        assert audit == (retry["run_id"], "loaded_with_errors", NEW_ROWS + 1, NEW_ROWS, 1)  # loaded + quarantined = read
        with lake.warehouse().connect(read_only=True) as con:
            assert con.execute("SELECT count(*) FROM published.alpha WHERE _partition_key = 'big.csv'").fetchone() == (NEW_ROWS,)
            assert con.execute("SELECT count(*) FROM qa.quarantine WHERE partition_key = 'big.csv'").fetchone() == (1,)

        # The reader, attached throughout, never failed nor saw half a partition.
        assert reader.returncode == 0, reader_err[-3000:]
        report = json.loads(seen.strip().splitlines()[-1])
        assert report["torn"] == [] and report["checks"] > 0, report

        # On the lake the warehouse pool is one slot per run worker, not dagster.yaml's default.
        assert pool == [(workers,)], pool
        print(f"\nkilled {len(pids)} worker(s) during the {kill_during}: the partition then held the "
              f"{'old' if after_kill == old else 'new'} load; reader checked {report['checks']} snapshots")
