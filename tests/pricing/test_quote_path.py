"""POST /v1/quotes checks the key in the same statement as its other reads, and runs on
the event loop unless a lock makes it wait: the key rules, the order of errors and the
wait in a worker thread, over real HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, update

from oceanmart.accounts import ApiKey, create_key
from oceanmart.db import transaction
from tests.conftest import Server
from tests.pricing.conftest import PRODUCT, SMALL, buyer

QUOTE = {"product": PRODUCT, "selection": SMALL}


def _problem(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = r.json()
    assert body["type"] == f"/problems/{code}"
    assert body["request_id"] == r.headers["x-request-id"]
    return body


def _key_of(server: Server, account: str, scopes: str, **kw: Any) -> str:
    with transaction(server.env.sessions) as s:
        return create_key(s, account, scopes, **kw)[1]


def test_quotes_check_the_key_on_every_request(server: Server, priced: str) -> None:
    name, key = buyer(server.env)
    admin = server.env.admin_key()
    with server.client(key) as c, server.client(admin) as a:
        assert c.post("/v1/quotes", json=QUOTE).status_code == 201
        assert a.delete(f"/v1/keys/{key.split('_')[1]}").json()["revoked_at"]
        _problem(c.post("/v1/quotes", json=QUOTE), 401, "invalid-key")
    expired = _key_of(server, name, "catalog:read", expires_at=datetime.now(UTC) - timedelta(1))
    with server.client(expired) as c:
        _problem(c.post("/v1/quotes", json=QUOTE), 401, "expired-key")
    narrow = _key_of(server, name, "data:read")
    with server.client(narrow) as c:
        body = _problem(c.post("/v1/quotes", json=QUOTE), 403, "insufficient-scope")
        assert body["required_scope"] == "catalog:read"
    with server.client("om_0123456789abcdef_abcdefghijklmnopqrstuvwxyz234567") as c:
        _problem(c.post("/v1/quotes", json=QUOTE), 401, "invalid-key")
    with server.client() as c:
        _problem(c.post("/v1/quotes", json=QUOTE), 401, "unauthenticated")


def test_a_bad_key_is_told_before_a_bad_selection_or_product(server: Server, priced: str) -> None:
    _, key = buyer(server.env)
    bad = {"product": PRODUCT, "selection": {"bbox": [0, 0, 1]}}
    unknown = {"product": "no-such-product", "selection": SMALL}
    with server.client("om_0123456789abcdef_abcdefghijklmnopqrstuvwxyz234567") as c:
        _problem(c.post("/v1/quotes", json=bad), 401, "invalid-key")
        _problem(c.post("/v1/quotes", json=unknown), 401, "invalid-key")
    with server.client(key) as c:
        assert _problem(c.post("/v1/quotes", json=bad), 400, "invalid-parameter")
        _problem(c.post("/v1/quotes", json=unknown), 404, "not-found")


def test_a_quote_writes_the_keys_last_use(server: Server, priced: str) -> None:
    _, key = buyer(server.env)
    key_id = key.split("_")[1]
    with server.client(key) as c:
        assert c.post("/v1/quotes", json=QUOTE).status_code == 201
    with server.env.sessions() as s:
        assert s.scalar(select(ApiKey.last_used_at).where(ApiKey.id == key_id)) is not None


def test_a_quote_that_must_wait_for_a_lock_waits_off_the_event_loop(
    server: Server, priced: str
) -> None:
    """Another transaction holds the key's row (and on SQLite the database's write lock)
    that the quote must write: the quote waits in a worker thread, so the server still
    answers other requests meanwhile, and the quote succeeds once the lock is gone."""
    _, key = buyer(server.env)
    key_id = key.split("_")[1]
    forget = update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=None)
    with transaction(server.env.sessions) as s:
        s.execute(forget)  # the next quote writes the key's last use
    result: dict[str, httpx.Response] = {}

    def ask() -> None:
        with server.client(key) as c:
            result["quote"] = c.post("/v1/quotes", json=QUOTE)

    quoting = threading.Thread(target=ask)
    with transaction(server.env.sessions) as holder:
        holder.execute(forget)  # holds the row lock until this transaction ends
        quoting.start()
        time.sleep(0.3)  # let the quote reach the lock (any order gives the same result)
        with httpx.Client(base_url=server.url, timeout=20) as other:
            assert other.get("/healthz").status_code == 200  # the loop is not blocked
        assert quoting.is_alive()  # the quote still waits for the lock
    quoting.join(30)
    assert result["quote"].status_code == 201, result["quote"].text
