"""`oceanmart demo` from an empty folder: data ingested, server up, keys printed and working."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

OCEANMART = str(Path(sys.executable).with_name("oceanmart"))


def _start(cwd: Path, port: int, corpus: Path) -> subprocess.Popen[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("OCEANMART_")}
    environ["OCEANMART_CORPUS_DIR"] = str(corpus)
    return subprocess.Popen(
        [OCEANMART, "demo", "--port", str(port)],
        cwd=cwd,
        env=environ,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


def _banner(proc: subprocess.Popen[str]) -> dict[str, str]:
    assert proc.stdout is not None
    lines: dict[str, str] = {}
    deadline = time.monotonic() + 240
    while "buyer" not in lines and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        if m := re.match(r"\s+(admin key|buyer key|subset|products)\s+(\S+)", line):
            lines[m.group(1).split()[0]] = m.group(2)
    assert "buyer" in lines, f"demo printed no keys (exit {proc.poll()})"
    return lines


def _wait_healthy(base: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail("demo server never became healthy")


@pytest.mark.slow
def test_demo_from_an_empty_folder(tmp_path: Path, levitus_file: Path) -> None:
    corpus = levitus_file.parent.parent
    port = free_port()
    proc = _start(tmp_path, port, corpus)
    try:
        banner = _banner(proc)
        base = f"http://127.0.0.1:{port}"
        _wait_healthy(base)
        assert (tmp_path / "var" / "oceanmart.db").exists()
        assert (tmp_path / "var" / "data" / "products" / "levitus-climatology").is_dir()
        buyer = {"Authorization": f"Bearer {banner['buyer']}"}
        products = httpx.get(banner["products"], headers=buyer).json()["products"]
        assert [p["id"] for p in products] == ["levitus-climatology"]
        r = httpx.get(banner["subset"], headers=buyer, timeout=60)
        assert r.status_code == 200 and r.content[:4] == b"\x89HDF"
        admin = {"Authorization": f"Bearer {banner['admin']}"}
        names = [a["name"] for a in httpx.get(f"{base}/v1/accounts", headers=admin).json()]
        assert names == ["operator", "demo-buyer"]
        assert httpx.get(f"{base}/v1/accounts", headers=buyer).status_code == 403
        # the demo product is priced and the demo buyer has credits to buy with
        credits = httpx.get(f"{base}/v1/credits", headers=buyer).json()["balances"]
        assert credits == [{"amount": 100_000, "currency": "CNY", "major": "1000.00"}]
        sel = {"bbox": [120, 20, 130, 30], "depth": [0, 100], "variables": ["TEMP"]}
        q = httpx.post(
            f"{base}/v1/quotes",
            headers=buyer,
            json={"product": products[0]["id"], "selection": sel},
        )
        assert q.status_code == 201 and q.json()["total"]["amount"] > 0, q.text
        order = httpx.post(f"{base}/v1/orders", headers=buyer, json={"quote_id": q.json()["id"]})
        assert order.status_code == 201 and order.json()["status"] == "fulfilled", order.text
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)

    # A second start reuses the folder: same version, fresh keys, old keys still valid.
    proc = _start(tmp_path, port, corpus)
    try:
        again = _banner(proc)
        _wait_healthy(f"http://127.0.0.1:{port}")
        assert again["buyer"] != banner["buyer"]
        r = httpx.get(again["products"], headers={"X-API-Key": banner["buyer"]})
        assert r.status_code == 200 and len(r.json()["products"]) == 1
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
