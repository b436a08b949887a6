"""Alembic environment: runs on the engine handed in by ``oceanmart.db.upgrade``."""

from __future__ import annotations

from alembic import context

# Every package's tables, so autogenerate and the schema check see the whole model.
import ledger._store  # noqa: F401
import oceanmart.accounts  # noqa: F401
import pricing.entitlements  # noqa: F401
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
