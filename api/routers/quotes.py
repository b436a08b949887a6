"""Quotes and orders: price a selection (signed, expiring), then order and pay it."""

from __future__ import annotations

from dataclasses import fields
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session, sessionmaker

from api.deps import (
    Admin,
    CatalogReaderKey,
    KeyCheck,
    OrderWriter,
    PaymentsDep,
    PrincipalDep,
    RelaxedSessionsDep,
    SessionsDep,
    StoreDep,
)
from api.pricing_schemas import OrderIn, OrderOut, QuoteIn, QuoteOut, SignerOut
from catalog.store import DataStore
from oceanmart.accounts import Scope, get_account
from oceanmart.db import transaction
from pricing import checkout, orders, verify
from pricing.engine import Offer
from pricing.quotes import QuoteRequest, create_quote, get_quote
from pricing.signing import QuoteSigner

router = APIRouter(prefix="/v1", tags=["quotes and orders"])


@router.post(
    "/quotes",
    response_model=QuoteOut,
    status_code=status.HTTP_201_CREATED,
    response_model_by_alias=True,
)
async def quote(
    body: QuoteIn,
    key: CatalogReaderKey,
    sessions: RelaxedSessionsDep,
    store: StoreDep,
    payments: PaymentsDep,
) -> JSONResponse:
    """Price a selection of a product under its current price book. The quote is signed
    by the operator (EIP-712) and expires; order it with ``POST /v1/orders``."""
    req = QuoteRequest(
        product=body.product,
        selection=body.selection,
        component=body.component.model_dump() if body.component else None,
        offer=Offer(body.offer),
    )
    doc = await run_in_threadpool(_quote, key, sessions, store, payments.signer, req)
    # The stored document itself, byte for byte what was signed (no re-serialisation).
    return JSONResponse(doc, status_code=status.HTTP_201_CREATED)


def _quote(
    key: KeyCheck,
    sessions: sessionmaker[Session],
    store: DataStore,
    signer: QuoteSigner,
    req: QuoteRequest,
) -> dict[str, Any]:
    """The key check and the quote in one worker thread and one transaction, committed
    without waiting for the disk (``sessions``: pricing.quotes says why a quote may be lost
    to a power failure; a key's last-used time written here may be lost with it)."""
    with transaction(sessions) as session:
        principal = key.principal(session)
        # The principal is its own catalog viewer here: its entitlements are read only if
        # the product is private.
        return create_quote(session, store, signer, principal, principal, req)


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
