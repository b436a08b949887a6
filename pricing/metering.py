"""Metering: one access record per delivery of data.

Every data route (Zarr over HTTP, EDR, downloads, component runs, jobs) calls
``record_access`` once per response, in one transaction, before the first byte is
sent: the record carries what the plan says is delivered (cells, bytes), who received
it, under which entitlement, and an access id that the response carries as its
``OceanMart-Access-Id`` header. The ledger turns each record into a leaf; metered
entitlements (subscriptions, the research tier) have their quota consumed here.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import cast

from sqlalchemy import BigInteger, ForeignKey, Index, String, Table, insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from ledger import Ledger, LedgerRecord
from oceanmart.db import Base, UTCDateTime, utcnow
from pricing.entitlements import consume_quota


class Channel(StrEnum):
    """Through which door the data left."""

    SUBSET = "subset"  # /v1/products/{id}/subset
    ZARR = "zarr"  # /zarr/...: metadata documents and stored chunks
    EDR = "edr"
    DOWNLOAD = "download"  # /v1/subsets/{id}/download
    COMPONENT = "component"  # /v1/components/{id}/runs
    JOB = "job"  # results of asynchronous jobs


class AccessRecord(Base):
    __tablename__ = "access_records"
    __table_args__ = (Index("ix_access_records_account_created", "account_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    key_id: Mapped[str] = mapped_column(String(32))
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True)
    version_id: Mapped[str] = mapped_column(String(64))
    subset_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    entitlement_id: Mapped[int | None] = mapped_column(ForeignKey("entitlements.id"), nullable=True)
    channel: Mapped[str] = mapped_column(String(16))
    selection_hash: Mapped[str] = mapped_column(String(64))
    cells: Mapped[int] = mapped_column(BigInteger)
    bytes: Mapped[int] = mapped_column(BigInteger)


@dataclass(frozen=True, slots=True)
class Delivery:
    """What one response delivers, as planned before any data is read."""

    product_id: str
    version_id: str
    channel: Channel
    selection_hash: str  # subset id, chunk key or another stable hash of what was asked
    cells: int
    bytes: int
    subset_id: str | None = None


@dataclass(frozen=True, slots=True)
class AccessInfo:
    id: str
    created_at: datetime
    account_id: int
    key_id: str
    entitlement_id: int | None
    delivery: Delivery


# Inserted through Core, as a statement built once: one per data response, where the
# ORM's unit of work (an object, a flush) costs more than the database's insert.
_INSERT = insert(cast(Table, AccessRecord.__table__))


def new_access_id() -> str:
    """``acc_`` and 32 hex digits (128 random bits)."""
    return "acc_" + secrets.token_hex(16)


def record_access(
    session: Session,
    ledger: Ledger,
    *,
    account_id: int,
    key_id: str,
    entitlement_id: int | None,
    delivery: Delivery,
    access_id: str | None = None,
    now: datetime | None = None,
    metered: bool = True,
) -> AccessInfo:
    """Record one delivery in the caller's transaction, with its ledger leaf, and return
    its access id (``access_id`` when the caller made it beforehand, e.g. to write it
    into a file).

    A delivery under a metered entitlement (subscription, research tier) first takes its
    cells from the entitlement's quota, in this same transaction: an exhausted quota
    raises QuotaExhausted (402, with the quote request to extend) and records nothing.
    ``metered=False`` says the caller read the entitlement in this request and it has no
    quota (the data gate did), so it is not read again.
    """
    now = now or utcnow()
    if entitlement_id is not None and metered:
        consume_quota(session, entitlement_id, delivery.cells, now)
    access_id = access_id or new_access_id()
    session.execute(
        _INSERT,
        {
            "id": access_id,
            "created_at": now,
            "account_id": account_id,
            "key_id": key_id,
            "product_id": delivery.product_id,
            "version_id": delivery.version_id,
            "subset_id": delivery.subset_id,
            "entitlement_id": entitlement_id,
            "channel": delivery.channel.value,
            "selection_hash": delivery.selection_hash,
            "cells": delivery.cells,
            "bytes": delivery.bytes,
        },
    )
    ledger.append(
        session,
        LedgerRecord(
            kind="access",
            time=now,
            account_id=account_id,
            product_version=delivery.version_id,
            selection_hash=delivery.selection_hash,
            cells=delivery.cells,
            bytes=delivery.bytes,
            access_id=access_id,
        ),
    )
    return AccessInfo(access_id, now, account_id, key_id, entitlement_id, delivery)


def get_access(session: Session, access_id: str) -> AccessRecord | None:
    return session.get(AccessRecord, access_id)
