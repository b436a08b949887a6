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

from catalog.products import ProductInfo, get_product
from catalog.store import DataStore
from oceanmart.accounts import Principal, Scope, authenticate
from oceanmart.db import transaction
from oceanmart.errors import AuthenticationRequired, InvalidKey
from oceanmart.settings import Settings
from pricing.entitlements import EntitlementInfo, check_access


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


SettingsDep = Annotated[Settings, Depends(_settings)]
SessionsDep = Annotated[sessionmaker[Session], Depends(_sessions)]
StoreDep = Annotated[DataStore, Depends(_store)]


def _principal(
    request: Request,
    settings: SettingsDep,
    sessions: SessionsDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    header_key: Annotated[str | None, Security(_header)],
    basic: Annotated[HTTPBasicCredentials | None, Security(_basic)],
    query_key: Annotated[str | None, Security(_query)],
) -> Principal:
    raw = (
        (bearer.credentials if bearer else None)
        or header_key
        or (basic.password if basic else None)
        or query_key
    )
    if not raw:
        raise AuthenticationRequired(
            "send an API key as `Authorization: Bearer <key>`, `X-API-Key: <key>`, "
            "the HTTP Basic password, or `?api_key=<key>`"
        )
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


def _product(
    product_id: Annotated[str, Path(description="Product id", max_length=64)],
    sessions: SessionsDep,
) -> ProductInfo:
    with sessions() as session:
        return get_product(session, product_id)


ProductDep = Annotated[ProductInfo, Depends(_product)]


class Entitled:
    """What the data gate hands a data route: who, which product, under which entitlement."""

    def __init__(
        self, principal: Principal, product: ProductInfo, entitlement: EntitlementInfo
    ) -> None:
        self.principal = principal
        self.product = product
        self.entitlement = entitlement


def data_gate(principal: DataReader, product: ProductDep, sessions: SessionsDep) -> Entitled:
    """THE gate of every data route: key, `data:read` scope and an entitlement to the product.

    ``tests/api/test_gate.py`` walks the route table and fails on any data route without it.
    """
    with sessions() as session:
        entitlement = check_access(session, principal, product.id)
    return Entitled(principal, product, entitlement)


EntitledDep = Annotated[Entitled, Depends(data_gate)]
