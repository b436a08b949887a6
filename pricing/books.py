"""Price books: a product's pricing rules, versioned.

A book is a set of rules (``PriceRules``) that combine freely; any rule left at its
default does nothing. Saving a product's rules never edits a row: it appends version
n+1, and quotes pin the version (and the SHA-256 of its canonical JSON) they were
priced under. Amounts are integers of the book currency's minor unit; percentages and
multipliers are decimals.
"""

from __future__ import annotations

import hashlib
import json
import weakref
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import JSON, ForeignKey, Integer, String, UniqueConstraint, func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from catalog.models import Product
from ledger import Ledger, LedgerRecord
from oceanmart.db import Base, UTCDateTime, utcnow
from oceanmart.errors import Conflict, InvalidParameter, NotForSale, NotFound
from pricing.money import Currency

Minor = Annotated[int, Field(ge=0, le=10**12, description="minor units (fen, cents)")]
Pct = Annotated[Decimal, Field(ge=0, le=100, max_digits=7, decimal_places=4)]
Factor = Annotated[Decimal, Field(ge=0, le=1000, max_digits=10, decimal_places=4)]


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VolumeTier(_Rule):
    """Cells of one order beyond ``from_cells`` get ``discount_pct`` off their data charge
    (graduated, like tax brackets: a bigger order never costs less)."""

    from_cells: int = Field(ge=0)
    discount_pct: Pct


class StrideTier(_Rule):
    """A stride of at least ``min_stride`` on ``axis`` takes ``discount_pct`` off data."""

    axis: Literal["space", "time"] = "space"
    min_stride: int = Field(ge=2)
    discount_pct: Pct


class ResolutionTier(_Rule):
    """An effective horizontal grid step (native step x space stride) of at least
    ``min_step_deg`` degrees takes ``discount_pct`` off data."""

    min_step_deg: Decimal = Field(gt=0, le=180)
    discount_pct: Pct


class LicenseTerms(_Rule):
    """A multiplier on the order for this license (0.5 = half price)."""

    multiplier: Factor = Decimal(1)


class ResearchTerms(LicenseTerms):
    """Research accounts: a free tier (whole product, ``free_tier_cells_per_month`` cells
    each calendar month, for ``free_tier_days``), then purchases at ``multiplier``."""

    free_tier_cells_per_month: int = Field(default=0, ge=0)
    free_tier_days: int = Field(default=365, ge=1, le=3660)


class Licenses(_Rule):
    commercial: LicenseTerms = LicenseTerms()
    research: ResearchTerms = ResearchTerms()
    government: LicenseTerms = LicenseTerms()


class ComponentPrice(_Rule):
    """A component run: a fee per run plus a rate per million units the registry's price
    hook counts (cells processed or points), times the hook's compute factor."""

    per_run: Minor = 0
    per_million_units: Minor = 0


class Subscription(_Rule):
    """Monthly access to the whole product with a quota of cells per calendar month."""

    monthly_fee: Minor
    cells_per_month: int = Field(ge=1)
    months: int = Field(default=1, ge=1, le=36)


class PriceRules(_Rule):
    currency: Currency = Currency.CNY
    base_fee: Minor = 0
    rate_per_million_cells: Minor = 0
    rate_per_mb: Minor = Field(default=0, description="per 10^6 bytes of output values")
    variable_multipliers: dict[str, Factor] = Field(default_factory=dict)
    time_span_per_year: Minor = Field(
        default=0, description="per year of the selected time span, prorated by the day"
    )
    stride_discounts: list[StrideTier] = Field(default_factory=list)
    resolution_discounts: list[ResolutionTier] = Field(default_factory=list)
    volume_tiers: list[VolumeTier] = Field(default_factory=list)
    licenses: Licenses = Licenses()
    customer_tiers: dict[str, Pct] = Field(
        default_factory=dict, description="tier name -> discount percent"
    )
    monthly_free_cells: int = Field(
        default=0, ge=0, description="cells of this product each account buys free per month"
    )
    minimum_charge: Minor = 0
    components: dict[str, ComponentPrice] = Field(
        default_factory=dict, description="component id (or '*' for any) -> run price"
    )
    subscription: Subscription | None = None
    download_days: int = Field(default=30, ge=1, le=3660)
    quote_ttl_minutes: int = Field(default=60, ge=1, le=24 * 60)
    provider_share_pct: Pct = Decimal(70)

    @field_validator("volume_tiers")
    @classmethod
    def _tiers_ordered(cls, tiers: list[VolumeTier]) -> list[VolumeTier]:
        starts = [t.from_cells for t in tiers]
        if starts != sorted(set(starts)):
            raise ValueError("from_cells must be distinct and ascending")
        return tiers

    def canonical_json(self) -> str:
        return json.dumps(
            self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        )

    def sha256(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


# The demo's book (also the README's example): every kind of rule, modest numbers.
EXAMPLE_RULES: dict[str, Any] = {
    "currency": "CNY",
    "base_fee": 200,
    "rate_per_million_cells": 100,
    "volume_tiers": [
        {"from_cells": 10_000_000, "discount_pct": 10},
        {"from_cells": 100_000_000, "discount_pct": 25},
    ],
    "stride_discounts": [{"axis": "space", "min_stride": 2, "discount_pct": 10}],
    "resolution_discounts": [{"min_step_deg": "2", "discount_pct": 20}],
    "licenses": {
        "research": {"multiplier": "0.5", "free_tier_cells_per_month": 5_000_000},
        "government": {"multiplier": "0.8"},
    },
    "customer_tiers": {"gold": 10, "silver": 5},
    "monthly_free_cells": 100_000,
    "minimum_charge": 100,
    "components": {"*": {"per_run": 100, "per_million_units": 50}},
    "subscription": {"monthly_fee": 9900, "cells_per_month": 50_000_000},
    "download_days": 30,
    "quote_ttl_minutes": 60,
    "provider_share_pct": 70,
}


def parse_rules(doc: dict[str, Any]) -> PriceRules:
    """Validate a rules document; a bad one is a 400 naming the field at fault."""
    try:
        return PriceRules.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors(include_input=False, include_url=False)[0]
        where = ".".join(str(p) for p in err["loc"])
        raise InvalidParameter(f"rules.{where}" if where else "rules", err["msg"]) from None


class PriceBook(Base):
    __tablename__ = "price_books"
    __table_args__ = (UniqueConstraint("product_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    rules: Mapped[dict[str, Any]] = mapped_column(JSON)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    created_by: Mapped[str] = mapped_column(String(64))
    note: Mapped[str] = mapped_column(String(200), default="")


@dataclass(frozen=True, slots=True)
class BookInfo:
    id: int
    product_id: str
    version: int
    rules: PriceRules
    sha256: str
    created_at: datetime
    created_by: str
    note: str


def _info(row: PriceBook) -> BookInfo:
    return BookInfo(
        row.id,
        row.product_id,
        row.version,
        PriceRules.model_validate(row.rules),
        row.sha256,
        row.created_at,
        row.created_by,
        row.note,
    )


_DATABASE_KEYS: weakref.WeakKeyDictionary[Engine, str] = weakref.WeakKeyDictionary()


def database_key(db: Session | Connection) -> str:
    """Which database a session or connection reads (caches of immutable rows are kept
    per database): its engine's URL, rendered once per engine."""
    engine = db.engine if isinstance(db, Connection) else db.get_bind().engine
    key = _DATABASE_KEYS.get(engine)
    if key is None:
        key = _DATABASE_KEYS[engine] = str(engine.url)
    return key


# Price-book rows never change (a save appends a version), so each is parsed once per
# process and database: quoting reads only the id of the newest version.
_BOOKS: dict[tuple[str, int], BookInfo] = {}


def current_book(session: Session, product_id: str) -> BookInfo:
    """The product's newest price book; a product without one is not for sale."""
    book_id = session.scalar(
        select(PriceBook.id)
        .where(PriceBook.product_id == product_id)
        .order_by(PriceBook.version.desc())
        .limit(1)
    )
    if book_id is None:
        raise NotForSale(
            f"product {product_id!r} has no price book yet", extensions={"product": product_id}
        )
    return get_book(session, book_id)


def get_book(session: Session, book_id: int) -> BookInfo:
    key = (database_key(session), book_id)
    cached = _BOOKS.get(key)
    if cached is not None:
        return cached
    row = session.get(PriceBook, book_id)
    if row is None:
        raise NotFound(f"no price book {book_id}")
    if len(_BOOKS) > 1024:
        _BOOKS.clear()
    info = _BOOKS[key] = _info(row)
    return info


def list_books(session: Session, product_id: str) -> list[BookInfo]:
    rows = session.scalars(
        select(PriceBook).where(PriceBook.product_id == product_id).order_by(PriceBook.version)
    )
    return [_info(r) for r in rows]


def current_versions(session: Session) -> dict[str, int]:
    """product id -> newest price-book version, for listings."""
    rows = session.execute(
        select(PriceBook.product_id, func.max(PriceBook.version)).group_by(PriceBook.product_id)
    )
    return {p: int(v) for p, v in rows}


def save_book(
    session: Session,
    product_id: str,
    rules: PriceRules,
    *,
    created_by: str,
    ledger: Ledger,
    note: str = "",
    expect_version: int | None = None,
) -> BookInfo:
    """Append a new version of a product's price book (the price-book change event,
    appended to the ledger in the same transaction).

    ``expect_version`` (the version the editor started from) makes concurrent edits
    safe: if someone saved in between, this save is refused instead of overwriting.
    Saving rules identical to the current version records nothing and returns it.
    """
    product = session.get(Product, product_id)
    if product is None:
        raise NotFound(f"no product {product_id!r}", extensions={"product": product_id})
    latest = session.scalar(
        select(PriceBook)
        .where(PriceBook.product_id == product_id)
        .order_by(PriceBook.version.desc())
        .limit(1)
    )
    current = latest.version if latest is not None else 0
    if expect_version is not None and expect_version != current:
        raise Conflict(
            f"the price book of {product_id!r} is at version {current}, not {expect_version}: "
            "reload and edit again",
            extensions={"product": product_id, "version": current},
        )
    digest = rules.sha256()
    if latest is not None and latest.sha256 == digest:
        return _info(latest)
    row = PriceBook(
        product_id=product_id,
        version=current + 1,
        rules=rules.model_dump(mode="json"),
        sha256=digest,
        created_at=utcnow(),
        created_by=created_by,
        note=note,
    )
    session.add(row)
    try:  # a plain flush, not a SAVEPOINT (see oceanmart.accounts.create_account)
        session.flush()
    except IntegrityError:  # a concurrent save took this version number
        raise Conflict(
            f"the price book of {product_id!r} changed while saving: reload and edit again",
            extensions={"product": product_id},
        ) from None
    ledger.append(
        session,
        LedgerRecord(
            kind="price-book-change",
            time=row.created_at,
            product_version=product.current_version_id,
            selection_hash=digest,  # the new rules, as quotes pin them
            currency=rules.currency,
        ),
    )
    return _info(row)
