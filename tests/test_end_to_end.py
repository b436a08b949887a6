"""One buyer's day, end to end over HTTP: quote, order with credits, download the subset,
read it as Zarr; every delivery has a receipt that verifies offline against the chain,
and the purchase is in the ledger too."""

from __future__ import annotations

import json

import httpx
from sqlalchemy import select

from ledger import _store as store
from ledger import verify_receipt
from pricing.metering import AccessRecord
from tests.conftest import Server
from tests.pricing.conftest import BASIC, SMALL, buyer, use_book


def test_quote_order_download_and_verify_the_receipts(server: Server, levitus: str) -> None:
    env = server.env
    use_book(env, BASIC)
    _, key = buyer(env, credits="100")
    with server.client(key) as c:
        quote = c.post("/v1/quotes", json={"product": levitus, "selection": SMALL})
        assert quote.status_code in (200, 201), quote.text
        order = c.post("/v1/orders", json={"quote_id": quote.json()["id"], "payment": "credits"})
        assert order.status_code in (200, 201), order.text
        assert order.json()["status"] == "fulfilled"
        subset = order.json()["subset_id"]
        nc = c.get(f"/v1/subsets/{subset}/download")
        assert nc.status_code == 200, nc.text
        chunk = c.get(f"/zarr/subsets/{subset}/TEMP/c/0/0/0")
        assert chunk.status_code == 200
        access_ids = [nc.headers["oceanmart-access-id"], chunk.headers["oceanmart-access-id"]]
        receipts = []
        for access_id in access_ids:
            r = c.get(f"/v1/receipts/{access_id}")
            assert r.status_code == 200, r.text
            receipts.append(r.json())
        info = httpx.get(f"{server.url}/v1/ledger").json()
    for access_id, receipt in zip(access_ids, receipts, strict=True):
        assert receipt["record"]["access_id"] == access_id
        assert receipt["record"]["kind"] == "access"
        result = verify_receipt(
            receipt,
            chain_url=f"{server.url}/v1/ledger/rpc",
            contract=info["contract"],
            verifier_key=info["verifier_key"],
        )
        assert result.ok, result.checks
        # a receipt that names another delivery's record does not verify
        forged = json.loads(json.dumps(receipt))
        forged["record"]["cells"] += 1
        assert not verify_receipt(forged, chain_url=f"{server.url}/v1/ledger/rpc").ok
    with env.sessions() as s:
        row = s.get(AccessRecord, access_ids[0])
        assert row is not None and row.subset_id == subset and row.entitlement_id is not None
        # the receipts integrated everything queued before them, the purchase included
        leaves = [json.loads(leaf) for leaf in s.scalars(select(store.Leaf.leaf))]
    purchases = [
        x for x in leaves if x.get("kind") == "purchase" and x.get("order_id") == order.json()["id"]
    ]
    assert len(purchases) == 1 and purchases[0]["amount"] == quote.json()["total"]["amount"]
