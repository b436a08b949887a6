"""Price books: read a product's prices, save a new version (admin), preview quotes."""

from __future__ import annotations

from api.deps import Admin, CatalogReader, LedgerDep, ProductDep, SessionsDep, StoreDep, ViewerDep
from api.pricing_schemas import (
    LineOut,
    MoneyOut,
    PreviewIn,
    PreviewOut,
    PriceBookIn,
    PriceBookOut,
    TierIn,
)
from api.routers import Router
from oceanmart.accounts import get_account
from oceanmart.db import transaction, utcnow
from pricing.books import BookInfo, current_book, list_books, parse_rules, save_book
from pricing.engine import Customer, License, Offer
from pricing.quotes import QuoteRequest, price_request, set_tier

router = Router(prefix="/v1", tags=["price books"])


def _out(b: BookInfo) -> PriceBookOut:
    return PriceBookOut(
        product=b.product_id,
        version=b.version,
        sha256=b.sha256,
        rules=b.rules.model_dump(mode="json"),
        created_at=b.created_at,
        created_by=b.created_by,
        note=b.note,
    )


@router.get("/price-books/{product_id}", response_model=PriceBookOut)
def read(product: ProductDep, _: CatalogReader, sessions: SessionsDep) -> PriceBookOut:
    """The product's current price book (published prices)."""
    with sessions() as session:
        return _out(current_book(session, product.id))


@router.get("/price-books/{product_id}/versions", response_model=list[PriceBookOut])
def versions(product: ProductDep, _: Admin, sessions: SessionsDep) -> list[PriceBookOut]:
    with sessions() as session:
        return [_out(b) for b in list_books(session, product.id)]


@router.put("/price-books/{product_id}", response_model=PriceBookOut)
def save(
    product: ProductDep, body: PriceBookIn, admin: Admin, sessions: SessionsDep, ledger: LedgerDep
) -> PriceBookOut:
    """Save new rules as the next version (quotes already given keep theirs)."""
    rules = parse_rules(body.rules)
    with transaction(sessions) as session:
        book = save_book(
            session,
            product.id,
            rules,
            created_by=admin.account_name,
            ledger=ledger,
            note=body.note,
            expect_version=body.expect_version,
        )
    return _out(book)


@router.post("/price-books/{product_id}/preview", response_model=PreviewOut)
def preview(
    product: ProductDep,
    body: PreviewIn,
    _: Admin,
    sessions: SessionsDep,
    store: StoreDep,
    viewer: ViewerDep,
) -> PreviewOut:
    """Price a selection under draft rules (or the current book) without signing or
    storing anything: what the console's live preview shows."""
    with sessions() as session:
        rules = (
            parse_rules(body.rules)
            if body.rules is not None
            else current_book(session, product.id).rules
        )
        done = price_request(
            session,
            store,
            viewer,
            QuoteRequest(
                product.id,
                body.selection,
                body.component.model_dump() if body.component else None,
                Offer(body.offer),
            ),
            rules,
            Customer("preview", License(body.license), body.tier),
            utcnow().replace(microsecond=0),
        )
    p = done.priced
    return PreviewOut(
        lines=[LineOut.model_validate(ln.as_dict()) for ln in p.lines],
        subtotal=MoneyOut.model_validate(p.money(p.subtotal).as_dict()),
        discount=MoneyOut.model_validate(p.money(p.discount).as_dict()),
        total=MoneyOut.model_validate(p.money(p.total).as_dict()),
        cells=done.plan.cells,
        bytes=done.plan.bytes,
    )


@router.put("/customers/{account}/tier")
def tier(account: str, body: TierIn, _: Admin, sessions: SessionsDep) -> dict[str, object]:
    """Set (or clear) an account's customer tier, which price books may discount."""
    with transaction(sessions) as session:
        set_tier(session, get_account(session, account), body.tier)
    return {"account": account, "tier": body.tier}
