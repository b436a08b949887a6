"""Database engine, sessions, the declarative base and migrations.

SQLite (embedded default) and PostgreSQL (psycopg 3) are both first-class: every
database test runs on both. The schema is owned by Alembic migrations in
``oceanmart/migrations``; ``Base.metadata`` mirrors it and a test checks they agree.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event, text
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DisconnectionError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _has_nul(params: Any) -> bool:
    if isinstance(params, str):
        return "\x00" in params
    if isinstance(params, dict):
        return any(_has_nul(v) for v in params.values())
    if isinstance(params, list | tuple):
        return any(_has_nul(v) for v in params)
    return False


def _refuse_nul(
    conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
) -> None:
    """Text with a NUL character is bad input on every backend: PostgreSQL cannot store
    it (a driver error, a 500 otherwise) and SQLite would cut C strings at it."""
    if _has_nul(parameters):
        from oceanmart.errors import InvalidInput

        raise InvalidInput("text must not contain NUL (U+0000) characters")


class RawJSON(str):
    """JSON text already serialised, for a JSON column: stored as it is (a value that is
    serialised once for both the database and the response)."""

    __slots__ = ()


def _json_serializer(value: Any) -> str:
    return value if isinstance(value, RawJSON) else json.dumps(value)


def make_engine(
    url: str,
    *,
    durable: bool = True,
    ping_idle_s: float | None = None,
    lock_wait_ms: int | None = None,
    **kwargs: Any,
) -> Engine:
    """Create an engine; for SQLite, create the folder and turn on WAL and foreign keys.

    ``durable=False``: an engine whose commits do not wait for the disk (SQLite WAL with
    ``synchronous=NORMAL``, PostgreSQL ``synchronous_commit=off``), for writes that may
    be lost in a power failure, an OS crash or a PostgreSQL server crash (never in a
    crash of our process, never half-applied). The database's log is one ordered stream,
    so a later durable commit makes the relaxed ones before it durable too. Quotes use it
    (``pricing.quotes`` says why), and the access records of data deliveries unless
    ``Settings.metering_durable`` (README, Data access). Set once per connection, not
    per transaction: a statement less per transaction (on PostgreSQL a round trip).

    ``ping_idle_s``: check a pooled connection before use when it has been idle that long
    (a PostgreSQL restart or an idle timeout may have closed it), a lost one is replaced.

    ``lock_wait_ms``: how long a statement may wait for another transaction's lock before
    it fails with an error ``is_lock_timeout`` recognises (SQLite's busy timeout,
    PostgreSQL's ``lock_timeout``; PostgreSQL statements also end after 100 times that,
    ``statement_timeout``). None: 30 s for SQLite, PostgreSQL's defaults. For work run on
    the event loop, which must never wait long (see ``api.routers.quotes``).
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        busy_s = 30.0 if lock_wait_ms is None else lock_wait_ms / 1000
        kwargs.setdefault("connect_args", {"timeout": busy_s})
    kwargs.setdefault("json_serializer", _json_serializer)
    engine = create_engine(url, **kwargs)
    event.listen(engine, "before_cursor_execute", _refuse_nul)
    if ping_idle_s is not None and engine.dialect.name != "sqlite":  # a file never goes away
        _ping_when_idle(engine, ping_idle_s)
    if engine.dialect.name == "sqlite":
        # WAL: with synchronous=NORMAL a commit is in the WAL but not yet fsynced.
        synchronous = "FULL" if durable else "NORMAL"

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy_s * 1000)}")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.close()

    elif engine.dialect.name == "postgresql" and (not durable or lock_wait_ms is not None):
        settings = [] if durable else ["SET synchronous_commit TO OFF"]
        if lock_wait_ms is not None:
            settings.append(f"SET lock_timeout TO {int(lock_wait_ms)}")
            settings.append(f"SET statement_timeout TO {100 * int(lock_wait_ms)}")

        @event.listens_for(engine, "connect")
        def _pg_settings(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            for statement in settings:  # for the connection's lifetime
                cur.execute(statement)
            cur.close()
            dbapi_conn.commit()

    return engine


def is_lock_timeout(exc: BaseException) -> bool:
    """Did a statement give up waiting for a lock (``make_engine(lock_wait_ms=...)``):
    SQLite ``database is locked`` (SQLITE_BUSY), PostgreSQL ``lock_not_available`` or
    ``query_canceled`` (a statement timeout)?"""
    orig = getattr(exc, "orig", None)
    if not isinstance(exc, OperationalError) or orig is None:
        return False
    name = getattr(orig, "sqlite_errorname", None) or ""
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):  # also BUSY_SNAPSHOT and such
        return True
    return getattr(orig, "sqlstate", None) in ("55P03", "57014")


_CHECKED_IN = "oceanmart_checked_in"


def _ping_when_idle(engine: Engine, idle_s: float) -> None:
    """SQLAlchemy's ``pool_pre_ping``, but only for connections idle ``idle_s`` or longer.

    ``pool_pre_ping`` pings on every checkout: a round trip before every session, where a
    request uses one or two. A connection in steady use was working a moment ago; one
    that broke since anyway fails its statement, and SQLAlchemy then invalidates the
    pool's older connections (its pessimistic disconnect handling), so the next requests
    get fresh ones. This is SQLAlchemy's documented checkout-event recipe."""

    @event.listens_for(engine, "checkin")
    def _stamp(_dbapi_conn: Any, record: Any) -> None:
        record.info[_CHECKED_IN] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        if time.monotonic() - record.info.get(_CHECKED_IN, 0.0) < idle_s:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as e:
            # The pool drops this connection and checks out another (a new one if need be).
            raise DisconnectionError(f"pooled connection lost: {e}") from e


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error (durable or not as
    the factory's engine is: ``make_engine(durable=...)``)."""
    with factory() as session, session.begin():
        yield session


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    cfg.attributes["engine"] = engine
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply Alembic migrations up to ``revision`` (``oceanmart db upgrade``)."""
    from alembic import command

    command.upgrade(_alembic_config(engine), revision)


def current_revision(engine: Engine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


_REVISION_LINE = re.compile(
    r"""^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(?:None|["']([^"'\n]+)["'])\s*$""",
    re.MULTILINE,
)


def _head_from_files() -> str | None:
    """The newest migration, from the ``revision`` / ``down_revision`` lines of the files
    in ``migrations/versions``; None unless they form one straight line (then Alembic
    decides). Hand-read because Alembic's ScriptDirectory imports all of Alembic (~0.35 s,
    most of a small ingest's catalog work); ``test_db`` checks it agrees with Alembic."""
    down_of: dict[str, str | None] = {}
    for path in (Path(__file__).parent / "migrations" / "versions").glob("*.py"):
        lines = {m.group(1): m.group(2) for m in _REVISION_LINE.finditer(path.read_text())}
        if "revision" not in lines or lines["revision"] is None or "down_revision" not in lines:
            return None
        down_of[lines["revision"]] = lines["down_revision"]
    heads = set(down_of) - set(down_of.values())
    if len(heads) != 1 or sum(d is None for d in down_of.values()) != 1:
        return None
    return heads.pop()


def schema_is_current(engine: Engine) -> bool:
    """Whether the database is at the newest migration. Reads ``alembic_version`` and the
    migration files directly when that says yes; anything else is Alembic's answer."""
    head = _head_from_files()
    if head is not None:
        try:
            with engine.connect() as conn:
                stored = conn.execute(text("SELECT version_num FROM alembic_version")).all()
        except SQLAlchemyError:
            stored = []
        if [tuple(row) for row in stored] == [(head,)]:
            return True
    return current_revision(engine) == head_revision(engine)


def head_revision(engine: Engine) -> str | None:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(_alembic_config(engine)).get_current_head()
