"""The background thread when nothing is new: it leaves the chain alone between reset
checks, and still notices a chain reset and sends the lost anchors again."""

from __future__ import annotations

import time

import pytest
from eth_account import Account

from ledger import Ledger, LedgerWorker, verify_receipt
from ledger import _worker as worker_module
from oceanmart.secrets import operator_key
from tests.conftest import Env
from tests.ledger.conftest import Anvil, append, with_settings


def _anchored_ledger(env: Env, anvil: Anvil) -> Ledger:
    settings = with_settings(
        env, chain_url=anvil.url, ledger_poll_seconds=0.02, ledger_checkpoint_seconds=3600
    )
    anvil.fund(Account.from_key(operator_key(settings)).address)
    ledger = Ledger(settings)
    append(ledger, env, [f"a{i}" for i in range(5)])
    assert ledger.run_once(env.sessions).anchored == 1
    return ledger


@pytest.mark.slow
def test_an_idle_worker_asks_the_chain_once_per_reset_check(
    fresh_env: Env, anvil: Anvil, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = _anchored_ledger(fresh_env, anvil)
    chain = ledger.chain
    asked: list[float] = []
    real = chain.latest_size

    def counted(contract: str) -> int:
        asked.append(time.monotonic())
        return real(contract)

    monkeypatch.setattr(chain, "latest_size", counted)
    monkeypatch.setattr(worker_module, "RESET_CHECK_SECONDS", 0.5)
    worker = LedgerWorker(ledger, fresh_env.sessions)
    start = time.monotonic()
    worker.start()
    time.sleep(1.6)
    worker.stop()
    elapsed = time.monotonic() - start
    # ~80 passes of 0.02 s; one question at the first pass, then one per 0.5 s at most
    assert 1 <= len(asked) <= int(elapsed / 0.5) + 1, asked


@pytest.mark.slow
def test_an_idle_worker_resends_anchors_a_chain_reset_lost(
    fresh_env: Env, anvil: Anvil, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = _anchored_ledger(fresh_env, anvil)
    receipt = ledger.receipt(fresh_env.sessions, "a2", account_id=7, rpc_url=anvil.url).to_json()
    assert verify_receipt(receipt).ok
    monkeypatch.setattr(worker_module, "RESET_CHECK_SECONDS", 0.3)
    worker = LedgerWorker(ledger, fresh_env.sessions)
    worker.start()
    try:
        anvil.stop()
        assert anvil.state is not None
        anvil.state.unlink()
        anvil.start()  # a brand-new chain: no contract, no anchors
        anvil.fund(Account.from_key(operator_key(ledger.settings)).address)
        deadline = time.monotonic() + 30
        while not verify_receipt(receipt).ok:
            assert time.monotonic() < deadline, "the idle worker did not re-anchor"
            time.sleep(0.2)
    finally:
        worker.stop()
    assert ledger.audit(fresh_env.sessions).ok


def test_on_ready_is_called_once_after_the_first_pass_set_up_the_chain(fresh_env: Env) -> None:
    """The server freezes the garbage collector's view again once the ledger thread has
    set up its chain (``api.app``): the callback runs once, after the first pass, with
    the chain (here the embedded one) already made."""
    ledger = Ledger(with_settings(fresh_env, ledger_poll_seconds=0.02))
    append(ledger, fresh_env, ["r0"])
    seen: list[bool] = []
    worker = LedgerWorker(ledger, fresh_env.sessions, on_ready=lambda: seen.append(
        ledger._chain is not None
    ))  # fmt: skip
    worker.start()
    try:
        deadline = time.monotonic() + 60
        while not seen:
            assert time.monotonic() < deadline, "on_ready was not called"
            time.sleep(0.05)
        time.sleep(0.3)  # ~15 more passes
    finally:
        worker.stop()
    assert seen == [True]
