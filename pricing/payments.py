"""Payment gateways behind one interface, and the prepaid-credits gateway.

A gateway does three things for an order: ``collect`` (inside the order's transaction:
take the money now if it can), ``checkout`` (outside any transaction: open a page where
the buyer pays, for gateways that cannot collect at once) and ``refund`` (give the money
back, inside the refund's transaction). Credits collect at once; Stripe opens a Checkout
Session and learns of the payment from its webhook (``pricing.stripe_payments``).
Both pass the shared suite in ``tests/pricing/test_gateways.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from sqlalchemy.orm import Session

from pricing.credits import debit_for_order, refund_to_credits
from pricing.money import Currency, Money
from pricing.orders import Order


@dataclass(frozen=True, slots=True)
class Checkout:
    """Where the buyer completes a payment."""

    url: str
    session_id: str


@dataclass(frozen=True, slots=True)
class OrderToPay:
    """What a gateway needs to open a checkout (a detached copy of the order)."""

    id: str
    quote_id: str
    quote_digest: str
    account: str
    product_id: str
    offer: str
    amount: Money
    expires_at: datetime


class PaymentGateway(ABC):
    name: ClassVar[str]

    @abstractmethod
    def collect(self, session: Session, order: Order, now: datetime) -> bool:
        """Take the payment inside the order's transaction if this gateway can; True when
        paid. Raises a PaymentRequired error when it cannot be paid this way."""

    @abstractmethod
    def checkout(self, order: OrderToPay, now: datetime) -> Checkout | None:
        """Open the buyer's payment page (outside any transaction); None if nothing to open."""

    @abstractmethod
    def refund(self, session: Session, order: Order, now: datetime) -> str:
        """Return the order's money; returns a reference of the refund."""


class CreditsGateway(PaymentGateway):
    """Prepaid credits: the order's amount is taken from the account's balance at once."""

    name = "credits"

    def collect(self, session: Session, order: Order, now: datetime) -> bool:
        debit_for_order(
            session,
            order.account_id,
            Money(order.amount, Currency(order.currency)),
            order_id=order.id,
            product_id=order.product_id,
            now=now,
        )  # raises InsufficientCredits (402) rather than overspend
        return True

    def checkout(self, order: OrderToPay, now: datetime) -> Checkout | None:
        return None

    def refund(self, session: Session, order: Order, now: datetime) -> str:
        entry = refund_to_credits(
            session,
            order.account_id,
            Money(order.amount, Currency(order.currency)),
            order_id=order.id,
            product_id=order.product_id,
            now=now,
        )
        return f"journal:{entry}"
