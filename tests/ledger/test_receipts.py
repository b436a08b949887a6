"""Receipts verified offline against anvil, and tampering caught by audit and verification."""

from __future__ import annotations

import base64
import contextlib
import copy
import dataclasses
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from eth_account import Account
from sqlalchemy import delete, select, update

from ledger import Ledger, verify_receipt
from ledger import _store as store
from ledger._notes import Checkpoint
from ledger._records import encode
from oceanmart.db import transaction
from oceanmart.errors import NotFound
from oceanmart.secrets import operator_key
from tests.conftest import Env
from tests.ledger.conftest import Anvil, append, record, with_settings


@dataclass
class Anchored:
    env: Env
    ledger: Ledger
    anvil: Anvil

    def receipt(self, access_id: str, account_id: int | None = 7) -> dict[str, Any]:
        found = self.ledger.receipt(
            self.env.sessions, access_id, account_id=account_id, rpc_url=self.anvil.url
        )
        return found.to_json()


@pytest.fixture
def anchored(fresh_env: Env, anvil: Anvil) -> Iterator[Anchored]:
    """20 accesses of account 7 and 5 of account 8, checkpointed (size 25) and anchored."""
    settings = with_settings(fresh_env, chain_url=anvil.url)
    anvil.fund(Account.from_key(operator_key(settings)).address)
    ledger = Ledger(settings)
    append(ledger, fresh_env, [f"a{i}" for i in range(20)])
    append(ledger, fresh_env, [f"b{i}" for i in range(5)], account_id=8)
    summary = ledger.run_once(fresh_env.sessions)
    assert (summary.size, summary.checkpoint, summary.anchored) == (25, 25, 1)
    yield Anchored(fresh_env, ledger, anvil)


def failures(receipt: dict[str, Any], url: str) -> list[str]:
    result = verify_receipt(receipt, chain_url=url)
    return [message for ok, message in result.checks if not ok]


def test_a_receipt_verifies_offline_and_only_for_its_account(anchored: Anchored) -> None:
    receipt = anchored.receipt("a3")
    assert receipt["leaf_index"] == 3 and receipt["tree_size"] == 25
    assert receipt["record"]["account"] == anchored.ledger.pseudonym(7)
    assert receipt["anchor"]["rpc_url"] == anchored.anvil.url
    result = verify_receipt(receipt)
    assert result.ok, result.checks
    assert len(result.checks) == 5  # record, signature, inclusion, root on chain, transaction
    with pytest.raises(NotFound):
        anchored.receipt("a3", account_id=8)
    with pytest.raises(NotFound):
        anchored.receipt("no-such-access")
    assert anchored.receipt("b1", account_id=None)["leaf_index"] == 21  # the operator


def test_pinning_the_contract_and_key(anchored: Anchored) -> None:
    receipt = anchored.receipt("a0")
    contract = receipt["anchor"]["contract"]
    key = anchored.ledger.signer.verifier_key
    assert verify_receipt(receipt, contract=contract, verifier_key=key).ok
    assert not verify_receipt(receipt, contract="0x" + "11" * 20).ok
    # one character of the key's base64 changed (to another character, whatever it was)
    other = key[:-5] + ("B" if key[-5] == "A" else "A") + key[-4:]
    assert not verify_receipt(receipt, verifier_key=other).ok


def _flip_b64(value: str, bit: int) -> str:
    raw = bytearray(base64.b64decode(value))
    raw[bit // 8 % len(raw)] ^= 1 << (bit % 8)
    return base64.b64encode(bytes(raw)).decode()


def test_every_single_bit_change_fails(anchored: Anchored) -> None:
    receipt = anchored.receipt("a5")
    url = anchored.anvil.url
    rng = random.Random(5)
    note = receipt["checkpoint"]
    body, _, sig = note.partition("\n\n")
    origin, size, root = body.split("\n")
    cases: list[dict[str, Any]] = []
    for _ in range(8):
        r = copy.deepcopy(receipt)
        r["leaf"] = _flip_b64(r["leaf"], rng.randrange(1000))
        with contextlib.suppress(ValueError):  # the shown record follows the leaf
            r["record"] = json.loads(base64.b64decode(r["leaf"]))
        cases.append(r)
    for k in range(len(receipt["inclusion_proof"])):
        r = copy.deepcopy(receipt)
        r["inclusion_proof"][k] = _flip_b64(r["inclusion_proof"][k], rng.randrange(256))
        cases.append(r)
    for bit in range(8):
        r = copy.deepcopy(receipt)
        r["leaf_index"] ^= 1 << bit
        cases.append(r)
    for bit in range(6):  # the tree size and the root live in the signed checkpoint
        r = copy.deepcopy(receipt)
        r["checkpoint"] = f"{origin}\n{int(size) ^ (1 << bit)}\n{root}\n\n{sig}"
        r["tree_size"] = int(size) ^ (1 << bit)
        cases.append(r)
        r = copy.deepcopy(receipt)
        r["checkpoint"] = f"{origin}\n{size}\n{_flip_b64(root, rng.randrange(256))}\n\n{sig}"
        cases.append(r)
    for r in cases:
        assert failures(r, url), r


def _broken(anchored: Anchored, access_id: str) -> list[str]:
    return failures(anchored.receipt(access_id, account_id=None), anchored.anvil.url)


def test_an_edited_leaf_is_caught(anchored: Anchored) -> None:
    env = anchored.env
    forged = encode(dataclasses.replace(record("a3"), cells=1), _secret(anchored))
    with transaction(env.sessions) as s:
        s.execute(update(store.Leaf).where(store.Leaf.idx == 3).values(leaf=forged))
    assert any("leaf 3 does not match" in p for p in anchored.ledger.audit(env.sessions).problems)
    assert any("inclusion proof" in f for f in _broken(anchored, "a3"))


def test_reordered_leaves_are_caught(anchored: Anchored) -> None:
    env = anchored.env
    with env.sessions() as s:
        four, five = (s.get(store.Leaf, i) for i in (4, 5))
        assert four is not None and five is not None
        leaves = (bytes(four.leaf), bytes(five.leaf))
    with transaction(env.sessions) as s:
        s.execute(update(store.Leaf).where(store.Leaf.idx == 4).values(leaf=leaves[1]))
        s.execute(update(store.Leaf).where(store.Leaf.idx == 5).values(leaf=leaves[0]))
    assert anchored.ledger.audit(env.sessions).problems
    assert _broken(anchored, "a4") and _broken(anchored, "a5")


def test_a_deleted_leaf_is_caught_even_after_rewriting_and_resigning(anchored: Anchored) -> None:
    env, ledger = anchored.env, anchored.ledger
    honest = anchored.receipt("a9")
    with transaction(env.sessions) as s:
        s.execute(delete(store.Leaf).where(store.Leaf.idx == 6))
    assert any("jump" in p for p in ledger.audit(env.sessions).problems)
    with pytest.raises(NotFound):
        anchored.receipt("a6")
    # The operator (who has the key) rewrites the whole log without leaf 6, pads it to
    # the anchored size and re-signs checkpoint 25 with the new root.
    with transaction(env.sessions) as s:
        kept = [
            (bytes(leaf), access_id)
            for leaf, access_id in s.execute(
                select(store.Leaf.leaf, store.Leaf.access_id).order_by(store.Leaf.idx)
            )
        ]
        s.execute(delete(store.Leaf))
        s.execute(delete(store.TreeNode))
        s.execute(update(store.TreeState).values(size=0))
        filler = encode(record("filler"), _secret(anchored))
        store.enqueue(s, [*kept, (filler, "filler")])
    ledger.integrate(env.sessions)
    with transaction(env.sessions) as s:
        new_root = store.root(s, 25)
        note = ledger.signer.sign(Checkpoint(ledger.settings.ledger_origin, 25, new_root))
        s.execute(
            update(store.CheckpointRow)
            .where(store.CheckpointRow.size == 25)
            .values(root=new_root, note=note)
        )
    problems = ledger.audit(env.sessions).problems
    assert any("anchor 25: the chain holds root" in p for p in problems), problems
    assert any("chain anchors root" in f for f in _broken(anchored, "a9"))
    # a receipt issued before the rewrite still verifies: the chain kept the truth
    assert verify_receipt(honest).ok


def test_a_tampered_inner_node_is_caught(anchored: Anchored) -> None:
    env = anchored.env
    with transaction(env.sessions) as s:
        s.execute(
            update(store.TreeNode)
            .where(store.TreeNode.level == 2, store.TreeNode.idx == 1)
            .values(hash=b"\x01" * 32)
        )
    assert any("node (2, 1)" in p for p in anchored.ledger.audit(env.sessions).problems)
    assert _broken(anchored, "a0")  # leaf 0's proof holds node (2, 1)
    assert anchored.ledger.audit(env.sessions, chain=False).problems


def test_an_honest_log_passes_its_audit(anchored: Anchored) -> None:
    report = anchored.ledger.audit(anchored.env.sessions)
    assert report.ok, report.problems
    assert (report.size, report.checkpoints, report.anchors_checked) == (25, 1, 1)


def _secret(anchored: Anchored) -> bytes:
    return anchored.ledger._secret
