"""A local HTTP server speaking the part of Stripe's API OceanMart uses, plus Stripe's side
of the webhooks (events signed with ``stripe.WebhookSignature``, as Stripe signs them).

stripe-mock is not installable here (see PITFALLS.md), so this server plays Stripe for
the tests: stripe-python talks to it over real HTTP (form-encoded requests, bearer key,
``Idempotency-Key`` honoured as Stripe does), and the test drives the buyer's side
(paying, Stripe-dashboard refunds, session expiry) and the delivery of events, which
it can duplicate, reorder, forge or stamp with a later time.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import httpx
import stripe
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from tests.conftest import free_port

_KEY = re.compile(r"\[([^\]]*)\]")


def parse_form(body: bytes) -> dict[str, Any]:
    """Stripe's bracket form encoding (``a[b][0][c]=v``) back into nested dicts/lists."""
    out: dict[str, Any] = {}
    for raw_key, value in parse_qsl(body.decode(), keep_blank_values=True):
        head = raw_key.split("[", 1)[0]
        path = [head, *_KEY.findall(raw_key)]
        node: Any = out
        for i, part in enumerate(path):
            last = i == len(path) - 1
            nxt_is_index = not last and path[i + 1].isdigit()
            if isinstance(node, list):
                idx = int(part)
                while len(node) <= idx:
                    node.append(None)
                if last:
                    node[idx] = value
                else:
                    if node[idx] is None:
                        node[idx] = [] if nxt_is_index else {}
                    node = node[idx]
            else:
                if last:
                    node[part] = value
                else:
                    node = node.setdefault(part, [] if nxt_is_index else {})
    return out


def _id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(12)}"


@dataclass
class FakeStripe:
    api_key: str
    webhook_secret: str
    webhook_url: str = ""  # set once the OceanMart server runs
    url: str = ""
    sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    charges: dict[str, dict[str, Any]] = field(default_factory=dict)
    refunds: dict[str, dict[str, Any]] = field(default_factory=dict)
    idempotent: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # -- Stripe's API -------------------------------------------------------------------

    def app(self) -> FastAPI:
        app = FastAPI()

        def error(status: int, message: str, kind: str = "invalid_request_error") -> JSONResponse:
            return JSONResponse({"error": {"type": kind, "message": message}}, status_code=status)

        def authorised(request: Request) -> bool:
            return request.headers.get("authorization") == f"Bearer {self.api_key}"

        @app.post("/v1/checkout/sessions")
        async def create_session(request: Request) -> JSONResponse:
            if not authorised(request):
                return error(401, "Invalid API Key provided", "authentication_error")
            params = parse_form(await request.body())
            key = request.headers.get("idempotency-key")
            self.requests.append(("POST", "/v1/checkout/sessions", key))
            with self.lock:
                if key and ("cs", key) in self.idempotent:
                    return JSONResponse(self.idempotent[("cs", key)])
                item = params["line_items"][0]
                amount = int(item["price_data"]["unit_amount"]) * int(item["quantity"])
                cs_id, pi_id = _id("cs"), _id("pi")
                self.intents[pi_id] = {
                    "id": pi_id,
                    "object": "payment_intent",
                    "amount": amount,
                    "currency": item["price_data"]["currency"],
                    "status": "requires_payment_method",
                    "metadata": params.get("payment_intent_data", {}).get("metadata", {}),
                }
                cs = {
                    "id": cs_id,
                    "object": "checkout.session",
                    "mode": params["mode"],
                    "status": "open",
                    "payment_status": "unpaid",
                    "amount_total": amount,
                    "currency": item["price_data"]["currency"],
                    "client_reference_id": params.get("client_reference_id"),
                    "metadata": params.get("metadata", {}),
                    "payment_intent": None,
                    "expires_at": int(params["expires_at"]),
                    "success_url": params["success_url"],
                    "url": f"{self.url}/pay/{cs_id}",
                    "_intent": pi_id,
                }
                self.sessions[cs_id] = cs
                public = self._public(cs)
                if key:
                    self.idempotent[("cs", key)] = public
            return JSONResponse(public)

        @app.get("/v1/payment_intents/{pi_id}")
        async def get_intent(pi_id: str, request: Request) -> JSONResponse:
            if not authorised(request):
                return error(401, "Invalid API Key provided", "authentication_error")
            self.requests.append(("GET", f"/v1/payment_intents/{pi_id}", None))
            pi = self.intents.get(pi_id)
            return JSONResponse(pi) if pi else error(404, f"No such payment_intent: '{pi_id}'")

        @app.post("/v1/refunds")
        async def create_refund(request: Request) -> JSONResponse:
            if not authorised(request):
                return error(401, "Invalid API Key provided", "authentication_error")
            params = parse_form(await request.body())
            key = request.headers.get("idempotency-key")
            self.requests.append(("POST", "/v1/refunds", key))
            with self.lock:
                if key and ("re", key) in self.idempotent:
                    return JSONResponse(self.idempotent[("re", key)])
                pi = self.intents.get(params.get("payment_intent", ""))
                if pi is None or pi["status"] != "succeeded":
                    return error(400, "This PaymentIntent has no successful charge to refund")
                charge = self.charges[pi["latest_charge"]]
                if charge["refunded"]:
                    return error(400, f"Charge {charge['id']} has already been refunded.")
                refund = self._refund(charge, params.get("metadata", {}))
                if key:
                    self.idempotent[("re", key)] = refund
            return JSONResponse(refund)

        @app.get("/pay/{cs_id}")
        async def page(cs_id: str) -> JSONResponse:
            return JSONResponse({"checkout": cs_id})

        return app

    def _public(self, obj: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in obj.items() if not k.startswith("_")}

    def _refund(self, charge: dict[str, Any], metadata: dict[str, Any]) -> dict[str, Any]:
        refund = {
            "id": _id("re"),
            "object": "refund",
            "amount": charge["amount"],
            "charge": charge["id"],
            "payment_intent": charge["payment_intent"],
            "status": "succeeded",
            "metadata": metadata,
        }
        self.refunds[refund["id"]] = refund
        charge["refunded"] = True
        charge["amount_refunded"] = charge["amount"]
        return refund

    # -- the buyer's and the dashboard's side -----------------------------------------

    def pay(self, cs_id: str, *, at: int | None = None) -> dict[str, Any]:
        """The buyer pays; returns the ``checkout.session.completed`` event (not sent)."""
        with self.lock:
            cs = self.sessions[cs_id]
            pi = self.intents[cs["_intent"]]
            charge = {
                "id": _id("ch"),
                "object": "charge",
                "amount": pi["amount"],
                "amount_refunded": 0,
                "currency": pi["currency"],
                "payment_intent": pi["id"],
                "refunded": False,
                "metadata": {},
            }
            self.charges[charge["id"]] = charge
            pi.update(status="succeeded", latest_charge=charge["id"])
            cs.update(status="complete", payment_status="paid", payment_intent=pi["id"])
            return self.event("checkout.session.completed", self._public(cs), at=at)

    def dashboard_refund(self, cs_id: str) -> dict[str, Any]:
        """A refund made in Stripe's dashboard; returns the ``charge.refunded`` event."""
        with self.lock:
            pi = self.intents[self.sessions[cs_id]["_intent"]]
            charge = self.charges[pi["latest_charge"]]
            self._refund(charge, {})
            return self.event("charge.refunded", dict(charge))

    def refunded_event(self, cs_id: str) -> dict[str, Any]:
        """The ``charge.refunded`` event of a refund made through the API."""
        pi = self.intents[self.sessions[cs_id]["_intent"]]
        return self.event("charge.refunded", dict(self.charges[pi["latest_charge"]]))

    def expire(self, cs_id: str) -> dict[str, Any]:
        with self.lock:
            cs = self.sessions[cs_id]
            cs["status"] = "expired"
            return self.event("checkout.session.expired", self._public(cs))

    @staticmethod
    def event(kind: str, obj: dict[str, Any], *, at: int | None = None) -> dict[str, Any]:
        return {
            "id": _id("evt"),
            "object": "event",
            "type": kind,
            "created": at if at is not None else int(time.time()),
            "livemode": False,
            "api_version": "2025-01-27.acacia",
            "data": {"object": obj},
        }

    def deliver(
        self, event: dict[str, Any], *, secret: str | None = None, timestamp: int | None = None
    ) -> httpx.Response:
        """POST an event to the webhook URL, signed as Stripe signs (or with another secret)."""
        payload = json.dumps(event)
        header = stripe.WebhookSignature.generate_signature_header(  # type: ignore[attr-defined]
            payload, secret or self.webhook_secret, timestamp=timestamp
        )
        return httpx.post(
            self.webhook_url,
            content=payload.encode(),
            headers={"Stripe-Signature": header, "Content-Type": "application/json"},
            timeout=30,
        )


@contextmanager
def fake_stripe() -> Iterator[FakeStripe]:
    fake = FakeStripe(
        api_key="sk_test_" + secrets.token_hex(12), webhook_secret="whsec_" + secrets.token_hex(16)
    )
    port = free_port()
    fake.url = f"http://127.0.0.1:{port}"
    server = uvicorn.Server(
        uvicorn.Config(fake.app(), host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the Stripe test server did not start")
        time.sleep(0.05)
    try:
        yield fake
    finally:
        server.should_exit = True
        thread.join(timeout=10)
