"""Entitlements: an account's right to read a product's data.

Today an admin grants whole-product access; orders and subscriptions (the pricing
issue) will create entitlements of other kinds through the same table and check.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ForeignKey, String, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from catalog.models import Product
from oceanmart.accounts import Account, Principal, get_account
from oceanmart.db import Base, UTCDateTime, utcnow
from oceanmart.errors import InvalidInput, NotEntitled, NotFound


class Entitlement(Base):
    __tablename__ = "entitlements"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="grant")
    granted_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


@dataclass(frozen=True, slots=True)
class EntitlementInfo:
    id: int
    account: str
    product: str
    kind: str
    granted_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None


def _info(row: Entitlement, account: str) -> EntitlementInfo:
    return EntitlementInfo(
        row.id,
        account,
        row.product_id,
        row.kind,
        row.granted_by,
        row.created_at,
        row.expires_at,
        row.revoked_at,
    )


def grant(
    session: Session,
    account_name: str,
    product_id: str,
    *,
    granted_by: str,
    expires_at: datetime | None = None,
) -> EntitlementInfo:
    """Grant an account whole-product access (the admin path of the foundation)."""
    acc = get_account(session, account_name)
    if session.get(Product, product_id) is None:
        raise NotFound(f"no product {product_id!r}")
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidInput("expires_at must carry a timezone")
    row = Entitlement(
        account_id=acc.id,
        product_id=product_id,
        kind="grant",
        granted_by=granted_by,
        created_at=utcnow(),
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return _info(row, acc.name)


def revoke(session: Session, entitlement_id: int) -> EntitlementInfo:
    row = session.get(Entitlement, entitlement_id)
    if row is None:
        raise NotFound(f"no entitlement {entitlement_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    acc = session.get(Account, row.account_id)
    assert acc is not None
    return _info(row, acc.name)


def list_entitlements(session: Session, account_name: str | None = None) -> list[EntitlementInfo]:
    stmt = select(Entitlement, Account.name).join(Account, Entitlement.account_id == Account.id)
    if account_name is not None:
        stmt = stmt.where(Account.id == get_account(session, account_name).id)
    return [_info(e, n) for e, n in session.execute(stmt.order_by(Entitlement.id))]


def entitled_products(
    session: Session, account_id: int, *, now: datetime | None = None
) -> frozenset[str]:
    """Ids of the products ``account_id`` holds a live entitlement for."""
    now = now or utcnow()
    rows = session.scalars(
        select(Entitlement).where(
            Entitlement.account_id == account_id, Entitlement.revoked_at.is_(None)
        )
    )
    return frozenset(r.product_id for r in rows if r.expires_at is None or r.expires_at > now)


def check_access(
    session: Session, principal: Principal, product_id: str, *, now: datetime | None = None
) -> EntitlementInfo:
    """Return the entitlement that lets ``principal`` read ``product_id`` or raise NotEntitled."""
    now = now or utcnow()
    rows = session.scalars(
        select(Entitlement).where(
            Entitlement.account_id == principal.account_id,
            Entitlement.product_id == product_id,
            Entitlement.revoked_at.is_(None),
        )
    )
    for row in rows:
        if row.expires_at is None or row.expires_at > now:
            return _info(row, principal.account_name)
    raise NotEntitled(
        f"account {principal.account_name!r} has no entitlement for product {product_id!r}",
        extensions={"product": product_id},
    )
