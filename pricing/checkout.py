"""Placing and refunding orders: the quote checked again, the gateway, the state machine.

``place_order`` runs the order's first transaction with the buyer's account row locked
(so one account's orders, its free quota and its credit balance are decided one at a
time), then, for gateways that need the buyer to pay elsewhere, opens the checkout
outside any transaction and stores where to pay.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from catalog.models import Product
from ledger import Ledger
from oceanmart.accounts import Account, Principal
from oceanmart.db import transaction, utcnow
from oceanmart.errors import (
    ConfigurationError,
    Conflict,
    InvalidOrderState,
    InvalidParameter,
    NotFound,
    PaymentProviderError,
    QuoteExpired,
    QuoteSuperseded,
    QuoteTampered,
)
from oceanmart.secrets import operator_key
from oceanmart.settings import Settings
from pricing.books import current_book, get_book
from pricing.engine import Offer
from pricing.orders import (
    Order,
    OrderInfo,
    OrderStatus,
    free_cells_used,
    fulfil,
    get_order,
    info,
    lock_order,
    new_order_id,
    refund_order,
    transition,
)
from pricing.payments import CreditsGateway, OrderToPay, PaymentGateway
from pricing.quotes import Quote, get_quote, quote_money
from pricing.signing import QuoteSigner
from pricing.stripe_payments import StripeConfig, StripeGateway

S = OrderStatus


@dataclass(frozen=True, slots=True)
class Payments:
    """What the order service needs: the quote signer and the configured gateways."""

    signer: QuoteSigner
    gateways: Mapping[str, PaymentGateway]
    ledger: Ledger  # purchases and refunds are appended in their own transactions

    def gateway(self, name: str) -> PaymentGateway:
        try:
            return self.gateways[name]
        except KeyError:
            known = ", ".join(sorted(self.gateways))
            raise InvalidParameter(
                "payment", f"payment {name!r} is not available here (available: {known})"
            ) from None


def lock_account(session: Session, account_id: int) -> None:
    """Serialise this account's orders: a no-op UPDATE takes the row lock on PostgreSQL
    and the write lock on SQLite; it must be the transaction's first statement (so
    SQLite never has to upgrade a read snapshot)."""
    session.execute(update(Account).where(Account.id == account_id).values(kind=Account.kind))


def recheck(session: Session, signer: QuoteSigner, quote: Quote, now: datetime) -> None:
    """A quote is honoured only as signed, before its expiry, under the price book it
    pinned while that book is still the product's current one."""
    if not signer.check(quote.body, quote.signature):
        raise QuoteTampered(
            f"quote {quote.id} does not match its signature", extensions={"quote_id": quote.id}
        )
    if quote.expires_at <= now:
        raise QuoteExpired(
            f"quote {quote.id} expired at {quote.body['expires_at']}: ask for a new quote",
            extensions={"quote_id": quote.id, "expires_at": quote.body["expires_at"]},
        )
    book = current_book(session, quote.product_id)
    pinned = get_book(session, quote.price_book_id)
    if book.id != pinned.id or pinned.sha256 != quote.body["price_book"]["sha256"]:
        raise QuoteSuperseded(
            f"the price book of {quote.product_id!r} changed since quote {quote.id} "
            f"(version {pinned.version} -> {book.version}): ask for a new quote",
            extensions={
                "quote_id": quote.id,
                "quoted_version": pinned.version,
                "current_version": book.version,
            },
        )
    if quote.free_cells:
        allowance = book.rules.monthly_free_cells
        used = free_cells_used(session, quote.account_id, quote.product_id, now)
        if used + quote.free_cells > allowance:
            raise QuoteSuperseded(
                f"quote {quote.id} counted on {quote.free_cells:,} free cells but only "
                f"{max(0, allowance - used):,} are left this month: ask for a new quote",
                extensions={"quote_id": quote.id},
            )


def _to_pay(order: Order, quote: Quote, account: str) -> OrderToPay:
    return OrderToPay(
        id=order.id,
        quote_id=quote.id,
        quote_digest=quote.digest,
        account=account,
        product_id=order.product_id,
        offer=order.offer,
        amount=quote_money(quote),
        expires_at=order.expires_at,
    )


def place_order(
    sessions: sessionmaker[Session],
    payments: Payments,
    principal: Principal,
    quote_id: str,
    payment: str,
    *,
    now: datetime | None = None,
) -> tuple[OrderInfo, bool]:
    """Turn a quote into an order and take or start its payment; returns the order and
    whether it was created now.

    Idempotent per quote: ordering the same quote again returns the same order.
    """
    now = now or utcnow()
    gateway = payments.gateway(payment)
    with transaction(sessions) as session:
        lock_account(session, principal.account_id)
        quote = get_quote(session, quote_id)
        if quote.account_id != principal.account_id:  # another account's quote
            raise NotFound(f"no quote {quote_id!r}", extensions={"quote_id": quote_id})
        existing = session.scalar(select(Order).where(Order.quote_id == quote.id))
        if existing is not None:
            if existing.payment != payment:
                raise Conflict(
                    f"quote {quote.id} is already ordered as {existing.id} "
                    f"with payment {existing.payment!r}",
                    extensions={"order": existing.id},
                )
            return info(session, existing), False
        recheck(session, payments.signer, quote, now)
        order = Order(
            id=new_order_id(),
            quote_id=quote.id,
            account_id=quote.account_id,
            product_id=quote.product_id,
            subset_id=quote.subset_id if quote.offer == Offer.SUBSET.value else None,
            offer=quote.offer,
            component=(quote.body.get("component") or {}).get("id"),
            price_book_id=quote.price_book_id,
            payment=payment,
            status=S.QUOTED.value,
            currency=quote.currency,
            amount=quote.total,
            free_cells=quote.free_cells,
            provider=_provider(session, quote.product_id),
            expires_at=quote.expires_at,
            created_at=now,
            updated_at=now,
        )
        session.add(order)
        session.flush()
        transition(session, order, S.PENDING_PAYMENT, now, f"payment by {payment}")
        if order.amount == 0:
            transition(session, order, S.PAID, now, "nothing to pay")
            fulfil(session, order, now, payments.ledger)
        elif gateway.collect(session, order, now):
            transition(session, order, S.PAID, now, f"paid by {payment}")
            fulfil(session, order, now, payments.ledger)
        pending = order.status == S.PENDING_PAYMENT.value
        to_pay = _to_pay(order, quote, principal.account_name)
        result = info(session, order)
    if not pending:
        return result, True
    try:
        checkout = gateway.checkout(to_pay, now)
    except PaymentProviderError as exc:
        with transaction(sessions) as session:
            failed = lock_order(session, to_pay.id)
            if failed is not None and failed.status == S.PENDING_PAYMENT.value:
                transition(session, failed, S.FAILED, utcnow(), exc.detail)
        raise
    if checkout is None:
        return result, True
    with transaction(sessions) as session:
        row = get_order(session, to_pay.id)
        row.checkout_url = checkout.url
        row.stripe_session_id = checkout.session_id
        session.flush()
        return info(session, row), True


def _provider(session: Session, product_id: str) -> str:
    return session.scalar(select(Product.provider).where(Product.id == product_id)) or ""


def refund(
    sessions: sessionmaker[Session],
    payments: Payments,
    order_id: str,
    *,
    by: str,
    now: datetime | None = None,
) -> OrderInfo:
    """Refund a paid or fulfilled order in full: money back through its gateway, then the
    entitlement revoked. Refunding a refunded order changes nothing."""
    now = now or utcnow()
    with transaction(sessions) as session:
        order = lock_order(session, order_id)  # first: the write lock before any read
        if order is None:
            raise NotFound(f"no order {order_id!r}", extensions={"order": order_id})
        if order.status == S.REFUNDED.value:
            return info(session, order)
        if order.status not in (S.PAID.value, S.FULFILLED.value):
            raise InvalidOrderState(
                f"order {order.id} is {order.status}: only paid orders can be refunded",
                extensions={"order": order.id, "status": order.status},
            )
        if order.amount > 0:
            order.refund_id = payments.gateway(order.payment).refund(session, order, now)
        refund_order(session, order, now, f"refunded by {by}", payments.ledger)
        return info(session, order)


def payments_from_settings(settings: Settings, ledger: Ledger) -> Payments:
    """The quote signer (operator key) and the gateways configured: credits always,
    Stripe when OCEANMART_STRIPE_API_KEY is set (then its webhook secret must be too)."""
    gateways: dict[str, PaymentGateway] = {"credits": CreditsGateway()}
    if settings.stripe_api_key is not None:
        if settings.stripe_webhook_secret is None:
            raise ConfigurationError(
                "OCEANMART_STRIPE_WEBHOOK_SECRET: required when OCEANMART_STRIPE_API_KEY is set"
            )
        gateways["stripe"] = StripeGateway(
            StripeConfig(
                api_key=settings.stripe_api_key.get_secret_value(),
                webhook_secret=settings.stripe_webhook_secret.get_secret_value(),
                public_url=settings.public_url or f"http://{settings.host}:{settings.port}",
                api_base=settings.stripe_api_base,
            ),
            ledger,
        )
    return Payments(QuoteSigner(operator_key(settings)), gateways, ledger)
