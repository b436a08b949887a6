"""Shared fixtures: both database backends, the real corpus, a real HTTP server.

Every database test runs on SQLite and on the PostgreSQL server (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``, override with
``OCEANMART_TEST_POSTGRES_URL``). Each test session gets its own PostgreSQL schema
and SQLite file, so concurrent runs (and xdist workers) never collide. With ``CI`` set,
a missing PostgreSQL server, corpus or reference tool fails the run instead of skipping.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import uvicorn
import xarray as xr
from hypothesis import settings as hypothesis_settings
from sqlalchemy.orm import Session, sessionmaker

from catalog.store import DataStore
from ledger import Ledger
from oceanmart.accounts import create_account, create_key
from oceanmart.db import make_engine, make_sessionmaker, transaction, upgrade
from oceanmart.errors import CorpusUnavailable
from oceanmart.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
LEVITUS_SPEC = ROOT / "ingest" / "specs" / "levitus-climatology.yaml"
PG_URL = os.environ.get(
    "OCEANMART_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
STRICT = bool(os.environ.get("CI"))

# Tests never assert wall-clock time: Hypothesis' per-example deadline (200 ms) is one,
# and it failed examples that took 4 ms on replay when the machine was loaded.
hypothesis_settings.register_profile("oceanmart", deadline=None)
hypothesis_settings.load_profile("oceanmart")


def unavailable(reason: str) -> None:
    """Skip locally; fail in CI, which promises every dependency is there."""
    if STRICT:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        unavailable(f"`{name}` is not installed (make system-deps)")
    assert path is not None
    return path


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    return Path(os.environ.get("OCEANMART_CORPUS_DIR", ROOT / ".cache" / "corpus"))


@pytest.fixture(scope="session")
def levitus_file(corpus_dir: Path) -> Path:
    from ingest.corpus import corpus_path

    try:
        return corpus_path("levitus_climatology.cdf", corpus_dir)
    except CorpusUnavailable as exc:
        unavailable(f"corpus: {exc.detail}")
        raise


def _new_database(backend: str, tmp: Path) -> tuple[str, str | None]:
    """A fresh, empty database URL for ``backend`` and the PG schema to drop after."""
    if backend == "sqlite":
        return f"sqlite:///{tmp / f'{uuid.uuid4().hex}.db'}", None
    schema = f"om_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL)
    try:
        with admin.begin() as conn:
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    except sa.exc.OperationalError as exc:
        unavailable(f"PostgreSQL at {PG_URL} is not reachable: {exc.orig}")
    finally:
        admin.dispose()
    return f"{PG_URL}?options=-csearch_path%3D{schema}", schema


def _drop_schema(schema: str | None) -> None:
    if schema is None:
        return
    admin = sa.create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    admin.dispose()


@dataclass
class Env:
    """One migrated database plus a data folder: what an OceanMart deployment needs."""

    backend: str
    settings: Settings
    sessions: sessionmaker[Session]
    store: DataStore

    @cached_property
    def ledger(self) -> Ledger:
        """The deployment's ledger (what the app builds at start-up)."""
        return Ledger(self.settings)

    def admin_key(self) -> str:
        name = unique("admin")
        with transaction(self.sessions) as s:
            create_account(s, name, "provider")
            return create_key(s, name, "admin")[1]


def _make_env(backend: str, tmp: Path, corpus: Path) -> tuple[Env, str | None]:
    url, schema = _new_database(backend, tmp)
    settings = Settings(
        database_url=url,
        data_url=str(tmp / "data"),
        var_dir=tmp / "var",
        corpus_dir=corpus,
        log_format="json",
    )
    engine = make_engine(settings.database_url)
    upgrade(engine)
    return Env(
        backend, settings, make_sessionmaker(engine), DataStore.from_settings(settings)
    ), schema


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def env(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path
) -> Iterator[Env]:
    """A migrated database shared by the session (tests use unique names in it)."""
    tmp = tmp_path_factory.mktemp(f"env-{request.param}")
    made, schema = _make_env(request.param, tmp, corpus_dir)
    yield made
    made.sessions.kw["bind"].dispose()
    _drop_schema(schema)


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_env(request: pytest.FixtureRequest, tmp_path: Path, corpus_dir: Path) -> Iterator[Env]:
    """An empty, migrated database of its own, for tests that count rows."""
    made, schema = _make_env(request.param, tmp_path, corpus_dir)
    yield made
    made.sessions.kw["bind"].dispose()
    _drop_schema(schema)


def ingest_spec(env: Env, spec: Path) -> str:
    """Ingest a product spec into ``env`` (idempotent); returns its product id."""
    from ingest import ingest, load_spec

    try:
        result = ingest(
            load_spec(spec),
            sessions=env.sessions,
            store=env.store,
            corpus_dir=env.settings.corpus_dir,
        )
    except CorpusUnavailable as exc:
        unavailable(f"corpus: {exc.detail}")
        raise
    return result.product_id


@pytest.fixture(scope="session")
def levitus(env: Env, levitus_file: Path) -> str:
    """The Levitus product, ingested once per backend; returns its product id."""
    return ingest_spec(env, LEVITUS_SPEC)


@pytest.fixture(scope="session")
def coads(env: Env) -> str:
    """The COADS monthly climatology (SST, winds...), ingested once per backend."""
    return ingest_spec(env, ROOT / "ingest" / "specs" / "coads-climatology.yaml")


@pytest.fixture(scope="session")
def navy_winds(env: Env) -> str:
    """Monthly navy winds 1982-1992 (a time axis), ingested once per backend."""
    return ingest_spec(env, ROOT / "ingest" / "specs" / "navy-winds-monthly.yaml")


SHARDED = "coads-sharded"


def shard_series_copy(env: Env, product_id: str, inner: int = 2) -> None:
    """Rewrite a product's series copy in the sharded layout of ingest's contract: zarr v3
    shards of today's series chunk grid holding inner chunks of ``inner`` x ``inner``
    cells over the whole time axis; the version record's ``chunks`` then names the inner
    chunks and ``shards`` the shards. Stands in for the sharded ingest until it lands."""
    from sqlalchemy import update

    from catalog import products
    from catalog.models import ProductVersion
    from catalog.products import get_product

    with env.sessions() as s:
        version = get_product(s, product_id).version
    assert version is not None
    path = Path(env.store.location(version.store_path, "series.zarr"))
    ds = xr.open_zarr(path, zarr_format=3, chunks=None).load()
    record = {**version.chunks["series"], "chunks": {}, "shards": {}}
    for name, var in ds.variables.items():
        enc = {k: v for k, v in var.encoding.items() if k not in ("chunks", "preferred_chunks")}
        if name in ds.data_vars:
            dims = list(map(str, var.dims))
            shard = [version.chunks["series"]["chunks"][name][d] for d in dims]
            cells = [n if d == "time" else min(inner, n) for d, n in zip(dims, shard, strict=True)]
            enc.update(chunks=tuple(cells), shards=tuple(shard))
            record["chunks"][name] = dict(zip(dims, cells, strict=True))
            record["shards"][name] = dict(zip(dims, shard, strict=True))
        var.encoding = enc
    staging = path.with_name("series.sharded.zarr")
    ds.to_zarr(staging, zarr_format=3, consolidated=True, mode="w")
    shutil.rmtree(path)
    staging.rename(path)
    with transaction(env.sessions) as s:
        s.execute(
            update(ProductVersion)
            .where(ProductVersion.id == version.id)
            .values(chunks={**version.chunks, "series": record})
        )
    products._VERSIONS.clear()  # versions are cached as immutable; this one was rewritten


@pytest.fixture(scope="session")
def coads_sharded(env: Env) -> str:
    """COADS again as product ``coads-sharded``, its series copy sharded (see
    ``shard_series_copy``); read only after resharding, so no cache holds the old copy.
    Private, so catalog listings of other tests do not see it."""
    from ingest import ingest, load_spec
    from ingest.spec import Visibility

    spec = load_spec(ROOT / "ingest" / "specs" / "coads-climatology.yaml")
    spec = spec.model_copy(update={"id": SHARDED, "visibility": Visibility.PRIVATE})
    try:
        ingest(spec, sessions=env.sessions, store=env.store, corpus_dir=env.settings.corpus_dir)
    except CorpusUnavailable as exc:
        unavailable(f"corpus: {exc.detail}")
    shard_series_copy(env, SHARDED)
    return SHARDED


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class Server:
    url: str
    env: Env
    app: Any = None  # the FastAPI app it serves (its state: job runner, limiter)

    def client(self, key: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


@contextmanager
def running(settings: Settings, app: Any = None) -> Iterator[str]:
    """The real app for ``settings`` (or ``app``) on a real socket (uvicorn in a thread);
    yields its URL."""
    from api import create_app

    port = free_port()
    config = uvicorn.Config(
        app or create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False
    )
    srv = uvicorn.Server(config)
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def get_while_key_locked(
    server: Server, key_id: str, key: str, path: str, params: dict[str, str] | None = None
) -> httpx.Response:
    """GET ``path`` with ``key`` on a server of its own that counts a burst of one request
    per key (a second count would be a 429), while another transaction holds a lock the
    key's first use needs (the database's write lock on SQLite, the key's row on
    PostgreSQL); checks the request waited for it rather than failing at once, and
    returns its answer once the lock was released."""
    from concurrent.futures import ThreadPoolExecutor, wait

    from oceanmart.accounts import ApiKey

    settings = server.env.settings.model_copy(
        update={"rate_limit_per_s": 0.001, "rate_limit_burst": 1}
    )
    with (
        running(settings) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c,
        ThreadPoolExecutor(1) as pool,
    ):
        with transaction(server.env.sessions) as s:
            s.execute(sa.update(ApiKey).where(ApiKey.id == key_id).values(label="held"))
            asked = pool.submit(c.get, path, params=params)
            done, _ = wait([asked], timeout=1.0)
            assert not done  # it waits for the lock (and did not fail at once)
        return asked.result()


@pytest.fixture(scope="session")
def server(env: Env) -> Iterator[Server]:
    """One server per backend for the whole session."""
    from api import create_app

    app = create_app(env.settings)
    with running(env.settings, app) as url:
        yield Server(url, env, app)


@pytest.fixture
def slow_cuts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every cut slow: a dask graph with one chunk per latitude row, 0.25 s each."""
    import catalog.subset as engine

    real_cut = engine.cut

    def slow_cut(*args: Any, **kw: Any) -> Any:
        selected, plan = real_cut(*args, **kw)
        chunked = selected.chunk({"latitude": 1})

        def nap(block: xr.Dataset) -> xr.Dataset:
            time.sleep(0.25)
            return block

        return chunked.map_blocks(nap, template=chunked), plan

    monkeypatch.setattr(engine, "cut", slow_cut)
