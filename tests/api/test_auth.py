"""Every way of presenting a key, and every way of failing, over real HTTP."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from catalog.products import list_products
from oceanmart.accounts import authenticate, create_account, create_key
from oceanmart.db import transaction
from pricing.entitlements import grant, viewer_for
from tests.conftest import Server, unique

SUBSET = "/v1/products/levitus-climatology/subset"
PARAMS = {"bbox": "120,20,125,25", "depth": "0,10", "variables": "TEMP"}


def _key(server: Server, scopes: str, *, entitled: bool = False, **kw: object) -> str:
    name = unique("auth")
    with transaction(server.env.sessions) as s:
        create_account(s, name, "enterprise")
        if entitled:
            grant(s, name, "levitus-climatology", granted_by="test")
        return create_key(s, name, scopes, **kw)[1]  # type: ignore[arg-type]


def _problem(r: httpx.Response, status: int, code: str) -> dict[str, object]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["type"] == f"/problems/{code}"
    assert body["status"] == status and body["title"] and body["detail"]
    assert body["instance"] == r.request.url.path
    assert body["request_id"] == r.headers["x-request-id"]
    return body


def test_all_four_ways_of_sending_a_key(server: Server, levitus: str) -> None:
    key = _key(server, "catalog:read")
    basic = base64.b64encode(f"anyone:{key}".encode()).decode()
    # What this caller may see, as the catalog says (other tests in the session may have
    # published more products): every way of sending the key lists exactly that.
    with server.env.sessions() as s:
        seen = [p.id for p in list_products(s, viewer_for(s, authenticate(s, key)))]
    assert "levitus-climatology" in seen
    with httpx.Client(base_url=server.url) as c:
        for kwargs in (
            {"headers": {"Authorization": f"Bearer {key}"}},
            {"headers": {"X-API-Key": key}},
            {"headers": {"Authorization": f"Basic {basic}"}},
            {"params": {"api_key": key}},
        ):
            r = c.get("/v1/products", **kwargs)  # type: ignore[arg-type]
            assert r.status_code == 200, (kwargs, r.text)
            assert [p["id"] for p in r.json()["products"]] == seen


def test_no_key_is_401_with_a_challenge(server: Server, levitus: str) -> None:
    with httpx.Client(base_url=server.url) as c:
        r = c.get("/v1/products")
    _problem(r, 401, "unauthenticated")
    assert r.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header",
    [
        "Bearer om_nothex_nope",
        "Bearer om_0123456789abcdef_abcdefghijklmnopqrstuvwxyz234567",
        "Basic !!!not-base64!!!",
        "Bearer " + "x" * 5000,
    ],
)
def test_malformed_or_unknown_keys_are_401(server: Server, header: str) -> None:
    with httpx.Client(base_url=server.url) as c:
        r = c.get("/v1/products", headers={"Authorization": header})
    _problem(r, 401, "invalid-key")


def test_expired_key_is_401(server: Server, levitus: str) -> None:
    key = _key(server, "catalog:read", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with server.client(key) as c:
        body = _problem(c.get("/v1/products"), 401, "expired-key")
    assert "expired" in str(body["detail"])


def test_revoked_key_fails_on_the_very_next_request(server: Server, levitus: str) -> None:
    admin = server.env.admin_key()
    key = _key(server, "catalog:read")
    key_id = key.split("_")[1]
    with server.client(key) as c, server.client(admin) as a:
        assert c.get("/v1/products").status_code == 200
        assert a.delete(f"/v1/keys/{key_id}").json()["revoked_at"]
        _problem(c.get("/v1/products"), 401, "invalid-key")


def test_missing_scope_is_403(server: Server, levitus: str) -> None:
    key = _key(server, "data:read", entitled=True)
    with server.client(key) as c:
        body = _problem(c.get("/v1/products"), 403, "insufficient-scope")
        assert body["required_scope"] == "catalog:read"
        _problem(c.get("/v1/accounts"), 403, "insufficient-scope")
    key = _key(server, "catalog:read", entitled=True)
    with server.client(key) as c:
        _problem(c.get(SUBSET, params=PARAMS), 403, "insufficient-scope")


def test_no_entitlement_is_403_and_a_grant_opens_the_data(server: Server, levitus: str) -> None:
    name = unique("buyer")
    admin = server.env.admin_key()
    with server.client(admin) as a:
        assert a.post("/v1/accounts", json={"name": name, "kind": "enterprise"}).status_code == 201
        r = a.post("/v1/keys", json={"account": name, "scopes": ["catalog:read", "data:read"]})
        assert r.status_code == 201
        key = r.json()["key"]
    with server.client(key) as c:
        body = _problem(c.get(SUBSET, params=PARAMS), 403, "not-entitled")
        assert body["product"] == "levitus-climatology"
    with server.client(admin) as a:
        r = a.post("/v1/entitlements", json={"account": name, "product": "levitus-climatology"})
        assert r.status_code == 201, r.text
        grant_id = r.json()["id"]
    with server.client(key) as c:
        r = c.get(SUBSET, params=PARAMS)
        assert r.status_code == 200 and r.content[:4] == b"\x89HDF"
    with server.client(admin) as a:
        assert a.delete(f"/v1/entitlements/{grant_id}").status_code == 200
    with server.client(key) as c:
        _problem(c.get(SUBSET, params=PARAMS), 403, "not-entitled")


def test_admin_routes_manage_accounts_and_keys(server: Server) -> None:
    admin = server.env.admin_key()
    name = unique("ops")
    with server.client(admin) as a:
        assert a.post("/v1/accounts", json={"name": name, "kind": "government"}).status_code == 201
        _problem(
            a.post("/v1/accounts", json={"name": name, "kind": "government"}), 409, "already-exists"
        )
        r = a.post("/v1/keys", json={"account": name, "scopes": ["catalog:read"], "label": "l"})
        new = r.json()
        assert new["key"].startswith(f"om_{new['id']}_")
        listed = a.get("/v1/keys", params={"account": name}).json()
        assert [k["id"] for k in listed] == [new["id"]]
        assert "key" not in listed[0] and new["key"] not in r.request.url.query.decode()
        assert name in [x["name"] for x in a.get("/v1/accounts").json()]
    with server.client(new["key"]) as c:
        me = c.get("/v1/me").json()
        assert me == {
            "account": name,
            "kind": "government",
            "key_id": new["id"],
            "scopes": ["catalog:read"],
        }
