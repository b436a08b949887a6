"""Receipts and auditor endpoints over real HTTP, the embedded chain's JSON-RPC, and the
``oceanmart ledger`` commands as a user runs them (verify with no database at all)."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from ledger import Ledger, verify_receipt
from ledger import _store as store
from ledger._merkle import verify_consistency
from oceanmart.accounts import create_account, create_key
from oceanmart.db import transaction
from tests.conftest import Env, free_port, running, unique
from tests.ledger.conftest import append, with_settings

OCEANMART = str(Path(sys.executable).with_name("oceanmart"))


def cli(env: Env, *args: str, database: bool = True) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "OCEANMART_LOG_FORMAT": "json"}
    environ["OCEANMART_VAR_DIR"] = str(env.settings.var_dir)
    environ["OCEANMART_DATABASE_URL"] = (
        env.settings.database_url if database else "postgresql://nobody@127.0.0.1:1/none"
    )
    return subprocess.run(
        [OCEANMART, *args], capture_output=True, text=True, env=environ, timeout=300, check=False
    )


def account_with_key(env: Env, scopes: str = "catalog:read,data:read") -> tuple[int, str]:
    name = unique("buyer")
    with transaction(env.sessions) as s:
        info = create_account(s, name, "enterprise")
        return info.id, create_key(s, name, scopes)[1]


@pytest.mark.slow
def test_receipts_over_http_verify_with_the_cli_across_a_restart(
    fresh_env: Env, tmp_path: Path
) -> None:
    buyer, key = account_with_key(fresh_env)
    other, other_key = account_with_key(fresh_env)
    admin = fresh_env.admin_key()
    ledger = Ledger(fresh_env.settings)
    append(ledger, fresh_env, [f"acc-{i}" for i in range(12)], account_id=buyer)
    append(ledger, fresh_env, ["other-0"], account_id=other)
    with running(fresh_env.settings) as url, httpx.Client(base_url=url, timeout=60) as c:
        r = c.get("/v1/receipts/acc-4", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text
        receipt = r.json()
        mine_404 = c.get("/v1/receipts/acc-4", headers={"X-API-Key": other_key})
        none_404 = c.get("/v1/receipts/nothing", headers={"X-API-Key": other_key})
        assert mine_404.status_code == none_404.status_code == 404
        assert mine_404.json()["detail"].replace("acc-4", "X") == none_404.json()["detail"].replace(
            "nothing", "X"
        )  # another account's access looks like a missing one
        assert c.get("/v1/receipts/other-0", headers={"X-API-Key": admin}).status_code == 200
        assert c.get("/v1/receipts/acc-4").status_code == 401
        info = c.get("/v1/ledger").json()
        rpc = c.post(
            "/v1/ledger/rpc",
            json={"jsonrpc": "2.0", "id": 1, "method": "eth_sendRawTransaction"},
        ).json()
        assert rpc["error"]["code"] == -32601
    assert receipt["leaf_index"] == 4 and receipt["anchor"]["rpc_url"] == f"{url}/v1/ledger/rpc"
    assert receipt["record"]["account"] == ledger.pseudonym(buyer)
    assert info["verifier_key"] == receipt["verifier_key"]
    assert info["contract"] == receipt["anchor"]["contract"]
    path = tmp_path / "receipt.json"
    path.write_text(json.dumps(receipt))
    # The first server is gone; a new one (a fresh embedded chain replayed from var/chain)
    # still holds the anchor. The verifier uses no database (a dead URL is configured).
    with running(fresh_env.settings) as url2:
        ok = cli(
            fresh_env,
            "ledger",
            "verify",
            str(path),
            "--chain-url",
            f"{url2}/v1/ledger/rpc",
            "--contract",
            info["contract"],
            "--key",
            info["verifier_key"],
            database=False,
        )
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert ok.stdout.strip().endswith("receipt verified")
        forged = dict(receipt, leaf_index=5)
        path.write_text(json.dumps(forged))
        bad = cli(
            fresh_env,
            "ledger",
            "verify",
            str(path),
            "--chain-url",
            f"{url2}/v1/ledger/rpc",
            database=False,
        )
        assert bad.returncode == 1
        assert "FAIL: inclusion proof" in bad.stdout and "NOT verified" in bad.stdout
    down = verify_receipt(receipt, chain_url=f"http://127.0.0.1:{free_port()}", timeout=2)
    assert not down.ok and "cannot be queried" in down.checks[-1][1]
    path.write_text("{not json")
    garbled = cli(fresh_env, "ledger", "verify", str(path), database=False)
    assert garbled.returncode == 1 and garbled.stderr.startswith("error: cannot read")


def test_auditor_endpoints(fresh_env: Env) -> None:
    ledger = Ledger(fresh_env.settings)
    append(ledger, fresh_env, [f"x{i}" for i in range(5)])
    ledger.run_once(fresh_env.sessions)
    append(ledger, fresh_env, [f"y{i}" for i in range(6)])
    ledger.integrate(fresh_env.sessions)
    ledger.checkpoint(fresh_env.sessions, force=True)
    settings = with_settings(fresh_env, ledger_background=False)
    with running(settings) as url, httpx.Client(base_url=url, timeout=60) as c:
        latest = c.get("/v1/ledger/checkpoint").json()
        first = c.get("/v1/ledger/checkpoints/5").json()
        proof = c.get("/v1/ledger/consistency", params={"first": 5, "second": 11}).json()
        assert c.get("/v1/ledger/checkpoints/6").json()["type"] == "/problems/not-found"
        bad = c.get("/v1/ledger/consistency", params={"first": 11, "second": 5})
        assert bad.status_code == 400 and bad.json()["parameter"] == "second"
        bad = c.get("/v1/ledger/consistency", params={"first": "x", "second": 5})
        assert bad.status_code == 400 and bad.json()["parameter"] == "first"
        chain_id = c.post(
            "/v1/ledger/rpc", json={"jsonrpc": "2.0", "id": 7, "method": "eth_chainId"}
        ).json()
    assert latest["size"] == 11 and latest["anchor"] is None
    assert first["anchor"]["status"] == "anchored" and first["anchor"]["transaction"]
    assert latest["note"].startswith(f"{fresh_env.settings.ledger_origin}\n11\n")
    verify_consistency(
        5,
        11,
        [base64.b64decode(p) for p in proof["proof"]],
        base64.b64decode(first["root"]),
        base64.b64decode(latest["root"]),
    )
    assert chain_id == {"jsonrpc": "2.0", "id": 7, "result": hex(ledger.chain.chain_id)}


def test_a_receipt_waits_for_an_unreachable_chain(fresh_env: Env) -> None:
    settings = with_settings(
        fresh_env, chain_url=f"http://127.0.0.1:{free_port()}", ledger_background=False
    )
    buyer, key = account_with_key(fresh_env)
    append(Ledger(settings), fresh_env, ["pending-1"], account_id=buyer)
    with running(settings) as url, httpx.Client(base_url=url, timeout=60) as c:
        r = c.get("/v1/receipts/pending-1", headers={"X-API-Key": key})
        rpc = c.post("/v1/ledger/rpc", json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"})
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert r.json()["type"] == "/problems/receipt-pending" and r.json()["leaf_index"] == 0
    assert rpc.status_code == 404


@pytest.mark.slow
def test_cli_checkpoint_anchor_and_audit(fresh_env: Env) -> None:
    ledger = Ledger(fresh_env.settings)
    append(ledger, fresh_env, [f"c{i}" for i in range(9)])
    made = cli(fresh_env, "ledger", "checkpoint")
    assert made.returncode == 0, made.stderr
    assert "checkpoint size 9" in made.stdout and "anchored (1 transaction(s) sent)" in made.stdout
    assert ledger.anchor(fresh_env.sessions) == 0  # the CLI's anchor is seen here too
    audit = cli(fresh_env, "ledger", "audit")
    assert audit.returncode == 0 and "9 leaves, 1 checkpoints, 1 anchors checked" in audit.stdout
    receipt = ledger.receipt(fresh_env.sessions, "c3", account_id=None, rpc_url=None)
    assert receipt.checkpoint.size == 9
    with transaction(fresh_env.sessions) as s:
        s.execute(update(store.Leaf).where(store.Leaf.idx == 2).values(leaf=b"{}"))
    broken = cli(fresh_env, "ledger", "audit")
    assert broken.returncode == 1 and "PROBLEM: leaf 2 does not match" in broken.stdout
    assert verify_receipt(receipt.to_json()).checks[-1][0] is False  # no rpc_url given
