"""Admin grants of product access (orders will create entitlements too)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, status

from api.deps import Admin, SessionsDep
from api.routers import Router
from api.schemas import EntitlementIn, EntitlementOut
from oceanmart.db import transaction
from pricing import entitlements

router = Router(prefix="/v1/entitlements", tags=["entitlements"])


@router.post("", response_model=EntitlementOut, status_code=status.HTTP_201_CREATED)
def grant(body: EntitlementIn, admin: Admin, sessions: SessionsDep) -> EntitlementOut:
    with transaction(sessions) as session:
        info = entitlements.grant(
            session,
            body.account,
            body.product,
            granted_by=admin.account_name,
            expires_at=body.expires_at,
        )
    return EntitlementOut.model_validate(info)


@router.get("", response_model=list[EntitlementOut])
def list_(
    _: Admin, sessions: SessionsDep, account: Annotated[str | None, Query()] = None
) -> list[EntitlementOut]:
    with sessions() as session:
        rows = entitlements.list_entitlements(session, account)
    return [EntitlementOut.model_validate(e) for e in rows]


@router.delete("/{entitlement_id}", response_model=EntitlementOut)
def revoke(
    entitlement_id: Annotated[int, Path(ge=1, le=2**31 - 1)], _: Admin, sessions: SessionsDep
) -> EntitlementOut:
    with transaction(sessions) as session:
        return EntitlementOut.model_validate(entitlements.revoke(session, entitlement_id))
