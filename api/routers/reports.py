"""Usage and revenue, per day, per account and per product; JSON or CSV."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated, Literal

from fastapi import Query
from fastapi.responses import PlainTextResponse

from api.deps import Admin, PrincipalDep, SessionsDep
from api.pricing_schemas import RevenueOut, UsageOut
from api.routers import Router
from oceanmart.accounts import Scope, get_account
from oceanmart.db import utcnow
from oceanmart.errors import InvalidParameter
from pricing import reports

router = Router(prefix="/v1", tags=["usage and revenue"])

Start = Annotated[
    date | None, Query(alias="from", description="first day (UTC), default 30 days ago")
]
End = Annotated[
    date | None, Query(alias="to", description="last day (UTC), inclusive; default today")
]
Format = Annotated[Literal["json", "csv"], Query()]


def _range(start: date | None, end: date | None) -> tuple[date, date]:
    end = end or utcnow().date()
    start = start or end - timedelta(days=30)
    if start > end:
        raise InvalidParameter("from", f"{start} is after to={end}")
    if (end - start).days > 3660:
        raise InvalidParameter("from", "a report covers at most ten years")
    return start, end


def _csv(text: str, name: str) -> PlainTextResponse:
    return PlainTextResponse(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}.csv"'},
    )


@router.get("/usage", response_model=list[UsageOut])
def usage(
    principal: PrincipalDep,
    sessions: SessionsDep,
    start: Start = None,
    end: End = None,
    account: Annotated[str | None, Query(description="admin: one account; default all")] = None,
    product: Annotated[str | None, Query()] = None,
    format: Format = "json",
) -> list[UsageOut] | PlainTextResponse:
    """Deliveries per day, account and product: your own, or (admin) anyone's."""
    lo, hi = _range(start, end)
    with sessions() as session:
        account_id: int | None = principal.account_id
        if principal.has(Scope.ADMIN):
            account_id = get_account(session, account).id if account else None
        rows = reports.usage(session, lo, hi, account_id=account_id, product_id=product)
    if format == "csv":
        return _csv(reports.to_csv(rows, reports.UsageRow), f"usage-{lo}-{hi}")
    return [UsageOut.model_validate(r, from_attributes=True) for r in rows]


@router.get("/revenue", response_model=list[RevenueOut])
def revenue(
    _: Admin,
    sessions: SessionsDep,
    start: Start = None,
    end: End = None,
    account: Annotated[str | None, Query()] = None,
    product: Annotated[str | None, Query()] = None,
    format: Format = "json",
) -> list[RevenueOut] | PlainTextResponse:
    """Revenue per day, account and product with the provider's share (minor units)."""
    lo, hi = _range(start, end)
    with sessions() as session:
        account_id = get_account(session, account).id if account else None
        rows = reports.revenue(session, lo, hi, account_id=account_id, product_id=product)
    if format == "csv":
        return _csv(reports.to_csv(rows, reports.RevenueRow), f"revenue-{lo}-{hi}")
    return [RevenueOut.model_validate(r, from_attributes=True) for r in rows]
