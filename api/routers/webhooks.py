"""Payment provider webhooks (no API key: the provider's signature authenticates)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Request
from starlette.concurrency import run_in_threadpool

from api.deps import PaymentsDep, SessionsDep
from api.routers import Router
from oceanmart.errors import NotFound
from pricing.stripe_payments import StripeGateway

router = Router(prefix="/v1/webhooks", tags=["webhooks"])


@router.post("/stripe")
async def stripe_webhook(
    request: Request,
    payments: PaymentsDep,
    sessions: SessionsDep,
    stripe_signature: Annotated[str | None, Header(alias="Stripe-Signature")] = None,
) -> dict[str, str]:
    """Stripe events (configure this URL in the Stripe dashboard). Forged or stale
    payloads are 400; an event already processed is acknowledged and changes nothing."""
    gateway = payments.gateways.get("stripe")
    if not isinstance(gateway, StripeGateway):
        raise NotFound("Stripe is not configured on this server")
    payload = await request.body()  # the exact bytes Stripe signed
    outcome = await run_in_threadpool(gateway.handle_webhook, sessions, payload, stripe_signature)
    return {"status": "ok", "outcome": outcome}
