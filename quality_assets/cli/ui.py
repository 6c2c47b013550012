"""`quality-assets ui`: the Dagster UI on a contract, with an embedded instance folder of its own.

`dagster dev` configures its instance from a `dagster.yaml` in the working folder, which in this
repository is the deployment's (PostgreSQL from environment variables). So the UI runs in its
own folder (default `.dagster_home` next to the contract; SQLite, created on first use), with
that folder as working folder and `DAGSTER_HOME`. `dagster dev` waits up to 60 s for each of
its processes on Ctrl-C; here the whole process group is interrupted at once and killed after
a grace period, so the command returns within 10 s, children included.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from quality_assets.config import settings_from_env
from quality_assets.contract import load_contract

STOP_GRACE_S = 6.0



def cmd_ui(args) -> int:
    settings = settings_from_env()
    load_contract(settings.contracts)  # a bad contract is reported here, not inside the UI
    home = (args.home or settings.contracts.parent / ".dagster_home").expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "DAGSTER_HOME": str(home), "QA_CONTRACTS": str(settings.contracts)}
    command = [str(Path(sys.executable).parent / "dagster"), "dev", "-m", "quality_assets.defs",
               "-h", args.host, "-p", str(args.port)]
    print(f"Dagster UI on http://{args.host}:{args.port} (contract {settings.contracts}, instance {home}); "
          "Ctrl-C stops it", file=sys.stderr, flush=True)
    return run_until_signal(command, cwd=home, env=env)


def run_until_signal(command: list[str], cwd: Path, env: dict[str, str]) -> int:
    """Run command in a process group of its own until it exits or SIGINT/SIGTERM arrives; then
    interrupt the group, and kill what is left of it after STOP_GRACE_S."""
    stop = []

    def on_signal(signum, _frame):
        stop.append(signum)

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    process = subprocess.Popen(command, cwd=cwd, env=env, start_new_session=True)
    try:
        while process.poll() is None and not stop:
            time.sleep(0.2)
        if stop:
            _signal_group(process.pid, signal.SIGINT)
            deadline = time.monotonic() + STOP_GRACE_S
            while process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.1)
        return 0 if stop else process.returncode
    finally:
        _signal_group(process.pid, signal.SIGKILL)  # whatever is left: webserver, daemon, code server, runs
        process.wait()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass
