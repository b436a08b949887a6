"""The FastAPI app factory: one Settings in, a complete app out."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

import oceanmart
from api import errors
from api.limits import KeyLimiter
from api.middleware import AccessLog
from api.routers import (
    accounts,
    components,
    console,
    credits,
    edr,
    entitlements,
    health,
    jobs,
    ledger,
    plans,
    pricebooks,
    products,
    quotes,
    reports,
    sea_areas,
    stac,
    subsets,
    webhooks,
    zarr,
)
from catalog.job_runner import JobRunner
from catalog.store import DataStore
from catalog.zarr_http import ZarrStores
from ledger import Ledger, LedgerWorker
from oceanmart.db import make_engine, make_sessionmaker
from oceanmart.settings import Settings
from pricing.checkout import payments_from_settings

# How long a statement run on the event loop may wait for another transaction's lock.
LOOP_LOCK_WAIT_MS = 5

DESCRIPTION = """
OceanMart serves ocean, weather and sea-area data products.

Authenticate with an API key as `Authorization: Bearer <key>`, `X-API-Key: <key>`,
the HTTP Basic password, or `?api_key=<key>`. Every error is
`application/problem+json` (RFC 9457) whose `type` is stable per error kind.
"""


def _freeze() -> None:
    """What is alive now lives as long as the process: out of the collector's way."""
    gc.collect()
    gc.freeze()


def create_app(settings: Settings, *, freeze_gc: bool = False) -> FastAPI:
    """Build the app for ``settings``; the database schema must already be migrated.

    ``freeze_gc`` (the server process, ``oceanmart serve``): once started, everything
    alive (modules, the app, xarray/pandas/SQLAlchemy internals: ~10^6 objects) moves to
    the garbage collector's permanent generation (``gc.freeze``), so its full collections,
    which a request triggers now and then, no longer walk them all (tens of ms each).
    Once more after the ledger thread's first pass: the chain it sets up (py-evm's
    modules and state, ~10^5 objects) made each full collection ~0.2 s again, ~0.4 ms
    of CPU per point series in process."""
    engine = make_engine(settings.database_url, ping_idle_s=2.0)
    sessions = make_sessionmaker(engine)
    # Commits that do not wait for the disk: quotes only (pricing.quotes says why).
    relaxed = make_engine(settings.database_url, durable=False, ping_idle_s=2.0)
    # The same, for quotes run on the event loop: a statement gives up on a lock at once
    # (the quote then waits in a worker thread through ``relaxed``; api.routers.quotes).
    # On PostgreSQL its statements commit themselves: a quote reads in one statement and
    # writes in one (pricing.quotes), so no BEGIN and COMMIT round trips either.
    pg = settings.database_url.startswith("postgresql")
    on_loop = make_engine(
        settings.database_url,
        durable=False,
        ping_idle_s=2.0,
        lock_wait_ms=LOOP_LOCK_WAIT_MS,
        **({"isolation_level": "AUTOCOMMIT"} if pg else {}),
    )
    # The data gate and the access records of deliveries: commits that wait for the disk
    # only with ``metering_durable`` (README, Data access, says what may be lost).
    metering = sessions if settings.metering_durable else make_sessionmaker(relaxed)
    # The same for small point reads answered on the event loop (api.routers.edr):
    # connections that give up on a lock after LOOP_LOCK_WAIT_MS (the request then runs
    # again in a worker thread, through ``metering``).
    loop_data = make_engine(
        settings.database_url,
        durable=settings.metering_durable,
        ping_idle_s=2.0,
        lock_wait_ms=LOOP_LOCK_WAIT_MS,
    )
    store = DataStore.from_settings(settings)
    runner = JobRunner(
        sessions, store, workers=settings.job_workers, max_job_bytes=settings.max_job_bytes
    )
    the_ledger = Ledger(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # The ledger's integrator/checkpointer/anchorer runs beside the requests.
        worker = (
            LedgerWorker(the_ledger, sessions, on_ready=_freeze if freeze_gc else None)
            if settings.ledger_background
            else None
        )
        if worker:
            worker.start()
        runner.start()
        if freeze_gc:
            _freeze()
        try:
            yield
        finally:
            runner.stop()
            if worker:
                worker.stop()
            # their connections, not the engines
            for pooled in (engine, relaxed, on_loop, loop_data):
                pooled.dispose()
            gc.unfreeze()

    app = FastAPI(
        title="OceanMart",
        version=oceanmart.__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = sessions
    app.state.relaxed_engine = relaxed
    app.state.loop_engine = on_loop
    app.state.relaxed_sessions = make_sessionmaker(relaxed)
    app.state.metering_sessions = metering
    app.state.loop_sessions = make_sessionmaker(loop_data)
    app.state.loop_data_engine = loop_data
    app.state.store = store
    app.state.jobs = runner
    app.state.zarr = ZarrStores(app.state.store)
    app.state.limiter = KeyLimiter(
        settings.rate_limit_per_s, settings.rate_limit_burst, settings.max_heavy_per_key
    )
    app.state.payments = payments_from_settings(settings, the_ledger)
    app.state.ledger = the_ledger
    errors.install(app)
    # Routes are matched in this order, the busiest first: quoting (the busiest POST), Zarr
    # over HTTP (an open_zarr is 8 requests), EDR; no other router has a path under
    # /v1/quotes, /v1/orders, /zarr or /edr. A router whose prefix a path lacks costs it
    # ~1 us (``api.routers.Router``), one without a prefix ~2 us a route.
    for router in (
        quotes.router,
        zarr.router,
        edr.router,
        health.router,
        jobs.router,
        accounts.router,
        entitlements.router,
        products.router,
        plans.router,
        stac.router,
        components.router,
        sea_areas.router,
        subsets.router,
        webhooks.router,
        credits.router,
        pricebooks.router,
        reports.router,
        console.router,
        ledger.router,
    ):
        app.include_router(router)
    app.mount("/console/static", StaticFiles(directory=console.CONSOLE_DIR / "static"), "console")
    # Request ids and the access log (one pure-ASGI layer).
    app.add_middleware(AccessLog)
    return app
