"""Every FastAPI dependency of the app, declared once as an ``Annotated`` alias."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
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

from catalog.products import (
    ANONYMOUS,
    OPERATOR,
    ProductInfo,
    SubsetInfo,
    VersionInfo,
    Viewer,
    get_product,
    get_subset,
)
from catalog.store import DataStore
from catalog.zarr_http import ZarrStores
from oceanmart.accounts import Principal, Scope, authenticate
from oceanmart.db import transaction
from oceanmart.errors import AuthenticationRequired, InvalidKey
from oceanmart.settings import Settings
from oceanmart.web_sessions import WebUser, check_csrf, check_session
from pricing.checkout import Payments
from pricing.entitlements import EntitlementInfo, check_access, entitled_products
from pricing.metering import AccessInfo, Delivery, record_access


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


async def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def _sessions(request: Request) -> sessionmaker[Session]:
    sessions: sessionmaker[Session] = request.app.state.sessions
    return sessions


async def _store(request: Request) -> DataStore:
    store: DataStore = request.app.state.store
    return store


async def _payments(request: Request) -> Payments:
    payments: Payments = request.app.state.payments
    return payments


async def _zarr(request: Request) -> ZarrStores:
    stores: ZarrStores = request.app.state.zarr
    return stores


SettingsDep = Annotated[Settings, Depends(_settings)]
ZarrDep = Annotated[ZarrStores, Depends(_zarr)]
SessionsDep = Annotated[sessionmaker[Session], Depends(_sessions)]
StoreDep = Annotated[DataStore, Depends(_store)]
PaymentsDep = Annotated[Payments, Depends(_payments)]


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


async def _principal(principal: MaybePrincipalDep) -> Principal:
    if principal is None:
        raise AuthenticationRequired(
            "send an API key as `Authorization: Bearer <key>`, `X-API-Key: <key>`, "
            "the HTTP Basic password, or `?api_key=<key>`"
        )
    return principal


PrincipalDep = Annotated[Principal, Depends(_principal)]


def require(scope: Scope) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that authenticates and checks one scope."""

    async def check(principal: PrincipalDep) -> Principal:
        principal.require(scope)
        return principal

    check.__name__ = f"require_{scope.name.lower()}"
    return check


CatalogReader = Annotated[Principal, Depends(require(Scope.CATALOG_READ))]
Admin = Annotated[Principal, Depends(require(Scope.ADMIN))]
DataReader = Annotated[Principal, Depends(require(Scope.DATA_READ))]
OrderWriter = Annotated[Principal, Depends(require(Scope.ORDERS_WRITE))]


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


@dataclass(frozen=True, slots=True)
class Entitled:
    """What the data gate hands a data route: who, which product version (a saved
    subset's own version for subset routes), under which entitlement; and the way to
    record each delivery."""

    principal: Principal
    product: ProductInfo
    entitlement: EntitlementInfo | None
    subset: SubsetInfo | None
    sessions: sessionmaker[Session]

    @property
    def version(self) -> VersionInfo:
        assert self.product.version is not None  # get_product returns published products
        return self.product.version

    def record(self, delivery: Delivery) -> AccessInfo:
        """Meter one delivery (before its first byte is sent); its id goes in the
        response's ``OceanMart-Access-Id`` header."""
        with transaction(self.sessions) as session:
            return record_access(
                session,
                account_id=self.principal.account_id,
                key_id=self.principal.key_id,
                entitlement_id=self.entitlement.id if self.entitlement else None,
                delivery=delivery,
            )


def data_gate(
    request: Request, principal: DataReader, sessions: SessionsDep, viewer: ViewerDep
) -> Entitled:
    """THE gate of every data route: key, `data:read` scope and an entitlement covering
    what the route serves: a product (path parameter ``product_id``; a public product
    needs no entitlement) or a saved subset (``subset_id``).

    ``tests/api/test_gate.py`` walks the route table and fails on any data route without it.
    """
    params = request.path_params
    with sessions() as session:
        if "subset_id" in params:
            subset = get_subset(session, params["subset_id"], viewer)
            product = get_product(session, subset.product_id, viewer, subset.version_id)
        elif "product_id" in params:
            subset = None
            product = get_product(session, params["product_id"], viewer)
        else:  # a setup mistake: caught by the gate test, never by a user
            raise TypeError(f"data route {request.url.path} names neither product nor subset")
        entitlement = (
            None
            if product.visibility == "public"
            else check_access(
                session, principal, product.id, subset_id=subset.id if subset else None
            )
        )
    return Entitled(principal, product, entitlement, subset, sessions)


EntitledDep = Annotated[Entitled, Depends(data_gate)]


CONSOLE_COOKIE = "om_console"


def _console_user(request: Request, sessions: SessionsDep) -> WebUser:
    """The admin signed in to the console (its session cookie, re-checked with its key on
    every request). A page asked for without a session redirects to the sign-in page."""
    try:
        with transaction(sessions) as session:
            return check_session(session, request.cookies.get(CONSOLE_COOKIE))
    except InvalidKey:
        if request.method in ("GET", "HEAD"):
            raise HTTPException(
                303, "sign in first", headers={"Location": "/console/login"}
            ) from None
        raise


ConsoleUser = Annotated[WebUser, Depends(_console_user)]


async def _console_form(request: Request, user: ConsoleUser) -> dict[str, str]:
    """A console form's fields, after its CSRF token was checked against the session."""
    form = await request.form()
    fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
    check_csrf(user, fields.get("csrf"))
    return fields


ConsoleForm = Annotated[dict[str, str], Depends(_console_form)]
