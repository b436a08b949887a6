"""Anchor backends: where checkpoints (tree size -> root) are written on an EVM chain.

``AnchorBackend`` is the one boundary; ``RpcBackend`` talks to any JSON-RPC node
(a consortium chain, a testnet, anvil) and ``EmbeddedBackend`` runs an in-process
py-evm chain (web3 + eth-tester) whose signed raw transactions are kept in an
append-only file and replayed into a fresh chain of the same genesis at start-up:
same transactions, same contract address, same state and transaction hashes, so a
receipt issued before a restart still verifies after it. Transactions are signed
locally with the operator key (``eth-account``) and sent raw.
"""

from __future__ import annotations

import fcntl
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Final, TypeVar

from oceanmart.errors import ChainUnavailable, LedgerCorrupted

ANCHOR_GAS: Final = 200_000
DEPLOY_GAS: Final = 1_500_000
_TIP: Final = 10**9  # 1 gwei priority fee
# eth-tester's default sender for calls without `from` (private key 1): funded at genesis.
_TESTER_CALLER: Final = "0x7E5F4552091A69125d5DfCb7b8C2659029395Bdf"
_GENESIS_TIME: Final = 1_767_225_600  # 2026-01-01: a fixed genesis makes replays identical
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class AnchorRef:
    """Where a checkpoint sits on chain."""

    chain_id: int
    contract: str
    size: int
    root: bytes
    tx_hash: str | None
    block_number: int | None


@cache
def contract_interface() -> tuple[list[dict[str, Any]], str]:
    """ABI and deployment bytecode of ``Anchors.vy``, compiled offline by vyper (~0.5 s)."""
    import vyper

    source = resources.files("ledger").joinpath("Anchors.vy").read_text()
    out = vyper.compile_code(source, output_formats=["abi", "bytecode"])
    return out["abi"], out["bytecode"]


class AnchorBackend(ABC):
    """One EVM chain holding the ``Anchors`` contract of this ledger."""

    @property
    @abstractmethod
    def chain_id(self) -> int: ...

    @property
    @abstractmethod
    def writer(self) -> str:
        """The operator's address, the contract's owner and writer."""

    @abstractmethod
    def ensure_contract(self, known: str | None, note_key: bytes) -> str:
        """The contract's address: ``known`` if it has code on this chain, else a new one."""

    @abstractmethod
    def root_at(self, contract: str, size: int) -> bytes | None:
        """The anchored root of ``size``, or None."""

    @abstractmethod
    def latest_size(self, contract: str) -> int: ...

    @abstractmethod
    def anchor(self, contract: str, size: int, root: bytes) -> AnchorRef:
        """Write (size, root) and wait until mined; idempotent for an equal root."""

    @abstractmethod
    def find_anchor(self, contract: str, size: int) -> AnchorRef | None:
        """The anchoring transaction of ``size`` (from the contract's events)."""

    @abstractmethod
    def anchors(self, contract: str) -> list[AnchorRef]:
        """Every anchor the contract holds, in order (for audits)."""


def _chain_errors() -> tuple[type[BaseException], ...]:
    import requests
    from web3.exceptions import TimeExhausted, Web3Exception

    return (OSError, requests.RequestException, TimeExhausted, Web3Exception)


def _reverted() -> tuple[type[BaseException], ...]:
    from eth_tester.exceptions import TransactionFailed
    from web3.exceptions import ContractLogicError

    # eth-tester raises TransactionFailed, a JSON-RPC node ContractLogicError.
    return (TransactionFailed, ContractLogicError)


class Web3Backend(AnchorBackend):
    """The anchor logic over any web3 provider."""

    def __init__(self, w3: Any, key: bytes, description: str) -> None:
        from eth_account import Account

        self.w3 = w3
        self._account = Account.from_key(key)
        self._description = description
        self._chain_id: int | None = None
        # Building a web3 contract object parses the ABI and asks the node for its chain
        # id: ~4 ms, as much as the anchor transaction itself. One per address.
        self._contracts: dict[str, Any] = {}

    def _guard(self, call: Callable[[], _T]) -> _T:
        try:
            return call()
        except _chain_errors() as exc:
            if isinstance(exc, _reverted()):
                raise
            raise ChainUnavailable(
                f"the chain at {self._description} cannot be reached ({type(exc).__name__})"
            ) from None

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self._guard(lambda: self.w3.eth.chain_id))
        return self._chain_id

    @property
    def writer(self) -> str:
        return str(self._account.address)

    def _contract(self, address: str) -> Any:
        found = self._contracts.get(address)
        if found is None:
            abi, _ = contract_interface()
            found = self.w3.eth.contract(address=self.w3.to_checksum_address(address), abi=abi)
            self._contracts[address] = found
        return found

    def _send_raw(self, raw: bytes) -> Any:
        return self.w3.eth.send_raw_transaction(raw)

    def _transact(self, tx: dict[str, Any]) -> Any:
        """Sign and send ``tx``; return its mined receipt (status 0 on a revert)."""
        w3 = self.w3
        base = int(w3.eth.get_block("latest")["baseFeePerGas"])
        tx.update(
            chainId=self.chain_id,
            nonce=w3.eth.get_transaction_count(self._account.address, "pending"),
            maxFeePerGas=2 * base + _TIP,
            maxPriorityFeePerGas=_TIP,
            value=0,
            type=2,
        )
        raw = self._account.sign_transaction(tx).raw_transaction
        tx_hash = self._send_raw(raw)
        return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.01)

    def ensure_contract(self, known: str | None, note_key: bytes) -> str:
        def run() -> str:
            if known and self.w3.eth.get_code(self.w3.to_checksum_address(known)):
                return known
            abi, bytecode = contract_interface()
            data = (
                self.w3.eth.contract(abi=abi, bytecode=bytecode)
                .constructor(note_key)
                .data_in_transaction
            )
            receipt = self._transact({"data": data, "gas": DEPLOY_GAS})
            if receipt["status"] != 1:
                raise ChainUnavailable(
                    f"deploying the anchor contract on {self._description} failed"
                )
            return str(receipt["contractAddress"])

        return self._guard(run)

    def root_at(self, contract: str, size: int) -> bytes | None:
        got = self._guard(lambda: bytes(self._contract(contract).functions.roots(size).call()))
        return None if got == bytes(32) else got

    def latest_size(self, contract: str) -> int:
        return int(self._guard(lambda: self._contract(contract).functions.latest_size().call()))

    def note_key(self, contract: str) -> bytes:
        return bytes(self._guard(lambda: self._contract(contract).functions.note_key().call()))

    def anchor(self, contract: str, size: int, root: bytes) -> AnchorRef:
        def run() -> AnchorRef:
            data = self._contract(contract).encode_abi("anchor", args=[size, root])
            try:
                receipt = self._transact(
                    {"to": self.w3.to_checksum_address(contract), "data": data, "gas": ANCHOR_GAS}
                )
                mined = receipt["status"] == 1
            except _reverted():
                mined = False
            if mined:
                return AnchorRef(
                    self.chain_id,
                    contract,
                    size,
                    root,
                    receipt["transactionHash"].to_0x_hex(),
                    int(receipt["blockNumber"]),
                )
            # Reverted: already anchored (by us, concurrently) or overtaken by a larger size.
            found = self.find_anchor(contract, size)
            if found is not None and found.root == root:
                return found
            if found is not None:
                raise LedgerCorrupted(
                    f"size {size} is anchored on chain {self.chain_id} with root "
                    f"{found.root.hex()}, but the log's checkpoint says {root.hex()}"
                )
            raise AnchorSkipped(size)

        return self._guard(run)

    def _refs(self, contract: str, size: int | None) -> list[AnchorRef]:
        event = self._contract(contract).events.Anchored
        filters = {"size": size} if size is not None else None
        logs = event.get_logs(from_block=0, argument_filters=filters)
        return [
            AnchorRef(
                self.chain_id,
                contract,
                int(log["args"]["size"]),
                bytes(log["args"]["root"]),
                log["transactionHash"].to_0x_hex(),
                int(log["blockNumber"]),
            )
            for log in logs
        ]

    def find_anchor(self, contract: str, size: int) -> AnchorRef | None:
        refs = self._guard(lambda: self._refs(contract, size))
        return refs[0] if refs else None

    def anchors(self, contract: str) -> list[AnchorRef]:
        return self._guard(lambda: self._refs(contract, None))


class AnchorSkipped(Exception):
    """The contract already holds a larger size, so this one can no longer be anchored."""

    def __init__(self, size: int) -> None:
        super().__init__(f"size {size} was overtaken by a larger anchored size")
        self.size = size


class RpcBackend(Web3Backend):
    """Any EVM JSON-RPC node (``OCEANMART_CHAIN_URL``)."""

    def __init__(self, url: str, key: bytes, timeout: float = 10.0) -> None:
        from web3 import HTTPProvider, Web3
        from web3.types import RPCEndpoint

        # web3's validation middleware asks the node for its chain id before every
        # eth_call; the backend already takes the chain id as fixed (``chain_id``), so
        # the provider may cache that one answer (and nothing else).
        provider = HTTPProvider(
            url,
            request_kwargs={"timeout": timeout},
            cache_allowed_requests=True,
            cacheable_requests={RPCEndpoint("eth_chainId")},
        )
        super().__init__(Web3(provider), key, _safe_url(url))


def _safe_url(url: str) -> str:
    """The URL without credentials (for messages)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


# Read-only JSON-RPC methods the embedded chain answers for verifiers.
READ_METHODS: Final = frozenset(
    {
        "eth_chainId",
        "net_version",
        "eth_blockNumber",
        "eth_call",
        "eth_getCode",
        "eth_getLogs",
        "eth_getTransactionReceipt",
        "eth_getTransactionByHash",
        "eth_getBlockByNumber",
        "eth_getBalance",
    }
)


class EmbeddedBackend(Web3Backend):
    """An in-process py-evm chain whose transactions survive restarts (``var/chain``).

    Several processes (the server, the CLI) may share the folder: each replays the
    transactions the others appended before reading or sending, under a file lock.
    """

    def __init__(self, folder: Path, key: bytes) -> None:
        from eth_account import Account
        from eth_tester import EthereumTester, PyEVMBackend
        from web3 import EthereumTesterProvider, Web3

        operator = Account.from_key(key).address
        rich = {"balance": 10**27, "nonce": 0, "code": b"", "storage": {}}
        genesis = {
            bytes.fromhex(operator[2:]): rich,
            bytes.fromhex(_TESTER_CALLER[2:]): dict(rich),
        }
        params = PyEVMBackend.generate_genesis_params({"timestamp": _GENESIS_TIME})
        tester = EthereumTester(PyEVMBackend(genesis_parameters=params, genesis_state=genesis))
        super().__init__(Web3(EthereumTesterProvider(tester)), key, "the embedded chain")
        folder.mkdir(parents=True, exist_ok=True)
        self._log = folder / "transactions.hex"
        self._lockfile = folder / ".lock"
        self._applied = 0
        self._offset = 0
        self.sync()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lockfile.open("a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _replay(self) -> None:
        try:
            with self._log.open("rb") as fh:
                fh.seek(self._offset)
                tail = fh.read()
        except FileNotFoundError:
            return
        complete = tail[: tail.rfind(b"\n") + 1]  # a torn last line (crash) is ignored
        for line in complete.splitlines():
            tx_hash = self.w3.eth.send_raw_transaction(bytes.fromhex(line.decode()))
            self.w3.eth.wait_for_transaction_receipt(tx_hash)
            self._applied += 1
        self._offset += len(complete)

    def sync(self) -> None:
        """Apply transactions other processes appended since the last look."""
        try:
            if self._log.stat().st_size == self._offset:
                return
        except FileNotFoundError:
            return
        with self._locked():
            self._replay()

    def _send_raw(self, raw: bytes) -> Any:
        # eth-tester mines on send: once this returns the transaction is in a block
        # (reverted or not, it used a nonce), so it is kept for the replay.
        tx_hash = self.w3.eth.send_raw_transaction(raw)
        with self._log.open("ab") as fh:
            fh.write(raw.hex().encode() + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        self._offset = self._log.stat().st_size
        self._applied += 1
        return tx_hash

    def _transact(self, tx: dict[str, Any]) -> Any:
        with self._locked():
            self._replay()
            return super()._transact(tx)

    def root_at(self, contract: str, size: int) -> bytes | None:
        self.sync()
        return super().root_at(contract, size)

    def latest_size(self, contract: str) -> int:
        self.sync()
        return super().latest_size(contract)

    def find_anchor(self, contract: str, size: int) -> AnchorRef | None:
        self.sync()
        return super().find_anchor(contract, size)

    def anchors(self, contract: str) -> list[AnchorRef]:
        self.sync()
        return super().anchors(contract)

    def ensure_contract(self, known: str | None, note_key: bytes) -> str:
        self.sync()
        return super().ensure_contract(known, note_key)

    def rpc(self, method: str, params: list[Any]) -> Any:
        """Answer a read-only JSON-RPC call (JSON-RPC encoding), for verifiers without a
        node of their own; raises PermissionError for any other method."""
        if method not in READ_METHODS:
            raise PermissionError(f"method {method} is not served (read-only endpoint)")
        self.sync()
        eth = self.w3.eth
        p = [*params, None, None]
        block = _block_id(p[1])
        calls: dict[str, Callable[[], Any]] = {
            "eth_chainId": lambda: eth.chain_id,
            "net_version": lambda: str(eth.chain_id),
            "eth_blockNumber": lambda: eth.block_number,
            "eth_call": lambda: eth.call(_call_tx(p[0]), block),
            "eth_getCode": lambda: eth.get_code(self.w3.to_checksum_address(p[0]), block),
            "eth_getBalance": lambda: eth.get_balance(self.w3.to_checksum_address(p[0]), block),
            "eth_getLogs": lambda: eth.get_logs(_log_filter(p[0])),
            "eth_getTransactionReceipt": lambda: _maybe(eth.get_transaction_receipt, p[0]),
            "eth_getTransactionByHash": lambda: _maybe(eth.get_transaction, p[0]),
            "eth_getBlockByNumber": lambda: eth.get_block(_block_id(p[0]), bool(p[1])),
        }
        return _jsonable(calls[method]())


def _block_id(value: Any) -> Any:
    if value is None:
        return "latest"
    if isinstance(value, str) and value.startswith("0x"):
        return int(value, 16)
    return value


def _call_tx(tx: Any) -> dict[str, Any]:
    if not isinstance(tx, dict) or "to" not in tx:
        raise ValueError("eth_call takes a transaction object with `to`")
    return {k: tx[k] for k in ("to", "data", "input") if k in tx}


def _log_filter(flt: Any) -> dict[str, Any]:
    if not isinstance(flt, dict):
        raise ValueError("eth_getLogs takes a filter object")
    out = {k: flt[k] for k in ("address", "topics", "blockHash") if k in flt}
    for k in ("fromBlock", "toBlock"):
        if k in flt:
            out[k] = _block_id(flt[k])
    return out


def _maybe(get: Callable[[Any], Any], tx_hash: Any) -> Any:
    from web3.exceptions import TransactionNotFound

    try:
        return get(tx_hash)
    except TransactionNotFound:
        return None


def _jsonable(value: Any) -> Any:
    """web3 values in JSON-RPC encoding: quantities and bytes as 0x-hex."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return hex(value)
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "items"):
        return {str(k): _jsonable(v) for k, v in value.items()}
    raise TypeError(f"cannot encode {type(value).__name__} for JSON-RPC")
