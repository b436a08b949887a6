"""The anchor backends: one shared suite run on the embedded py-evm chain and on anvil."""

from __future__ import annotations

from pathlib import Path

import pytest
from eth_account import Account

from ledger import AnchorBackend, EmbeddedBackend, RpcBackend
from ledger._chain import AnchorSkipped
from oceanmart.errors import ChainUnavailable, LedgerCorrupted
from tests.conftest import free_port
from tests.ledger.conftest import Anvil

KEY = bytes.fromhex("5a" * 32)
NOTE_KEY = b"\x07" * 32


class AnchorBackendSuite:
    """What every anchor backend must do (subclasses provide ``backend``)."""

    @pytest.fixture
    def backend(self) -> AnchorBackend:
        raise NotImplementedError

    def test_deploys_once_and_anchors_append_only(self, backend: AnchorBackend) -> None:
        contract = backend.ensure_contract(None, NOTE_KEY)
        assert backend.ensure_contract(contract, NOTE_KEY) == contract
        assert backend.latest_size(contract) == 0 and backend.root_at(contract, 5) is None
        ref = backend.anchor(contract, 5, b"\x01" * 32)
        assert (ref.size, ref.root, ref.chain_id) == (5, b"\x01" * 32, backend.chain_id)
        assert ref.tx_hash and ref.block_number
        assert backend.root_at(contract, 5) == b"\x01" * 32
        # idempotent: the same root again returns the original transaction
        assert backend.anchor(contract, 5, b"\x01" * 32) == ref
        assert backend.find_anchor(contract, 5) == ref
        with pytest.raises(LedgerCorrupted, match="anchored on chain"):
            backend.anchor(contract, 5, b"\x02" * 32)
        backend.anchor(contract, 9, b"\x03" * 32)
        with pytest.raises(AnchorSkipped):
            backend.anchor(contract, 7, b"\x04" * 32)
        assert [(a.size, a.root) for a in backend.anchors(contract)] == [
            (5, b"\x01" * 32),
            (9, b"\x03" * 32),
        ]
        assert backend.writer == Account.from_key(KEY).address


class TestEmbedded(AnchorBackendSuite):
    @pytest.fixture
    def backend(self, tmp_path: Path) -> AnchorBackend:
        return EmbeddedBackend(tmp_path / "chain", KEY)

    def test_anchors_survive_a_restart_and_processes_share_the_chain(self, tmp_path: Path) -> None:
        first = EmbeddedBackend(tmp_path / "chain", KEY)
        contract = first.ensure_contract(None, NOTE_KEY)
        ref = first.anchor(contract, 3, b"\x09" * 32)
        # another process (a second instance on the same folder) sees and extends it
        second = EmbeddedBackend(tmp_path / "chain", KEY)
        assert second.find_anchor(contract, 3) == ref
        second.anchor(contract, 4, b"\x0a" * 32)
        assert first.root_at(contract, 4) == b"\x0a" * 32
        first.anchor(contract, 6, b"\x0b" * 32)
        # a restart replays the same transactions: same address, hashes and state
        again = EmbeddedBackend(tmp_path / "chain", KEY)
        assert again.ensure_contract(contract, NOTE_KEY) == contract
        assert [a.tx_hash for a in again.anchors(contract)] == [
            a.tx_hash for a in first.anchors(contract)
        ]
        assert again.latest_size(contract) == 6

    def test_serves_read_only_json_rpc(self, tmp_path: Path) -> None:
        chain = EmbeddedBackend(tmp_path / "chain", KEY)
        contract = chain.ensure_contract(None, NOTE_KEY)
        ref = chain.anchor(contract, 2, b"\x05" * 32)
        assert chain.rpc("eth_chainId", []) == hex(chain.chain_id)
        receipt = chain.rpc("eth_getTransactionReceipt", [ref.tx_hash])
        assert receipt["status"] == "0x1" and receipt["transactionHash"] == ref.tx_hash
        assert chain.rpc("eth_getTransactionReceipt", ["0x" + "00" * 32]) is None
        with pytest.raises(PermissionError):
            chain.rpc("eth_sendRawTransaction", ["0x00"])


class TestRpc(AnchorBackendSuite):
    @pytest.fixture
    def backend(self, anvil: Anvil) -> AnchorBackend:
        anvil.fund(Account.from_key(KEY).address)
        return RpcBackend(anvil.url, KEY)

    def test_an_unreachable_node_is_chain_unavailable(self) -> None:
        backend = RpcBackend(f"http://127.0.0.1:{free_port()}", KEY, timeout=2)
        with pytest.raises(ChainUnavailable, match="cannot be reached"):
            backend.ensure_contract(None, NOTE_KEY)
