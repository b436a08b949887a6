from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.orm import Session

import catalog.jobs
import catalog.models
import catalog.sea_areas  # noqa: F401
import ledger._store  # noqa: F401
import oceanmart.web_sessions  # noqa: F401
import pricing.books
import pricing.credits
import pricing.entitlements
import pricing.metering
import pricing.orders
import pricing.quotes
import pricing.stripe_payments  # noqa: F401
from oceanmart.accounts import ApiKey
from oceanmart.db import (
    Base,
    _head_from_files,
    current_revision,
    head_revision,
    schema_is_current,
    transaction,
)
from tests.conftest import ROOT, Env, unique


def test_migrations_reach_head_and_match_the_models(fresh_env: Env) -> None:
    engine = fresh_env.sessions.kw["bind"]
    newest = max(p.name[:4] for p in (ROOT / "oceanmart/migrations/versions").glob("0*.py"))
    assert current_revision(engine) == head_revision(engine) == newest
    # the CLI's quick check reads the files and the version table itself: same answer
    assert _head_from_files() == newest and schema_is_current(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    try:
        assert not schema_is_current(engine)
    finally:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :v"), {"v": newest})
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_datetimes_come_back_aware_in_utc(env: Env) -> None:
    from oceanmart.accounts import create_account, create_key

    name = unique("tz")
    shanghai = timezone(timedelta(hours=8))
    expires = datetime(2031, 1, 2, 8, 0, tzinfo=shanghai)
    with transaction(env.sessions) as s:
        create_account(s, name, "research")
        info, _ = create_key(s, name, "catalog:read", expires_at=expires)
    with env.sessions() as s:
        row = s.get(ApiKey, info.id)
        assert row is not None and row.expires_at is not None
        assert row.expires_at == expires
        assert row.expires_at.utcoffset() == timedelta(0)
        assert row.expires_at.tzinfo == UTC


def test_naive_datetimes_are_refused(env: Env) -> None:
    from oceanmart.accounts import create_account, create_key
    from oceanmart.errors import InvalidInput

    name = unique("naive")
    with transaction(env.sessions) as s:
        create_account(s, name, "research")
    with pytest.raises(InvalidInput), transaction(env.sessions) as s:
        create_key(s, name, "catalog:read", expires_at=datetime(2031, 1, 1))


def test_text_with_nul_is_bad_input_on_every_backend(env: Env) -> None:
    from oceanmart.accounts import get_account
    from oceanmart.errors import InvalidInput

    with pytest.raises(InvalidInput) as info, env.sessions() as s:
        get_account(s, "bad\x00name")
    assert "NUL" in info.value.detail


def _query(dialect: str) -> str:
    return "PRAGMA synchronous" if dialect == "sqlite" else "SHOW synchronous_commit"


def _durability(dbapi_conn: object, dialect: str) -> str:
    """The commit durability setting of a raw (pooled, idle) connection, read directly."""
    value = str(dbapi_conn.execute(_query(dialect)).fetchone()[0])  # type: ignore[attr-defined]
    dbapi_conn.rollback()  # type: ignore[attr-defined]
    return value


def test_a_relaxed_engine_commits_without_waiting_and_the_default_engine_waits(
    env: Env,
) -> None:
    from oceanmart.accounts import Account, get_account
    from oceanmart.db import make_engine, make_sessionmaker
    from oceanmart.errors import NotFound

    def add(s: Session, name: str) -> None:
        s.add(Account(name=name, kind="research", created_at=datetime.now(UTC)))
        s.flush()

    durable, relaxed = {"sqlite": ("2", "1"), "postgresql": ("on", "off")}[env.backend]
    engine = make_engine(env.settings.database_url, durable=False)
    try:
        name, gone = unique("relaxed"), unique("gone")
        with transaction(make_sessionmaker(engine)) as s:
            raw = s.connection().connection.dbapi_connection
            assert str(s.connection().exec_driver_sql(_query(env.backend)).scalar()) == relaxed
            add(s, name)
        assert _durability(raw, env.backend) == relaxed  # the setting stays on its connections
        with pytest.raises(RuntimeError), transaction(make_sessionmaker(engine)) as s:
            add(s, gone)
            raise RuntimeError("roll back")
        with transaction(env.sessions) as s:  # the default engine waits for the disk
            assert str(s.connection().exec_driver_sql(_query(env.backend)).scalar()) == durable
            assert get_account(s, name).name == name  # committed
            with pytest.raises(NotFound):
                get_account(s, gone)  # rolled back
    finally:
        engine.dispose()


@pytest.mark.parametrize("idle_s", [0.0, 3600.0])
def test_an_idle_pooled_connection_that_was_closed_is_replaced(idle_s: float) -> None:
    """``ping_idle_s``: a pooled PostgreSQL connection closed by the server while idle
    (a restart, an idle timeout) is checked and replaced before use; one used within the
    idle time is not pinged, so its first statement meets the closed connection."""
    import psycopg
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from oceanmart.db import make_engine
    from tests.conftest import PG_URL, unavailable

    try:
        killer = psycopg.connect(PG_URL.replace("+psycopg", ""), autocommit=True)
    except psycopg.OperationalError as e:
        unavailable(f"PostgreSQL at {PG_URL}: {e}")
    engine = make_engine(PG_URL, ping_idle_s=idle_s, pool_size=1, max_overflow=0)
    try:
        with engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with killer:
            killer.execute("SELECT pg_terminate_backend(%s)", (pid,))
        if idle_s:
            with pytest.raises(DBAPIError), engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        with engine.connect() as conn:  # after a failure the pool hands out a new one
            assert conn.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        engine.dispose()
