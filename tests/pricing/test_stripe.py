"""Stripe: Checkout Sessions and webhooks against the local Stripe server; duplicate,
out-of-order and forged events, a payment after the quote expired, refunds."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe
from sqlalchemy import func, select

from pricing.entitlements import Entitlement
from pricing.stripe_payments import StripeEvent
from tests.pricing.conftest import PRODUCT, SMALL, buyer
from tests.pricing.stripe_server import FakeStripe
from tests.pricing.test_gateways import Shop, stripe_shop  # noqa: F401 - the fixture


def _order(shop: Shop, key: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    with shop.server.client(key) as c:
        q = c.post("/v1/quotes", json={"product": PRODUCT, "selection": SMALL}).json()
        r = c.post("/v1/orders", json={"quote_id": q["id"], "payment": "stripe"})
    assert r.status_code == 201, r.text
    order = r.json()
    return q, order, order["checkout_url"].rsplit("/", 1)[1]


def _state(shop: Shop, key: str, order: dict[str, Any]) -> dict[str, Any]:
    with shop.server.client(key) as c:
        got: dict[str, Any] = c.get(f"/v1/orders/{order['id']}").json()
        return got


def _grants(shop: Shop, order_id: str) -> list[Entitlement]:
    with shop.env.sessions() as s:
        return list(s.scalars(select(Entitlement).where(Entitlement.order_id == order_id)))


def _fake(shop: Shop) -> FakeStripe:
    assert shop.fake is not None
    return shop.fake


def test_checkout_session_carries_the_quote(stripe_shop: Shop, priced: str) -> None:  # noqa: F811
    fake = _fake(stripe_shop)
    _, key = buyer(stripe_shop.env)
    q, order, cs_id = _order(stripe_shop, key)
    assert order["status"] == "pending_payment" and order["subset_id"] == q["subset_id"]
    cs = fake.sessions[cs_id]
    assert cs["amount_total"] == q["total"]["amount"] == 200 and cs["currency"] == "cny"
    assert cs["metadata"] == {
        "order_id": order["id"],
        "quote_id": q["id"],
        "quote_digest": q["digest"],
        "account": q["account"],
    }
    assert fake.intents[cs["_intent"]]["metadata"]["order_id"] == order["id"]
    assert cs["success_url"].startswith(f"https://shop.example/v1/orders/{order['id']}")
    assert ("POST", "/v1/checkout/sessions", q["digest"]) in fake.requests
    # Stripe's minimum session life is 30 minutes; the quote's hour fits
    assert cs["expires_at"] == int(datetime.fromisoformat(q["expires_at"]).timestamp())
    with stripe_shop.server.client(key) as c:
        assert c.get(f"/zarr/subsets/{q['subset_id']}/zarr.json").status_code == 403


def test_duplicate_and_replayed_events_grant_once(stripe_shop: Shop, priced: str) -> None:  # noqa: F811
    fake = _fake(stripe_shop)
    _, key = buyer(stripe_shop.env)
    _, order, cs_id = _order(stripe_shop, key)
    paid = fake.pay(cs_id)
    outcomes = [fake.deliver(paid).json()["outcome"] for _ in range(3)]
    assert outcomes == ["fulfilled", "duplicate", "duplicate"]
    # the same payment told again under another event id (Stripe may send both)
    also = FakeStripe.event("checkout.session.async_payment_succeeded", paid["data"]["object"])
    assert fake.deliver(also).json()["outcome"] == "ignored: order is fulfilled"
    assert len(_grants(stripe_shop, order["id"])) == 1
    assert _state(stripe_shop, key, order)["status"] == "fulfilled"


def test_concurrent_deliveries_of_one_event_are_processed_once(
    stripe_shop: Shop,  # noqa: F811
    priced: str,
) -> None:
    fake = _fake(stripe_shop)
    _, key = buyer(stripe_shop.env)
    _, order, cs_id = _order(stripe_shop, key)
    paid = fake.pay(cs_id)
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda _: fake.deliver(paid), range(6)))
    outcomes = sorted(r.json().get("outcome", r.text) for r in results if r.status_code == 200)
    # a delivery that lost the race on PostgreSQL's unique key may fail and be retried
    for r in results:
        if r.status_code != 200:
            outcomes.append(fake.deliver(paid).json()["outcome"])
    assert sorted(outcomes) == ["duplicate"] * 5 + ["fulfilled"]
    assert len(_grants(stripe_shop, order["id"])) == 1
    with stripe_shop.env.sessions() as s:
        n = s.scalar(
            select(func.count()).select_from(StripeEvent).where(StripeEvent.id == paid["id"])
        )
    assert n == 1


def test_a_refund_seen_before_the_payment_grants_nothing(stripe_shop: Shop, priced: str) -> None:  # noqa: F811
    fake = _fake(stripe_shop)
    _, key = buyer(stripe_shop.env)
    q, order, cs_id = _order(stripe_shop, key)
    paid = fake.pay(cs_id)  # Stripe took the money...
    refunded = fake.dashboard_refund(cs_id)  # ...and it was refunded in the dashboard
    assert fake.deliver(refunded).json()["outcome"] == "refunded"  # arrives first
    assert fake.deliver(paid).json()["outcome"] == "ignored: order is refunded"
    state = _state(stripe_shop, key, order)
    assert state["status"] == "refunded" and state["entitlement_ids"] == []
    assert _grants(stripe_shop, order["id"]) == []
    with stripe_shop.server.client(key) as c:
        assert c.get(f"/zarr/subsets/{q['subset_id']}/zarr.json").status_code == 403


def test_a_dashboard_refund_after_fulfilment_revokes(stripe_shop: Shop, priced: str) -> None:  # noqa: F811
    fake = _fake(stripe_shop)
    _, key = buyer(stripe_shop.env)
    q, order, cs_id = _order(stripe_shop, key)
    assert fake.deliver(fake.pay(cs_id)).json()["outcome"] == "fulfilled"
    with stripe_shop.server.client(key) as c:
        assert c.get(f"/zarr/subsets/{q['subset_id']}/zarr.json").status_code == 200
        refunded = fake.dashboard_refund(cs_id)
        assert fake.deliver(refunded).json()["outcome"] == "refunded"
        assert fake.deliver(refunded).json()["outcome"] == "duplicate"
        assert c.get(f"/zarr/subsets/{q['subset_id']}/zarr.json").status_code == 403
    (grant,) = _grants(stripe_shop, order["id"])
    assert grant.revoked_at is not None


def test_a_payment_after_the_quote_expired_is_refunded(stripe_shop: Shop, priced: str) -> None:  # noqa: F811
    fake = _fake(stripe_shop)
    _, key = buyer(stripe_shop.env)
    q, order, cs_id = _order(stripe_shop, key)
    late = int(datetime.fromisoformat(q["expires_at"]).timestamp()) + 60
    r = fake.deliver(fake.pay(cs_id, at=late))
    assert r.json()["outcome"] == "expired: late payment refunded"
    state = _state(stripe_shop, key, order)
    assert state["status"] == "expired" and state["entitlement_ids"] == []
    assert state["refunded_at"] is not None and "expired" in state["failure"]
    refunds = [
        x for x in fake.refunds.values() if x["payment_intent"] == fake.sessions[cs_id]["_intent"]
    ]
    assert len(refunds) == 1 and refunds[0]["amount"] == 200
    # Stripe then reports the refund: nothing else happens
    assert fake.deliver(fake.refunded_event(cs_id)).json()["outcome"] == "ignored: order is expired"
    with stripe_shop.server.client(key) as c:
        assert c.get(f"/zarr/subsets/{q['subset_id']}/zarr.json").status_code == 403


def test_an_expired_checkout_expires_the_order(stripe_shop: Shop, priced: str) -> None:  # noqa: F811
    fake = _fake(stripe_shop)
    _, key = buyer(stripe_shop.env)
    _, order, cs_id = _order(stripe_shop, key)
    assert fake.deliver(fake.expire(cs_id)).json()["outcome"] == "expired"
    assert _state(stripe_shop, key, order)["status"] == "expired"


def test_forged_stale_and_garbled_webhooks_are_refused(stripe_shop: Shop, priced: str) -> None:  # noqa: F811
    fake = _fake(stripe_shop)
    _, key = buyer(stripe_shop.env)
    _, order, cs_id = _order(stripe_shop, key)
    paid = fake.pay(cs_id)
    forged = fake.deliver(paid, secret="whsec_" + "0" * 32)
    stale = fake.deliver(paid, timestamp=int(time.time()) - 3600)
    assert forged.status_code == stale.status_code == 400
    assert forged.json()["type"] == stale.json()["type"] == "/problems/invalid-webhook"
    body = json.dumps(paid).encode()
    unsigned = httpx.post(fake.webhook_url, content=body, timeout=10)
    assert unsigned.status_code == 400
    sig = stripe.WebhookSignature.generate_signature_header(  # type: ignore[attr-defined]
        "not json", fake.webhook_secret
    )
    garbled = httpx.post(fake.webhook_url, content=b"not json", headers={"Stripe-Signature": sig})
    assert garbled.status_code == 400
    # none of these changed anything; the genuine delivery still works once
    assert _state(stripe_shop, key, order)["status"] == "pending_payment"
    with stripe_shop.env.sessions() as s:
        assert s.get(StripeEvent, paid["id"]) is None
    assert fake.deliver(paid).json()["outcome"] == "fulfilled"


def test_stripe_errors_fail_the_order_cleanly(stripe_shop: Shop, priced: str) -> None:  # noqa: F811
    fake = _fake(stripe_shop)
    _, key = buyer(stripe_shop.env)
    real_key = fake.api_key
    fake.api_key = "sk_test_rotated"  # Stripe now refuses our key
    try:
        with stripe_shop.server.client(key) as c:
            q = c.post("/v1/quotes", json={"product": PRODUCT, "selection": SMALL}).json()
            r = c.post("/v1/orders", json={"quote_id": q["id"], "payment": "stripe"})
            assert r.status_code == 502, r.text
            problem = r.json()
            assert problem["type"] == "/problems/payment-provider-error"
            assert "sk_test" not in r.text
            (failed,) = c.get("/v1/orders").json()
            assert failed["status"] == "failed"
    finally:
        fake.api_key = real_key


@pytest.mark.skipif(
    not os.environ.get("OCEANMART_TEST_STRIPE_API_KEY", "").startswith("sk_test_"),
    reason="set OCEANMART_TEST_STRIPE_API_KEY=sk_test_... to run against Stripe's test mode",
)
def test_real_stripe_test_mode_checkout(tmp_path: Path) -> None:
    """Against api.stripe.com in test mode: a Checkout Session for an order, idempotent."""
    from ledger import Ledger
    from oceanmart.settings import Settings
    from pricing.money import Currency, Money
    from pricing.payments import OrderToPay
    from pricing.stripe_payments import StripeConfig, StripeGateway

    gateway = StripeGateway(
        StripeConfig(
            api_key=os.environ["OCEANMART_TEST_STRIPE_API_KEY"],
            webhook_secret="whsec_unused",
            public_url="https://example.com",
        ),
        Ledger(Settings(var_dir=tmp_path)),
    )
    now = datetime.now(UTC)
    order = OrderToPay(
        id="ord_test_" + os.urandom(6).hex(),
        quote_id="q_test",
        quote_digest="0x" + os.urandom(32).hex(),
        account="test",
        product_id=PRODUCT,
        offer="subset",
        amount=Money(200, Currency.CNY),
        expires_at=now + timedelta(hours=1),
    )
    first = gateway.checkout(order, now)
    again = gateway.checkout(order, now)
    assert first.url.startswith("https://checkout.stripe.com/")
    assert again.session_id == first.session_id
