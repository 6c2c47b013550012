"""The deployment on the DuckLake backend, for real: PostgreSQL (Dagster's storage in one fresh
database, the lake's catalog in another), the gRPC code server, dagster-daemon and
dagster-webserver as plain processes with the lake deployment's instance (deploy/docker/dagster.yaml
with runs as children of the code server: 4 concurrent runs, the warehouse pool 4 wide), 40 small
files landing at once across two datasets, and a read-only reader attached to the lake throughout.
The same files through the embedded DuckDB file must give the same rows and audit."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import yaml
from deployment_support import (
    BIN,
    REPO,
    Deployment,
    command_lines,
    fresh_database,
    operations_blocks,
    wait_for,
)
from lake_support import CONTRACT, READER, Lake, require_lake, write_csv

FILES_PER_DATASET = 20
FILES_PER_RUN = 5  # range runs of 5 files: 8 runs for 4 run workers
TERMINAL = ("SUCCESS", "FAILURE", "CANCELED")
LOCK_ERROR = re.compile(r"\block(ed)?\b|E_WAREHOUSE_BUSY|Could not set lock", re.IGNORECASE)
CONFLICT = "conflicted with another writer"
AUDIT = "SELECT dataset, partition_key, status, rows_read, rows_loaded, rows_quarantined FROM qa.files ORDER BY 1, 2"


def lake_instance(target: Path) -> Path:
    """The lake deployment's dagster.yaml without Docker: runs are the code server's subprocesses."""
    instance = yaml.safe_load((REPO / "deploy" / "docker" / "dagster.yaml").read_text())
    instance.pop("run_launcher")
    target.write_text(yaml.safe_dump(instance))
    return target


def raw_counts(con: duckdb.DuckDBPyConnection) -> list[tuple]:
    return con.execute("SELECT 'alpha', _partition_key, count(*) FROM raw.alpha GROUP BY ALL UNION ALL "
                       "SELECT 'beta', _partition_key, count(*) FROM raw.beta GROUP BY ALL ORDER BY 1, 2").fetchall()


def max_overlap(runs: list[dict]) -> int:
    """The most runs executing at one moment, from their start and end times."""
    edges = sorted([(r["start"], 1) for r in runs] + [(r["end"], -1) for r in runs])
    most = current = 0
    for _, step in edges:
        current += step
        most = max(most, current)
    return most


@pytest.mark.slow
def test_lake_deployment_with_four_run_workers_and_a_reader(tmp_path: Path):
    require_lake()
    project = tmp_path / "project"
    project.mkdir()
    (project / "quality.yaml").write_text(CONTRACT)
    incoming = tmp_path / "incoming"
    files = {}  # landed path -> (dataset, lines written)
    for n in range(2 * FILES_PER_DATASET):
        ds = ("alpha", "beta")[n % 2]
        source = incoming / ds / f"{ds}_{n:02d}.csv"
        write_csv(source, 50 + 7 * n, seed=n + 3)  # every other file has one quarantined row
        files[project / "landing" / ds / source.name] = (ds, len(source.read_text().splitlines()) - 1)
    for ds in ("alpha", "beta"):
        (project / "landing" / ds).mkdir(parents=True)

    with fresh_database("qa_dagster") as dagster_db, fresh_database("qa_lake") as lake_db:
        lake = Lake(lake_db, tmp_path / "lake-data", tmp_path / "lake-work")
        deployment = Deployment(tmp_path / "deployment", dagster_db, project,
                                instance=lake_instance(tmp_path / "dagster-lake.yaml"),
                                extra_env={**lake.env(), "QA_FILES_PER_RUN": str(FILES_PER_RUN),
                                           "QA_ALERT_WEBHOOK_URL": ""})
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
            # All 40 at once: each complete file renamed into its landing folder.
            for landed in files:
                os.replace(incoming / landed.parent.name / landed.name, landed)
            # The same files through the embedded DuckDB file, meanwhile, for the comparison below.
            embedded_env = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "DAGSTER_"))}
            embedded_env.update({"QA_DUCKDB_PATH": str(tmp_path / "embedded" / "quality.duckdb"),
                                 "QA_OUTPUT_DIR": str(tmp_path / "embedded" / "output")})
            embedded = subprocess.Popen([str(BIN / "quality-assets"), "--contracts", str(project / "quality.yaml"),
                                         "run"], env=embedded_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)

            def audited() -> int:
                with lake.warehouse().connect(read_only=True) as con:
                    return con.execute("SELECT count(DISTINCT (dataset, partition_key)) FROM qa.files").fetchone()[0]

            def all_done():
                runs = deployment.runs()
                return runs if runs and all(r["status"] in TERMINAL for r in runs) and audited() == len(files) else None

            wait_for(all_done, 900, "every landed file's run", interval=2, on_timeout=deployment.diagnostics)
            time.sleep(5)  # a sensor tick that would launch a second run of any file has happened by now
            runs = all_done()
            assert runs, deployment.diagnostics()
            out, err = embedded.communicate(timeout=600)
            assert embedded.returncode == 0, out[-2000:] + err[-3000:]
        finally:
            stop.touch()
            deployment.stop_all()
            seen, reader_err = reader.communicate(timeout=120) if reader else ("", "")

        # Every run succeeded; up to 4 ran at once, so the lake had concurrent writers.
        assert [r["status"] for r in runs] == ["SUCCESS"] * len(runs), [(r["run_id"], r["status"]) for r in runs]
        overlap = max_overlap(runs)
        assert 2 <= overlap <= 4, overlap
        # Every file processed exactly once: one materialization of its raw partition, one audit row.
        for ds in ("alpha", "beta"):
            materialized = deployment.sql(
                "SELECT partition, count(*) FROM event_logs WHERE dagster_event_type = 'ASSET_MATERIALIZATION' "
                "AND asset_key = %s GROUP BY 1 ORDER BY 1", [json.dumps([ds, "raw"])])
            assert materialized == sorted((p.name, 1) for p, (d, _) in files.items() if d == ds)
        # No lock error anywhere in the runs' logs (events and compute logs); conflicts are retried.
        events = "\n".join(body for (body,) in deployment.sql("SELECT event FROM event_logs WHERE run_id <> ''"))
        compute_logs = "\n".join(p.read_text(errors="replace") for p in (deployment.home / "storage").rglob("*")
                                 if p.is_file() and p.suffix in (".out", ".err", ".log"))
        locks = [m.group(0) for m in LOCK_ERROR.finditer(events + compute_logs)]
        assert locks == [], [line for line in (events + compute_logs).splitlines() if LOCK_ERROR.search(line)][:5]
        conflicts = (events + compute_logs).count(CONFLICT)

        # The reader never failed and never saw half a partition, in raw or published.
        assert reader.returncode == 0, reader_err[-3000:]
        report = json.loads(seen.strip().splitlines()[-1])
        assert report["torn"] == [] and report["checks"] > 0, report
        assert any(0 < n < len(files) for n in report["loaded_seen"]), report  # it read while runs wrote

        with lake.warehouse().connect(read_only=True) as con:
            audit = con.execute(AUDIT).fetchall()
            lake_raw = raw_counts(con)
            published = con.execute(
                "SELECT 'alpha', _partition_key, count(*) FROM published.alpha GROUP BY ALL UNION ALL "
                "SELECT 'beta', _partition_key, count(*) FROM published.beta GROUP BY ALL ORDER BY 1, 2").fetchall()
        quarantined = {p: (n + 3) % 2 for n, p in enumerate(files)}  # write_csv's seed n + 3
        expected = sorted((ds, p.name, "loaded_with_errors" if quarantined[p] else "loaded", lines,
                           lines - quarantined[p], quarantined[p]) for p, (ds, lines) in files.items())
        assert audit == expected  # loaded + quarantined = read, for each file
        assert lake_raw == published == [(ds, key, loaded) for ds, key, _, _, loaded, _ in expected]
        with duckdb.connect(str(tmp_path / "embedded" / "quality.duckdb"), read_only=True) as con:
            assert con.execute(AUDIT).fetchall() == audit
            assert raw_counts(con) == lake_raw
        print(f"\n{len(runs)} runs, at most {overlap} at once; {conflicts} commit conflicts retried; "
              f"reader: {report['checks']} snapshots checked, loaded files seen {report['loaded_seen'][:3]}..."
              f"{report['loaded_seen'][-3:]}")
