"""Quotes and orders: price a selection (signed, expiring), then order and pay it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Annotated

from fastapi import Query, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

from api.deps import (
    Admin,
    CatalogReaderKey,
    KeyCheck,
    OrderWriter,
    PaymentsDep,
    PrincipalDep,
    SessionsDep,
)
from api.pricing_schemas import OrderIn, OrderOut, QuoteIn, QuoteOut, SignerOut
from api.routers import Router
from oceanmart.accounts import Principal, Scope, get_account
from oceanmart.db import is_lock_timeout
from pricing import checkout, orders, verify
from pricing.checkout import Payments
from pricing.engine import Offer
from pricing.quotes import QuoteRequest, get_quote, quote_for_key

router = Router(prefix="/v1", tags=["quotes and orders"])


@router.post(
    "/quotes",
    response_model=QuoteOut,
    status_code=status.HTTP_201_CREATED,
    response_model_by_alias=True,
)
async def quote(body: QuoteIn, key: CatalogReaderKey) -> Response:
    """Price a selection of a product under its current price book. The quote is signed
    by the operator (EIP-712) and expires; order it with ``POST /v1/orders``."""
    req = QuoteRequest(
        product=body.product,
        selection=body.selection,
        component=body.component.model_dump() if body.component else None,
        offer=Offer(body.offer),
    )
    state = key.request.app.state
    admit = _once(key.admit)
    try:
        # On the event loop (see _quote): no hand-over to a worker thread and back.
        text = _quote(key, req, state.loop_engine, admit)
    except OperationalError as exc:
        if not is_lock_timeout(exc):
            raise
        # Another transaction holds a lock this quote needs: wait for it in a worker
        # thread, never on the event loop (the attempt above was rolled back whole).
        text = await run_in_threadpool(_quote, key, req, state.relaxed_engine, admit)
    # The stored document itself, byte for byte what was stored (serialised once; its
    # fields were made by the service, so QuoteOut documents it without re-validating).
    return Response(text.encode(), status.HTTP_201_CREATED, media_type="application/json")


def _once(admit: Callable[[Principal], None]) -> Callable[[Principal], None]:
    """``admit`` at most once (a quote retried in a worker thread is one request)."""
    done = False

    def call(principal: Principal) -> None:
        nonlocal done
        if not done:
            done = True
            admit(principal)

    return call


def _quote(
    key: KeyCheck, req: QuoteRequest, engine: Engine, admit: Callable[[Principal], None]
) -> str:
    """The key check and the quote in one transaction and, before planning, one
    statement, committed without waiting for the disk (pricing.quotes says why a quote
    may be lost to a power failure; a key's last-used time written here may be lost with
    it).

    Why it may run on the event loop: its CPU work (cached plan and price, a signature)
    is about 0.4 ms, which a worker thread would not take off the loop anyway (the GIL),
    while handing it to a thread and back cost more than the quote itself: both threads
    contending for the GIL (measured with bench/quote.py: 1.4 ms of server CPU per quote
    through a worker thread, 0.9 ms on the loop). Its database work is a few statements
    on a local database that may not wait for locks: ``state.loop_engine`` gives up
    after ``LOOP_LOCK_WAIT_MS`` (SQLite busy timeout, PostgreSQL lock and statement
    timeouts) and the caller then runs the quote again in a worker thread."""
    state = key.request.app.state
    payments: Payments = state.payments
    return quote_for_key(
        engine,
        state.store,
        payments.signer,
        key.raw,
        key.scope,
        req,
        touch_resolution=key.touch_resolution,
        admitted=admit,
    )


@router.get("/quotes/signer", response_model=SignerOut)
def signer(payments: PaymentsDep) -> SignerOut:
    """Who signs quotes, and the EIP-712 domain and types to check them offline."""
    types = {"Quote": [{"name": n, "type": t} for n, t in verify.QUOTE_FIELDS]}
    return SignerOut(address=payments.signer.address, domain=verify.DOMAIN, types=types)


@router.get("/quotes/{quote_id}", response_model=QuoteOut)
def read_quote(quote_id: str, principal: PrincipalDep, sessions: SessionsDep) -> JSONResponse:
    with sessions() as session:
        return JSONResponse(get_quote(session, quote_id, principal).body)


def _out(info: orders.OrderInfo) -> OrderOut:
    doc = {f.name: getattr(info, f.name) for f in fields(info)}
    doc["amount"] = info.amount.as_dict()
    doc["entitlement_ids"] = list(info.entitlement_ids)
    return OrderOut.model_validate(doc)


@router.post(
    "/orders",
    response_model=OrderOut,
    status_code=status.HTTP_201_CREATED,
    response_model_exclude_none=False,
)
def order(
    body: OrderIn,
    principal: OrderWriter,
    sessions: SessionsDep,
    payments: PaymentsDep,
    response: Response,
) -> OrderOut:
    """Order a quote. The quote's signature, expiry and price-book version are checked
    again. Credits are taken at once (the order comes back ``fulfilled``); Stripe returns
    ``pending_payment`` and the ``checkout_url`` to pay at. Ordering the same quote again
    returns the same order."""
    info, created = checkout.place_order(sessions, payments, principal, body.quote_id, body.payment)
    if not created:
        response.status_code = status.HTTP_200_OK
    return _out(info)


@router.get("/orders", response_model=list[OrderOut])
def list_orders(
    principal: PrincipalDep,
    sessions: SessionsDep,
    account: Annotated[str | None, Query(description="admin: another account")] = None,
    status_: Annotated[str | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[OrderOut]:
    """Your orders, newest first (an admin: everyone's, or one ``account``'s)."""
    with sessions() as session:
        account_id: int | None = principal.account_id
        if principal.has(Scope.ADMIN):
            account_id = get_account(session, account).id if account else None
        rows = orders.list_orders(session, account_id=account_id, status=status_, limit=limit)
    return [_out(r) for r in rows]


@router.get("/orders/{order_id}", response_model=OrderOut)
def read_order(order_id: str, principal: PrincipalDep, sessions: SessionsDep) -> OrderOut:
    with sessions() as session:
        owner = None if principal.has(Scope.ADMIN) else principal.account_id
        return _out(orders.info(session, orders.get_order(session, order_id, account_id=owner)))


@router.post("/orders/{order_id}/refund", response_model=OrderOut)
def refund(order_id: str, admin: Admin, sessions: SessionsDep, payments: PaymentsDep) -> OrderOut:
    """Refund a paid order in full through its gateway and revoke what it granted."""
    return _out(checkout.refund(sessions, payments, order_id, by=admin.account_name))
