"""Thin routers: parse, call a service, return a response model."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.routing import _get_scope_included_router  # (what APIRouter.matches reads)
from starlette._utils import get_route_path  # (as FastAPI does: the path under root_path)
from starlette.routing import Match
from starlette.types import Scope


class Router(APIRouter):
    """An ``APIRouter`` that turns away a path outside its prefix before trying its routes.

    FastAPI (since 0.140) matches a request against every route of every router included
    before the one that serves it, at ~2 us a route (each try saves and restores its
    place in the scope), then matches the chosen router's routes again: in process, a
    Zarr read behind 12 routers (~60 routes) spent ~90 us finding its route, an EDR point
    ~77 us. Every route of a router starts with its prefix (``APIRouter`` prepends it)
    after those it was included under, so a path that does not start with them matches
    none of them."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if self.prefix and "{" not in self.prefix:
            # The prefixes it was included under come first (``include_router(prefix=...)``,
            # a router included in another); unknown: try the routes, as FastAPI does.
            included = _get_scope_included_router(scope)
            outer = getattr(getattr(included, "include_context", None), "prefix", None)
            if isinstance(outer, str) and not get_route_path(scope).startswith(outer + self.prefix):
                return Match.NONE, {}
        return super().matches(scope)
