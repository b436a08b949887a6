"""Structured logs carry request ids and never a key, whichever way it was sent."""

from __future__ import annotations

import base64
import io
import json
import logging
import time

import pytest

from oceanmart.logging import configure_logging, scrub
from tests.conftest import Server


def test_scrub_patterns() -> None:
    key = "om_0123456789abcdef_abcdefghijklmnopqrstuvwxyz234567"
    assert scrub(f"key={key}") == "key=om_0123456789abcdef_***"
    assert "sk_live_***" in scrub("stripe sk_live_51AbCdEfGh")
    assert "whsec_***" in scrub("whsec_abcdef123456")
    assert scrub("postgresql://u:hunter2@db/x") == "postgresql://u:***@db/x"
    assert scrub("/x?api_key=foo&bbox=1") == "/x?api_key=***&bbox=1"


def test_request_logs_are_json_with_request_id_and_no_secrets(server: Server) -> None:
    admin = server.env.admin_key()
    secret = admin.split("_")[2]
    stream = io.StringIO()
    configure_logging("INFO", "json", stream)
    try:
        with server.client() as c:
            basic = base64.b64encode(f"u:{admin}".encode()).decode()
            r1 = c.get("/v1/me", params={"api_key": admin})
            r2 = c.get("/v1/me", headers={"Authorization": f"Basic {basic}"})
            r3 = c.get("/v1/me", headers={"X-API-Key": admin + "x"})  # invalid: logged?
            logging.getLogger("thirdparty").warning("oops %s", admin)  # a library misbehaving
        # The server writes an access line after the response has gone out: wait for all
        # three before the logging is switched back.
        ids = [r.headers["x-request-id"] for r in (r1, r2, r3)]
        deadline = time.monotonic() + 10
        while not all(i in stream.getvalue() for i in ids) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        configure_logging("INFO", "json")
    assert r1.status_code == r2.status_code == 200 and r3.status_code == 401
    text = stream.getvalue()
    assert secret not in text
    lines = [json.loads(line) for line in text.splitlines()]
    # Only this test's requests: another test's last access line may land late.
    ours = {r.headers["x-request-id"] for r in (r1, r2, r3)}
    access = [x for x in lines if x["event"] == "http.request" and x["request_id"] in ours]
    assert [x["status"] for x in access] == [200, 200, 401]
    assert access[0]["query"] == "api_key=***"
    assert access[0]["key_id"] == admin.split("_")[1]
    assert access[0]["request_id"] == r1.headers["x-request-id"]
    assert all(x["timestamp"].endswith("Z") for x in lines)


def test_a_request_id_is_taken_from_the_caller_when_it_is_a_uuid(server: Server) -> None:
    sent = "4f2d1c0e9b8a47d6a5b4c3d2e1f00a1b"
    with server.client() as c:
        kept = c.get("/v1/me", headers={"X-Request-ID": sent})
        replaced = c.get("/v1/me", headers={"X-Request-ID": "not-an-id; drop table"})
        fresh = c.get("/v1/me")
    assert kept.headers["x-request-id"] == sent == kept.json()["request_id"]
    for r in (replaced, fresh):
        new = r.headers["x-request-id"]
        assert len(new) == 32 and int(new, 16) >= 0 and new == r.json()["request_id"]
    assert replaced.headers["x-request-id"] != fresh.headers["x-request-id"]
    assert [r.headers.get_list("x-request-id") for r in (kept, replaced, fresh)] == [
        [kept.headers["x-request-id"]],
        [replaced.headers["x-request-id"]],
        [fresh.headers["x-request-id"]],
    ]


def test_the_access_line_is_not_built_below_its_level(monkeypatch: pytest.MonkeyPatch) -> None:
    """At WARNING (a server's usual level) the access log's info line is not built at all
    (its query redaction, structlog's bound logger); at INFO it is."""
    import asyncio

    import api.middleware as mw

    built: list[bytes] = []
    monkeypatch.setattr(mw, "redact_query", lambda raw: built.append(raw) or "")

    async def app(scope: object, receive: object, send: object) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b""})  # type: ignore[operator]

    async def call() -> None:
        async def send(_: object) -> None:
            return None

        scope = {"type": "http", "method": "GET", "path": "/x", "headers": [],
                 "query_string": b"a=1"}  # fmt: skip
        await mw.AccessLog(app)(scope, None, send)  # type: ignore[arg-type]

    stream = io.StringIO()
    try:
        configure_logging("WARNING", "json", stream)
        asyncio.run(call())
        assert built == []
        configure_logging("INFO", "json", stream)
        asyncio.run(call())
        assert built == [b"a=1"]
    finally:
        configure_logging("INFO", "json")  # as the test above leaves it
