"""What the benchmarks share: free ports, waiting for a server, the oceanmart CLI.

The scripts run as ``python bench/NAME.py``, so this folder is on ``sys.path``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait(url: str, seconds: float = 120) -> None:
    """Until ``url`` answers at all (any status), or give up."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            httpx.get(url, timeout=2)
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"server at {url} did not start")


def settle(pid: int, quiet: float = 1.0, seconds: float = 600) -> float:
    """Wait until process ``pid`` has used under 5% of a core for ``quiet`` seconds (Linux
    ``/proc``); returns how long it took. A server that answers may still be busy: the
    embedded chain replays its transactions (~13 ms each here) in the ledger thread
    half a second after start, which would land in the first case's timings."""
    tick = os.sysconf("SC_CLK_TCK")

    def cpu() -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    start = time.monotonic()
    last, since = cpu(), time.monotonic()
    while time.monotonic() - start < seconds:
        time.sleep(0.25)
        now = cpu()
        if now - last > 0.05 * (time.monotonic() - since):
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            return time.monotonic() - start
    raise SystemExit(f"process {pid} stayed busy for {seconds:.0f} s")


def oceanmart(env: dict[str, str], *args: str) -> str:
    """Run the CLI; its stdout, or exit with its stderr's end."""
    r = subprocess.run([str(BIN / "oceanmart"), *args], env=env, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"oceanmart {' '.join(args)}: {r.stderr[-2000:]}")
    return r.stdout
