"""POST /v1/quotes and /v1/orders over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import math
import secrets
from datetime import datetime, timedelta

import pytest
from sqlalchemy import delete, select

from oceanmart.db import transaction
from pricing.orders import OrderTransition
from pricing.quotes import Quote
from pricing.verify import verify_quote
from tests.conftest import Env, Server, unique
from tests.pricing.conftest import BASIC, PRODUCT, SMALL, buyer, use_book


def test_a_quote_has_the_contract_fields_and_verifies_offline(server: Server, priced: str) -> None:
    _, key = buyer(server.env)
    with server.client(key) as c:
        r = c.post("/v1/quotes", json={"product": PRODUCT, "selection": SMALL})
        assert r.status_code == 201, r.text
        q = r.json()
        signer = c.get("/v1/quotes/signer").json()
        plan = c.post("/v1/plans", json={"product": PRODUCT, "selection": SMALL}).json()
    assert set(q) >= {"id", "total", "expires_at", "signature", "plan", "lines"}
    assert set(q["plan"]) == {"cells", "bytes", "chunks", "copy"}
    assert q["plan"]["cells"] == plan["cells"] == 20 * 20 * 7
    assert (q["plan"]["chunks"], q["plan"]["copy"]) == (plan["chunks"], plan["copy"])
    assert q["subset_id"] == plan["subset_id"]
    # 2800 cells x 1.00/M rounds to 0.00; the 2.00 base fee
    assert q["total"] == {"amount": 200, "currency": "CNY", "major": "2.00"}
    assert [ln["code"] for ln in q["lines"]] == ["base-fee", "data-cells"]
    assert all(ln["en"] and ln["zh"] for ln in q["lines"])
    assert datetime.fromisoformat(q["expires_at"]) - datetime.fromisoformat(
        q["issued_at"]
    ) == timedelta(minutes=60)
    assert signer["address"] == q["signer"]
    assert verify_quote(q, signer["address"])
    assert not verify_quote({**q, "total": {**q["total"], "amount": 1}}, signer["address"])


def test_requoting_the_same_selection_gives_the_same_total(server: Server, priced: str) -> None:
    use_book(server.env, {**BASIC, "rate_per_million_cells": 1_000_000})
    _, key = buyer(server.env)
    other = {"depth": [100, 0.0], "bbox": [-10.0, -10, 10, 10.0], "variables": ["TEMP"]}
    other["depth"] = [0, 100]
    with server.client(key) as c:
        a = c.post("/v1/quotes", json={"product": PRODUCT, "selection": SMALL}).json()
        b = c.post("/v1/quotes", json={"product": PRODUCT, "selection": other}).json()
    assert a["id"] != b["id"] and a["subset_id"] == b["subset_id"]
    assert a["total"] == b["total"] and a["lines"] == b["lines"]
    assert a["total"]["amount"] == 200 + 2800  # 2800 cells x 10000.00 per million


def test_a_saved_price_book_is_a_new_version_and_new_quotes_use_it(
    server: Server, priced: str
) -> None:
    admin = server.env.admin_key()
    _, key = buyer(server.env)
    with server.client(admin) as a, server.client(key) as c:
        before = c.get(f"/v1/price-books/{PRODUCT}").json()
        q1 = c.post("/v1/quotes", json={"product": PRODUCT, "selection": SMALL}).json()
        rules = {**before["rules"], "base_fee": 999}
        saved = a.put(
            f"/v1/price-books/{PRODUCT}", json={"rules": rules, "expect_version": before["version"]}
        )
        assert saved.status_code == 200, saved.text
        assert saved.json()["version"] == before["version"] + 1
        stale = a.put(
            f"/v1/price-books/{PRODUCT}", json={"rules": rules, "expect_version": before["version"]}
        )
        assert stale.status_code == 409 and stale.json()["type"] == "/problems/conflict"
        q2 = c.post("/v1/quotes", json={"product": PRODUCT, "selection": SMALL}).json()
        assert q1["price_book"]["version"] == before["version"]
        assert q2["price_book"]["version"] == before["version"] + 1
        assert q2["total"]["amount"] == 999
        # the old quote pinned the old book: ordering it now is refused
        r = c.post("/v1/orders", json={"quote_id": q1["id"], "payment": "credits"})
        assert r.status_code == 409 and r.json()["type"] == "/problems/quote-superseded"
        versions = a.get(f"/v1/price-books/{PRODUCT}/versions").json()
        assert [v["version"] for v in versions][-2:] == [before["version"], before["version"] + 1]
        assert c.put(f"/v1/price-books/{PRODUCT}", json={"rules": rules}).status_code == 403


def test_bad_quote_requests_are_clear_problems(server: Server, priced: str) -> None:
    _, key = buyer(server.env)
    with server.client(key) as c:
        for body, status, code in (
            ({"product": "nope", "selection": {}}, 404, "not-found"),
            ({"product": PRODUCT, "selection": {"bbox": [0, 0, 0.1, 0.1]}}, 400, "empty-selection"),
            ({"product": PRODUCT, "selection": {"variables": ["X"]}}, 400, "invalid-parameter"),
            ({"product": PRODUCT, "offer": "research"}, 400, "invalid-parameter"),
            (
                {"product": PRODUCT, "offer": "subscription", "selection": SMALL},
                400,
                "invalid-parameter",
            ),
            ({"product": PRODUCT, "component": {"id": "nope"}}, 400, "invalid-parameter"),
            ({"product": PRODUCT, "offer": "gift"}, 400, "invalid-parameter"),
        ):
            r = c.post("/v1/quotes", json=body)
            assert r.status_code == status, (body, r.text)
            assert r.json()["type"] == f"/problems/{code}", body
        assert c.post("/v1/orders", json={"quote_id": "q_nope"}).status_code == 404
    with server.client() as anon:
        assert anon.post("/v1/quotes", json={"product": PRODUCT}).status_code == 401


def test_a_product_without_price_book_is_not_for_sale(server: Server, priced: str) -> None:
    from catalog.models import Product
    from catalog.products import get_product

    other = unique("unpriced")
    with transaction(server.env.sessions) as s:
        levitus = get_product(s, PRODUCT)
        assert levitus.version is not None
        s.add(
            Product(
                id=other, title="Unpriced", theme="water-environment", license="-",
                provider="test", visibility="listed", current_version_id=levitus.version.id,
            )
        )  # fmt: skip
    _, key = buyer(server.env)
    try:
        with server.client(key) as c:
            r = c.post("/v1/quotes", json={"product": other, "selection": SMALL})
        assert r.status_code == 409 and r.json()["type"] == "/problems/not-for-sale"
        assert r.json()["product"] == other
    finally:  # other tests list the catalog of this shared database
        with transaction(server.env.sessions) as s:
            s.execute(delete(Product).where(Product.id == other))


def test_component_quotes_price_the_run(server: Server, priced: str) -> None:
    use_book(
        server.env,
        {**BASIC, "components": {"area-statistics": {"per_run": 500, "per_million_units": 0}}},
    )
    _, key = buyer(server.env)
    call = {
        "id": "area-statistics",
        "parameters": {"variables": ["TEMP"], "area": {"bbox": [-10, -10, 10, 10]}},
    }
    with server.client(key) as c:
        r = c.post("/v1/quotes", json={"product": PRODUCT, "selection": SMALL, "component": call})
    assert r.status_code == 201, r.text
    q = r.json()
    assert q["component"]["id"] == "area-statistics"
    assert {ln["code"]: ln["amount"] for ln in q["lines"]}["component"] == 500
    assert q["total"]["amount"] == 700


def test_credits_order_is_fulfilled_and_opens_the_subset(server: Server, priced: str) -> None:
    _, key = buyer(server.env, credits="10")
    with server.client(key) as c:
        q = c.post("/v1/quotes", json={"product": PRODUCT, "selection": SMALL}).json()
        zarr = f"/zarr/subsets/{q['subset_id']}/zarr.json"
        assert c.get(zarr).status_code == 403  # not bought yet
        r = c.post("/v1/orders", json={"quote_id": q["id"], "payment": "credits"})
        assert r.status_code == 201, r.text
        order = r.json()
        assert order["status"] == "fulfilled" and order["subset_id"] == q["subset_id"]
        assert order["amount"]["amount"] == 200 and order["provider_share"] == 140
        assert c.get("/v1/credits").json()["balances"] == [
            {"amount": 800, "currency": "CNY", "major": "8.00"}
        ]
        again = c.post("/v1/orders", json={"quote_id": q["id"], "payment": "credits"})
        assert again.status_code == 200 and again.json()["id"] == order["id"]
        assert c.get(zarr).status_code == 200  # the buyer reads what was bought
        # the whole product is still closed: the entitlement covers the subset only
        assert c.get(f"/zarr/products/{PRODUCT}/zarr.json").status_code == 403
        mine = c.get("/v1/orders").json()
        assert [o["id"] for o in mine] == [order["id"]]
    with server.env.sessions() as s:
        moves = s.scalars(
            select(OrderTransition.to_status)
            .where(OrderTransition.order_id == order["id"])
            .order_by(OrderTransition.id)
        ).all()
    assert moves == ["pending_payment", "paid", "fulfilled"]


def test_orders_recheck_expiry_and_signature(server: Server, priced: str) -> None:
    _, key = buyer(server.env, credits="100")
    with server.client(key) as c:
        q1 = c.post("/v1/quotes", json={"product": PRODUCT, "selection": SMALL}).json()
        q2 = c.post("/v1/quotes", json={"product": PRODUCT, "selection": SMALL}).json()
        with transaction(server.env.sessions) as s:
            row = s.get(Quote, q1["id"])
            assert row is not None
            row.expires_at = row.created_at  # as if an hour had passed
            tampered = s.get(Quote, q2["id"])
            assert tampered is not None
            tampered.body = {**tampered.body, "total": {**tampered.body["total"], "amount": 1}}
            tampered.total = 1
        r = c.post("/v1/orders", json={"quote_id": q1["id"]})
        assert r.status_code == 409 and r.json()["type"] == "/problems/quote-expired"
        r = c.post("/v1/orders", json={"quote_id": q2["id"]})
        assert r.status_code == 409 and r.json()["type"] == "/problems/quote-signature-invalid"
        assert c.get("/v1/orders").json() == []
        assert c.get("/v1/credits").json()["balances"][0]["amount"] == 10_000


def test_another_accounts_quote_cannot_be_ordered(server: Server, priced: str) -> None:
    _, key_a = buyer(server.env, credits="10")
    _, key_b = buyer(server.env, credits="10")
    with server.client(key_a) as a, server.client(key_b) as b:
        q = a.post("/v1/quotes", json={"product": PRODUCT, "selection": SMALL}).json()
        assert b.get(f"/v1/quotes/{q['id']}").status_code == 404
        assert b.post("/v1/orders", json={"quote_id": q["id"]}).status_code == 404
        assert a.get(f"/v1/quotes/{q['id']}").json() == q


def test_insufficient_credits_is_402_and_writes_nothing(server: Server, priced: str) -> None:
    _, key = buyer(server.env, credits="1.99")
    with server.client(key) as c:
        q = c.post("/v1/quotes", json={"product": PRODUCT, "selection": SMALL}).json()
        r = c.post("/v1/orders", json={"quote_id": q["id"], "payment": "credits"})
        assert r.status_code == 402, r.text
        body = r.json()
        assert body["type"] == "/problems/insufficient-credits"
        assert body["required"]["amount"] == 200 and body["balance"]["amount"] == 199
        assert c.get("/v1/orders").json() == []
        assert (
            c.post("/v1/orders", json={"quote_id": q["id"], "payment": "stripe"}).status_code == 400
        )
        no_scope = buyer(server.env, scopes="catalog:read")[1]
    with server.client(no_scope) as n:
        q = n.post("/v1/quotes", json={"product": PRODUCT, "selection": SMALL}).json()
        assert n.post("/v1/orders", json={"quote_id": q["id"]}).status_code == 403


@pytest.mark.parametrize("offer", ["subscription", "research"])
def test_whole_product_offers_and_their_quota(server: Server, priced: str, offer: str) -> None:
    from catalog.products import get_product

    with server.env.sessions() as s:
        version = get_product(s, PRODUCT).version
    assert version is not None
    chunk_cells = math.prod(version.chunks["map"]["chunks"]["TEMP"].values())
    quota = chunk_cells * 3 // 2  # one chunk fits, two do not
    kind = "research" if offer == "research" else "enterprise"
    use_book(
        server.env,
        {
            **BASIC,
            "subscription": {"monthly_fee": 5000, "cells_per_month": quota},
            "licenses": {"research": {"multiplier": "0.5", "free_tier_cells_per_month": quota}},
        },
    )
    _, key = buyer(server.env, kind=kind, credits="100")
    chunk = "/zarr/products/levitus-climatology/TEMP/c/0/0/0"
    with server.client(key) as c:
        assert c.get(chunk).status_code == 403
        q = c.post("/v1/quotes", json={"product": PRODUCT, "offer": offer}).json()
        assert q["total"]["amount"] == (5000 if offer == "subscription" else 0)
        order = c.post("/v1/orders", json={"quote_id": q["id"]}).json()
        assert order["status"] == "fulfilled" and order["subset_id"] is None
        first = c.get(chunk)
        assert first.status_code == 200
        cells = c.get(f"/v1/usage?product={PRODUCT}").json()[0]["cells"]
        assert cells == chunk_cells
        second = c.get(chunk)
        assert second.status_code == 402, second.text
        problem = second.json()
        assert problem["type"] == "/problems/quota-exhausted"
        assert problem["quota_cells"] == quota and problem["used_cells"] == cells
        assert problem["quote"]["href"] == "/v1/quotes"
        extend = c.post(problem["quote"]["href"], json=problem["quote"]["body"])
        assert extend.status_code == 201 or offer == "research", extend.text
        # metadata carries no cells and still flows; nothing was recorded for the 402
        assert c.get("/zarr/products/levitus-climatology/zarr.json").status_code == 200
        assert c.get(f"/v1/usage?product={PRODUCT}").json()[0]["cells"] == cells
        if offer == "research":
            again = c.post("/v1/quotes", json={"product": PRODUCT, "offer": "research"})
            assert again.status_code == 409  # one free tier at a time


def test_a_subset_recorded_by_a_rolled_back_quote_is_recorded_again(env: Env, priced: str) -> None:
    """Quotes skip the subset INSERT once they found the row stored; a row inserted by a
    transaction that then rolled back must not count (the next quote's row refers to it)."""
    from catalog.models import Subset
    from oceanmart.accounts import authenticate
    from oceanmart.secrets import operator_key
    from pricing.quotes import QuoteRequest, create_quote, get_quote
    from pricing.signing import QuoteSigner

    _, key = buyer(env)
    # A selection no other test quoted: its subset is not stored yet.
    north = 10 + secrets.randbelow(10**6) / 10**7
    req = QuoteRequest(product=priced, selection={**SMALL, "bbox": [-10, -10, 10, north]})
    signer = QuoteSigner(operator_key(env.settings))

    class Abort(Exception):
        pass

    with pytest.raises(Abort), transaction(env.sessions) as s:
        principal = authenticate(s, key)
        create_quote(s, env.store, signer, principal, principal, req)
        raise Abort
    ids = []
    for _ in range(3):  # inserts the subset, then finds it stored, then skips the INSERT
        with transaction(env.sessions) as s:
            principal = authenticate(s, key)
            ids.append(create_quote(s, env.store, signer, principal, principal, req)["id"])
    with env.sessions() as s:
        subset_ids = {get_quote(s, i).subset_id for i in ids}
        assert len(subset_ids) == 1
        assert s.get(Subset, subset_ids.pop()) is not None
