"""Orders and their state machine.

::

    quoted -> pending_payment -> paid -> fulfilled
       |             |            |         |
       +-> failed    +-> failed   +---------+--> refunded
       +-> expired   +-> expired

Every move goes through ``transition`` (which refuses any other) and is logged in
``order_transitions``. Three functions carry the events the ledger records, one each:
``fulfil`` (a purchase: paid -> fulfilled, entitlement and revenue share),
``refund_order`` (a refund: entitlement revoked) and ``pricing.books.save_book``.

A payment that arrives after its quote expired is not honoured: the order is
``expired`` and the money is refunded (``late_payment``), so nothing is granted.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from fractions import Fraction
from typing import cast

from sqlalchemy import BigInteger, ForeignKey, String, Table, Text, bindparam, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from catalog.models import Product, Subset
from ledger import Ledger, LedgerRecord, RecordKind
from oceanmart.accounts import Account
from oceanmart.db import Base, UTCDateTime, utcnow
from oceanmart.errors import InvalidOrderState, NotFound
from pricing.books import get_book
from pricing.engine import Offer
from pricing.entitlements import create_for_order, revoke_for_order
from pricing.money import Currency, Money, round_half_up


class OrderStatus(StrEnum):
    QUOTED = "quoted"
    PENDING_PAYMENT = "pending_payment"
    PAID = "paid"
    FULFILLED = "fulfilled"
    EXPIRED = "expired"
    FAILED = "failed"
    REFUNDED = "refunded"


S = OrderStatus
TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.QUOTED: frozenset({S.PENDING_PAYMENT, S.FAILED, S.EXPIRED}),
    S.PENDING_PAYMENT: frozenset({S.PAID, S.FAILED, S.EXPIRED}),
    S.PAID: frozenset({S.FULFILLED, S.REFUNDED}),
    S.FULFILLED: frozenset({S.REFUNDED}),
    S.EXPIRED: frozenset(),
    S.FAILED: frozenset(),
    S.REFUNDED: frozenset(),
}
# Orders whose free cells count against the monthly free quota.
HOLDING = (S.QUOTED, S.PENDING_PAYMENT, S.PAID, S.FULFILLED)


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    quote_id: Mapped[str] = mapped_column(ForeignKey("quotes.id"), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True)
    subset_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    offer: Mapped[str] = mapped_column(String(16))
    component: Mapped[str | None] = mapped_column(String(64), nullable=True)
    price_book_id: Mapped[int] = mapped_column(ForeignKey("price_books.id"))
    payment: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(20), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[int] = mapped_column(BigInteger)
    free_cells: Mapped[int] = mapped_column(BigInteger, default=0)
    provider: Mapped[str] = mapped_column(String(200), default="")
    provider_share: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    operator_share: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    checkout_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    stripe_session_id: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    stripe_payment_intent: Mapped[str | None] = mapped_column(
        String(255), nullable=True, index=True
    )
    refund_id: Mapped[str | None] = mapped_column(String(255), nullable=True)
    failure: Mapped[str] = mapped_column(String(300), default="")
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)  # the quote's expiry
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    fulfilled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class OrderTransition(Base):
    __tablename__ = "order_transitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.id"), index=True)
    from_status: Mapped[str] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    reason: Mapped[str] = mapped_column(String(300), default="")


@dataclass(frozen=True, slots=True)
class OrderInfo:
    id: str
    quote_id: str
    account: str
    product_id: str
    subset_id: str | None
    offer: str
    payment: str
    status: str
    amount: Money
    provider_share: int | None
    checkout_url: str | None
    failure: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    paid_at: datetime | None
    fulfilled_at: datetime | None
    refunded_at: datetime | None
    entitlement_ids: tuple[int, ...] = ()


def new_order_id() -> str:
    return "ord_" + secrets.token_hex(12)


def info(session: Session, order: Order) -> OrderInfo:
    from pricing.entitlements import Entitlement

    name = session.scalar(select(Account.name).where(Account.id == order.account_id)) or "?"
    ents = session.scalars(
        select(Entitlement.id).where(Entitlement.order_id == order.id).order_by(Entitlement.id)
    )
    return OrderInfo(
        id=order.id,
        quote_id=order.quote_id,
        account=name,
        product_id=order.product_id,
        subset_id=order.subset_id,
        offer=order.offer,
        payment=order.payment,
        status=order.status,
        amount=Money(order.amount, Currency(order.currency)),
        provider_share=order.provider_share,
        checkout_url=order.checkout_url,
        failure=order.failure,
        created_at=order.created_at,
        updated_at=order.updated_at,
        expires_at=order.expires_at,
        paid_at=order.paid_at,
        fulfilled_at=order.fulfilled_at,
        refunded_at=order.refunded_at,
        entitlement_ids=tuple(ents),
    )


def transition(
    session: Session, order: Order, to: OrderStatus, now: datetime, reason: str = ""
) -> None:
    """Move ``order`` to ``to`` or raise InvalidOrderState; logged either way it moves."""
    current = OrderStatus(order.status)
    if to not in TRANSITIONS[current]:
        raise InvalidOrderState(
            f"order {order.id} is {current.value}; it cannot become {to.value}",
            extensions={"order": order.id, "status": current.value, "requested": to.value},
        )
    session.add(
        OrderTransition(
            order_id=order.id, from_status=current.value, to_status=to.value, at=now, reason=reason
        )
    )
    order.status = to.value
    order.updated_at = now
    if to is S.PAID:
        order.paid_at = now
    elif to is S.FULFILLED:
        order.fulfilled_at = now
    elif to is S.REFUNDED:
        order.refunded_at = now
    elif to in (S.FAILED, S.EXPIRED) and reason:
        order.failure = reason[:300]
    session.flush()


def get_order(session: Session, order_id: str, *, account_id: int | None = None) -> Order:
    """An order (of ``account_id``, when given: another account's is as missing)."""
    row = session.get(Order, order_id)
    if row is None or (account_id is not None and row.account_id != account_id):
        raise NotFound(f"no order {order_id!r}", extensions={"order": order_id})
    return row


def lock_order(session: Session, order_id: str) -> Order | None:
    """Re-read an order holding its row lock (PostgreSQL; SQLite locks the database)."""
    session.execute(update(Order).where(Order.id == order_id).values(updated_at=Order.updated_at))
    return session.scalars(
        select(Order).where(Order.id == order_id).execution_options(populate_existing=True)
    ).first()


def list_orders(
    session: Session,
    *,
    account_id: int | None = None,
    status: str | None = None,
    limit: int = 200,
) -> list[OrderInfo]:
    stmt = select(Order).order_by(Order.created_at.desc(), Order.id).limit(limit)
    if account_id is not None:
        stmt = stmt.where(Order.account_id == account_id)
    if status is not None:
        stmt = stmt.where(Order.status == status)
    return [info(session, o) for o in session.scalars(stmt)]


def month_start(now: datetime) -> datetime:
    """The start (UTC) of the calendar month the monthly free quota counts in."""
    t = now.astimezone(UTC)
    return datetime(t.year, t.month, 1, tzinfo=UTC)


_ORDERS = cast(Table, Order.__table__)
# Cells of the monthly free quota used: parameters account_id, product_id, month_start.
FREE_CELLS_USED = select(func.coalesce(func.sum(_ORDERS.c.free_cells), 0)).where(
    _ORDERS.c.account_id == bindparam("account_id"),
    _ORDERS.c.product_id == bindparam("product_id"),
    _ORDERS.c.status.in_([s.value for s in HOLDING]),
    _ORDERS.c.created_at >= bindparam("month_start"),
)


def free_cells_used(session: Session, account_id: int, product_id: str, now: datetime) -> int:
    """Cells of the monthly free quota this account's live orders of the product used
    this calendar month (UTC)."""
    value = session.scalar(
        FREE_CELLS_USED,
        {"account_id": account_id, "product_id": product_id, "month_start": month_start(now)},
    )
    return int(value or 0)


def _add_months(t: datetime, months: int) -> datetime:
    return t + timedelta(days=30 * months)


def _version_of(session: Session, order: Order) -> str | None:
    """The product version an order delivers: its subset's, else the current one."""
    if order.subset_id is not None:
        subset = session.get(Subset, order.subset_id)
        if subset is not None:
            return subset.version_id
    return session.scalar(select(Product.current_version_id).where(Product.id == order.product_id))


def _ledger_record(session: Session, order: Order, kind: RecordKind, now: datetime) -> LedgerRecord:
    return LedgerRecord(
        kind=kind,
        time=now,
        account_id=order.account_id,
        product_version=_version_of(session, order),
        selection_hash=order.subset_id,
        amount=order.amount,
        currency=order.currency,
        order_id=order.id,
    )


def fulfil(session: Session, order: Order, now: datetime, ledger: Ledger) -> int:
    """paid -> fulfilled: the entitlement the offer gives, and the provider's revenue
    share (the purchase event, appended to the ledger in the same transaction).
    Returns the entitlement id."""
    rules = get_book(session, order.price_book_id).rules
    offer = Offer(order.offer)
    if offer is Offer.SUBSCRIPTION:
        assert rules.subscription is not None
        ent = create_for_order(
            session,
            account_id=order.account_id,
            product_id=order.product_id,
            kind="subscription",
            order_id=order.id,
            now=now,
            expires_at=_add_months(now, rules.subscription.months),
            quota_cells=rules.subscription.cells_per_month,
        )
    elif offer is Offer.RESEARCH:
        terms = rules.licenses.research
        ent = create_for_order(
            session,
            account_id=order.account_id,
            product_id=order.product_id,
            kind="research",
            order_id=order.id,
            now=now,
            expires_at=now + timedelta(days=terms.free_tier_days),
            quota_cells=terms.free_tier_cells_per_month,
        )
    else:
        ent = create_for_order(
            session,
            account_id=order.account_id,
            product_id=order.product_id,
            kind="subset",
            order_id=order.id,
            now=now,
            expires_at=now + timedelta(days=rules.download_days),
            subset_id=order.subset_id,
            component=order.component,
        )
    share = round_half_up(Fraction(order.amount) * Fraction(rules.provider_share_pct) / 100)
    order.provider_share = share
    order.operator_share = order.amount - share
    transition(session, order, S.FULFILLED, now, f"entitlement {ent}")
    ledger.append(session, _ledger_record(session, order, "purchase", now))
    return ent


def refund_order(
    session: Session, order: Order, now: datetime, reason: str, ledger: Ledger
) -> list[int]:
    """paid | fulfilled -> refunded, revoking what the order granted (the refund event,
    appended to the ledger). The money has been returned by the gateway already.
    Returns revoked entitlement ids."""
    transition(session, order, S.REFUNDED, now, reason)
    ledger.append(session, _ledger_record(session, order, "refund", now))
    return revoke_for_order(session, order.id, now)
