"""Usage and revenue, per day (UTC), per account and per product; CSV export.

Usage counts access records (deliveries: requests, cells, bytes). Revenue counts
orders: an order's amount and the provider's share on the day it was fulfilled, and
the same amounts back on the day it was refunded, so ``net`` over any range is what
was kept.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import astuple, dataclass, fields
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from catalog.models import Product
from oceanmart.accounts import Account
from pricing.metering import AccessRecord
from pricing.orders import Order


@dataclass(frozen=True, slots=True)
class UsageRow:
    day: str
    account: str
    product: str
    requests: int
    cells: int
    bytes: int


@dataclass(frozen=True, slots=True)
class RevenueRow:
    day: str
    account: str
    product: str
    theme: str
    provider: str
    currency: str
    orders: int
    gross: int  # minor units, fulfilled that day
    refunded: int  # minor units, refunded that day
    net: int
    provider_share: int  # net of refunds
    operator_share: int


def _bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00, end+1 00:00) in UTC: both days inclusive."""
    return (
        datetime.combine(start, time(), tzinfo=UTC),
        datetime.combine(end + timedelta(days=1), time(), tzinfo=UTC),
    )


def _day(session: Session, column: Any) -> ColumnElement[str]:
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")
    return func.substr(column, 1, 10)  # SQLite keeps UTC text 'YYYY-MM-DD HH:MM:SS'


def usage(
    session: Session,
    start: date,
    end: date,
    *,
    account_id: int | None = None,
    product_id: str | None = None,
) -> list[UsageRow]:
    lo, hi = _bounds(start, end)
    day = _day(session, AccessRecord.created_at).label("day")
    stmt = (
        select(
            day,
            Account.name,
            AccessRecord.product_id,
            func.count(AccessRecord.id),
            func.coalesce(func.sum(AccessRecord.cells), 0),
            func.coalesce(func.sum(AccessRecord.bytes), 0),
        )
        .join(Account, Account.id == AccessRecord.account_id)
        .where(AccessRecord.created_at >= lo, AccessRecord.created_at < hi)
        .group_by(day, Account.name, AccessRecord.product_id)
        .order_by(day, Account.name, AccessRecord.product_id)
    )
    if account_id is not None:
        stmt = stmt.where(AccessRecord.account_id == account_id)
    if product_id is not None:
        stmt = stmt.where(AccessRecord.product_id == product_id)
    return [
        UsageRow(str(d), str(a), str(p), int(n), int(c), int(b))
        for d, a, p, n, c, b in session.execute(stmt)
    ]


def revenue(
    session: Session,
    start: date,
    end: date,
    *,
    account_id: int | None = None,
    product_id: str | None = None,
) -> list[RevenueRow]:
    lo, hi = _bounds(start, end)
    stmt = (
        select(Order, Account.name, Product.theme)
        .join(Account, Account.id == Order.account_id)
        .join(Product, Product.id == Order.product_id)
        .where(
            Order.fulfilled_at.is_not(None),
            or_(
                (Order.fulfilled_at >= lo) & (Order.fulfilled_at < hi),
                (Order.refunded_at >= lo) & (Order.refunded_at < hi),
            ),
        )
    )
    if account_id is not None:
        stmt = stmt.where(Order.account_id == account_id)
    if product_id is not None:
        stmt = stmt.where(Order.product_id == product_id)
    acc: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for order, account, theme in session.execute(stmt):
        key = (account, order.product_id, theme, order.provider, order.currency)
        share = order.provider_share or 0
        if order.fulfilled_at is not None and lo <= order.fulfilled_at < hi:
            row = acc[(order.fulfilled_at.date().isoformat(), *key)]
            row[0] += 1
            row[1] += order.amount
            row[3] += share
            row[4] += order.amount - share
        if order.refunded_at is not None and lo <= order.refunded_at < hi:
            row = acc[(order.refunded_at.date().isoformat(), *key)]
            row[2] += order.amount
            row[3] -= share
            row[4] -= order.amount - share
    return [
        RevenueRow(d, a, p, t, pr, c, n, g, r, g - r, ps, os_)
        for (d, a, p, t, pr, c), (n, g, r, ps, os_) in sorted(acc.items())
    ]


@dataclass(frozen=True, slots=True)
class Total:
    key: str  # a product id or a theme
    currency: str
    orders: int
    net: int
    provider_share: int


def totals(rows: Iterable[RevenueRow], by: str) -> list[Total]:
    """Revenue rows summed by ``product`` or ``theme`` (and currency)."""
    acc: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in rows:
        t = acc[(getattr(r, by), r.currency)]
        t[0] += r.orders
        t[1] += r.net
        t[2] += r.provider_share
    return [Total(k, c, n, net, ps) for (k, c), (n, net, ps) in sorted(acc.items())]


def to_csv(rows: Sequence[UsageRow] | Sequence[RevenueRow], kind: type[Any]) -> str:
    """Rows as CSV with a header row (amounts in minor units)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([f.name for f in fields(kind)])
    for r in rows:
        writer.writerow(astuple(r))
    return out.getvalue()
