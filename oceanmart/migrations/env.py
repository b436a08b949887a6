"""Alembic environment: runs on the engine handed in by ``oceanmart.db.upgrade``."""

from __future__ import annotations

from alembic import context

# Every package's tables, so autogenerate and the schema check see the whole model.
import catalog.jobs
import catalog.models
import catalog.sea_areas  # noqa: F401
import ledger._store  # noqa: F401
import oceanmart.accounts
import oceanmart.web_sessions  # noqa: F401
import pricing.books
import pricing.credits
import pricing.entitlements
import pricing.metering
import pricing.orders
import pricing.quotes
import pricing.stripe_payments  # noqa: F401
from oceanmart.db import Base

metadata = Base.metadata

config = context.config
engine = config.attributes.get("engine")
if engine is None:  # pragma: no cover - `alembic` CLI use without oceanmart
    raise SystemExit("run migrations with `oceanmart db upgrade`")

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
