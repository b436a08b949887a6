"""Prepaid credits: balances, admin grants, and the journal check."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, status

from api.deps import Admin, PrincipalDep, SessionsDep
from api.pricing_schemas import BalancesOut, CreditEntryOut, CreditGrantIn, MoneyOut
from api.routers import Router
from oceanmart.accounts import Scope, get_account
from oceanmart.db import transaction
from pricing import credits
from pricing.money import from_major

router = Router(prefix="/v1/credits", tags=["credits"])


@router.get("", response_model=BalancesOut)
def balances(
    principal: PrincipalDep,
    sessions: SessionsDep,
    account: Annotated[str | None, Query(description="admin: another account")] = None,
) -> BalancesOut:
    """The calling account's credit balances (an admin may ask for any account)."""
    with sessions() as session:
        if account is not None and principal.has(Scope.ADMIN):
            acc = get_account(session, account)
            name, account_id = acc.name, acc.id
        else:
            name, account_id = principal.account_name, principal.account_id
        rows = credits.balances(session, account_id)
    return BalancesOut(account=name, balances=[MoneyOut.model_validate(m.as_dict()) for m in rows])


@router.post("/grants", response_model=CreditEntryOut, status_code=status.HTTP_201_CREATED)
def grant(body: CreditGrantIn, admin: Admin, sessions: SessionsDep) -> CreditEntryOut:
    """Add prepaid credits to an account (amount in major units)."""
    money = from_major(body.amount, body.currency)
    with transaction(sessions) as session:
        e = credits.grant_credits(
            session, body.account, money, created_by=admin.account_name, memo=body.memo
        )
    return CreditEntryOut(
        id=e.id,
        kind=e.kind,
        account=e.account,
        amount=MoneyOut.model_validate(e.amount.as_dict()),
        balance=MoneyOut.model_validate(e.balance.as_dict()),
        created_at=e.created_at,
    )


@router.get("/journal/check")
def journal_check(_: Admin, sessions: SessionsDep) -> dict[str, object]:
    """Is the journal balanced, and does every balance equal its postings?"""
    with sessions() as session:
        c = credits.check_journal(session)
    return {
        "ok": c.ok,
        "entries": c.entries,
        "unbalanced_entries": c.unbalanced_entries,
        "mismatched_balances": [list(m) for m in c.mismatched_balances],
    }
