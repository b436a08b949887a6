"""Ledger: the append-only, verifiable record of every purchase and access.

Leaves are RFC 8785 JSON records (accounts pseudonymised by HMAC); the log is an RFC 9162
Merkle tree kept in the database; checkpoints are C2SP signed notes; their (size, root)
are anchored on an EVM chain; receipts carry everything needed to verify offline.

Callers (pricing, data access) build one ``Ledger(settings)`` at start-up and call
``ledger.append(session, LedgerRecord(...))`` inside their own transaction.
"""

from ledger._chain import AnchorBackend, AnchorRef, EmbeddedBackend, RpcBackend
from ledger._records import LedgerRecord, RecordKind
from ledger._service import (
    AnchorInfo,
    AuditReport,
    CheckpointInfo,
    ConsistencyProof,
    Ledger,
    Receipt,
)
from ledger._verify import verify_receipt
from ledger._worker import LedgerWorker

__all__ = [
    "AnchorBackend",
    "AnchorInfo",
    "AnchorRef",
    "AuditReport",
    "CheckpointInfo",
    "ConsistencyProof",
    "EmbeddedBackend",
    "Ledger",
    "LedgerRecord",
    "LedgerWorker",
    "Receipt",
    "RecordKind",
    "RpcBackend",
    "verify_receipt",
]
