"""Stripe: Checkout Sessions for orders, refunds, and the webhook that settles them.

- An order opens a Checkout Session whose idempotency key is the quote's EIP-712 digest
  (a retried request gets the same session, never a second one) and whose metadata (on
  the session and its PaymentIntent) names the order, quote and digest.
- The webhook checks Stripe's signature (``stripe.Webhook.construct_event``; forged or
  stale payloads are 400), then records the event id and acts in one transaction: an
  event id seen before changes nothing, so duplicates and replays are harmless, and a
  failure rolls the record back so Stripe's retry runs it again.
- Events may arrive in any order. A refund seen before the payment moves the order
  through ``paid`` straight to ``refunded`` (nothing granted); the payment event that
  follows finds it refunded and does nothing. A payment whose time (the event's
  ``created``) is after the quote's expiry is refunded at once and the order ``expired``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
import structlog
from sqlalchemy import BigInteger, String, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from ledger import Ledger
from oceanmart.db import Base, UTCDateTime, transaction, utcnow
from oceanmart.errors import InvalidWebhook, PaymentProviderError
from pricing.orders import Order, OrderStatus, fulfil, lock_order, refund_order, transition
from pricing.payments import Checkout, OrderToPay, PaymentGateway

log = structlog.get_logger(__name__)
S = OrderStatus

# Stripe's bounds for a Checkout Session's expires_at: 30 minutes to 24 hours ahead.
MIN_SESSION = timedelta(minutes=31)
MAX_SESSION = timedelta(hours=23, minutes=59)


class StripeEvent(Base):
    """Webhook events processed, by Stripe's event id: the exactly-once record."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(100))
    created: Mapped[int] = mapped_column(BigInteger)  # Stripe's timestamp (seconds)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    order_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    outcome: Mapped[str] = mapped_column(String(200), default="")


@dataclass(frozen=True, slots=True)
class StripeConfig:
    api_key: str
    webhook_secret: str
    public_url: str  # where the buyer returns after paying
    api_base: str | None = None  # another Stripe API address (a local test server)


def _raise_provider(exc: stripe.StripeError) -> PaymentProviderError:
    # The message of a Stripe error names the problem, never our key.
    return PaymentProviderError(
        f"Stripe: {exc.user_message or exc.__class__.__name__}",
        extensions={"provider": "stripe", "stripe_code": exc.code or ""},
    )


class StripeGateway(PaymentGateway):
    name = "stripe"

    def __init__(self, config: StripeConfig, ledger: Ledger) -> None:
        self.config = config
        self.ledger = ledger
        if config.api_base:
            self.client = stripe.StripeClient(
                config.api_key, base_addresses={"api": config.api_base}, max_network_retries=2
            )
        else:
            self.client = stripe.StripeClient(config.api_key, max_network_retries=2)

    # -- the gateway interface ---------------------------------------------------------

    def collect(self, session: Session, order: Order, now: datetime) -> bool:
        return False  # the buyer pays on Stripe's page; the webhook tells us

    def checkout(self, order: OrderToPay, now: datetime) -> Checkout:
        expires = min(max(order.expires_at, now + MIN_SESSION), now + MAX_SESSION)
        metadata = {
            "order_id": order.id,
            "quote_id": order.quote_id,
            "quote_digest": order.quote_digest,
            "account": order.account,
        }
        back = f"{self.config.public_url.rstrip('/')}/v1/orders/{order.id}"
        try:
            cs = self.client.v1.checkout.sessions.create(
                {
                    "mode": "payment",
                    "client_reference_id": order.id,
                    "line_items": [
                        {
                            "quantity": 1,
                            "price_data": {
                                "currency": order.amount.currency.value.lower(),
                                "unit_amount": order.amount.amount,
                                "product_data": {
                                    "name": f"{order.product_id} ({order.offer})",
                                    "description": f"OceanMart quote {order.quote_id}",
                                },
                            },
                        }
                    ],
                    "metadata": metadata,
                    "payment_intent_data": {"metadata": metadata},
                    "success_url": back + "?checkout=success",
                    "cancel_url": back + "?checkout=cancel",
                    "expires_at": int(expires.timestamp()),
                },
                {"idempotency_key": order.quote_digest},
            )
        except stripe.StripeError as exc:
            raise _raise_provider(exc) from None
        if not cs.url:
            raise PaymentProviderError("Stripe returned a Checkout Session without a URL")
        return Checkout(url=cs.url, session_id=cs.id)

    def refund(self, session: Session, order: Order, now: datetime) -> str:
        if not order.stripe_payment_intent:
            raise PaymentProviderError(f"order {order.id} has no Stripe payment to refund")
        return self._refund_intent(order.stripe_payment_intent, order.id)

    def _refund_intent(self, payment_intent: str, order_id: str) -> str:
        try:
            r = self.client.v1.refunds.create(
                {"payment_intent": payment_intent, "metadata": {"order_id": order_id}},
                {"idempotency_key": f"refund-{order_id}"},
            )
        except stripe.StripeError as exc:
            raise _raise_provider(exc) from None
        return str(r.id)

    # -- webhooks ----------------------------------------------------------------------

    def parse_event(self, payload: bytes, signature_header: str | None) -> dict[str, Any]:
        """The event, if Stripe signed exactly this payload recently; else InvalidWebhook."""
        if not signature_header:
            raise InvalidWebhook("missing Stripe-Signature header")
        try:
            event = stripe.Webhook.construct_event(
                payload, signature_header, self.config.webhook_secret
            )
        except stripe.SignatureVerificationError:
            raise InvalidWebhook("the Stripe signature does not verify") from None
        except ValueError:
            raise InvalidWebhook("the webhook body is not a Stripe event") from None
        doc: dict[str, Any] = event.to_dict()
        if not isinstance(doc.get("id"), str) or not isinstance(doc.get("type"), str):
            raise InvalidWebhook("the webhook body is not a Stripe event")
        return doc

    def handle_webhook(
        self,
        sessions: sessionmaker[Session],
        payload: bytes,
        signature_header: str | None,
        *,
        now: datetime | None = None,
    ) -> str:
        """Verify and process one delivery; returns what happened (for the response)."""
        event = self.parse_event(payload, signature_header)
        now = now or utcnow()
        with transaction(sessions) as session:
            if not _record(session, event, now):
                return "duplicate"
            outcome, order_id = self._dispatch(session, event, now)
            row = session.get(StripeEvent, event["id"])
            assert row is not None
            row.outcome, row.order_id = outcome[:200], order_id
        log.info("stripe.event", event_id=event["id"], type=event["type"], outcome=outcome)
        return outcome

    def _dispatch(
        self, session: Session, event: dict[str, Any], now: datetime
    ) -> tuple[str, str | None]:
        kind = event["type"]
        obj: dict[str, Any] = event.get("data", {}).get("object", {})
        at = datetime.fromtimestamp(int(event.get("created", now.timestamp())), UTC)
        if kind in ("checkout.session.completed", "checkout.session.async_payment_succeeded"):
            if obj.get("payment_status") != "paid":
                return "not paid yet", None
            order = self._order_by_id(session, _order_id(obj))
            if order is None:
                return "no such order", None
            return self._paid(session, order, obj.get("payment_intent"), at, now), order.id
        if kind in ("checkout.session.expired", "checkout.session.async_payment_failed"):
            order = self._order_by_id(session, _order_id(obj))
            if order is None:
                return "no such order", None
            to = S.EXPIRED if kind.endswith("expired") else S.FAILED
            if order.status == S.PENDING_PAYMENT.value:
                transition(session, order, to, now, f"Stripe: {kind}")
                return to.value, order.id
            return f"ignored: order is {order.status}", order.id
        if kind == "charge.refunded":
            if obj.get("amount_refunded", 0) < obj.get("amount", 0):
                return "partial refund: ignored (refunds are whole orders)", None
            order = self._order_by_intent(session, obj.get("payment_intent"))
            if order is None:
                return "no such order", None
            return self._refunded(session, order, obj.get("payment_intent"), now), order.id
        return "ignored", None

    def _order_by_id(self, session: Session, order_id: str | None) -> Order | None:
        return lock_order(session, order_id) if order_id else None

    def _order_by_intent(self, session: Session, intent: str | None) -> Order | None:
        if not intent:
            return None
        order_id = session.scalar(select(Order.id).where(Order.stripe_payment_intent == intent))
        if order_id is None:  # the refund came first: the PaymentIntent's metadata says
            try:
                pi = self.client.v1.payment_intents.retrieve(intent)
            except stripe.StripeError as exc:
                raise _raise_provider(exc) from None
            order_id = (pi.to_dict().get("metadata") or {}).get("order_id")
        return self._order_by_id(session, order_id)

    def _paid(
        self, session: Session, order: Order, intent: str | None, at: datetime, now: datetime
    ) -> str:
        if order.status != S.PENDING_PAYMENT.value:
            return f"ignored: order is {order.status}"
        order.stripe_payment_intent = intent
        if at > order.expires_at:
            # Paid after the quote expired: not honoured, the money goes back.
            if intent:
                order.refund_id = self._refund_intent(intent, order.id)
            transition(session, order, S.EXPIRED, now, "paid after the quote expired; refunded")
            order.refunded_at = now
            return "expired: late payment refunded"
        transition(session, order, S.PAID, now, "Stripe: checkout completed")
        fulfil(session, order, now, self.ledger)
        return "fulfilled"

    def _refunded(self, session: Session, order: Order, intent: str | None, now: datetime) -> str:
        if order.status == S.PENDING_PAYMENT.value:  # refund before the payment event
            order.stripe_payment_intent = intent
            transition(session, order, S.PAID, now, "Stripe: refund seen before the payment")
        if order.status in (S.PAID.value, S.FULFILLED.value):
            refund_order(session, order, now, "Stripe: charge refunded", self.ledger)
            return "refunded"
        return f"ignored: order is {order.status}"


def _order_id(obj: dict[str, Any]) -> str | None:
    meta = obj.get("metadata") or {}
    value = meta.get("order_id") or obj.get("client_reference_id")
    return str(value) if value else None


def _record(session: Session, event: dict[str, Any], now: datetime) -> bool:
    """Insert the event id; False when it was there already (a duplicate delivery)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = (
        insert(StripeEvent)
        .values(
            id=event["id"],
            type=event["type"],
            created=int(event.get("created", 0)),
            received_at=now,
            outcome="",
        )
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(StripeEvent.id)
    )
    # RETURNING, not rowcount: psycopg reports no rowcount for ON CONFLICT DO NOTHING.
    return session.execute(stmt).scalar() is not None
