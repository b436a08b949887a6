"""One gate: every route that serves data depends on ``api.deps.data_gate``."""

from __future__ import annotations

import fastapi.routing
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.routing import APIRoute

from api import create_app
from api.deps import data_gate
from tests.conftest import Env

DATA_PATH_MARKERS = ("/subset", "/download", "/zarr", "/edr", "/data")


def _depends_on(dep: Dependant, target: object) -> bool:
    return dep.call is target or any(_depends_on(d, target) for d in dep.dependencies)


# Catalog documents that live under a data path but hold no data (EDR's landing page,
# conformance and collection metadata). Declared on the route and listed here, so the
# exemption cannot grow unnoticed.
METADATA_ROUTES = {
    "/edr",
    "/edr/conformance",
    "/edr/collections",
    "/edr/collections/{product_id}",
}


def is_metadata(route: APIRoute) -> bool:
    return bool((route.openapi_extra or {}).get("x-oceanmart-metadata"))


def serves_data(path: str, route: APIRoute) -> bool:
    """A route serves data if it says so, streams files, or lives under a data path
    (unless it is one of the declared metadata documents)."""
    if is_metadata(route) and path in METADATA_ROUTES:
        return False
    return (
        bool((route.openapi_extra or {}).get("x-oceanmart-data"))
        or route.response_class in (FileResponse, StreamingResponse)
        or any(m in path for m in DATA_PATH_MARKERS)
    )


def api_routes(app: FastAPI) -> list[tuple[str, APIRoute]]:
    """(effective path, route) for every API route, through included routers.

    FastAPI >= 0.16x keeps included routers as lazy nodes in ``app.routes``; its public
    ``iter_route_contexts`` flattens them.
    """
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    if flatten is None:  # older FastAPI: included routes are copied into app.routes
        return [(r.path, r) for r in app.routes if isinstance(r, APIRoute)]
    return [
        (ctx.path, ctx.original_route)
        for ctx in flatten(app.routes)
        if isinstance(ctx.original_route, APIRoute)
    ]


def ungated_data_routes(app: FastAPI) -> list[str]:
    return [
        f"{sorted(r.methods)} {path}"
        for path, r in api_routes(app)
        if serves_data(path, r) and not _depends_on(r.dependant, data_gate)
    ]


def test_every_data_route_goes_through_the_gate(env: Env) -> None:
    app = create_app(env.settings)
    data_routes = [p for p, r in api_routes(app) if serves_data(p, r)]
    for path in (
        "/v1/products/{product_id}/subset",
        "/v1/subsets/{subset_id}/download",
        "/zarr/products/{product_id}/{key:path}",
        "/zarr/subsets/{subset_id}/{key:path}",
        "/edr/collections/{product_id}/position",
        "/edr/collections/{product_id}/cube",
        "/v1/jobs/{job_id}/results",
    ):
        assert path in data_routes, path
    assert {p for p, r in api_routes(app) if is_metadata(r)} == METADATA_ROUTES
    assert "/v1/products" in [p for p, _ in api_routes(app)]
    assert ungated_data_routes(app) == []


def test_the_walk_catches_an_ungated_route(env: Env) -> None:
    app = create_app(env.settings)

    @app.get("/v1/products/{product_id}/download", response_class=FileResponse)
    def leak(product_id: str) -> FileResponse:  # pragma: no cover - never called
        raise AssertionError

    assert ungated_data_routes(app) == ["['GET'] /v1/products/{product_id}/download"]


def test_a_route_cannot_exempt_itself_by_calling_itself_metadata(env: Env) -> None:
    app = create_app(env.settings)

    @app.get(
        "/edr/collections/{product_id}/everything", openapi_extra={"x-oceanmart-metadata": True}
    )
    def leak(product_id: str) -> dict[str, str]:  # pragma: no cover - never called
        raise AssertionError

    assert ungated_data_routes(app) == ["['GET'] /edr/collections/{product_id}/everything"]
