"""Run the deployment as plain processes: a fresh PostgreSQL database, the gRPC code server,
dagster-webserver and dagster-daemon, with DAGSTER_HOME holding the repository's dagster.yaml.

Used by test_deployment.py and benchmarks/deployment.py. Every process gets its own process
group, so stopping one also stops what it spawned (the code server's run workers).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG_HOST = os.environ.get("QA_TEST_PG_HOST", "127.0.0.1")
PG_PORT = os.environ.get("QA_TEST_PG_PORT", "5432")
PG_USER = os.environ.get("QA_TEST_PG_USER", "postgres")
PG_PASSWORD = os.environ.get("QA_TEST_PG_PASSWORD", "")
PG_ADMIN_DB = os.environ.get("QA_TEST_PG_ADMIN_DB", "postgres")
# The sensor daemon logs two lines a sensor a second even when nothing happens.
SENSOR_TICK = re.compile(r"SensorDaemon .*(Checking for new runs for sensor|skipped)")


def pg_connect(dbname: str, autocommit: bool = True) -> psycopg.Connection:
    return psycopg.connect(host=PG_HOST, port=PG_PORT, user=PG_USER, password=PG_PASSWORD or None,
                           dbname=dbname, autocommit=autocommit, connect_timeout=10)


@contextlib.contextmanager
def fresh_database(prefix: str = "qa_test") -> Iterator[str]:
    """A new, empty PostgreSQL database for this test run, dropped afterwards (connections killed)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with pg_connect(PG_ADMIN_DB) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        drop_database(name)


def drop_database(name: str) -> None:
    with pg_connect(PG_ADMIN_DB) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [name],
        )
        admin.execute(f'DROP DATABASE IF EXISTS "{name}"')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate: Callable[[], object], timeout: float, what: str, interval: float = 0.5,
             on_timeout: Callable[[], str] | None = None):
    """Poll until predicate returns something truthy; AssertionError naming `what` after timeout."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - the service may not be up yet
            last_error = exc
        time.sleep(interval)
    detail = on_timeout() if on_timeout else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last_error!r})\n{detail}")


@dataclass
class Service:
    name: str
    argv: list[str]
    process: subprocess.Popen
    log: Path

    def alive(self) -> bool:
        return self.process.poll() is None

    def tail(self, lines: int = 40) -> str:
        """The log's last lines, without the sensor daemon's every-second ticks that bury the rest."""
        try:
            text = self.log.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join([line for line in text if not SENSOR_TICK.search(line)][-lines:])


@dataclass
class Deployment:
    """The processes of the deployment, their environment and the folders they use."""

    root: Path
    database: str
    project: Path  # holds quality.yaml and its landing folders
    instance: Path = REPO / "dagster.yaml"  # copied to $DAGSTER_HOME/dagster.yaml
    code_port: int = field(default_factory=free_port)
    web_port: int = field(default_factory=free_port)
    extra_env: dict[str, str] = field(default_factory=dict)
    services: dict[str, Service] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.home = self.root / "dagster_home"
        self.home.mkdir(parents=True, exist_ok=True)
        shutil.copy(self.instance, self.home / "dagster.yaml")
        self.workdir = self.root / "deploy"  # the folder commands run in, holding workspace.yaml
        self.workdir.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / "workspace.yaml", self.workdir / "workspace.yaml")
        self.logs = self.root / "logs"
        self.logs.mkdir(exist_ok=True)
        self.warehouse = self.root / "warehouse" / "quality.duckdb"
        self.output = self.root / "output"

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("QA_", "DAGSTER_"))}
        env.update({
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "DAGSTER_HOME": str(self.home),
            "DAGSTER_PG_HOST": PG_HOST,
            "DAGSTER_PG_PORT": PG_PORT,
            "DAGSTER_PG_USER": PG_USER,
            "DAGSTER_PG_PASSWORD": PG_PASSWORD,
            "DAGSTER_PG_DB": self.database,
            "DAGSTER_CODE_HOST": "127.0.0.1",
            "DAGSTER_CODE_PORT": str(self.code_port),
            "WEBSERVER_PORT": str(self.web_port),
            "QA_CONTRACTS": str(self.project / "quality.yaml"),
            "QA_DUCKDB_PATH": str(self.warehouse),
            "QA_OUTPUT_DIR": str(self.output),
            "QA_DUCKDB_LOCK_TIMEOUT": "120",
            "QA_DUCKDB_MEMORY_LIMIT": "512MB",
            "QA_SENSOR_INTERVAL": "1",
            "QA_SENSOR_SETTLE_SECONDS": "0",
            "PYTHONUNBUFFERED": "1",
        })
        env.update(self.extra_env)
        return env

    # -- processes ------------------------------------------------------------------------

    def start(self, name: str, command: str) -> Service:
        """Start a shell command line (as OPERATIONS.md writes it) as its own process group."""
        log = self.logs / f"{name}.log"
        handle = open(log, "ab")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            ["bash", "-c", f"exec {command}"], cwd=self.workdir, env=self.env,
            stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
        )
        handle.close()
        service = Service(name, [command], process, log)
        self.services[name] = service
        return service

    def kill(self, name: str, sig: int = signal.SIGKILL, timeout: float = 30) -> None:
        service = self.services.get(name)
        if service is None or not service.alive():
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(service.process.pid, sig)
        try:
            service.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(service.process.pid, signal.SIGKILL)
            service.process.wait(timeout=10)

    def stop_all(self) -> None:
        for name in reversed(list(self.services)):
            self.kill(name, signal.SIGTERM, timeout=15)
            service = self.services[name]
            with contextlib.suppress(ProcessLookupError):  # stragglers in the group
                os.killpg(service.process.pid, signal.SIGKILL)

    def diagnostics(self) -> str:
        """The runs (status, newest events) first, then each process's log tail: what a timeout needs."""
        try:
            runs = self.run_summary()
        except Exception as exc:  # noqa: BLE001 - the database may be what failed
            runs = f"(runs unreadable: {exc!r})"
        logs = "\n".join(f"--- {s.name} (alive={s.alive()}) ---\n{s.tail()}" for s in self.services.values())
        return f"--- runs ---\n{runs}\n{logs}"

    def run_summary(self, events: int = 4) -> str:
        lines = []
        for run in self.runs():
            lines.append(f"{run['run_id'][:8]} {run['status']} partition={run['tags'].get('dagster/partition')} "
                         f"parent={run['tags'].get('dagster/parent_run_id', '')[:8]}")
            for step, kind, at in self.sql(
                "SELECT step_key, dagster_event_type, timestamp FROM event_logs WHERE run_id = %s "
                "AND dagster_event_type IS NOT NULL ORDER BY id DESC LIMIT %s", [run["run_id"], events]):
                lines.append(f"    {at} {step or '-'} {kind}")
        return "\n".join(lines)

    def wait_ready(self, timeout: float = 120) -> None:
        """Until the code server answers gRPC, the webserver serves /server_info and the daemon beats."""
        wait_for(lambda: self.grpc_healthy(), timeout, "the code server", on_timeout=self.diagnostics)
        wait_for(lambda: self.server_info(), timeout, "the webserver", on_timeout=self.diagnostics)
        wait_for(lambda: self.daemon_heartbeats() >= 3, timeout, "the daemon's heartbeats", on_timeout=self.diagnostics)

    def grpc_healthy(self) -> bool:
        result = subprocess.run(
            [str(BIN / "dagster"), "api", "grpc-health-check", "-p", str(self.code_port), "-h", "127.0.0.1"],
            env=self.env, capture_output=True, text=True, timeout=60,
        )
        return result.returncode == 0

    def server_info(self) -> dict | None:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/server_info", timeout=5) as response:
            return json.loads(response.read())

    # -- PostgreSQL and GraphQL -----------------------------------------------------------

    def sql(self, query: str, params: list | None = None) -> list[tuple]:
        with pg_connect(self.database) as con:
            return con.execute(query, params or []).fetchall()

    def daemon_heartbeats(self) -> int:
        return self.sql("SELECT count(*) FROM daemon_heartbeats")[0][0]

    def runs(self) -> list[dict]:
        """Every run with its status and tags, oldest first."""
        rows = self.sql(
            "SELECT r.run_id, r.status, r.create_timestamp, r.update_timestamp, r.start_time, r.end_time "
            "FROM runs r ORDER BY r.id"
        )
        tags: dict[str, dict] = {}
        for run_id, key, value in self.sql("SELECT run_id, key, value FROM run_tags"):
            tags.setdefault(run_id, {})[key] = value
        return [
            {"run_id": r[0], "status": r[1], "created": r[2], "updated": r[3], "start": r[4], "end": r[5],
             "tags": tags.get(r[0], {})}
            for r in rows
        ]

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.web_port}/graphql",
            data=json.dumps({"query": query, "variables": variables or {}}).encode(),
            headers={"Content-Type": "application/json"}, method="POST",
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            payload = json.loads(response.read())
        if payload.get("errors"):
            raise AssertionError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def materialized_partitions(self, asset: list[str]) -> list[str]:
        data = self.graphql(
            """query($key: AssetKeyInput!) { assetOrError(assetKey: $key) {
                 __typename ... on Asset { assetMaterializations(limit: 1000) { partition runId } } } }""",
            {"key": {"path": asset}},
        )["assetOrError"]
        if data["__typename"] != "Asset":
            return []
        return [m["partition"] for m in data["assetMaterializations"]]

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of each service with everything it started (the code server's run
        workers included), and of the PostgreSQL server (all its databases)."""
        spent = {name: cpu_seconds([s.process.pid, *descendants(s.process.pid)]) for name, s in self.services.items()}
        spent["postgres"] = cpu_seconds(postgres_pids())
        return spent

    def code_server_children(self) -> list[int]:
        """Pids of processes descending from the code server (its API server and run workers)."""
        return descendants(self.services["code"].process.pid)


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(")") + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def cpu_seconds(pids: list[int]) -> float:
    """CPU seconds of the processes (user + system) and of their children that have exited and
    been waited for (a run worker's, once the code server reaped it)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        total += sum(int(value) for value in fields[11:15])  # utime, stime, cutime, cstime
    return total / ticks


def postgres_pids() -> list[int]:
    """The local PostgreSQL server's processes (the postmaster's cutime holds exited backends')."""
    return [int(entry.name) for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and _comm(entry) == "postgres"]


def _comm(entry: Path) -> str:
    try:
        return (entry / "comm").read_text().strip()
    except OSError:
        return ""


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


# -- OPERATIONS.md ------------------------------------------------------------------------

BLOCK = re.compile(r"<!--\s*test:\s*([\w-]+)\s*-->\s*\n```(\w+)\n(.*?)\n```", re.S)
FENCE = re.compile(r"^```(\w*)$", re.M)


def operations_blocks(path: Path = REPO / "OPERATIONS.md") -> dict[str, str]:
    """The annotated shell blocks of OPERATIONS.md: name -> text."""
    return {name: body for name, _, body in BLOCK.findall(path.read_text())}


def command_lines(block: str) -> list[str]:
    """The commands of a block: comment lines dropped, backslash continuations joined."""
    lines, current = [], ""
    for raw in block.splitlines():
        line = raw.rstrip()
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        lines.append(current.strip())
        current = ""
    return lines
