"""The app factory's process-level settings."""

from __future__ import annotations

import gc
import importlib
import pkgutil
from collections import Counter

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Match
from starlette.types import Scope

from api import create_app, routers
from api.routers import Router
from tests.conftest import Env


def test_the_server_process_freezes_what_start_up_made(env: Env) -> None:
    """``oceanmart serve`` asks for ``freeze_gc``: after start-up the collector's
    permanent generation holds the process's objects; other apps (tests) leave it alone."""
    gc.unfreeze()
    try:
        with TestClient(create_app(env.settings)):
            unfrozen = gc.get_freeze_count()
        with TestClient(create_app(env.settings, freeze_gc=True)):
            assert gc.get_freeze_count() > unfrozen + 10_000
    finally:
        gc.unfreeze()


def _counting_app() -> tuple[FastAPI, Counter[str]]:
    """Two prefixed routers and one without a prefix, whose routes count the times they
    are tried."""
    tried: Counter[str] = Counter()

    class Counted(APIRoute):
        def matches(self, scope: Scope) -> tuple[Match, Scope]:
            tried[self.path] += 1
            return super().matches(scope)

    app = FastAPI()
    first = Router(prefix="/first", route_class=Counted)
    second = Router(prefix="/second", route_class=Counted)
    bare = Router(route_class=Counted)
    for path in ("/one", "/two", "/{name}/three"):
        first.get(path)(lambda: "first")
        second.get(path)(lambda: "second")
    bare.get("/bare/{name}")(lambda name: name)
    for router in (first, bare, second):
        app.include_router(router)
    return app, tried


def test_a_router_does_not_try_its_routes_on_a_path_outside_its_prefix() -> None:
    """``api.routers.Router``: the routes of routers ahead whose prefix the path lacks are
    never tried (FastAPI would try each); the answers are those of plain routers, also
    behind a proxy's root path, for a path that only starts like a prefix, and for one
    no route has."""
    app, tried = _counting_app()
    for root in ("", "/proxied"):
        client = TestClient(app, root_path=root)
        tried.clear()
        assert client.get(f"{root}/second/x/three").json() == "second"
        assert not any(path.startswith("/first") for path in tried), tried
        assert tried["/second/{name}/three"] >= 1
        assert client.get(f"{root}/first/two").json() == "first"
        assert client.get(f"{root}/bare/firstly").json() == "firstly"
        assert client.get(f"{root}/firstly/one").status_code == 404
        assert client.get(f"{root}/second/one", follow_redirects=False).json() == "second"
        assert client.get(f"{root}/second/one/", follow_redirects=False).status_code == 307


def test_a_router_included_under_prefixes_answers_as_an_api_router() -> None:
    """The prefixes a ``Router`` is included under (``include_router(prefix=...)``, a
    router inside another) come before its own: the same answers as plain routers."""
    answers = {}
    for cls in (APIRouter, Router):
        app = FastAPI()
        alone = cls(prefix="/v1")
        alone.get("/x")(lambda: "x")
        app.include_router(alone, prefix="/api")
        outer, inner = cls(prefix="/o"), cls(prefix="/i")
        inner.get("/z")(lambda: "z")
        outer.include_router(inner, prefix="/mid")
        app.include_router(outer, prefix="/top")
        client = TestClient(app)
        paths = ("/api/v1/x", "/top/o/mid/i/z", "/v1/x", "/o/i/z", "/top/o/i/z", "/api/v1")
        answers[cls] = [client.get(p).status_code for p in paths]
    assert answers[Router] == answers[APIRouter] == [200, 200, 404, 404, 404, 404]


def test_every_router_of_the_app_skips_foreign_paths(env: Env) -> None:
    """Every router the app includes is an ``api.routers.Router`` (a plain ``APIRouter``
    would try all its routes on every request routed past it)."""
    modules = [
        importlib.import_module(f"api.routers.{m.name}")
        for m in pkgutil.iter_modules(routers.__path__)
    ]
    app = create_app(env.settings)
    included = {id(r.original_router) for r in app.router.routes if hasattr(r, "original_router")}
    for module in modules:
        assert type(module.router) is Router, module.__name__
        assert id(module.router) in included, module.__name__
    assert len(included) == len(modules)
