"""Offline receipt verification: no database, only the receipt and a chain node.

Checks, in order: the leaf is a canonical record and matches the receipt's record;
the checkpoint is signed by the verifier key; the inclusion proof puts the leaf under
the checkpoint's root; the chain's anchor contract holds that root for that size and
names the same checkpoint key; the anchoring transaction (when the chain still has it)
emitted that anchor. Pin the contract (``contract``) and key (``verifier_key``) you got
from the operator out of band to not trust the receipt's own claims about them.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from ledger._merkle import ProofError, leaf_hash, verify_inclusion
from ledger._notes import NoteError, VerifierKey, open_checkpoint
from ledger._records import decode

RECEIPT_FORMAT = "oceanmart-receipt/1"


@dataclass(slots=True)
class Verification:
    """What was checked: ``ok`` only when every check passed."""

    checks: list[tuple[bool, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(ok for ok, _ in self.checks)

    def passed(self, message: str) -> None:
        self.checks.append((True, message))

    def failed(self, message: str) -> Verification:
        self.checks.append((False, message))
        return self


class _Bad(Exception):
    pass


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise _Bad(f"{what} is not a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error:
        raise _Bad(f"{what} is not valid base64") from None


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Bad(f"{what} is not a non-negative integer")
    return value


def verify_receipt(
    receipt: Any,
    *,
    chain_url: str | None = None,
    contract: str | None = None,
    verifier_key: str | None = None,
    timeout: float = 10.0,
) -> Verification:
    """Check ``receipt`` (parsed JSON) completely; never raises for a bad receipt."""
    result = Verification()
    try:
        return _verify(receipt, chain_url, contract, verifier_key, timeout, result)
    except _Bad as exc:
        return result.failed(str(exc))


def _verify(
    receipt: Any,
    chain_url: str | None,
    pinned_contract: str | None,
    pinned_key: str | None,
    timeout: float,
    result: Verification,
) -> Verification:
    if not isinstance(receipt, dict) or receipt.get("format") != RECEIPT_FORMAT:
        raise _Bad(f"not an OceanMart receipt (format must be {RECEIPT_FORMAT!r})")
    leaf = _b64(receipt.get("leaf"), "leaf")
    index = _int(receipt.get("leaf_index"), "leaf_index")
    proof_field = receipt.get("inclusion_proof")
    if not isinstance(proof_field, list):
        raise _Bad("inclusion_proof is not a list")
    proof = [_b64(p, f"inclusion_proof[{i}]") for i, p in enumerate(proof_field)]
    anchor = receipt.get("anchor")
    if not isinstance(anchor, dict):
        raise _Bad("the receipt has no anchor reference")

    # 1. the record
    try:
        record = decode(leaf)
    except ValueError as exc:
        return result.failed(f"leaf: {exc}")
    if record != receipt.get("record"):
        return result.failed("the receipt's record differs from its leaf")
    if record.get("access_id") != receipt.get("access_id"):
        return result.failed("the leaf records another access id")
    result.passed(f"leaf is the canonical record of access {record.get('access_id')}")

    # 2. the checkpoint signature
    vkey_text = receipt.get("verifier_key")
    if pinned_key is not None and vkey_text != pinned_key:
        return result.failed(f"the receipt names key {vkey_text!r}, not the pinned key")
    try:
        vkey = VerifierKey.parse(str(vkey_text))
        checkpoint = open_checkpoint(str(receipt.get("checkpoint")), vkey)
    except NoteError as exc:
        return result.failed(f"checkpoint: {exc}")
    if receipt.get("tree_size") not in (None, checkpoint.size):
        return result.failed(
            f"tree_size {receipt.get('tree_size')} differs from the signed size {checkpoint.size}"
        )
    result.passed(f"checkpoint {checkpoint.origin} size {checkpoint.size} is signed by {vkey.name}")

    # 3. the inclusion proof
    try:
        verify_inclusion(index, checkpoint.size, leaf_hash(leaf), proof, checkpoint.root)
    except ProofError as exc:
        return result.failed(f"inclusion proof: {exc}")
    result.passed(f"leaf {index} is included in the tree of size {checkpoint.size}")

    # 4. the chain
    url = chain_url or anchor.get("rpc_url")
    if not url:
        return result.failed("no chain URL: pass --chain-url")
    address = anchor.get("contract")
    if pinned_contract is not None and str(address).lower() != pinned_contract.lower():
        return result.failed(f"the receipt names contract {address}, not the pinned one")
    return _check_chain(url, anchor, vkey, checkpoint.size, checkpoint.root, timeout, result)


def _check_chain(
    url: str,
    anchor: dict[str, Any],
    vkey: VerifierKey,
    size: int,
    root: bytes,
    timeout: float,
    result: Verification,
) -> Verification:
    import requests
    from web3 import HTTPProvider, Web3
    from web3.exceptions import TransactionNotFound, Web3Exception

    from ledger._chain import _safe_url, contract_interface

    w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": timeout}))
    where = _safe_url(url)
    try:
        address = Web3.to_checksum_address(str(anchor.get("contract")))
    except ValueError:
        return result.failed(f"the anchor contract {anchor.get('contract')!r} is not an address")
    try:
        chain_id = int(w3.eth.chain_id)
        if chain_id != anchor.get("chain_id"):
            return result.failed(
                f"the chain at {where} has id {chain_id}, "
                f"the receipt names {anchor.get('chain_id')}"
            )
        if not w3.eth.get_code(address):
            return result.failed(f"no contract at {address} on chain {chain_id}")
        abi, _ = contract_interface()
        c = w3.eth.contract(address=address, abi=abi)
        if bytes(c.functions.note_key().call()) != vkey.public:
            return result.failed("the contract's checkpoint key differs from the receipt's key")
        on_chain = bytes(c.functions.roots(size).call())
        if on_chain == bytes(32):
            return result.failed(f"size {size} is not anchored in contract {address}")
        if on_chain != root:
            return result.failed(
                f"the chain anchors root {on_chain.hex()} for size {size}, the checkpoint "
                f"says {root.hex()}"
            )
        result.passed(f"chain {chain_id} contract {address} anchors this root for size {size}")
        tx = anchor.get("transaction")
        if tx:
            try:
                receipt = w3.eth.get_transaction_receipt(tx)
            except TransactionNotFound:
                result.passed(f"(transaction {tx} is not on this chain any more: re-anchored)")
                return result
            events = c.events.Anchored().process_receipt(receipt)
            if receipt["status"] != 1 or not any(
                e["args"]["size"] == size and bytes(e["args"]["root"]) == root for e in events
            ):
                return result.failed(f"transaction {tx} did not anchor this checkpoint")
            result.passed(f"transaction {tx} (block {receipt['blockNumber']}) anchored it")
    except (OSError, requests.RequestException, Web3Exception) as exc:
        return result.failed(f"the chain at {where} cannot be queried ({type(exc).__name__})")
    return result
