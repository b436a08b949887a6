"""Every FastAPI dependency of the app, declared once as an ``Annotated`` alias."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Annotated, Any

import structlog
from fastapi import Depends, HTTPException, Path, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.security import (
    APIKeyHeader,
    APIKeyQuery,
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)
from sqlalchemy import Connection
from sqlalchemy.orm import Session, sessionmaker

from api.limits import KeyLimiter
from catalog.compute import Source
from catalog.job_runner import JobRunner
from catalog.jobs import JobInfo, get_job
from catalog.products import (
    ANONYMOUS,
    ProductInfo,
    SubsetInfo,
    VersionInfo,
    Viewer,
    get_product,
    get_subset,
)
from catalog.sea_areas import SeaAreaInfo, resolve_area
from catalog.store import DataStore
from catalog.zarr_http import ZarrStores
from ledger import Ledger
from oceanmart.accounts import Principal, Scope, authenticate
from oceanmart.db import transaction, utcnow
from oceanmart.errors import AuthenticationRequired, InvalidKey, InvalidParameter
from oceanmart.settings import Settings
from oceanmart.web_sessions import WebUser, check_csrf, check_session
from pricing.checkout import Payments
from pricing.entitlements import (
    EntitlementInfo,
    Holdings,
    check_access,
    key_holdings,
    viewer_for,
)
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


def _app_state(name: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency giving the object the app factory keeps in ``app.state.<name>`` (its
    type is the one the ``Annotated`` alias below names)."""

    async def get(request: Request) -> Any:
        return getattr(request.app.state, name)

    get.__name__ = f"app_state_{name}"
    return get


SettingsDep = Annotated[Settings, Depends(_app_state("settings"))]
LimiterDep = Annotated[KeyLimiter, Depends(_app_state("limiter"))]
JobsDep = Annotated[JobRunner, Depends(_app_state("jobs"))]
ZarrDep = Annotated[ZarrStores, Depends(_app_state("zarr"))]
SessionsDep = Annotated[sessionmaker[Session], Depends(_app_state("sessions"))]
# Commits that do not wait for the disk (oceanmart.db.make_engine): quotes only.
RelaxedSessionsDep = Annotated[sessionmaker[Session], Depends(_app_state("relaxed_sessions"))]
StoreDep = Annotated[DataStore, Depends(_app_state("store"))]
PaymentsDep = Annotated[Payments, Depends(_app_state("payments"))]
LedgerDep = Annotated[Ledger, Depends(_app_state("ledger"))]


BearerDep = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]
HeaderKeyDep = Annotated[str | None, Security(_header)]
BasicDep = Annotated[HTTPBasicCredentials | None, Security(_basic)]
QueryKeyDep = Annotated[str | None, Security(_query)]


async def _raw_key(
    bearer: BearerDep, header_key: HeaderKeyDep, basic: BasicDep, query_key: QueryKeyDep
) -> str | None:
    """The key the caller sent, in the first of the four places it may be; no database."""
    return (
        (bearer.credentials if bearer else None)
        or header_key
        or (basic.password if basic else None)
        or query_key
    ) or None


RawKeyDep = Annotated[str | None, Depends(_raw_key)]


def _authenticate(session: Session, raw: str, request: Request, settings: Settings) -> Principal:
    """Check ``raw`` in ``session`` and count it against the key's request rate."""
    principal = authenticate(
        session, raw, touch_resolution=timedelta(seconds=settings.key_last_used_resolution_s)
    )
    _admit(request, principal)
    return principal


def _admit(request: Request, principal: Principal) -> None:
    """A caller whose key checked out: counted against its key's request rate (once per
    request: a request tried on the event loop and run again in a worker thread is one),
    and named for the access log (which runs outside the worker thread's context) and
    log lines."""
    if getattr(request.state, "key_id", None) != principal.key_id:
        limiter: KeyLimiter = request.app.state.limiter
        limiter.hit(principal.key_id)
    request.state.key_id = principal.key_id
    request.state.account = principal.account_name
    structlog.contextvars.bind_contextvars(key_id=principal.key_id)


def _maybe_principal(
    request: Request, settings: SettingsDep, sessions: SessionsDep, raw: RawKeyDep
) -> Principal | None:
    """The caller, or None when no key was sent (a bad key is still an error)."""
    if not raw:
        return None
    with transaction(sessions) as session:
        return _authenticate(session, raw, request, settings)


MaybePrincipalDep = Annotated[Principal | None, Depends(_maybe_principal)]


NO_KEY = (
    "send an API key as `Authorization: Bearer <key>`, `X-API-Key: <key>`, "
    "the HTTP Basic password, or `?api_key=<key>`"
)


async def _principal(principal: MaybePrincipalDep) -> Principal:
    if principal is None:
        raise AuthenticationRequired(NO_KEY)
    return principal


PrincipalDep = Annotated[Principal, Depends(_principal)]


def require(scope: Scope) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that authenticates and checks one scope."""

    async def check(principal: PrincipalDep) -> Principal:
        principal.require(scope)
        return principal

    check.__name__ = f"require_{scope.name.lower()}"
    return check


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """A key that was sent but not yet checked: the route checks it in its own worker
    thread and transaction (``principal``), so that the key's read and the route's work
    cost one threadpool hop and one connection checkout, not two of each (every hop is a
    hand-over between the event loop and a worker thread, a GIL hand-over each way).

    A request without any key is refused before the route runs, as with ``PrincipalDep``;
    a bad key is refused when the route asks, which is after its body was validated."""

    raw: str
    scope: Scope
    request: Request

    def principal(self, session: Session) -> Principal:
        """The caller (authenticated in ``session``, rate-limited) holding ``scope``."""
        settings: Settings = self.request.app.state.settings
        principal = _authenticate(session, self.raw, self.request, settings)
        principal.require(self.scope)
        return principal

    def holdings(self, session: Session) -> Holdings:
        """``principal`` and the caller's entitlements (``pricing.entitlements.holdings``)
        read in one statement (``key_holdings``); the scope checked after the key, as
        ``principal`` does."""
        held = key_holdings(session, self.raw, utcnow(), self.touch_resolution)
        _admit(self.request, held.principal)
        held.principal.require(self.scope)
        return held

    def admit(self, principal: Principal) -> None:
        """For a route that checks the key itself (in one statement with its own reads,
        as ``pricing.quotes.quote_for_key`` does): what ``principal`` does after the key
        checked out (the rate limit, the access log's key and account)."""
        _admit(self.request, principal)

    @property
    def touch_resolution(self) -> timedelta:
        """How often a key's ``last_used_at`` is written at most."""
        settings: Settings = self.request.app.state.settings
        return timedelta(seconds=settings.key_last_used_resolution_s)


def deferred(scope: Scope) -> Callable[[Request, str | None], Awaitable[KeyCheck]]:
    """A dependency handing the route a ``KeyCheck`` for ``scope`` (no database work)."""

    async def check(request: Request, raw: RawKeyDep) -> KeyCheck:
        if not raw:
            raise AuthenticationRequired(NO_KEY)
        return KeyCheck(raw, scope, request)

    check.__name__ = f"defer_{scope.name.lower()}"
    return check


CatalogReader = Annotated[Principal, Depends(require(Scope.CATALOG_READ))]
CatalogReaderKey = Annotated[KeyCheck, Depends(deferred(Scope.CATALOG_READ))]
Admin = Annotated[Principal, Depends(require(Scope.ADMIN))]
DataReader = Annotated[Principal, Depends(require(Scope.DATA_READ))]
OrderWriter = Annotated[Principal, Depends(require(Scope.ORDERS_WRITE))]


def _viewer(principal: MaybePrincipalDep, sessions: SessionsDep) -> Viewer:
    """What the caller may see of the catalog (``pricing.entitlements.viewer_for``)."""
    if principal is None:
        return ANONYMOUS
    with sessions() as session:
        return viewer_for(session, principal)


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
    ledger: Ledger
    job: JobInfo | None = None
    # The connection the gate read through, kept checked out by the caller to record
    # through too (one pool checkout per request); None: a transaction of ``sessions``.
    connection: Connection | None = None

    @property
    def version(self) -> VersionInfo:
        assert self.product.version is not None  # get_product returns published products
        return self.product.version

    def record(self, delivery: Delivery, access_id: str | None = None) -> AccessInfo:
        """Meter one delivery (before its first byte is sent); its id goes in the
        response's ``OceanMart-Access-Id`` header (and in a file's provenance, when the
        caller made the id beforehand with ``new_access_id``). A delivery from another
        product than the gate's (a run reading a climatology too) is checked and
        charged against that product's own entitlement."""
        with _transaction(self.sessions, self.connection) as session:
            entitlement = self.entitlement
            if delivery.product_id != self.product.id:
                other = get_product(session, delivery.product_id, version_id=delivery.version_id)
                entitlement = entitle(session, self.principal, other)
            return record_access(
                session,
                self.ledger,
                account_id=self.principal.account_id,
                key_id=self.principal.key_id,
                entitlement_id=entitlement.id if entitlement else None,
                delivery=delivery,
                access_id=access_id,
                # read in this request (the gate, or just above): no quota, no re-read
                metered=entitlement is not None and entitlement.quota_cells is not None,
            )

    def detached(self, sessions: sessionmaker[Session]) -> Entitled:
        """The same decision, recording through ``sessions`` and no connection of the
        caller's: for a worker thread taking over a request the event loop began."""
        return replace(self, sessions=sessions, connection=None)

    def area(self, selection: dict[str, object]) -> SeaAreaInfo | None:
        """The stored sea area a selection names, if any."""
        name = selection.get("sea_area")
        if not name:
            return None
        with self.sessions() as session:
            return resolve_area(session, str(name))


def entitle(
    session: Session,
    principal: Principal,
    product: ProductInfo,
    subset: SubsetInfo | None = None,
) -> EntitlementInfo | None:
    """The entitlement that lets ``principal`` read ``product`` (on a subset route, that
    ``subset``; None for a public product), or NotEntitled. The data gate's decision,
    also used where work is submitted for later (jobs) and for a run's other products."""
    if product.visibility == "public":
        return None
    return check_access(session, principal, product.id, subset_id=subset.id if subset else None)


@contextmanager
def _transaction(
    sessions: sessionmaker[Session], connection: Connection | None
) -> Iterator[Session]:
    """A transaction of ``sessions``, or on ``connection`` (checked out by the caller)
    when given: a session that joins the connection's transaction, which commits on
    success and rolls back on any error, as ``transaction`` does."""
    if connection is None:
        with transaction(sessions) as session:
            yield session
        return
    with connection.begin(), Session(bind=connection, expire_on_commit=False) as session:
        yield session


def _gate(
    key: KeyCheck,
    params: dict[str, Any],
    sessions: sessionmaker[Session],
    ledger: Ledger,
    bad_body: InvalidParameter | None = None,
    connection: Connection | None = None,
) -> Entitled:
    """The key, its scope and the entitlement, decided in one session (and one worker
    thread): a data request reaches its data after one database round of two reads (the
    key with the account's entitlements, the product)."""
    job = None
    subset = None
    # A transaction: the key's last use is touched.
    with _transaction(sessions, connection) as session:
        held = key.holdings(session)  # who, and what it may see and read, in one read
        principal = held.principal
        if bad_body is not None:
            raise bad_body
        viewer = held.viewer
        if "job_id" in params:
            job = get_job(session, params["job_id"], principal.account_id)
            product = get_product(session, job.product_id, viewer, job.version_id)
        elif "subset_id" in params:
            subset = get_subset(session, params["subset_id"], viewer)
            product = get_product(session, subset.product_id, viewer, subset.version_id)
        elif "product_id" in params:
            product = get_product(session, params["product_id"], viewer)
        else:  # a setup mistake: caught by the gate test, never by a user
            raise TypeError("a data route names neither a product, a subset nor a job")
        entitlement = (
            None
            if product.visibility == "public"  # as ``entitle`` decides
            else held.access(session, product.id, subset.id if subset else None)
        )
    return Entitled(principal, product, entitlement, subset, sessions, ledger, job, connection)


def run_source(
    principal: Principal,
    sessions: sessionmaker[Session],
    store: DataStore,
    gated: ProductInfo | None = None,
) -> Source:
    """Where a component run reads: ``gated`` (already through the gate) as it is, any
    other product it names (a climatology) if the caller may see it and is entitled."""

    def product(product_id: str) -> ProductInfo:
        if gated is not None and product_id == gated.id:
            return gated
        with sessions() as session:
            other = get_product(session, product_id, viewer_for(session, principal))
            entitle(session, principal, other)
            return other

    def area(area_id: str) -> SeaAreaInfo:
        with sessions() as session:
            return resolve_area(session, area_id)

    return Source(store, product, area)


@dataclass(frozen=True, slots=True)
class Gate:
    """The data gate's question, asked but not yet answered: ``decide`` answers it (in a
    worker thread: it reads the database) with an ``Entitled`` or an error. Routes take
    ``EntitledDep`` (decided before the route runs); a route that does its work in a
    worker thread anyway takes ``GateDep`` and decides first thing in that thread (one
    thread hop per request instead of two). The entitlement matrix test covers both."""

    key: KeyCheck
    params: dict[str, Any]
    sessions: sessionmaker[Session]
    ledger: Ledger
    bad_body: InvalidParameter | None = None

    def decide(
        self,
        sessions: sessionmaker[Session] | None = None,
        connection: Connection | None = None,
    ) -> Entitled:
        """The answer, read through ``sessions`` (default: the app's), which the
        ``Entitled`` then records deliveries through; through ``connection`` (one of
        ``sessions``' engine, checked out by the caller for the request) when given."""
        return _gate(
            self.key, self.params, sessions or self.sessions, self.ledger, self.bad_body,
            connection,
        )  # fmt: skip


async def data_gate(request: Request, raw: RawKeyDep) -> Gate:
    """THE gate of every data route: key, `data:read` scope and an entitlement covering
    what the route serves: a product (path parameter ``product_id``, or the ``product``
    of a component run's JSON body; a public product needs no entitlement), a saved
    subset (``subset_id``) or the result of one of the caller's jobs (``job_id``). A
    request without any key is refused here; the rest is decided by ``Gate.decide``.

    ``tests/api/test_gate.py`` walks the route table and fails on any data route without it.
    """
    if not raw:
        raise AuthenticationRequired(NO_KEY)
    params: dict[str, Any] = dict(request.path_params)
    bad_body = None  # told only to an authenticated caller, after the key check
    if "component_id" in params:
        try:
            body = await request.json()  # Starlette keeps it for the route's own parsing
        except ValueError:
            body = None
        product_id = body.get("product") if isinstance(body, dict) else None
        if not isinstance(body, dict):
            bad_body = InvalidParameter("body", "expected a JSON object")
        elif not isinstance(product_id, str) or not product_id:
            bad_body = InvalidParameter("product", "give the id of the product to run on")
        params["product_id"] = product_id
    state = request.app.state  # (the app's objects, without resolving dependencies)
    key = KeyCheck(raw, Scope.DATA_READ, request)
    # Access records commit as ``Settings.metering_durable`` says (api.app).
    return Gate(key, params, state.metering_sessions, state.ledger, bad_body)


GateDep = Annotated[Gate, Depends(data_gate)]


async def _entitled(gate: GateDep) -> Entitled:
    return await run_in_threadpool(gate.decide)


EntitledDep = Annotated[Entitled, Depends(_entitled)]


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
