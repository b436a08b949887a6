"""One suite, every payment gateway: credits and Stripe (against the local Stripe server)
pass the same tests through the public HTTP API."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr

from oceanmart.accounts import get_account
from pricing.credits import balance, check_journal
from pricing.money import Currency
from tests.conftest import Env, Server, running
from tests.pricing.conftest import PRODUCT, SMALL, buyer
from tests.pricing.stripe_server import FakeStripe, fake_stripe


@dataclass
class Shop:
    server: Server
    fake: FakeStripe | None = None

    @property
    def env(self) -> Env:
        return self.server.env


@pytest.fixture(scope="module")
def stripe_shop(env: Env, levitus: str) -> Iterator[Shop]:
    """The app with Stripe configured against the local Stripe server."""
    with fake_stripe() as fake:
        settings = env.settings.model_copy(
            update={
                "stripe_api_key": SecretStr(fake.api_key),
                "stripe_webhook_secret": SecretStr(fake.webhook_secret),
                "stripe_api_base": fake.url,
                "public_url": "https://shop.example",
            }
        )
        with running(settings) as url:
            fake.webhook_url = f"{url}/v1/webhooks/stripe"
            yield Shop(Server(url, env), fake)


class GatewaySuite:
    """What every gateway must do; subclasses say how a buyer pays and gets money back."""

    payment: ClassVar[str]

    @pytest.fixture
    def shop(self) -> Shop:  # pragma: no cover - overridden
        raise NotImplementedError

    def new_buyer(self, shop: Shop) -> tuple[str, str]:
        return buyer(shop.env, credits="50")

    def pay(self, shop: Shop, order: dict[str, Any]) -> None:
        """Complete the buyer's payment of a new order."""

    def money_back(self, shop: Shop, name: str, order: dict[str, Any]) -> bool:
        raise NotImplementedError

    def buy(self, shop: Shop, key: str) -> tuple[dict[str, Any], dict[str, Any]]:
        with shop.server.client(key) as c:
            q = c.post("/v1/quotes", json={"product": PRODUCT, "selection": SMALL}).json()
            r = c.post("/v1/orders", json={"quote_id": q["id"], "payment": self.payment})
            assert r.status_code == 201, r.text
            self.pay(shop, r.json())
            return q, c.get(f"/v1/orders/{r.json()['id']}").json()

    def test_a_paid_order_is_fulfilled_and_opens_the_subset(self, shop: Shop, priced: str) -> None:
        _, key = self.new_buyer(shop)
        q, order = self.buy(shop, key)
        assert order["status"] == "fulfilled" and order["payment"] == self.payment
        assert order["subset_id"] == q["subset_id"] and len(order["entitlement_ids"]) == 1
        assert order["amount"] == q["total"]
        with shop.server.client(key) as c:
            assert c.get(f"/zarr/subsets/{q['subset_id']}/zarr.json").status_code == 200

    def test_a_refund_returns_the_money_and_revokes_access(self, shop: Shop, priced: str) -> None:
        name, key = self.new_buyer(shop)
        q, order = self.buy(shop, key)
        admin = shop.env.admin_key()
        with shop.server.client(admin) as a, shop.server.client(key) as c:
            r = a.post(f"/v1/orders/{order['id']}/refund")
            assert r.status_code == 200, r.text
            assert r.json()["status"] == "refunded"
            assert self.money_back(shop, name, order)
            assert c.get(f"/zarr/subsets/{q['subset_id']}/zarr.json").status_code == 403
            again = a.post(f"/v1/orders/{order['id']}/refund")
            assert (
                again.status_code == 200 and again.json()["refunded_at"] == r.json()["refunded_at"]
            )
            assert c.post(f"/v1/orders/{order['id']}/refund").status_code == 403
        with shop.env.sessions() as s:
            assert check_journal(s).ok

    def test_ordering_a_quote_twice_gives_one_order(self, shop: Shop, priced: str) -> None:
        _, key = self.new_buyer(shop)
        with shop.server.client(key) as c:
            q = c.post("/v1/quotes", json={"product": PRODUCT, "selection": SMALL}).json()
            a = c.post("/v1/orders", json={"quote_id": q["id"], "payment": self.payment})
            b = c.post("/v1/orders", json={"quote_id": q["id"], "payment": self.payment})
            assert (a.status_code, b.status_code) == (201, 200)
            assert a.json()["id"] == b.json()["id"]
            assert len(c.get("/v1/orders").json()) == 1

    def test_an_unpaid_order_cannot_be_refunded(self, shop: Shop, priced: str) -> None:
        _, key = self.new_buyer(shop)
        admin = shop.env.admin_key()
        with shop.server.client(key) as c, shop.server.client(admin) as a:
            q = c.post("/v1/quotes", json={"product": PRODUCT, "selection": SMALL}).json()
            order = c.post("/v1/orders", json={"quote_id": q["id"], "payment": self.payment}).json()
            r = a.post(f"/v1/orders/{order['id']}/refund")
            if order["status"] == "pending_payment":
                assert r.status_code == 409
                assert r.json()["type"] == "/problems/invalid-order-state"
            else:
                assert r.status_code == 200

    def test_revenue_records_the_provider_share(self, shop: Shop, priced: str) -> None:
        name, key = self.new_buyer(shop)
        _, order = self.buy(shop, key)
        admin = shop.env.admin_key()
        with shop.server.client(admin) as a:
            rows = a.get("/v1/revenue", params={"account": name}).json()
            csv = a.get("/v1/revenue", params={"account": name, "format": "csv"})
        assert len(rows) == 1
        row = rows[0]
        assert row["product"] == PRODUCT and row["theme"] == "water-environment"
        assert row["gross"] == order["amount"]["amount"] == row["net"]
        assert row["provider_share"] == order["provider_share"] == 140  # 70% of 2.00
        assert row["operator_share"] == 60
        assert csv.headers["content-type"].startswith("text/csv")
        assert csv.text.splitlines()[0].startswith("day,account,product,theme,provider")
        assert f",{name},{PRODUCT},water-environment," in csv.text


class TestCredits(GatewaySuite):
    payment = "credits"

    @pytest.fixture
    def shop(self, server: Server) -> Shop:
        return Shop(server)

    def money_back(self, shop: Shop, name: str, order: dict[str, Any]) -> bool:
        with shop.env.sessions() as s:
            return balance(s, get_account(s, name).id, Currency.CNY).amount == 5000


class TestStripe(GatewaySuite):
    payment = "stripe"

    @pytest.fixture
    def shop(self, stripe_shop: Shop) -> Shop:
        return stripe_shop

    def new_buyer(self, shop: Shop) -> tuple[str, str]:
        return buyer(shop.env)  # no credits: Stripe pays

    def pay(self, shop: Shop, order: dict[str, Any]) -> None:
        assert shop.fake is not None
        assert order["status"] == "pending_payment" and order["checkout_url"]
        cs_id = order["checkout_url"].rsplit("/", 1)[1]
        r = shop.fake.deliver(shop.fake.pay(cs_id))
        assert r.status_code == 200 and r.json()["outcome"] == "fulfilled", r.text

    def money_back(self, shop: Shop, name: str, order: dict[str, Any]) -> bool:
        assert shop.fake is not None
        cs_id = order["checkout_url"].rsplit("/", 1)[1]
        intent = shop.fake.sessions[cs_id]["_intent"]
        refunds = [r for r in shop.fake.refunds.values() if r["payment_intent"] == intent]
        # the webhook of the refund then changes nothing
        r = shop.fake.deliver(shop.fake.refunded_event(cs_id))
        assert r.json()["outcome"] == "ignored: order is refunded", r.text
        return len(refunds) == 1 and refunds[0]["amount"] == order["amount"]["amount"]
