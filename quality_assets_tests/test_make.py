"""The make targets a new user runs. `make ui` for real: from the repository root (which holds the
deployment's dagster.yaml and workspace.yaml) with no QA_ or DAGSTER_ variable set; the UI answers
with the demo's assets on its own SQLite instance, and Ctrl-C or SIGTERM stops it and every
process it started within 10 s."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from deployment_support import REPO, free_port, wait_for

VENV = Path(sys.executable).parent.parent


def descendants(root: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    found, stack = set(), [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def asset_keys(port: int) -> set[str]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql", headers={"Content-Type": "application/json"},
        data=json.dumps({"query": "{ assetNodes { assetKey { path } } }"}).encode())
    with urllib.request.urlopen(request, timeout=10) as response:
        return {"/".join(n["assetKey"]["path"]) for n in json.loads(response.read())["data"]["assetNodes"]}


@pytest.mark.slow
@pytest.mark.parametrize("stop", ["ctrl-c", "sigterm"])
def test_make_ui_from_the_repo_root_serves_the_demo_and_stops_within_10s(tmp_path, stop):
    assert (REPO / "dagster.yaml").exists() and (REPO / "workspace.yaml").exists()  # the deployment's
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "DAGSTER_", "MAKE"))}
    log_path = tmp_path / "ui.log"
    with open(log_path, "wb") as log:
        make = subprocess.Popen(["make", "ui", f"VENV={VENV}", f"UI_PORT={port}"], cwd=REPO, env=env,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def loaded():
            if make.poll() is not None:
                pytest.fail(f"make ui exited {make.returncode}: {log_path.read_text(errors='replace')[-3000:]}")
            return asset_keys(port)

        keys = wait_for(loaded, 240, "make ui", interval=1,
                        on_timeout=lambda: log_path.read_text(errors="replace")[-3000:])
        assert {"orders/raw", "orders/report", "customers/raw", "scorecard"} <= keys
        assert (REPO / ".dagster_home" / "history" / "runs.db").exists()  # its own SQLite instance
        assert "DAGSTER_PG_HOST" not in log_path.read_text(errors="replace")
        processes = descendants(make.pid)
        assert len(processes) >= 4, processes  # quality-assets ui, dagster dev, webserver, daemon, code server

        started = time.monotonic()
        if stop == "ctrl-c":
            os.killpg(make.pid, signal.SIGINT)  # what the terminal does: the foreground group
        else:
            make.send_signal(signal.SIGTERM)  # what a supervisor does: make alone
        make.wait(timeout=30)
        while any(alive(pid) for pid in processes) and time.monotonic() - started < 30:
            time.sleep(0.1)
        elapsed = time.monotonic() - started
        assert not [pid for pid in processes if alive(pid)]
        assert elapsed < 10, f"stopped after {elapsed:.1f}s"
    finally:
        for pid in [make.pid, *descendants(make.pid)]:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        make.wait()


def collected(*args: str) -> set[str]:
    result = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *args],
                            cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return {line.split("[")[0] for line in result.stdout.splitlines() if "::" in line}


def test_slow_tier_holds_the_real_processes_the_big_file_and_the_browser():
    slow = collected("-m", "slow")
    assert {
        "quality_assets_tests/test_deployment.py::test_landed_files_are_processed_through_the_real_processes",
        "quality_assets_tests/test_deployment.py::test_daemon_killed_during_a_run_then_restarted",  # 1.5M rows
        "quality_assets_tests/test_deployment.py::test_retention_removes_old_partitions_everywhere",
        "quality_assets_tests/test_report.py::test_report_in_chromium_loads_offline_with_every_section",
        "quality_assets_tests/test_report.py::test_comparison_in_chromium",
        "quality_assets_tests/test_make.py::test_make_ui_from_the_repo_root_serves_the_demo_and_stops_within_10s",
    } <= slow
    fast = collected("-m", "not slow")
    assert not fast & slow and len(fast) > 200
    # what stays fast from the deployment module: reading its files, and one quick PostgreSQL test
    assert {t.rsplit("::", 1)[1] for t in fast if "test_deployment.py" in t} == {
        "test_every_command_block_of_operations_md_is_run", "test_compose_agrees_with_dagster_yaml_and_workspace",
        "test_fresh_database_is_dropped_afterwards"}
    assert not [t for t in fast if "test_report.py" in t and ("chromium" in t or "hostile_names" in t)]
    dry_run = subprocess.run(["make", "-n", "test-fast"], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert dry_run.returncode == 0 and '-m "not slow"' in dry_run.stdout, dry_run.stdout + dry_run.stderr
    assert "make test-fast" in (REPO / "README.md").read_text()


def faked_days() -> int:
    """The shift `make test-future` asks libfaketime for ("+365d"), 0 without it."""
    spec = os.environ.get("FAKETIME", "") if "faketime" in os.environ.get("LD_PRELOAD", "") else ""
    return int(spec[1:-1]) if spec.startswith("+") and spec.endswith("d") else 0


@pytest.mark.clock
def test_the_year_ahead_run_moves_every_clock_the_code_reads():
    """The guard is only worth something if the clock really moved: for Python, DuckDB's now() and
    child processes alike (measured against PostgreSQL's server clock, which libfaketime leaves alone)."""
    import datetime as dt

    import duckdb
    from deployment_support import pg_connect

    python_now = dt.datetime.now(dt.timezone.utc)
    with pg_connect("postgres") as con:
        real_now = con.execute("SELECT now()").fetchone()[0]
    duckdb_now = duckdb.connect().execute("SELECT now()").fetchone()[0]
    child_now = dt.datetime.fromtimestamp(int(subprocess.run(["date", "+%s"], capture_output=True, text=True).stdout),
                                          dt.timezone.utc)
    shift = dt.timedelta(days=faked_days())
    assert abs(python_now - real_now - shift) < dt.timedelta(minutes=5), (python_now, real_now, shift)
    for other in (duckdb_now, child_now):
        assert abs(other - python_now) < dt.timedelta(minutes=5), (other, python_now)
