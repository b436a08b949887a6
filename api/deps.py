"""Every FastAPI dependency of the app, declared once as an ``Annotated`` alias."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Annotated

import structlog
from fastapi import Depends, HTTPException, Path, Request, Security
from fastapi.security import (
    APIKeyHeader,
    APIKeyQuery,
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)
from sqlalchemy.orm import Session, sessionmaker

from catalog.products import ANONYMOUS, OPERATOR, ProductInfo, Viewer, get_product
from catalog.store import DataStore
from ledger import Ledger
from oceanmart.accounts import Principal, Scope, authenticate
from oceanmart.db import transaction
from oceanmart.errors import AuthenticationRequired, InvalidKey
from oceanmart.settings import Settings
from pricing.entitlements import EntitlementInfo, check_access, entitled_products


class _Basic(HTTPBasic):
    """HTTP Basic with the key as password; a garbled header is an invalid key, not a 401 page."""

    async def __call__(self, request: Request) -> HTTPBasicCredentials | None:  # type: ignore[override]
        try:
            return await super().__call__(request)
        except HTTPException:
            raise InvalidKey("malformed HTTP Basic credentials") from None


_bearer = HTTPBearer(auto_error=False, description="`Authorization: Bearer <key>`")
_header = APIKeyHeader(name="X-API-Key", auto_error=False)
_basic = _Basic(auto_error=False, description="HTTP Basic; any user name, the key as password")
_query = APIKeyQuery(
    name="api_key", auto_error=False, description="for DAP/NetCDF clients that cannot set headers"
)


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _sessions(request: Request) -> sessionmaker[Session]:
    sessions: sessionmaker[Session] = request.app.state.sessions
    return sessions


def _store(request: Request) -> DataStore:
    store: DataStore = request.app.state.store
    return store


def _ledger(request: Request) -> Ledger:
    ledger: Ledger = request.app.state.ledger
    return ledger


SettingsDep = Annotated[Settings, Depends(_settings)]
SessionsDep = Annotated[sessionmaker[Session], Depends(_sessions)]
StoreDep = Annotated[DataStore, Depends(_store)]
LedgerDep = Annotated[Ledger, Depends(_ledger)]


def _maybe_principal(
    request: Request,
    settings: SettingsDep,
    sessions: SessionsDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header_key: Annotated[str | None, Security(_header)],
    basic: Annotated[HTTPBasicCredentials | None, Security(_basic)],
    query_key: Annotated[str | None, Security(_query)],
) -> Principal | None:
    """The caller, or None when no key was sent (a bad key is still an error)."""
    raw = (
        (bearer.credentials if bearer else None)
        or header_key
        or (basic.password if basic else None)
        or query_key
    )
    if not raw:
        return None
    with transaction(sessions) as session:
        principal = authenticate(
            session,
            raw,
            touch_resolution=timedelta(seconds=settings.key_last_used_resolution_s),
        )
    # For the access log, which runs outside this (threadpool) context.
    request.state.key_id = principal.key_id
    request.state.account = principal.account_name
    structlog.contextvars.bind_contextvars(key_id=principal.key_id)
    return principal


MaybePrincipalDep = Annotated[Principal | None, Depends(_maybe_principal)]


def _principal(principal: MaybePrincipalDep) -> Principal:
    if principal is None:
        raise AuthenticationRequired(
            "send an API key as `Authorization: Bearer <key>`, `X-API-Key: <key>`, "
            "the HTTP Basic password, or `?api_key=<key>`"
        )
    return principal


PrincipalDep = Annotated[Principal, Depends(_principal)]


def require(scope: Scope) -> Callable[[Principal], Principal]:
    """A dependency that authenticates and checks one scope."""

    def check(principal: PrincipalDep) -> Principal:
        principal.require(scope)
        return principal

    check.__name__ = f"require_{scope.name.lower()}"
    return check


CatalogReader = Annotated[Principal, Depends(require(Scope.CATALOG_READ))]
Admin = Annotated[Principal, Depends(require(Scope.ADMIN))]
DataReader = Annotated[Principal, Depends(require(Scope.DATA_READ))]


def _viewer(principal: MaybePrincipalDep, sessions: SessionsDep) -> Viewer:
    """What the caller may see of the catalog (anonymous callers: public and listed)."""
    if principal is None:
        return ANONYMOUS
    if principal.has(Scope.ADMIN):
        return OPERATOR
    with sessions() as session:
        return Viewer(private=entitled_products(session, principal.account_id))


ViewerDep = Annotated[Viewer, Depends(_viewer)]


def _product(
    product_id: Annotated[str, Path(description="Product id", max_length=64)],
    sessions: SessionsDep,
    viewer: ViewerDep,
) -> ProductInfo:
    with sessions() as session:
        return get_product(session, product_id, viewer)


ProductDep = Annotated[ProductInfo, Depends(_product)]


class Entitled:
    """What the data gate hands a data route: who, which product, under which entitlement."""

    def __init__(
        self, principal: Principal, product: ProductInfo, entitlement: EntitlementInfo | None
    ) -> None:
        self.principal = principal
        self.product = product
        self.entitlement = entitlement


def data_gate(principal: DataReader, product: ProductDep, sessions: SessionsDep) -> Entitled:
    """THE gate of every data route: key, `data:read` scope and an entitlement to the
    product (a public product needs none: the key and scope are enough).

    ``tests/api/test_gate.py`` walks the route table and fails on any data route without it.
    """
    if product.visibility == "public":
        return Entitled(principal, product, None)
    with sessions() as session:
        entitlement = check_access(session, principal, product.id)
    return Entitled(principal, product, entitlement)


EntitledDep = Annotated[Entitled, Depends(data_gate)]
