"""Credits never overspend: 50 orders at once against a balance that covers 10."""

from __future__ import annotations

import secrets
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from sqlalchemy import func, select

from oceanmart.accounts import get_account
from pricing.credits import JournalEntry, balance, check_journal
from pricing.money import Currency
from pricing.orders import Order
from tests.conftest import Server
from tests.pricing.conftest import PRODUCT, SMALL, buyer

ORDERS = 50


@pytest.mark.slow
def test_fifty_parallel_orders_against_a_balance_for_ten(server: Server, priced: str) -> None:
    name, key = buyer(server.env, credits="20.00")  # each order costs 2.00
    with server.client(key) as c:
        quotes = [
            c.post("/v1/quotes", json={"product": PRODUCT, "selection": SMALL}).json()["id"]
            for _ in range(ORDERS)
        ]

    def order(quote_id: str) -> int:
        # one connection per request, all in flight together
        with httpx.Client(base_url=server.url, timeout=120) as client:
            r = client.post(
                "/v1/orders",
                json={"quote_id": quote_id, "payment": "credits"},
                headers={"Authorization": f"Bearer {key}"},
            )
        assert r.status_code in (201, 402), r.text
        assert r.status_code == 402 or r.json()["status"] == "fulfilled"
        return r.status_code

    with ThreadPoolExecutor(max_workers=ORDERS) as pool:
        statuses = list(pool.map(order, quotes))
    assert statuses.count(201) == 10 and statuses.count(402) == 40
    with server.env.sessions() as s:
        acc = get_account(s, name)
        assert balance(s, acc.id, Currency.CNY).amount == 0
        placed = s.scalar(select(func.count(Order.id)).where(Order.account_id == acc.id))
        purchases = s.scalar(
            select(func.count(JournalEntry.id)).where(
                JournalEntry.account_id == acc.id, JournalEntry.kind == "purchase"
            )
        )
        assert placed == purchases == 10
        check = check_journal(s)
    assert check.ok, check


def test_parallel_first_quotes_of_one_new_selection_all_succeed(
    server: Server, priced: str
) -> None:
    """The subset a quote records has a deterministic id: racing first quotes share it."""
    _, key = buyer(server.env)
    selection = {"bbox": [30, -40, 31 + secrets.randbelow(50), -30], "variables": ["SALT"]}

    def quote(_: int) -> httpx.Response:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            return client.post(
                "/v1/quotes",
                json={"product": PRODUCT, "selection": selection},
                headers={"Authorization": f"Bearer {key}"},
            )

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(quote, range(8)))
    assert [r.status_code for r in answers] == [201] * 8, [r.text for r in answers]
    assert len({r.json()["subset_id"] for r in answers}) == 1
    assert len({r.json()["total"]["amount"] for r in answers}) == 1
