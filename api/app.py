"""The FastAPI app factory: one Settings in, a complete app out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI

import oceanmart
from api import errors
from api.middleware import AccessLog
from api.routers import (
    accounts,
    components,
    entitlements,
    health,
    ledger,
    plans,
    products,
    sea_areas,
    stac,
)
from catalog.store import DataStore
from ledger import Ledger, LedgerWorker
from oceanmart.db import make_engine, make_sessionmaker
from oceanmart.settings import Settings

DESCRIPTION = """
OceanMart serves ocean, weather and sea-area data products.

Authenticate with an API key as `Authorization: Bearer <key>`, `X-API-Key: <key>`,
the HTTP Basic password, or `?api_key=<key>`. Every error is
`application/problem+json` (RFC 9457) whose `type` is stable per error kind.
"""


def create_app(settings: Settings) -> FastAPI:
    """Build the app for ``settings``; the database schema must already be migrated."""
    engine = make_engine(settings.database_url, pool_pre_ping=True)
    sessions = make_sessionmaker(engine)
    the_ledger = Ledger(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The ledger's integrator/checkpointer/anchorer runs beside the requests.
        worker = LedgerWorker(the_ledger, sessions) if settings.ledger_background else None
        if worker:
            worker.start()
        try:
            yield
        finally:
            if worker:
                worker.stop()

    app = FastAPI(
        title="OceanMart",
        version=oceanmart.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.store = DataStore.from_settings(settings)
    app.state.ledger = the_ledger
    errors.install(app)
    for router in (
        health.router,
        accounts.router,
        entitlements.router,
        products.router,
        plans.router,
        stac.router,
        components.router,
        sea_areas.router,
        ledger.router,
    ):
        app.include_router(router)
    app.add_middleware(AccessLog)
    # Outermost, so the access log and problem bodies see the request id.
    app.add_middleware(CorrelationIdMiddleware, header_name="X-Request-ID")
    return app
