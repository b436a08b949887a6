"""Ledger fixtures: a real anvil node (npm @foundry-rs/anvil) and ledger helpers."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from ledger import Ledger, LedgerRecord
from oceanmart.db import transaction
from oceanmart.settings import Settings
from tests.conftest import ROOT, Env, free_port, unavailable

ANVIL_LOCAL = ROOT / ".cache/node/node_modules/@foundry-rs/anvil-linux-amd64/bin/anvil"


def anvil_binary() -> str:
    if ANVIL_LOCAL.exists():
        return str(ANVIL_LOCAL)
    found = shutil.which("anvil")
    if found is None:
        unavailable("anvil is not installed (make system-deps installs it into .cache/node)")
    assert found is not None
    return found


class Anvil:
    """An anvil process on a free loopback port; ``stop`` and ``start`` again at will."""

    def __init__(self, binary: str, state: Path | None) -> None:
        self.binary = binary
        self.state = state
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, keep_state: bool = True) -> None:
        args = [self.binary, "--host", "127.0.0.1", "--port", str(self.port), "--silent"]
        if self.state is not None and keep_state:
            args += ["--state", str(self.state)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                r = httpx.post(self.url, json=self._call("eth_chainId", []), timeout=1)
                if r.status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        pytest.fail("anvil did not start")

    def stop(self) -> None:
        """SIGTERM: anvil writes its --state file, then exits."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=20)
            self.proc = None

    @staticmethod
    def _call(method: str, params: list[object]) -> dict[str, object]:
        return {"jsonrpc": "2.0", "id": 1, "method": method, "params": params}

    def rpc(self, method: str, params: list[object]) -> object:
        r = httpx.post(self.url, json=self._call(method, params), timeout=10)
        body = r.json()
        assert "error" not in body, body
        return body["result"]

    def fund(self, address: str) -> None:
        self.rpc("anvil_setBalance", [address, hex(10**24)])


@pytest.fixture
def anvil(tmp_path: Path) -> Iterator[Anvil]:
    node = Anvil(anvil_binary(), tmp_path / "anvil-state.json")
    node.start()
    yield node
    node.stop()


NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)


def record(access_id: str, account_id: int = 7, kind: str = "access") -> LedgerRecord:
    return LedgerRecord(
        kind=kind,  # type: ignore[arg-type]
        time=NOW,
        account_id=account_id,
        product_version="v-" + "ab" * 8,
        selection_hash="cd" * 32,
        cells=1200,
        bytes=4800,
        access_id=access_id,
    )


def append(ledger: Ledger, env: Env, ids: list[str], account_id: int = 7) -> None:
    with transaction(env.sessions) as s:
        for i in ids:
            ledger.append(s, record(i, account_id))


def with_settings(env: Env, **changes: object) -> Settings:
    return env.settings.model_copy(update=changes)
