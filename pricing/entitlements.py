"""Entitlements: an account's right to read a product's data.

Kinds (one table, one check):

- ``grant``: an admin's whole-product grant, unmetered;
- ``subset``: a purchased subset, readable (only that subset) until ``expires_at``;
- ``subscription``: the whole product for a period, ``quota_cells`` cells per calendar
  month (UTC);
- ``research``: the research free tier, like a subscription at no charge.

Metering consumes the quota of the entitlement a delivery is made under
(``consume_quota``, in the access record's transaction), so an exhausted quota stops a
delivery before its first byte with a 402 that says how to quote an extension.
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    ForeignKey,
    String,
    Table,
    and_,
    bindparam,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from catalog.models import Product, Subset
from catalog.products import ANONYMOUS, OPERATOR, Viewer
from oceanmart.accounts import (
    ACCOUNT_ID,
    KEY_COLUMNS,
    TOUCH_KEY,
    Account,
    Principal,
    Scope,
    check_key_row,
    get_account,
    key_lookup,
    split_key,
)
from oceanmart.db import Base, UTCDateTime, utcnow
from oceanmart.errors import InvalidInput, NotEntitled, NotFound, QuotaExhausted
from pricing.books import PriceBook

KINDS = ("grant", "subset", "subscription", "research")


class Entitlement(Base):
    __tablename__ = "entitlements"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16), default="grant")
    granted_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    subset_id: Mapped[str | None] = mapped_column(ForeignKey("subsets.id"), nullable=True)
    order_id: Mapped[str | None] = mapped_column(String(40), nullable=True, index=True)
    component: Mapped[str | None] = mapped_column(String(64), nullable=True)
    quota_cells: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    quota_used: Mapped[int] = mapped_column(BigInteger, default=0)
    quota_period: Mapped[str | None] = mapped_column(String(7), nullable=True)  # YYYY-MM


@dataclass(frozen=True, slots=True)
class EntitlementInfo:
    id: int
    account: str
    product: str
    kind: str
    granted_by: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    subset_id: str | None = None
    order_id: str | None = None
    quota_cells: int | None = None  # per calendar month; None: unmetered
    quota_used: int = 0  # in quota_period
    quota_period: str | None = None


def _info(row: Entitlement, account: str) -> EntitlementInfo:
    return EntitlementInfo(
        row.id,
        account,
        row.product_id,
        row.kind,
        row.granted_by,
        row.created_at,
        row.expires_at,
        row.revoked_at,
        row.subset_id,
        row.order_id,
        row.quota_cells,
        row.quota_used or 0,
        row.quota_period,
    )


def period_of(now: datetime) -> str:
    """The quota period (calendar month, UTC) an instant falls in: ``YYYY-MM``."""
    return now.astimezone(UTC).strftime("%Y-%m")


def _remaining(row: Entitlement, now: datetime) -> int | None:
    """Cells left this period (None: unmetered)."""
    if row.quota_cells is None:
        return None
    used = (row.quota_used or 0) if row.quota_period == period_of(now) else 0
    return max(0, row.quota_cells - used)


def grant(
    session: Session,
    account_name: str,
    product_id: str,
    *,
    granted_by: str,
    expires_at: datetime | None = None,
) -> EntitlementInfo:
    """Grant an account whole-product access (the admin path of the foundation)."""
    acc = get_account(session, account_name)
    if session.get(Product, product_id) is None:
        raise NotFound(f"no product {product_id!r}")
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidInput("expires_at must carry a timezone")
    row = Entitlement(
        account_id=acc.id,
        product_id=product_id,
        kind="grant",
        granted_by=granted_by,
        created_at=utcnow(),
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return _info(row, acc.name)


def revoke(session: Session, entitlement_id: int) -> EntitlementInfo:
    row = session.get(Entitlement, entitlement_id)
    if row is None:
        raise NotFound(f"no entitlement {entitlement_id}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    acc = session.get(Account, row.account_id)
    assert acc is not None
    return _info(row, acc.name)


def list_entitlements(session: Session, account_name: str | None = None) -> list[EntitlementInfo]:
    stmt = select(Entitlement, Account.name).join(Account, Entitlement.account_id == Account.id)
    if account_name is not None:
        stmt = stmt.where(Account.id == get_account(session, account_name).id)
    return [_info(e, n) for e, n in session.execute(stmt.order_by(Entitlement.id))]


def entitled_products(
    session: Session, account_id: int, *, now: datetime | None = None
) -> frozenset[str]:
    """Ids of the products ``account_id`` holds a live entitlement for."""
    now = now or utcnow()
    rows = session.scalars(
        select(Entitlement).where(
            Entitlement.account_id == account_id, Entitlement.revoked_at.is_(None)
        )
    )
    return frozenset(r.product_id for r in rows if r.expires_at is None or r.expires_at > now)


def viewer_for(session: Session, principal: Principal | None) -> Viewer:
    """What a caller may see of the catalog: anonymous callers public and listed
    products, operators everything, an account also the private products it is entitled
    to (read from ``session``)."""
    if principal is None:
        return ANONYMOUS
    if principal.has(Scope.ADMIN):
        return OPERATOR
    return Viewer(private=entitled_products(session, principal.account_id))


def check_access(
    session: Session,
    principal: Principal,
    product_id: str,
    *,
    subset_id: str | None = None,
    now: datetime | None = None,
) -> EntitlementInfo:
    """The entitlement that lets ``principal`` read ``product_id`` (on a subset route,
    ``subset_id``) or NotEntitled.

    A purchased subset covers only its subset, while its download period lasts; grants,
    subscriptions and the research tier cover the whole product. Among several, an
    unmetered one is used first, then the metered one with the most cells left.
    """
    rows = session.execute(
        _HELD.where(_ENTITLEMENTS.c.product_id == product_id), {"account_id": principal.account_id}
    ).all()
    return _choose(session, principal, rows, product_id, subset_id, now or utcnow())


# An account's entitlements that are not revoked, oldest first, through Core: the data
# gate reads them on every request (``holdings``), where ORM objects cost more than the
# query. Rows carry the columns by name, as the ORM objects do.
_ENTITLEMENTS = cast(Table, Entitlement.__table__)
_HELD = (
    select(_ENTITLEMENTS)
    .where(
        _ENTITLEMENTS.c.account_id == bindparam("account_id"),
        _ENTITLEMENTS.c.revoked_at.is_(None),
    )
    .order_by(_ENTITLEMENTS.c.id)
)


def _choose(
    session: Session,
    principal: Principal,
    rows: Sequence[Any],
    product_id: str,
    subset_id: str | None,
    now: datetime,
) -> EntitlementInfo:
    """``check_access``'s choice among the account's rows (not revoked) of ``product_id``."""
    live = [
        r
        for r in rows
        if r.product_id == product_id
        and (r.expires_at is None or r.expires_at > now)
        and (r.kind != "subset" or (subset_id is not None and r.subset_id == subset_id))
    ]
    if live:

        def rank(r: Any) -> tuple[int, int]:
            left = _remaining(r, now)
            return (1, 0) if left is None else (0, left)

        return _info(max(live, key=rank), principal.account_name)
    raise NotEntitled(
        f"account {principal.account_name!r} has no entitlement for "
        + (f"subset {subset_id!r} of " if subset_id else "")
        + f"product {product_id!r}",
        extensions={"product": product_id, "quote": quote_request(session, product_id, subset_id)},
    )


@dataclass(frozen=True, slots=True)
class Holdings:
    """What a caller holds, read once (one query): what it may see of the catalog
    (``viewer``, as ``viewer_for`` gives it) and which entitlement lets it read a product
    (``access``, as ``check_access`` chooses it). The data gate's two questions."""

    principal: Principal
    rows: tuple[Any, ...]
    now: datetime

    @property
    def viewer(self) -> Viewer:
        if self.principal.has(Scope.ADMIN):
            return OPERATOR
        now = self.now
        live = (r.product_id for r in self.rows if r.expires_at is None or r.expires_at > now)
        return Viewer(private=frozenset(live))

    def access(
        self, session: Session, product_id: str, subset_id: str | None = None
    ) -> EntitlementInfo:
        return _choose(session, self.principal, self.rows, product_id, subset_id, self.now)


def holdings(session: Session, principal: Principal, now: datetime | None = None) -> Holdings:
    """The entitlements ``principal``'s account holds (not revoked), in one query."""
    rows = session.execute(_HELD, {"account_id": principal.account_id}).all()
    return Holdings(principal, tuple(rows), now or utcnow())


# The key, its account and the account's entitlements that are not revoked (oldest
# first) in one statement: the data gate's first two reads as one round trip. One row
# per entitlement, the key's columns repeated; one row with NULL entitlement columns
# when the account holds none. The entitlement's columns are labelled ``e_<name>``
# (``expires_at``, ``revoked_at`` and ``account_id`` are also the key's).
_KEY_HOLDINGS = (
    key_lookup(*(c.label(f"e_{c.name}") for c in _ENTITLEMENTS.c))
    .outerjoin(
        _ENTITLEMENTS,
        and_(_ENTITLEMENTS.c.account_id == ACCOUNT_ID, _ENTITLEMENTS.c.revoked_at.is_(None)),
    )
    .order_by(_ENTITLEMENTS.c.id)
)
# An entitlement row of it under the column names ``_choose`` and ``_info`` read.
_Held = namedtuple("_Held", [c.name for c in _ENTITLEMENTS.c])  # type: ignore[misc]
_KEY_WIDTH = len(KEY_COLUMNS)


def key_holdings(
    session: Session, raw_key: str, now: datetime, touch_resolution: timedelta
) -> Holdings:
    """``authenticate`` and ``holdings`` in one statement: the caller of ``raw_key``
    (invalid, revoked or expired: the same errors, before anything else is looked at;
    its ``last_used_at`` written as ``authenticate`` writes it) and its holdings."""
    public_id, secret = split_key(raw_key)
    rows = session.execute(_KEY_HOLDINGS, {"key_id": public_id}).all()
    principal, touch = check_key_row(
        rows[0] if rows else None, public_id, secret, now, touch_resolution
    )
    if touch:
        session.execute(TOUCH_KEY, {"key_id": public_id, "now": now})
    held = tuple(_Held(*tuple(r)[_KEY_WIDTH:]) for r in rows if r.e_id is not None)
    return Holdings(principal, held, now)


def quote_request(
    session: Session, product_id: str, subset_id: str | None = None
) -> dict[str, object]:
    """How to buy access: the ``POST /v1/quotes`` request for this subset (its saved
    selection) or, without one, for the product's subscription or whole product."""
    body: dict[str, object] = {"product": product_id}
    subset = session.get(Subset, subset_id) if subset_id else None
    if subset is not None:
        body["selection"] = dict(subset.selection)
    else:
        rules = session.scalar(
            select(PriceBook.rules)
            .where(PriceBook.product_id == product_id)
            .order_by(PriceBook.version.desc())
            .limit(1)
        )
        if rules and rules.get("subscription"):
            body["offer"] = "subscription"
        else:
            body["selection"] = {}
    return {"href": "/v1/quotes", "method": "POST", "body": body}


def consume_quota(session: Session, entitlement_id: int, cells: int, now: datetime) -> None:
    """Count ``cells`` against the entitlement's quota for ``now``'s period, or raise
    QuotaExhausted (402) without counting anything.

    Two conditional UPDATEs, so concurrent deliveries cannot both take the last cells:
    the first starts a new period when the month has turned, the second takes the
    cells only if they fit.
    """
    row = session.get(Entitlement, entitlement_id)
    if row is None or row.quota_cells is None or cells <= 0:
        return
    period = period_of(now)
    session.execute(
        update(Entitlement)
        .where(
            Entitlement.id == entitlement_id,
            or_(Entitlement.quota_period.is_(None), Entitlement.quota_period != period),
        )
        .values(quota_period=period, quota_used=0)
        .execution_options(synchronize_session=False)
    )
    taken = session.execute(
        update(Entitlement)
        .where(
            Entitlement.id == entitlement_id,
            Entitlement.quota_used + cells <= Entitlement.quota_cells,
        )
        .values(quota_used=Entitlement.quota_used + cells)
        .execution_options(synchronize_session=False)
    )
    session.expire(row)
    if taken.rowcount == 1:  # type: ignore[attr-defined]
        return
    used = row.quota_used
    raise QuotaExhausted(
        f"entitlement {entitlement_id} has {max(0, row.quota_cells - used):,} of "
        f"{row.quota_cells:,} cells left in {period}; this delivery needs {cells:,}",
        extensions={
            "entitlement": entitlement_id,
            "period": period,
            "quota_cells": row.quota_cells,
            "used_cells": used,
            "requested_cells": cells,
            "quote": quote_request(session, row.product_id, None),
        },
    )


def revoke_for_order(session: Session, order_id: str, now: datetime) -> list[int]:
    """Revoke every entitlement an order created (on refund); returns their ids."""
    rows = list(
        session.scalars(
            select(Entitlement).where(
                Entitlement.order_id == order_id, Entitlement.revoked_at.is_(None)
            )
        )
    )
    for row in rows:
        row.revoked_at = now
    session.flush()
    return [r.id for r in rows]


def create_for_order(
    session: Session,
    *,
    account_id: int,
    product_id: str,
    kind: str,
    order_id: str,
    now: datetime,
    expires_at: datetime | None,
    subset_id: str | None = None,
    component: str | None = None,
    quota_cells: int | None = None,
) -> int:
    """The entitlement a fulfilled order gives; returns its id."""
    if kind not in KINDS:
        raise InvalidInput(f"unknown entitlement kind {kind!r}")
    row = Entitlement(
        account_id=account_id,
        product_id=product_id,
        kind=kind,
        granted_by=f"order:{order_id}",
        created_at=now,
        expires_at=expires_at,
        subset_id=subset_id,
        order_id=order_id,
        component=component,
        quota_cells=quota_cells,
        quota_used=0,
        quota_period=period_of(now) if quota_cells is not None else None,
    )
    session.add(row)
    session.flush()
    return row.id
