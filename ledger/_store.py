"""The log's tables and the integrator that turns queued leaves into an RFC 9162 tree.

Callers insert a row into ``ledger_queue`` inside their own transaction (one cheap
INSERT). The integrator, under a row lock on ``ledger_state`` (PostgreSQL row lock;
SQLite's single writer lock), moves queued rows to ``ledger_leaves`` with consecutive
indices and stores every perfect subtree hash it completes in ``ledger_nodes``, so any
inclusion or consistency proof reads O(log n) nodes and never the leaves. Queue ids are
not commit-ordered on PostgreSQL, which is why indices are assigned here, not there.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from ledger._merkle import (
    CompactRange,
    Node,
    consistency_path,
    inclusion_path,
    leaf_hash,
    needed_nodes,
    perfect_nodes,
    subtree_root,
)
from oceanmart.db import Base, UTCDateTime, utcnow
from oceanmart.errors import InvalidInput

# SQLite's rowid is an INTEGER PRIMARY KEY (64-bit); PostgreSQL gets BIGINT.
_QueueId = BigInteger().with_variant(Integer(), "sqlite")


class QueuedLeaf(Base):
    __tablename__ = "ledger_queue"

    id: Mapped[int] = mapped_column(_QueueId, primary_key=True, autoincrement=True)
    leaf: Mapped[bytes] = mapped_column(LargeBinary)
    access_id: Mapped[str | None] = mapped_column(String(200), nullable=True)


class Leaf(Base):
    """An integrated leaf: append-only, ``idx`` consecutive from 0."""

    __tablename__ = "ledger_leaves"

    # INTEGER on SQLite makes idx the rowid: one B-tree insert a leaf instead of two.
    idx: Mapped[int] = mapped_column(_QueueId, primary_key=True, autoincrement=False)
    leaf: Mapped[bytes] = mapped_column(LargeBinary)
    access_id: Mapped[str | None] = mapped_column(String(200), nullable=True, index=True)


class TreeNode(Base):
    """A perfect subtree hash: ``level`` 0 are leaf hashes."""

    __tablename__ = "ledger_nodes"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[bytes] = mapped_column(LargeBinary)


class TreeState(Base):
    """One row (id 1): the integrated size; updating it is the integrator's lock."""

    __tablename__ = "ledger_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    size: Mapped[int] = mapped_column(BigInteger)
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class CheckpointRow(Base):
    __tablename__ = "ledger_checkpoints"

    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary)
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class AnchorRow(Base):
    """Where a checkpoint is anchored (``status`` anchored) or why not (skipped)."""

    __tablename__ = "ledger_anchors"

    size: Mapped[int] = mapped_column(
        ForeignKey("ledger_checkpoints.size"), primary_key=True, autoincrement=False
    )
    status: Mapped[str] = mapped_column(String(16))
    chain_id: Mapped[int] = mapped_column(BigInteger)
    contract: Mapped[str] = mapped_column(String(42))
    tx_hash: Mapped[str | None] = mapped_column(String(66), nullable=True)
    block_number: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    anchored_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class LedgerMeta(Base):
    """Small settings of the log kept with it, such as the contract of each chain."""

    __tablename__ = "ledger_meta"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    value: Mapped[str] = mapped_column(String(400))


def _driver(session: Session) -> tuple[Any, str, bool]:
    """The DB-API cursor of the session's connection, its parameter mark, and whether it
    is PostgreSQL.

    The ledger's hot path goes straight to the driver: SQLAlchemy's per-statement and
    per-value processing (and the engine's NUL-refusing hook, which walks every value
    of an executemany) costs more than the INSERTs themselves. Only ints, bytes and
    text the ledger made, read from its own tables or checked (``_refuse_nul``) go this way.
    """
    conn = session.connection()
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    postgres = conn.dialect.name == "postgresql"
    return cursor, "%s" if postgres else "?", postgres


def _write_rows(
    cursor: Any, mark: str, postgres: bool, table: str, columns: str, rows: list[tuple[Any, ...]]
) -> None:
    """Rows straight through the driver: COPY on PostgreSQL (~20x faster than
    executemany there), executemany on SQLite."""
    if not rows:
        return
    if postgres and len(rows) > 1:
        with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join([mark] * (columns.count(",") + 1))
    sql = f"INSERT INTO {table} ({columns}) VALUES ({marks})"  # noqa: S608 - fixed names
    if len(rows) == 1:
        cursor.execute(sql, rows[0])
    else:
        cursor.executemany(sql, rows)


def _refuse_nul(access_id: str | None) -> None:
    """What the engine's hook does for every statement, done here for the one text
    value of a queued leaf (the leaf itself is bytes), since appends skip that hook."""
    if access_id is not None and "\x00" in access_id:
        raise InvalidInput("text must not contain NUL (U+0000) characters")


_CURSOR = "ledger.append_cursor"


def append_one(session: Session, leaf: bytes, access_id: str | None) -> None:
    """Queue one leaf in the caller's transaction, straight through the driver's cursor.

    The cursor is kept for the rest of the session's transaction (whose connection does
    not change), which makes a single append a few microseconds of Python.
    """
    _refuse_nul(access_id)
    transaction = session.get_transaction()
    kept = session.info.get(_CURSOR)
    if kept is None or kept[0] is not transaction:
        conn = session.connection()
        mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
        sql = f"INSERT INTO ledger_queue (leaf, access_id) VALUES ({mark}, {mark})"  # noqa: S608
        kept = (transaction, conn.connection.dbapi_connection.cursor(), sql)  # type: ignore[union-attr]
        session.info[_CURSOR] = kept
    kept[1].execute(kept[2], (leaf, access_id))


def enqueue(session: Session, rows: Sequence[tuple[bytes, str | None]]) -> None:
    """Queue (leaf, access_id) rows in the caller's transaction (one statement)."""
    for _, access_id in rows:
        _refuse_nul(access_id)
    cursor, mark, postgres = _driver(session)
    _write_rows(cursor, mark, postgres, "ledger_queue", "leaf, access_id", list(rows))


def lock(session: Session) -> int:
    """Take the integrator lock for this transaction and return the integrated size."""
    session.execute(update(TreeState).where(TreeState.id == 1).values(locked_at=utcnow()))
    size = session.scalar(select(TreeState.size).where(TreeState.id == 1))
    if size is None:
        raise RuntimeError("ledger_state has no row: run `oceanmart db upgrade`")
    return size


def tree_size(session: Session) -> int:
    return session.scalar(select(TreeState.size).where(TreeState.id == 1)) or 0


def nodes(session: Session, wanted: Iterable[Node]) -> dict[Node, bytes]:
    """The stored hashes of ``wanted`` perfect subtrees (one query per 500)."""
    keys = list(wanted)
    if not keys:
        return {}
    cursor, mark, _ = _driver(session)
    term = f"(level = {mark} AND idx = {mark})"
    found: dict[Node, bytes] = {}
    for i in range(0, len(keys), 500):
        part = keys[i : i + 500]
        # (level = ? AND idx = ?) OR ...: SQLite does not use the primary key for a
        # row-value IN list (a full scan at 1 M leaves), but does for these terms.
        cursor.execute(
            "SELECT level, idx, hash FROM ledger_nodes WHERE "  # noqa: S608 - fixed text
            + " OR ".join([term] * len(part)),
            [v for key in part for v in key],
        )
        found.update(((level, idx), bytes(h)) for level, idx, h in cursor.fetchall())
    missing = [k for k in keys if k not in found]
    if missing:
        raise LookupError(f"stored tree nodes are missing: {missing[:5]}")
    return found


def compact_range(session: Session, size: int) -> CompactRange:
    stored = nodes(session, perfect_nodes(0, size))
    return CompactRange(size, [stored[n] for n in perfect_nodes(0, size)])


def integrate(session: Session, limit: int) -> tuple[int, int, CompactRange]:
    """Move up to ``limit`` queued leaves into the tree; returns (old size, new size) and
    the right border of the new tree (its root without another read).

    The caller commits; everything here happens in its one transaction. The whole batch
    is hashed in memory, then written with one statement per table (COPY on PostgreSQL).
    """
    size = lock(session)
    cursor, mark, postgres = _driver(session)
    cursor.execute(
        f"SELECT id, leaf, access_id FROM ledger_queue ORDER BY id LIMIT {int(limit)}"  # noqa: S608
    )
    queued = cursor.fetchall()
    border = compact_range(session, size)
    if not queued:
        return size, size, border
    new_nodes: list[tuple[int, int, bytes]] = []
    leaves: list[tuple[int, bytes, str | None]] = []
    add_leaf, add_node = leaves.append, border.append
    index = size
    for _, leaf, access_id in queued:
        leaf = bytes(leaf)
        add_leaf((index, leaf, access_id))
        add_node(leaf_hash(leaf), new_nodes)
        index += 1
    _write_rows(cursor, mark, postgres, "ledger_leaves", "idx, leaf, access_id", leaves)
    _write_rows(cursor, mark, postgres, "ledger_nodes", "level, idx, hash", new_nodes)
    if postgres:
        # Ids are not commit-ordered here: delete exactly the rows that were read.
        cursor.execute("DELETE FROM ledger_queue WHERE id = ANY(%s)", ([r[0] for r in queued],))
    else:
        # SQLite has one writer, and this transaction is it (the lock above): every
        # queued row up to the last one read was read, and no other can appear.
        cursor.execute("DELETE FROM ledger_queue WHERE id <= ?", (queued[-1][0],))
    session.execute(update(TreeState).where(TreeState.id == 1).values(size=border.size))
    return size, border.size, border


def root(session: Session, size: int) -> bytes:
    stored = nodes(session, needed_nodes(lambda get: subtree_root(0, size, get)))
    return subtree_root(0, size, lambda lv, ix: stored[(lv, ix)])


def inclusion(session: Session, index: int, size: int) -> list[bytes]:
    stored = nodes(session, needed_nodes(lambda get: inclusion_path(index, size, get)))
    return inclusion_path(index, size, lambda lv, ix: stored[(lv, ix)])


def consistency(session: Session, first: int, second: int) -> list[bytes]:
    stored = nodes(session, needed_nodes(lambda get: consistency_path(first, second, get)))
    return consistency_path(first, second, lambda lv, ix: stored[(lv, ix)])
