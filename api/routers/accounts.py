"""Accounts and API keys (admin), and `whoami` for any key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query, status

from api.deps import Admin, PrincipalDep, SessionsDep
from api.routers import Router
from api.schemas import AccountIn, AccountOut, KeyIn, KeyOut, NewKeyOut, WhoAmI
from oceanmart import accounts
from oceanmart.db import transaction

router = Router(prefix="/v1", tags=["accounts"])


@router.get("/me", response_model=WhoAmI)
def whoami(principal: PrincipalDep) -> WhoAmI:
    """The account and scopes of the calling key."""
    return WhoAmI(
        account=principal.account_name,
        kind=principal.account_kind,
        key_id=principal.key_id,
        scopes=sorted(s.value for s in principal.scopes),
    )


@router.post("/accounts", response_model=AccountOut, status_code=status.HTTP_201_CREATED)
def create_account(body: AccountIn, _: Admin, sessions: SessionsDep) -> AccountOut:
    with transaction(sessions) as session:
        info = accounts.create_account(session, body.name, body.kind)
    return AccountOut.model_validate(info)


@router.get("/accounts", response_model=list[AccountOut])
def list_accounts(_: Admin, sessions: SessionsDep) -> list[AccountOut]:
    with sessions() as session:
        return [AccountOut.model_validate(a) for a in accounts.list_accounts(session)]


@router.post("/keys", response_model=NewKeyOut, status_code=status.HTTP_201_CREATED)
def create_key(body: KeyIn, _: Admin, sessions: SessionsDep) -> NewKeyOut:
    """Create a key. The response is the only time the key is shown."""
    with transaction(sessions) as session:
        info, raw = accounts.create_key(
            session, body.account, body.scopes, label=body.label, expires_at=body.expires_at
        )
    return NewKeyOut(**KeyOut.model_validate(info).model_dump(), key=raw)


@router.get("/keys", response_model=list[KeyOut])
def list_keys(
    _: Admin, sessions: SessionsDep, account: Annotated[str | None, Query()] = None
) -> list[KeyOut]:
    with sessions() as session:
        return [KeyOut.model_validate(k) for k in accounts.list_keys(session, account)]


@router.delete("/keys/{key_id}", response_model=KeyOut)
def revoke_key(key_id: str, _: Admin, sessions: SessionsDep) -> KeyOut:
    """Revoke a key; it fails from the very next request."""
    with transaction(sessions) as session:
        return KeyOut.model_validate(accounts.revoke_key(session, key_id))
