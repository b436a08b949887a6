"""The ledger service: append, integrate, checkpoint, anchor, receipts and audits.

Built once per process (``Ledger(settings)``); the API keeps it in ``app.state.ledger``.
``append`` runs inside the caller's transaction, so a leaf commits or rolls back with
the purchase or access it records. Everything else is idempotent and may run in any
process at any time: the integrator lock orders appends, checkpoints only grow, the
contract refuses a second root for a size, and anchoring catches up after an outage.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from ledger import _store as store
from ledger._chain import AnchorBackend, AnchorRef, AnchorSkipped, EmbeddedBackend, RpcBackend
from ledger._merkle import ProofError, leaf_hash, node_hash, verify_consistency
from ledger._notes import Checkpoint, NoteError, NoteSigner, VerifierKey, open_checkpoint
from ledger._records import LedgerRecord, decode, encode, pseudonym
from ledger._verify import RECEIPT_FORMAT
from oceanmart.db import transaction, utcnow
from oceanmart.errors import (
    ChainUnavailable,
    InvalidParameter,
    LedgerCorrupted,
    NotFound,
    ReceiptPending,
)
from oceanmart.secrets import ledger_secret, operator_key
from oceanmart.settings import Settings

log = structlog.get_logger(__name__)

_BATCH = 20_000


@dataclass(frozen=True, slots=True)
class AnchorInfo:
    status: str  # anchored | skipped
    chain_id: int
    contract: str
    tx_hash: str | None
    block_number: int | None


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    size: int
    root: bytes
    note: str
    created_at: datetime
    anchor: AnchorInfo | None


@dataclass(frozen=True, slots=True)
class Receipt:
    """An access record with everything needed to check it without the database."""

    access_id: str
    leaf: bytes
    leaf_index: int
    proof: tuple[bytes, ...]
    checkpoint: CheckpointInfo
    verifier_key: str
    rpc_url: str | None

    def to_json(self) -> dict[str, Any]:
        anchor = self.checkpoint.anchor
        assert anchor is not None
        return {
            "format": RECEIPT_FORMAT,
            "access_id": self.access_id,
            "record": decode(self.leaf),
            "leaf": base64.b64encode(self.leaf).decode(),
            "leaf_index": self.leaf_index,
            "tree_size": self.checkpoint.size,
            "inclusion_proof": [base64.b64encode(p).decode() for p in self.proof],
            "checkpoint": self.checkpoint.note,
            "verifier_key": self.verifier_key,
            "anchor": {
                "chain_id": anchor.chain_id,
                "contract": anchor.contract,
                "transaction": anchor.tx_hash,
                "block_number": anchor.block_number,
                "rpc_url": self.rpc_url,
            },
        }


@dataclass(frozen=True, slots=True)
class ConsistencyProof:
    first: int
    second: int
    first_root: bytes
    second_root: bytes
    proof: tuple[bytes, ...]


@dataclass(slots=True)
class AuditReport:
    size: int = 0
    checkpoints: int = 0
    anchors_checked: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True, slots=True)
class RunSummary:
    size: int
    checkpoint: int | None
    anchored: int
    chain_error: str | None


def _info(row: store.CheckpointRow, anchor: store.AnchorRow | None) -> CheckpointInfo:
    a = None
    if anchor is not None:
        a = AnchorInfo(
            anchor.status, anchor.chain_id, anchor.contract, anchor.tx_hash, anchor.block_number
        )
    return CheckpointInfo(row.size, row.root, row.note, row.created_at, a)


class Ledger:
    """The ledger of one deployment (see the module docstring)."""

    def __init__(self, settings: Settings, chain: AnchorBackend | None = None) -> None:
        self.settings = settings
        self._secret = ledger_secret(settings)
        self._key = operator_key(settings)
        self.signer = NoteSigner(settings.ledger_origin, self._key)
        self._vkey = VerifierKey.parse(self.signer.verifier_key)
        self._chain = chain
        self._chain_lock = threading.Lock()
        self._anchor_lock = threading.Lock()
        self._contract: str | None = None  # the anchor contract, once checked on chain
        self._pseudonyms: dict[int, str] = {}  # HMAC is the costliest part of an append

    # -- appending (in the caller's transaction) ---------------------------------------

    def append(self, session: Session, record: LedgerRecord) -> None:
        """Queue ``record`` in ``session``'s transaction; it commits or rolls back with it.

        The leaf gets its index when the integrator runs (at most
        ``ledger_poll_seconds`` later on a server, or on demand for a receipt).
        """
        store.append_one(session, self._encode(record), record.access_id)

    def append_many(self, session: Session, records: Iterable[LedgerRecord]) -> None:
        """Queue several records in one statement (same transaction semantics)."""
        rows = [(self._encode(r), r.access_id) for r in records]
        if rows:
            store.enqueue(session, rows)

    def pseudonym(self, account_id: int) -> str:
        """The account's pseudonym in leaves (what a receipt's ``record.account`` shows)."""
        found = self._pseudonyms.get(account_id)
        if found is None:
            found = pseudonym(self._secret, account_id)
            if len(self._pseudonyms) > 100_000:
                self._pseudonyms.clear()
            self._pseudonyms[account_id] = found
        return found

    def _encode(self, record: LedgerRecord) -> bytes:
        account = None if record.account_id is None else self.pseudonym(record.account_id)
        return encode(record, self._secret, account)

    # -- integration and checkpoints ---------------------------------------------------

    def integrate(self, sessions: sessionmaker[Session]) -> int:
        """Give every queued leaf its index; returns the tree size."""
        return self._integrate(sessions, sign=False)[0]

    def _integrate(
        self, sessions: sessionmaker[Session], *, sign: bool
    ) -> tuple[int, CheckpointInfo | None, bool]:
        """Integrate the queue; with ``sign``, the last batch's transaction also signs a
        checkpoint if one is due (one lock and one commit for both). Returns the tree
        size, the checkpoint made, and whether a checkpoint was considered at all
        (not when nothing was queued)."""
        with sessions() as s:  # a read first: an idle log takes no write lock
            if s.scalar(select(store.QueuedLeaf.id).limit(1)) is None:
                return store.tree_size(s), None, False
        while True:
            made = None
            try:
                with transaction(sessions) as s:
                    old, new, border = store.integrate(s, _BATCH)
                    last_batch = new - old < _BATCH
                    if sign and last_batch:
                        made = self._sign_if_due(s, new, border.root, force=False)
            except LedgerCorrupted:
                if not sign:
                    raise
                # Integrate on without signing; the caller's checkpoint() refuses again.
                sign = False
                continue
            if made is not None:
                log.info("ledger.checkpoint", size=made.size, root=made.root.hex())
            if last_batch:
                return new, made, sign

    def checkpoint(
        self, sessions: sessionmaker[Session], *, force: bool = False
    ) -> CheckpointInfo | None:
        """Sign a checkpoint of the integrated tree if one is due (or ``force``) and the
        tree grew; the new root must be consistent with the last signed one."""
        with sessions() as s:  # a read first: nothing due takes no write lock
            if not self._due(s, store.tree_size(s), force):
                return None
        with transaction(sessions) as s:
            size = store.lock(s)
            made = self._sign_if_due(s, size, lambda: store.root(s, size), force=force)
        if made is not None:
            log.info("ledger.checkpoint", size=made.size, root=made.root.hex())
        return made

    def _sign_if_due(
        self, s: Session, size: int, root_of: Callable[[], bytes], *, force: bool
    ) -> CheckpointInfo | None:
        """In a transaction holding the integrator lock at tree ``size``: sign and store a
        checkpoint if one is due, after checking the tree against the last signed one."""
        last = self._last(s)
        if not self._due_after(last, size, force):
            return None
        root = root_of()
        if last is not None:
            self._check_previous(s, last, size, root)
        note = self.signer.sign(Checkpoint(self.settings.ledger_origin, size, root))
        row = store.CheckpointRow(size=size, root=root, note=note, created_at=utcnow())
        s.add(row)
        return _info(row, None)

    @staticmethod
    def _last(s: Session) -> store.CheckpointRow | None:
        return s.scalar(
            select(store.CheckpointRow).order_by(store.CheckpointRow.size.desc()).limit(1)
        )

    def _due(self, s: Session, size: int, force: bool) -> bool:
        return self._due_after(self._last(s), size, force)

    def _due_after(self, last: store.CheckpointRow | None, size: int, force: bool) -> bool:
        if size == 0 or (last is not None and last.size >= size):
            return False
        if force or last is None:
            return True
        grown = size - last.size >= self.settings.ledger_checkpoint_every
        waited = utcnow() - last.created_at >= timedelta(
            seconds=self.settings.ledger_checkpoint_seconds
        )
        return grown or waited

    def _check_previous(
        self, s: Session, last: store.CheckpointRow, size: int, root: bytes
    ) -> None:
        try:
            signed = open_checkpoint(last.note, self._vkey)
            if (signed.size, signed.root) != (last.size, last.root):
                raise NoteError("the stored checkpoint row differs from its signed note")
            proof = store.consistency(s, last.size, size)
            verify_consistency(last.size, size, proof, last.root, root)
        except (NoteError, ProofError, LookupError) as exc:
            raise LedgerCorrupted(
                f"refusing to sign size {size}: not consistent with checkpoint {last.size} ({exc})"
            ) from None

    # -- anchoring ---------------------------------------------------------------------

    @property
    def chain(self) -> AnchorBackend:
        with self._chain_lock:
            if self._chain is None:
                if self.settings.chain_url:
                    self._chain = RpcBackend(self.settings.chain_url, self._key)
                else:
                    self._chain = EmbeddedBackend(self.settings.var_dir / "chain", self._key)
            return self._chain

    @property
    def embedded(self) -> EmbeddedBackend | None:
        """The in-process chain, when there is no external node."""
        chain = None if self.settings.chain_url else self.chain
        return chain if isinstance(chain, EmbeddedBackend) else None

    def contract(self, sessions: sessionmaker[Session], *, recheck: bool = False) -> str:
        """The anchor contract on the current chain (deployed on first use or after a
        reset). Checked on chain once per process, or again with ``recheck``."""
        chain = self.chain
        if self._contract is not None and not recheck:
            return self._contract
        key = f"contract:{chain.chain_id}"
        with sessions() as s:
            known = s.get(store.LedgerMeta, key)
            known_address = known.value if known else None
        address = chain.ensure_contract(known_address, self.signer.public)
        if address != known_address:
            with transaction(sessions) as s:
                s.merge(store.LedgerMeta(key=key, value=address))
            log.info("ledger.contract", chain_id=chain.chain_id, contract=address)
        self._contract = address
        return address

    def anchor(self, sessions: sessionmaker[Session], *, check_reset: bool = True) -> int:
        """Anchor every checkpoint not yet on chain, in order; re-send anchors a chain
        reset lost. Returns how many transactions were sent. Raises ChainUnavailable.

        With nothing new to anchor, the chain is asked whether it lost anchors (a reset)
        only with ``check_reset``: the background thread asks every few seconds, not on
        every pass (the question is a contract call, most of an idle server's CPU)."""
        with self._anchor_lock:
            with sessions() as s:
                pending = s.execute(
                    select(store.CheckpointRow.size, store.CheckpointRow.root)
                    .outerjoin(store.AnchorRow)
                    .where(store.AnchorRow.size.is_(None))
                    .order_by(store.CheckpointRow.size)
                ).all()
                anchored = s.scalar(select(func.count()).select_from(store.AnchorRow))
            if not pending and (not anchored or not check_reset):
                return 0  # nothing to anchor (or to check): leave the chain alone
            chain = self.chain
            contract = self.contract(sessions)
            try:
                latest = chain.latest_size(contract)
            except ChainUnavailable:
                # the node is down, or the contract is gone (a chain reset): look again
                contract = self.contract(sessions, recheck=True)
                latest = chain.latest_size(contract)
            sent, latest = self._reanchor_after_reset(sessions, chain, contract, latest)
            for size, root in pending:
                one, latest = self._anchor_one(sessions, chain, contract, size, root, latest)
                sent += one
            return sent

    def _anchor_one(
        self,
        sessions: sessionmaker[Session],
        chain: AnchorBackend,
        contract: str,
        size: int,
        root: bytes,
        latest: int,
    ) -> tuple[int, int]:
        """Anchor (size, root) unless the contract has it; ``latest`` is the contract's
        largest size, which tells without asking whether it may have it. Returns the
        transactions sent and the new largest size."""
        sent = 0
        ref: AnchorRef | None = None
        on_chain = chain.root_at(contract, size) if size <= latest else None
        if on_chain == root:
            ref = chain.find_anchor(contract, size)
        elif on_chain is not None:
            raise LedgerCorrupted(
                f"size {size} is anchored on chain {chain.chain_id} with root "
                f"{on_chain.hex()}, but the log's checkpoint says {root.hex()}"
            )
        elif size > latest:
            try:
                ref = chain.anchor(contract, size, root)
                sent = 1
                latest = size
            except AnchorSkipped:
                ref = None
        with transaction(sessions) as s:
            s.merge(
                store.AnchorRow(
                    size=size,
                    status="anchored" if ref else "skipped",
                    chain_id=chain.chain_id,
                    contract=contract,
                    tx_hash=ref.tx_hash if ref else None,
                    block_number=ref.block_number if ref else None,
                    anchored_at=utcnow(),
                )
            )
        log.info("ledger.anchor", size=size, status="anchored" if ref else "skipped")
        return sent, latest

    def _reanchor_after_reset(
        self, sessions: sessionmaker[Session], chain: AnchorBackend, contract: str, latest: int
    ) -> tuple[int, int]:
        anchored = (store.AnchorRow.status == "anchored") & (
            store.AnchorRow.chain_id == chain.chain_id
        )
        with sessions() as s:
            # Two aggregates first: reading every anchor row each round grew with the log.
            largest = s.scalar(select(func.max(store.AnchorRow.size)).where(anchored))
            if largest is None:
                return 0, latest
            moved = s.scalar(
                select(store.AnchorRow.size)
                .where(anchored & (store.AnchorRow.contract != contract))
                .limit(1)
            )
            if moved is None and latest >= largest:
                return 0, latest
            rows = s.execute(
                select(store.AnchorRow.size, store.AnchorRow.contract, store.CheckpointRow.root)
                .join(store.CheckpointRow)
                .where(anchored)
                .order_by(store.AnchorRow.size)
            ).all()
        log.warning("ledger.chain_reset", chain_id=chain.chain_id, anchors=len(rows))
        sent = 0
        for size, _, root in rows:
            one, latest = self._anchor_one(sessions, chain, contract, size, root, latest)
            sent += one
        return sent, latest

    # -- one round of background work --------------------------------------------------

    def run_once(
        self, sessions: sessionmaker[Session], *, anchor: bool = True, check_reset: bool = True
    ) -> RunSummary:
        size, made, considered = self._integrate(sessions, sign=True)
        if not considered:  # nothing was queued: a checkpoint may still be due by time
            made = self.checkpoint(sessions)
        sent, error = 0, None
        if anchor:
            try:
                sent = self.anchor(sessions, check_reset=check_reset)
            except ChainUnavailable as exc:
                error = exc.detail
        return RunSummary(size, made.size if made else None, sent, error)

    # -- reading -----------------------------------------------------------------------

    def known_contract(self, sessions: sessionmaker[Session]) -> tuple[int, str] | None:
        """(chain id, contract) last used for anchoring, from the database alone."""
        with sessions() as s:
            row = s.execute(
                select(store.AnchorRow.chain_id, store.AnchorRow.contract)
                .where(store.AnchorRow.status == "anchored")
                .order_by(store.AnchorRow.anchored_at.desc())
                .limit(1)
            ).first()
        return (int(row[0]), str(row[1])) if row else None

    def size(self, sessions: sessionmaker[Session]) -> int:
        with sessions() as s:
            return store.tree_size(s)

    def latest_checkpoint(self, sessions: sessionmaker[Session]) -> CheckpointInfo:
        with sessions() as s:
            row = s.scalar(
                select(store.CheckpointRow).order_by(store.CheckpointRow.size.desc()).limit(1)
            )
            if row is None:
                raise NotFound("the ledger has no checkpoint yet")
            return _info(row, s.get(store.AnchorRow, row.size))

    def checkpoint_at(self, sessions: sessionmaker[Session], size: int) -> CheckpointInfo:
        with sessions() as s:
            row = s.get(store.CheckpointRow, size)
            if row is None:
                raise NotFound(f"no checkpoint of size {size}", extensions={"size": size})
            return _info(row, s.get(store.AnchorRow, size))

    def consistency(
        self, sessions: sessionmaker[Session], first: int, second: int
    ) -> ConsistencyProof:
        """A proof that the tree of size ``second`` extends that of ``first`` (both checkpoints)."""
        if first <= 0:
            raise InvalidParameter("first", "must be a positive tree size")
        if second < first:
            raise InvalidParameter("second", "must not be smaller than first")
        a = self.checkpoint_at(sessions, first)
        b = self.checkpoint_at(sessions, second)
        with sessions() as s:
            proof = store.consistency(s, first, second)
        return ConsistencyProof(first, second, a.root, b.root, tuple(proof))

    def receipt(
        self,
        sessions: sessionmaker[Session],
        access_id: str,
        *,
        account_id: int | None,
        rpc_url: str | None,
    ) -> Receipt:
        """The receipt of ``access_id`` for ``account_id`` (None: the operator, any account).

        A leaf still queued is integrated, checkpointed and anchored now, so receipts are
        available right after an access. Another account's access is NotFound, exactly
        like a missing one. Raises ReceiptPending while the chain cannot be reached.
        """
        found = self._find_leaf(sessions, access_id)
        if found is None:
            with sessions() as s:
                queued = s.scalar(
                    select(func.count())
                    .select_from(store.QueuedLeaf)
                    .where(store.QueuedLeaf.access_id == access_id)
                )
            if queued:
                self.integrate(sessions)
            # again either way: an integrator may have moved it between the two looks
            found = self._find_leaf(sessions, access_id)
        if found is None or (
            account_id is not None and decode(found[1]).get("account") != self.pseudonym(account_id)
        ):
            raise NotFound(f"no receipt for access {access_id}")
        index, leaf = found
        cp = self._anchored_checkpoint(sessions, index)
        if cp is None:
            if self._covering_checkpoint(sessions, index) is None:
                self.integrate(sessions)
                self.checkpoint(sessions, force=True)
            try:
                self.anchor(sessions)
            except ChainUnavailable as exc:
                raise ReceiptPending(
                    f"access {access_id} is logged at index {index}; its checkpoint is not "
                    f"anchored yet ({exc.detail})",
                    extensions={"leaf_index": index, "retry_after": 5},
                ) from None
            cp = self._anchored_checkpoint(sessions, index)
            if cp is None:
                raise ReceiptPending(
                    f"access {access_id} is logged at index {index}; anchoring is under way",
                    extensions={"leaf_index": index, "retry_after": 2},
                )
        with sessions() as s:
            proof = store.inclusion(s, index, cp.size)
        return Receipt(access_id, leaf, index, tuple(proof), cp, self.signer.verifier_key, rpc_url)

    def _find_leaf(
        self, sessions: sessionmaker[Session], access_id: str
    ) -> tuple[int, bytes] | None:
        with sessions() as s:
            row = s.execute(
                select(store.Leaf.idx, store.Leaf.leaf)
                .where(store.Leaf.access_id == access_id)
                .order_by(store.Leaf.idx)
                .limit(1)
            ).first()
        return (row[0], row[1]) if row else None

    def _covering_checkpoint(self, sessions: sessionmaker[Session], index: int) -> int | None:
        with sessions() as s:
            return s.scalar(
                select(func.min(store.CheckpointRow.size)).where(store.CheckpointRow.size > index)
            )

    def _anchored_checkpoint(
        self, sessions: sessionmaker[Session], index: int
    ) -> CheckpointInfo | None:
        chain_id = self.chain.chain_id if self._chain is not None else None
        with sessions() as s:
            q = (
                select(store.CheckpointRow, store.AnchorRow)
                .join(store.AnchorRow)
                .where(store.CheckpointRow.size > index)
                .where(store.AnchorRow.status == "anchored")
                .order_by(store.CheckpointRow.size)
                .limit(1)
            )
            if chain_id is not None:
                q = q.where(store.AnchorRow.chain_id == chain_id)
            row = s.execute(q).first()
            return _info(row[0], row[1]) if row else None

    # -- audit -------------------------------------------------------------------------

    def audit(self, sessions: sessionmaker[Session], *, chain: bool = True) -> AuditReport:
        """Recompute the log from the stored leaves and compare it with every stored
        node, every signed checkpoint and every anchor on chain."""
        report = AuditReport()
        with sessions() as s:
            size = store.tree_size(s)
            report.size = size
            self._audit_tree(s, size, report)
            if report.problems:
                return report  # the nodes cannot be trusted to recompute roots
            roots: dict[int, bytes] = {}
            for row in s.scalars(select(store.CheckpointRow).order_by(store.CheckpointRow.size)):
                report.checkpoints += 1
                self._audit_checkpoint(s, row, size, roots, report)
        if chain:
            self._audit_chain(sessions, size, roots, report)
        return report

    def _audit_tree(self, s: Session, size: int, report: AuditReport) -> None:
        leaves = s.execute(
            select(store.Leaf.idx, store.Leaf.leaf).order_by(store.Leaf.idx),
            execution_options={"yield_per": 5000},
        )
        stored = _level(s, 0)
        count = 0
        for (idx, leaf), node in _zip_longest(leaves, stored):
            if idx is None:
                report.problems.append(f"leaf {count} is missing (a node exists for it)")
                return
            if idx != count:
                report.problems.append(f"leaf indices jump from {count - 1} to {idx}")
                return
            if node is None or node[0] != idx or node[1] != leaf_hash(leaf):
                report.problems.append(f"leaf {idx} does not match its stored leaf hash")
                return
            count += 1
        if count != size:
            report.problems.append(f"{count} leaves are stored but the tree size is {size}")
            return
        level = 0
        while size >> (level + 1):
            below = _level(s, level)
            above = _level(s, level + 1)
            want = 0
            for (i, left), (j, right) in _pairs(below):
                if j != i + 1 or i % 2:
                    report.problems.append(f"level {level} nodes are not consecutive at {i}")
                    return
                got = next(above, None)
                if got is None or got != (i // 2, node_hash(left, right)):
                    report.problems.append(
                        f"node ({level + 1}, {i // 2}) does not hash its children"
                    )
                    return
                want += 1
            if want != size >> (level + 1) or next(above, None) is not None:
                report.problems.append(f"level {level + 1} has the wrong number of nodes")
                return
            level += 1

    def _audit_checkpoint(
        self,
        s: Session,
        row: store.CheckpointRow,
        size: int,
        roots: dict[int, bytes],
        report: AuditReport,
    ) -> None:
        try:
            signed = open_checkpoint(row.note, self._vkey)
        except NoteError as exc:
            report.problems.append(f"checkpoint {row.size}: {exc}")
            return
        if (signed.size, signed.root) != (row.size, row.root):
            report.problems.append(f"checkpoint {row.size}: the row differs from its signed note")
        if row.size > size:
            report.problems.append(f"checkpoint {row.size} is beyond the tree size {size}")
            return
        recomputed = store.root(s, row.size)
        roots[row.size] = recomputed
        if recomputed != signed.root:
            report.problems.append(
                f"checkpoint {row.size}: signed root {signed.root.hex()} but the leaves "
                f"give {recomputed.hex()}"
            )

    def _audit_chain(
        self,
        sessions: sessionmaker[Session],
        size: int,
        roots: dict[int, bytes],
        report: AuditReport,
    ) -> None:
        try:
            chain = self.chain
            with sessions() as s:  # the audit reads; it never deploys
                known = s.get(store.LedgerMeta, f"contract:{chain.chain_id}")
                any_anchor = s.scalar(select(func.count()).select_from(store.AnchorRow))
            if known is None:
                if any_anchor:
                    report.problems.append(f"no anchor contract known on chain {chain.chain_id}")
                return
            contract = known.value
            on_chain = chain.anchors(contract)
        except ChainUnavailable as exc:
            report.problems.append(f"chain: {exc.detail}")
            return
        seen = set()
        for ref in on_chain:
            report.anchors_checked += 1
            seen.add(ref.size)
            if ref.size > size:
                report.problems.append(f"anchor {ref.size} is beyond the tree size {size}")
                continue
            want = roots.get(ref.size)
            if want is None:
                with sessions() as s:
                    want = store.root(s, ref.size)
                report.problems.append(f"anchor {ref.size} has no checkpoint in the log")
            if want != ref.root:
                report.problems.append(
                    f"anchor {ref.size}: the chain holds root {ref.root.hex()} but the "
                    f"leaves give {want.hex()}"
                )
        with sessions() as s:
            anchored = s.scalars(
                select(store.AnchorRow.size)
                .where(store.AnchorRow.status == "anchored")
                .where(store.AnchorRow.chain_id == chain.chain_id)
            ).all()
        for missing in sorted(set(anchored) - seen):
            report.problems.append(
                f"checkpoint {missing} is recorded as anchored but is not on chain"
            )


def _level(s: Session, level: int) -> Iterator[tuple[int, bytes]]:
    rows = s.execute(
        select(store.TreeNode.idx, store.TreeNode.hash)
        .where(store.TreeNode.level == level)
        .order_by(store.TreeNode.idx),
        execution_options={"yield_per": 5000},
    )
    return ((int(i), bytes(h)) for i, h in rows)


def _pairs(
    it: Iterator[tuple[int, bytes]],
) -> Iterator[tuple[tuple[int, bytes], tuple[int, bytes]]]:
    while True:
        a = next(it, None)
        b = next(it, None)
        if a is None or b is None:
            return
        yield a, b


def _zip_longest(
    leaves: Iterable[Any], nodes: Iterator[tuple[int, bytes]]
) -> Iterator[tuple[tuple[Any, Any], tuple[int, bytes] | None]]:
    for idx, leaf in leaves:
        yield (int(idx), bytes(leaf)), next(nodes, None)
    extra = next(nodes, None)
    if extra is not None:
        yield (None, None), extra
