"""Chain faults: anvil stopped during a burst of appends, and a chain reset."""

from __future__ import annotations

import threading
import time

import pytest
from eth_account import Account
from sqlalchemy import func, select

from ledger import Ledger, LedgerWorker, verify_receipt
from ledger import _store as store
from oceanmart.secrets import operator_key
from tests.conftest import Env
from tests.ledger.conftest import Anvil, append, with_settings


def unanchored(env: Env) -> int:
    with env.sessions() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(store.CheckpointRow)
                .outerjoin(store.AnchorRow)
                .where(store.AnchorRow.size.is_(None))
            )
            or 0
        )


@pytest.mark.slow
def test_appends_go_on_while_the_node_is_down_and_anchors_catch_up(
    fresh_env: Env, anvil: Anvil
) -> None:
    settings = with_settings(
        fresh_env,
        chain_url=anvil.url,
        ledger_checkpoint_every=50,
        ledger_checkpoint_seconds=0.2,
        ledger_poll_seconds=0.05,
    )
    anvil.fund(Account.from_key(operator_key(settings)).address)
    ledger = Ledger(settings)
    worker = LedgerWorker(ledger, fresh_env.sessions)
    worker.start()
    try:
        append(ledger, fresh_env, [f"before-{i}" for i in range(60)])
        before = verify_receipt_soon(ledger, fresh_env, "before-3", anvil.url)
        anvil.stop()  # SIGTERM: anvil saves its state file
        errors: list[BaseException] = []

        def burst(w: int) -> None:
            try:
                for b in range(20):
                    append(ledger, fresh_env, [f"down-{w}-{b}-{i}" for i in range(10)])
            except BaseException as exc:  # pragma: no cover - asserted below
                errors.append(exc)

        threads = [threading.Thread(target=burst, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []  # not one append failed while the chain was down
        deadline = time.monotonic() + 30
        while ledger.size(fresh_env.sessions) < 860 or unanchored(fresh_env) == 0:
            assert time.monotonic() < deadline, "no checkpoint signed during the outage"
            time.sleep(0.1)
        assert ledger.size(fresh_env.sessions) == 860
        anvil.start()  # the same chain comes back
        deadline = time.monotonic() + 40
        while unanchored(fresh_env) or ledger.latest_checkpoint(fresh_env.sessions).size < 860:
            assert time.monotonic() < deadline, "anchoring did not catch up"
            time.sleep(0.2)
    finally:
        worker.stop()
    assert verify_receipt(
        ledger.receipt(fresh_env.sessions, "down-3-19-9", account_id=7, rpc_url=anvil.url).to_json()
    ).ok
    assert verify_receipt(before).ok
    report = ledger.audit(fresh_env.sessions)
    assert report.ok, report.problems


def verify_receipt_soon(ledger: Ledger, env: Env, access_id: str, url: str) -> dict[str, object]:
    receipt = ledger.receipt(env.sessions, access_id, account_id=7, rpc_url=url).to_json()
    assert verify_receipt(receipt).ok
    return receipt


@pytest.mark.slow
def test_anchors_lost_in_a_chain_reset_are_sent_again(fresh_env: Env, anvil: Anvil) -> None:
    settings = with_settings(fresh_env, chain_url=anvil.url)
    operator = Account.from_key(operator_key(settings)).address
    anvil.fund(operator)
    ledger = Ledger(settings)
    receipts = []
    for round_ in range(3):
        append(ledger, fresh_env, [f"r{round_}-{i}" for i in range(7)])
        ledger.run_once(fresh_env.sessions)
        receipts.append(
            ledger.receipt(fresh_env.sessions, f"r{round_}-2", account_id=7, rpc_url=anvil.url)
        )
    assert all(verify_receipt(r.to_json()).ok for r in receipts)
    anvil.stop()
    anvil.state.unlink()  # type: ignore[union-attr]
    anvil.start()  # a brand-new chain: no contract, no anchors
    anvil.fund(operator)
    assert not verify_receipt(receipts[0].to_json()).ok
    assert not ledger.audit(fresh_env.sessions).ok
    assert ledger.anchor(fresh_env.sessions) == 3  # redeployed, then the 3 anchors again
    for r in receipts:
        result = verify_receipt(r.to_json())
        assert result.ok, result.checks
    report = ledger.audit(fresh_env.sessions)
    assert report.ok, report.problems
    assert ledger.anchor(fresh_env.sessions) == 0  # idempotent
