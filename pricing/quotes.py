"""Quotes: plan a selection, price it under the product's current price book, sign it.

A quote is stored exactly as it was returned (its public JSON, signature and digest),
so an order can check it again: the signature against the operator key, the expiry,
and that the price book it pinned is still the product's current one.

A quote is stored with a commit that does not wait for the disk (through an engine made
with ``oceanmart.db.make_engine(durable=False)``: SQLite WAL with ``synchronous=NORMAL``,
PostgreSQL ``synchronous_commit=off``), which took most of a quote's time (about 4 ms
per fsync here, serialising every writer behind it). What may happen: a power failure,
an OS crash or a crash of the PostgreSQL server (not a crash of OceanMart's process) in
the moments after the quote was returned rolls the quote back whole; the database is
never left inconsistent. Why that is acceptable:

- a quote moves no money and grants nothing; it is an offer the buyer holds signed;
- ordering a lost quote answers 404 (``no quote``) and charges nothing; quoting the same
  selection again under the same price book gives the same total;
- the log (SQLite's WAL, PostgreSQL's WAL) is one ordered stream and every order,
  payment, ledger integration and price-book change still commits durably, which also makes
  every quote written before it durable: an order that survived a crash always finds
  its quote.
"""

from __future__ import annotations

import dataclasses
import json
import math
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any, cast

import numpy as np
from sqlalchemy import (
    JSON,
    BigInteger,
    ForeignKey,
    String,
    Table,
    Text,
    bindparam,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Mapped, Session, mapped_column

from catalog.components import check_call
from catalog.models import Product, Subset
from catalog.planner import Plan, plan
from catalog.products import OPERATOR, ProductInfo, Viewer, get_product
from catalog.sea_areas import SeaArea, SeaAreaInfo, resolve_area
from catalog.selection import Selection, selection_from_json
from catalog.store import DataStore
from oceanmart.accounts import (
    ACCOUNT_ID,
    TOUCH_KEY,
    Account,
    Principal,
    Scope,
    check_key_row,
    key_lookup,
    split_key,
)
from oceanmart.db import Base, RawJSON, UTCDateTime, utcnow
from oceanmart.errors import (
    AlreadyExists,
    InvalidInput,
    InvalidParameter,
    NotForSale,
    NotFound,
    OceanMartError,
)
from oceanmart.lru import LRU
from pricing.books import BookInfo, PriceBook, PriceRules, database_key, get_book
from pricing.engine import Ask, ComponentUse, Customer, License, Offer, Priced, price
from pricing.entitlements import Entitlement, viewer_for
from pricing.money import Currency, Money
from pricing.orders import FREE_CELLS_USED, HOLDING, Order, month_start
from pricing.signing import QuoteSigner


class Quote(Base):
    __tablename__ = "quotes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True)
    subset_id: Mapped[str] = mapped_column(ForeignKey("subsets.id"))
    price_book_id: Mapped[int] = mapped_column(ForeignKey("price_books.id"))
    offer: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    total: Mapped[int] = mapped_column(BigInteger)
    free_cells: Mapped[int] = mapped_column(BigInteger, default=0)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    digest: Mapped[str] = mapped_column(String(66))
    signature: Mapped[str] = mapped_column(String(132))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CustomerProfile(Base):
    """Pricing facts about an account beyond its kind: its customer tier."""

    __tablename__ = "customer_profiles"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    tier: Mapped[str | None] = mapped_column(String(32), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


def iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def set_tier(session: Session, account: Account, tier: str | None) -> None:
    row = session.get(CustomerProfile, account.id)
    if row is None:
        row = CustomerProfile(account_id=account.id)
        session.add(row)
    row.tier = tier or None
    row.updated_at = utcnow()
    session.flush()


def tier_of(session: Session, account_id: int) -> str | None:
    return session.scalar(_TIER, {"account_id": account_id})


_PROFILES = cast(Table, CustomerProfile.__table__)
_ORDERS = cast(Table, Order.__table__)
_TIER = select(_PROFILES.c.tier).where(_PROFILES.c.account_id == bindparam("account_id"))
# A buyer's tier and the free cells it used this month, in one round trip.
_BUYER_FACTS = select(
    _TIER.scalar_subquery().label("tier"),
    FREE_CELLS_USED.scalar_subquery().label("free_cells_used"),
)


# -- facts for the engine -------------------------------------------------------------


def cells_by_variable(planned: Plan, product: ProductInfo) -> tuple[tuple[str, int, int], ...]:
    """(variable, cells, bytes) of a plan, by the planner's own counting rule."""
    assert product.version is not None
    point_dims = (
        ("latitude", "longitude", "time")
        if "route" in planned.selection
        else ("latitude", "longitude")
    )
    out = []
    for v in product.version.variables:
        if v.name not in planned.variables:
            continue
        n = math.prod(planned.shape[d] for d in v.dims if d in planned.shape)
        if "points" in planned.shape and all(d in v.dims for d in point_dims):
            n *= planned.shape["points"]
        out.append((v.name, n, n * np.dtype(v.dtype).itemsize))
    if sum(c for _, c, _ in out) != planned.cells or sum(b for _, _, b in out) != planned.bytes:
        raise OceanMartError("pricing: the plan's cells do not add up by variable")
    return tuple(out)


def grid_step(product: ProductInfo) -> Decimal | None:
    """The native horizontal grid step in degrees (from the version's extent)."""
    assert product.version is not None
    for dim in ("longitude", "latitude"):
        n = product.version.dims.get(dim, 0)
        ext = product.version.extent.get(dim)
        if n > 1 and ext:
            return Decimal(str(round((float(ext[1]) - float(ext[0])) / (n - 1), 6)))
    return None


def _parse_instant(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text)[:19].replace(" ", "T"))
    except ValueError:
        return None  # e.g. a climatology on year 0, which datetime cannot hold


def time_span_days(product: ProductInfo, sel: Selection) -> Fraction | None:
    """Days between the first and last selected instants, inside the product's time extent."""
    assert product.version is not None
    ext = product.version.extent.get("time")
    if "time" not in product.version.dims or not ext:
        return None
    lo, hi = _parse_instant(ext[0]), _parse_instant(ext[1])
    if lo is None or hi is None:
        return None
    if sel.time is not None:
        lo, hi = max(lo, sel.time.start or lo), min(hi, sel.time.end or hi)
    elif sel.times is not None or sel.route is not None:
        instants = list(sel.times or ()) + [t for _, _, t in sel.route or ()]
        lo, hi = max(lo, min(instants)), min(hi, max(instants))
    seconds = max(0, int((hi - lo).total_seconds()))
    return Fraction(seconds, 86400)


def customer_for(
    session: Session, principal: Principal, product_id: str, rules: PriceRules, now: datetime
) -> Customer:
    """What the engine needs to know of the buyer (queries only what ``rules`` use)."""
    tier, used = None, 0
    if rules.customer_tiers or rules.monthly_free_cells:
        facts = session.execute(
            _BUYER_FACTS,
            {
                "account_id": principal.account_id,
                "product_id": product_id,
                "month_start": month_start(now),
            },
        ).one()
        tier = facts.tier if rules.customer_tiers else None
        used = int(facts.free_cells_used or 0) if rules.monthly_free_cells else 0
    return Customer(
        account=principal.account_name,
        license=License.for_account_kind(principal.account_kind.value),
        tier=tier,
        free_cells_used=used,
    )


@dataclass(frozen=True, slots=True)
class QuoteRequest:
    product: str
    selection: Mapping[str, Any]
    component: Mapping[str, Any] | None = None
    offer: Offer = Offer.SUBSET


def _component(
    call: Mapping[str, Any] | None, planned: Plan
) -> tuple[dict[str, Any] | None, ComponentUse | None]:
    if call is None:
        return None, None
    checked = check_call(str(call.get("id", "")), dict(call.get("parameters") or {}))
    hook = checked["price"]
    units = {
        "cells": planned.cells,
        "points": planned.shape.get("points", 1),
        "fixed": 0,
    }[hook["basis"]]
    public = {"id": checked["id"], "parameters": checked["parameters"]}
    use = ComponentUse(checked["id"], hook["basis"], Decimal(str(hook["factor"])), units)
    return public, use


def _check_offer(
    session: Session, req: QuoteRequest, book: BookInfo, principal: Principal, now: datetime
) -> None:
    if req.offer is Offer.RESEARCH:
        if principal.account_kind.value != "research":
            raise InvalidParameter("offer", "the research free tier is for research accounts")
        if not book.rules.licenses.research.free_tier_cells_per_month:
            raise InvalidParameter("offer", f"product {req.product!r} has no research free tier")
        live = session.scalar(
            select(func.count(Entitlement.id)).where(
                Entitlement.account_id == principal.account_id,
                Entitlement.product_id == req.product,
                Entitlement.kind == "research",
                Entitlement.revoked_at.is_(None),
                (Entitlement.expires_at.is_(None)) | (Entitlement.expires_at > now),
            )
        )
        if live:
            raise AlreadyExists(f"account already holds the research free tier of {req.product!r}")
    if req.offer is not Offer.SUBSET and (req.selection or req.component):
        raise InvalidParameter("selection", f"a {req.offer.value} covers the whole product")


def build_body(
    quote_id: str,
    principal: Principal,
    product: ProductInfo,
    planned: Plan,
    req: QuoteRequest,
    component: dict[str, Any] | None,
    book: BookInfo,
    priced: Priced,
) -> dict[str, Any]:
    """The public JSON of a quote: every field of it is covered by the signature."""
    assert product.version is not None
    money = priced.money
    return {
        "id": quote_id,
        "account": principal.account_name,
        "product": product.id,
        "version": product.version.id,
        "subset_id": planned.subset_id,
        "offer": req.offer.value,
        "selection": planned.selection,
        "component": component,
        "price_book": {"version": book.version, "sha256": book.sha256},
        "plan": {
            "cells": planned.cells,
            "bytes": planned.bytes,
            "chunks": planned.chunks,
            "copy": planned.copy,
        },
        "lines": [ln.as_dict() for ln in priced.lines],
        "subtotal": money(priced.subtotal).as_dict(),
        "discount": money(priced.discount).as_dict(),
        "total": money(priced.total).as_dict(),
        "issued_at": iso(priced.issued_at),
        "expires_at": iso(priced.expires_at),
    }


@dataclass(frozen=True, slots=True)
class Planned:
    """A request planned (metadata only) and turned into what the engine prices."""

    product: ProductInfo
    plan: Plan
    component: dict[str, Any] | None
    ask: Ask


@dataclass(frozen=True, slots=True)
class PricedRequest:
    product: ProductInfo
    plan: Plan
    component: dict[str, Any] | None
    priced: Priced


# Product versions are immutable, so a product's catalog view only changes with its row
# (a new current version, an edit): keep the view per (database, id, version, updated_at)
# and read just those columns per quote instead of the product, version and variable rows.
_PRODUCTS: LRU[tuple[str, str, str, datetime], ProductInfo] = LRU(256)

_PRODUCT_TABLE = cast(Table, Product.__table__)
_BOOK_TABLE = cast(Table, PriceBook.__table__)
# The product row's state and its newest price book's id, in one round trip.
_NEWEST_BOOK = (
    select(_BOOK_TABLE.c.id)
    .where(_BOOK_TABLE.c.product_id == bindparam("product_id"))
    .order_by(_BOOK_TABLE.c.version.desc())
    .limit(1)
)
_PRODUCT_STATE = select(_PRODUCT_TABLE.c.current_version_id).where(
    _PRODUCT_TABLE.c.id == bindparam("product_id")
)
_PRODUCT_STATE_ROW = select(
    _PRODUCT_TABLE.c.current_version_id,
    _PRODUCT_TABLE.c.visibility,
    _PRODUCT_TABLE.c.updated_at,
    _NEWEST_BOOK.scalar_subquery().label("book_id"),
).where(_PRODUCT_TABLE.c.id == bindparam("product_id"))


def _viewer_of(session: Session, who: Viewer | Principal) -> Viewer:
    """``who`` as a catalog viewer; a buyer's entitlements are read only when this is
    called, that is when a private product makes them matter."""
    return who if isinstance(who, Viewer) else viewer_for(session, who)


def _product_and_book(
    session: Session, product_id: str, who: Viewer | Principal
) -> tuple[ProductInfo, int | None]:
    row = session.execute(_PRODUCT_STATE_ROW, {"product_id": product_id}).first()
    return _product_of_state(session, product_id, who, row)


def _product_of_state(
    session: Session, product_id: str, who: Viewer | Principal, row: Any
) -> tuple[ProductInfo, int | None]:
    """The product view (cached by its row's state) and its newest book's id, from a row
    with the product's ``current_version_id``, ``visibility``, ``updated_at`` and
    ``book_id`` (all None: no such product)."""
    if row is not None and row.visibility is None:
        row = None
    visible = row is not None and (
        row.visibility != "private" or _viewer_of(session, who).sees(product_id, "private")
    )
    if row is None or row.current_version_id is None or not visible:
        # raises the catalog's NotFound
        return get_product(session, product_id, _viewer_of(session, who)), None
    key = (database_key(session), product_id, row.current_version_id, row.updated_at)
    info = _PRODUCTS.get_or_make(key, lambda: get_product(session, product_id, OPERATOR))
    return info, row.book_id


def product_for_quote(session: Session, product_id: str, viewer: Viewer | Principal) -> ProductInfo:
    """The product as ``catalog.products.get_product`` gives it, cached by its row's state;
    ``viewer`` may be the buyer itself (its entitlements read only for a private product)."""
    return _product_and_book(session, product_id, viewer)[0]


def plan_request(session: Session, store: DataStore, viewer: Viewer, req: QuoteRequest) -> Planned:
    """Plan ``req`` from metadata and collect the facts the engine prices."""
    return plan_product(session, store, product_for_quote(session, req.product, viewer), req)


# Plans are a function of the product version (immutable, content-hashed), the parsed
# selection, the sea area it names (as its row is now: re-drawing an area replaces the
# row, so the key holds the row's content), the component call and the offer. Bounded:
# the least recently used plans go first.
_PLANS: LRU[tuple[Any, ...], Planned] = LRU(4096)
_AREAS: LRU[tuple[Any, ...], SeaAreaInfo] = LRU(256)

_AREA_TABLE = cast(Table, SeaArea.__table__)
# The row with its JSON columns as the stored text: a cache key, parsed only on a miss.
_AREA_ROW = select(
    _AREA_TABLE.c.id,
    _AREA_TABLE.c.name_en,
    _AREA_TABLE.c.name_zh,
    _AREA_TABLE.c.kind,
    _AREA_TABLE.c.source,
    _AREA_TABLE.c.area_km2,
    sql_cast(_AREA_TABLE.c.bbox, Text).label("bbox"),
    sql_cast(_AREA_TABLE.c.geometry, Text).label("geometry"),
).where(_AREA_TABLE.c.id == bindparam("area_id"))


def _area(session: Session, area_id: str) -> tuple[tuple[Any, ...], SeaAreaInfo]:
    """The sea area ``area_id`` and its row's content (the key of what depends on it)."""
    row = session.execute(_AREA_ROW, {"area_id": area_id}).first()
    if row is None:
        return (), resolve_area(session, area_id)  # raises the 400 of an unknown area
    key = tuple(row)

    def make() -> SeaAreaInfo:
        w, s, e, n = json.loads(row.bbox)
        geometry = json.loads(row.geometry)
        return SeaAreaInfo(
            row.id, row.name_en, row.name_zh, row.kind, row.source, (w, s, e, n),
            row.area_km2, geometry,
        )  # fmt: skip

    return key, _AREAS.get_or_make(key, make)


def plan_product(
    session: Session, store: DataStore, product: ProductInfo, req: QuoteRequest
) -> Planned:
    selection = selection_from_json(dict(req.selection))
    area_key, area = _area(session, selection.sea_area) if selection.sea_area else ((), None)
    assert product.version is not None
    call = None if req.component is None else json.dumps(req.component, sort_keys=True, default=str)
    key = (product.id, product.version.id, product.version.store_path, selection, area_key, call,
           req.offer)  # fmt: skip
    cached = _PLANS.get(key)
    if cached is not None:
        # the version's plan; the product's other facts as they are now
        return cached if cached.product is product else dataclasses.replace(cached, product=product)
    ds = store.open_version(product.version.store_path, dask=False)
    planned = plan(product, ds, selection, area)
    component, use = _component(req.component, planned)
    ask = Ask(
        offer=req.offer,
        cells=planned.cells,
        bytes=planned.bytes,
        cells_by_variable=cells_by_variable(planned, product),
        space_stride=selection.stride[0],
        time_stride=selection.stride[1],
        grid_step_deg=grid_step(product),
        time_span_days=time_span_days(product, selection),
        component=use,
    )
    return _PLANS.put(key, Planned(product, planned, component, ask))


def price_planned(done: Planned, rules: PriceRules, customer: Customer, now: datetime) -> Priced:
    if done.ask.offer is Offer.SUBSCRIPTION and rules.subscription is None:
        raise InvalidParameter("offer", f"product {done.product.id!r} has no subscription offer")
    return price(done.ask, rules, customer, now)


# Priced asks under stored price books. The engine is a pure function of (ask, rules,
# customer, now) in which ``now`` only sets the issue and expiry times, and a stored
# book's rules never change (a save appends a new id): a result is kept per (database,
# book id, ask, customer) and re-timed.
_PRICED: LRU[tuple[Any, ...], Priced] = LRU(4096)


def price_with_book(
    done: Planned, book: BookInfo, db: str, customer: Customer, now: datetime
) -> Priced:
    """``price_planned`` under the stored ``book`` of database ``db``, from the cache
    when this ask was priced for this customer under this book before."""
    key = (db, book.id, done.ask, customer)
    cached = _PRICED.get(key)
    if cached is None:
        cached = _PRICED.put(key, price_planned(done, book.rules, customer, now))
    if cached.issued_at == now:
        return cached
    ttl = timedelta(minutes=book.rules.quote_ttl_minutes)
    return dataclasses.replace(cached, issued_at=now, expires_at=now + ttl)


def price_request(
    session: Session,
    store: DataStore,
    viewer: Viewer,
    req: QuoteRequest,
    rules: PriceRules,
    customer: Customer,
    now: datetime,
) -> PricedRequest:
    """Plan ``req`` (metadata only) and price it under ``rules`` for ``customer``."""
    done = plan_request(session, store, viewer, req)
    priced = price_planned(done, rules, customer, now)
    return PricedRequest(done.product, done.plan, done.component, priced)


def create_quote(
    session: Session,
    store: DataStore,
    signer: QuoteSigner,
    principal: Principal,
    viewer: Viewer | Principal,
    req: QuoteRequest,
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Plan, price, sign and store a quote in the caller's transaction; returns its JSON.

    ``viewer`` may be the principal itself: its entitlements are then read only when the
    product is private (the common public or listed product needs no such read)."""
    now = (now or utcnow()).replace(microsecond=0)
    # unknown or hidden: 404 first; then no price book: not for sale
    product, book_id = _product_and_book(session, req.product, viewer)
    if book_id is None:
        raise NotForSale(
            f"product {req.product!r} has no price book yet", extensions={"product": req.product}
        )
    book = get_book(session, book_id)
    _check_offer(session, req, book, principal, now)
    customer = customer_for(session, principal, req.product, book.rules, now)
    return _sign_and_store(
        session.connection(), session, store, signer, principal, product, book, customer, req, now
    )[0]


def _sign_and_store(
    conn: Connection,
    session: Session,
    store: DataStore,
    signer: QuoteSigner,
    principal: Principal,
    product: ProductInfo,
    book: BookInfo,
    customer: Customer,
    req: QuoteRequest,
    now: datetime,
    touch: tuple[str, datetime] | None = None,
) -> tuple[dict[str, Any], RawJSON]:
    """Plan (cached), price (cached), sign and store (and write the key's last use when
    ``touch`` says so: key id, time); the body and its JSON text, which is what is stored
    and what the API answers (serialised once)."""
    done = plan_product(session, store, product, req)
    planned = done.plan
    priced = price_with_book(done, book, database_key(conn), customer, now)
    quote_id = "q_" + secrets.token_hex(16)
    body = build_body(quote_id, principal, product, planned, req, done.component, book, priced)
    digest, signature = signer.sign(body)
    body["signer"] = signer.address
    body["digest"] = digest
    body["signature"] = signature
    # As the API's JSON responses are written (compact, UTF-8).
    text = RawJSON(json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")))
    if "\\u0000" in text:  # a NUL in some text of the body: refused as in every column
        raise InvalidInput("text must not contain NUL (U+0000) characters")
    row = {
        "id": quote_id,
        "account_id": principal.account_id,
        "product_id": product.id,
        "subset_id": planned.subset_id,
        "price_book_id": book.id,
        "offer": req.offer.value,
        "currency": priced.currency.value,
        "total": priced.total,
        "free_cells": priced.free_cells,
        "body": text,
        "digest": digest,
        "signature": signature,
        "created_at": now,
        "expires_at": priced.expires_at,
    }
    if conn.dialect.name == "postgresql":
        _store_in_one_statement(conn, planned, row, touch)
        return body, text
    if touch is not None:
        conn.execute(TOUCH_KEY, {"key_id": touch[0], "now": touch[1]})
    _record_subset(conn, planned)
    conn.execute(_INSERT_QUOTE, row)
    return body, text


# PostgreSQL: the key's last use, the subset and the quote written by one statement (one
# round trip, atomic even on an autocommit connection: the event loop's engine), which
# also says whether the subset was inserted. Its data-modifying CTEs always run; the
# quote's foreign key to the subset is checked at the end of the statement.
_PG_STORE = """
WITH touched AS (
    UPDATE api_keys SET last_used_at = %(touched_at)s
    WHERE %(touch)s AND id = %(key_id)s
    RETURNING 1
), subset AS (
    INSERT INTO subsets (id, product_id, version_id, selection, copy, cells, bytes, created_at)
    SELECT %(subset_id)s, %(product_id)s, %(version_id)s, %(selection)s::json,
           %(copy)s, %(cells)s, %(bytes)s, %(created_at)s
    WHERE %(record_subset)s
    ON CONFLICT (id) DO NOTHING
    RETURNING 1
)
INSERT INTO quotes (id, account_id, product_id, subset_id, price_book_id, offer, currency,
                    total, free_cells, body, digest, signature, created_at, expires_at)
VALUES (%(id)s, %(account_id)s, %(product_id)s, %(subset_id)s, %(price_book_id)s, %(offer)s,
        %(currency)s, %(total)s, %(free_cells)s, %(body)s::json, %(digest)s, %(signature)s,
        %(created_at)s, %(expires_at)s)
RETURNING (SELECT count(*) FROM subset) AS subset_inserted
"""


def _store_in_one_statement(
    conn: Connection, planned: Plan, row: dict[str, Any], touch: tuple[str, datetime] | None
) -> None:
    known = (database_key(conn), planned.subset_id)
    record = known not in _STORED_SUBSETS
    params = {
        **row,
        "body": str(row["body"]),
        "touch": touch is not None,
        "key_id": touch[0] if touch else "",
        "touched_at": touch[1] if touch else row["created_at"],
        "record_subset": record,
        "version_id": planned.version_id,
        "selection": json.dumps(planned.selection),
        "copy": planned.copy,
        "cells": planned.cells,
        "bytes": planned.bytes,
    }
    inserted = conn.exec_driver_sql(_PG_STORE, params).scalar_one()
    if record and not inserted:  # the row was there (committed: ON CONFLICT waited)
        _remember_subset(known)


_TIER_OF_ACCOUNT = (
    select(_PROFILES.c.tier).where(_PROFILES.c.account_id == ACCOUNT_ID).scalar_subquery()
)
# The monthly free cells used, as pricing.orders.FREE_CELLS_USED counts them, for the
# key's account; the statuses written out (an expanding IN is re-rendered per execution).
_FREE_CELLS_OF_ACCOUNT = (
    select(func.coalesce(func.sum(_ORDERS.c.free_cells), 0))
    .where(
        _ORDERS.c.account_id == ACCOUNT_ID,
        _ORDERS.c.product_id == bindparam("product_id"),
        _ORDERS.c.status.in_([literal(s.value) for s in HOLDING]),
        _ORDERS.c.created_at >= bindparam("month_start"),
    )
    .scalar_subquery()
)
# Everything a quote reads before planning, in one round trip: the key and its account
# (oceanmart.accounts.check_key_row), the product's state and its newest price book,
# and the buyer's tier and free cells used this month.
_QUOTE_FACTS = key_lookup(
    _PRODUCT_STATE.scalar_subquery().label("current_version_id"),
    select(_PRODUCT_TABLE.c.visibility)
    .where(_PRODUCT_TABLE.c.id == bindparam("product_id"))
    .scalar_subquery()
    .label("visibility"),
    select(_PRODUCT_TABLE.c.updated_at)
    .where(_PRODUCT_TABLE.c.id == bindparam("product_id"))
    .scalar_subquery()
    .label("updated_at"),
    _NEWEST_BOOK.scalar_subquery().label("book_id"),
    _TIER_OF_ACCOUNT.label("tier"),
    _FREE_CELLS_OF_ACCOUNT.label("free_cells_used"),
)


def quote_for_key(
    engine: Engine,
    store: DataStore,
    signer: QuoteSigner,
    raw_key: str,
    scope: Scope,
    req: QuoteRequest,
    *,
    touch_resolution: timedelta,
    admitted: Callable[[Principal], None],
) -> RawJSON:
    """``POST /v1/quotes`` in one transaction: the key (checked on every request, so a
    revoked key fails at once; ``admitted`` is told the caller before anything else, for
    the rate limit), then the quote as ``create_quote`` makes it; its JSON text.

    What ``create_quote`` reads in several statements is one statement here; the product
    view and the price book come from their caches unless the product row or the newest
    book changed. Errors come in the same order: a bad key before a bad selection."""
    now_exact = utcnow()
    now = now_exact.replace(microsecond=0)
    public_id, secret = split_key(raw_key)
    # A Core connection and transaction: the ORM session (for what is not cached: a
    # product view, a price book, a sea area) joins it without owning it.
    with engine.begin() as conn, Session(bind=conn) as session:
        params = {"key_id": public_id, "product_id": req.product, "month_start": month_start(now)}
        row = conn.execute(_QUOTE_FACTS, params).first()
        principal, touch = check_key_row(row, public_id, secret, now_exact, touch_resolution)
        admitted(principal)
        principal.require(scope)
        assert row is not None
        product, book_id = _product_of_state(session, req.product, principal, row)
        if book_id is None:
            raise NotForSale(
                f"product {req.product!r} has no price book yet",
                extensions={"product": req.product},
            )
        book = get_book(session, book_id)
        _check_offer(session, req, book, principal, now)
        rules = book.rules
        customer = Customer(
            account=principal.account_name,
            license=License.for_account_kind(principal.account_kind.value),
            tier=row.tier if rules.customer_tiers else None,
            free_cells_used=int(row.free_cells_used or 0) if rules.monthly_free_cells else 0,
        )
        return _sign_and_store(
            conn, session, store, signer, principal, product, book, customer, req, now,
            touch=(public_id, now_exact) if touch else None,
        )[1]  # fmt: skip


# Core statements built once and run with parameters: building an INSERT with ``values()``
# per quote (and the ORM's bulk-insert path) cost more than the database's own work.
_INSERT_QUOTE = insert(cast(Table, Quote.__table__))
_SUBSET_TABLE = cast(Table, Subset.__table__)
_INSERT_SUBSET = {
    # ``catalog.products.record_subset`` as one INSERT ... ON CONFLICT DO NOTHING: racing
    # first quotes of a selection record its (deterministic) subset once, with no
    # read-then-write (which SQLite refuses under concurrent writers) and no savepoint.
    # RETURNING tells whether the row was inserted (psycopg's rowcount here is -1).
    "postgresql": postgresql.insert(_SUBSET_TABLE)
    .on_conflict_do_nothing(index_elements=["id"])
    .returning(_SUBSET_TABLE.c.id),
    "sqlite": sqlite.insert(_SUBSET_TABLE)
    .on_conflict_do_nothing(index_elements=["id"])
    .returning(_SUBSET_TABLE.c.id),
}


# (database, subset id) of subsets known to be stored. Subset rows are never changed or
# deleted, so once an INSERT found the row already there, quotes of that selection skip
# the statement. Only a row found there counts (it was committed: PostgreSQL's ON
# CONFLICT waits for a concurrent inserter, SQLite has one writer), never one this
# transaction inserted, which a rollback may still take away.
_STORED_SUBSETS: set[tuple[str, str]] = set()


def _record_subset(conn: Connection, planned: Plan) -> None:
    known = (database_key(conn), planned.subset_id)
    if known in _STORED_SUBSETS:
        return
    result = conn.execute(
        _INSERT_SUBSET[conn.dialect.name],
        {
            "id": planned.subset_id,
            "product_id": planned.product_id,
            "version_id": planned.version_id,
            "selection": planned.selection,
            "copy": planned.copy,
            "cells": planned.cells,
            "bytes": planned.bytes,
            "created_at": utcnow(),
        },
    )
    if result.first() is None:  # nothing inserted: the row was there
        _remember_subset(known)


def _remember_subset(known: tuple[str, str]) -> None:
    if len(_STORED_SUBSETS) > 100_000:
        _STORED_SUBSETS.clear()
    _STORED_SUBSETS.add(known)


def get_quote(session: Session, quote_id: str, principal: Principal | None = None) -> Quote:
    """A stored quote; another account's quote is as missing as an unknown one."""
    row = session.get(Quote, quote_id)
    if row is None or (
        principal is not None
        and row.account_id != principal.account_id
        and not principal.has(Scope.ADMIN)
    ):
        raise NotFound(f"no quote {quote_id!r}", extensions={"quote_id": quote_id})
    return row


def quote_money(row: Quote) -> Money:
    return Money(row.total, Currency(row.currency))
