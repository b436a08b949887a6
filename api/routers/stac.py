"""STAC API (core, collections, features, item search, free text) over the catalog.

Anonymous callers see public and listed products; a key also shows the private products
its account is entitled to (``catalog.products.Viewer``). The mapping itself lives in
``catalog/stac.py``; this router parses parameters and pages results.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import SessionsDep, ViewerDep
from api.routers import Router
from catalog import stac
from catalog.products import ProductInfo, Viewer, get_product, list_products, list_versions
from catalog.selection import parse_bbox, parse_datetime
from oceanmart.errors import InvalidParameter, NotFound

router = Router(prefix="/stac", tags=["stac"])
GEOJSON = "application/geo+json"


class GeoJSONResponse(JSONResponse):
    media_type = GEOJSON


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def _visible(sessions: SessionsDep, viewer: Viewer) -> list[ProductInfo]:
    with sessions() as session:
        return list_products(session, viewer)


def _names(parameter: str, value: str | list[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    if not all(isinstance(v, str) for v in items):
        raise InvalidParameter(parameter, "expected a list of strings")
    names = tuple(v.strip() for v in items if v.strip())
    return names or None


def _bbox(value: str | list[float] | None) -> Any:
    if value is None:
        return None
    if isinstance(value, list):
        if len(value) == 6:  # 3-D boxes: drop the heights
            value = [value[0], value[1], value[3], value[4]]
        if len(value) != 4 or not all(isinstance(v, int | float) for v in value):
            raise InvalidParameter("bbox", "expected 4 numbers: west, south, east, north")
        value = ",".join(map(str, value))
    return parse_bbox(value)


def _intersects(value: str | dict[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        doc = json.loads(value) if isinstance(value, str) else value
        return stac.check_geometry(doc)
    except (ValueError, TypeError, AttributeError) as exc:
        raise InvalidParameter("intersects", str(exc).split("\n")[0]) from None


def _token(token: str | None) -> int:
    if token is None:
        return 0
    kind, _, number = token.partition(":")
    if kind != "next" or not number.isdigit():
        raise InvalidParameter("token", "not a token this API gave out")
    return int(number)


class SearchBody(BaseModel):
    """POST /stac/search body (STAC item search with the free-text extension)."""

    model_config = ConfigDict(extra="forbid")
    bbox: list[float] | None = None
    intersects: dict[str, Any] | None = None
    datetime: str | None = None
    collections: list[str] | None = None
    ids: list[str] | None = None
    q: str | list[str] | None = Field(default=None, description="free text, terms OR'ed")
    theme: list[str] | None = None
    variable: list[str] | None = None
    limit: int | None = Field(default=None, ge=1)
    token: str | None = None


def _query(body: SearchBody) -> stac.Query:
    if body.bbox is not None and body.intersects is not None:
        raise InvalidParameter("intersects", "give bbox or intersects, not both")
    q = body.q
    terms = _names("q", q) or ()
    return stac.Query(
        bbox=_bbox(body.bbox),
        intersects=_intersects(body.intersects),
        time=parse_datetime(body.datetime) if body.datetime else None,
        text=terms,
        collections=_names("collections", body.collections),
        ids=_names("ids", body.ids),
        themes=_names("theme", body.theme),
        variables=_names("variable", body.variable),
    )


def _search(
    request: Request, products: list[ProductInfo], body: SearchBody, method: str
) -> dict[str, Any]:
    query = _query(body)
    base = _base(request)
    found = [
        stac.item(p, p.version, base)
        for p in products
        if p.version is not None and stac.matches(p, p.version, query)
    ]
    limit = stac.limit_value(body.limit)
    chunk, nxt = stac.page(found, limit, _token(body.token))
    links: list[dict[str, Any]] = [
        {"rel": "root", "href": f"{base}/stac", "type": "application/json"},
    ]
    if nxt is not None:
        token = f"next:{nxt}"
        if method == "GET":
            params = dict(request.query_params) | {"token": token}
            href = str(request.url.replace_query_params(**params))
            links.append({"rel": "next", "href": href, "type": GEOJSON, "method": "GET"})
        else:
            links.append(
                {
                    "rel": "next",
                    "href": f"{base}/stac/search",
                    "type": GEOJSON,
                    "method": "POST",
                    "body": body.model_dump(exclude_none=True) | {"token": token},
                    "merge": False,
                }
            )
    return {
        "type": "FeatureCollection",
        "features": chunk,
        "links": links,
        "numberMatched": len(found),
        "numberReturned": len(chunk),
    }


@router.get("", summary="STAC landing page")
def landing(request: Request, sessions: SessionsDep, viewer: ViewerDep) -> dict[str, Any]:
    return stac.landing(_base(request), _visible(sessions, viewer))


@router.get("/conformance", summary="Conformance classes")
def conformance() -> dict[str, Any]:
    return {"conformsTo": stac.CONFORMANCE}


@router.get("/collections", summary="Collections (products), with collection search")
def collections(
    request: Request,
    sessions: SessionsDep,
    viewer: ViewerDep,
    bbox: Annotated[str | None, Query(examples=["110,20,130,40"])] = None,
    datetime: Annotated[str | None, Query(examples=["1985-01-01/1990-12-31"])] = None,
    q: Annotated[
        str | None, Query(description="free text; comma-separated terms are OR'ed")
    ] = None,
    theme: Annotated[str | None, Query(description="comma-separated themes")] = None,
    variable: Annotated[str | None, Query(description="variable or standard names")] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
    token: str | None = None,
) -> dict[str, Any]:
    query = stac.Query(
        bbox=_bbox(bbox),
        time=parse_datetime(datetime) if datetime else None,
        text=_names("q", q) or (),
        themes=_names("theme", theme),
        variables=_names("variable", variable),
    )
    base = _base(request)
    found = [
        stac.collection(p, base)
        for p in _visible(sessions, viewer)
        if p.version is not None and stac.matches(p, p.version, query)
    ]
    chunk, nxt = stac.page(found, stac.limit_value(limit), _token(token))
    links = [
        {"rel": "self", "href": str(request.url), "type": "application/json"},
        {"rel": "root", "href": f"{base}/stac", "type": "application/json"},
    ]
    if nxt is not None:
        href = str(request.url.include_query_params(token=f"next:{nxt}"))
        links.append({"rel": "next", "href": href, "type": "application/json"})
    return {
        "collections": chunk,
        "links": links,
        "numberMatched": len(found),
        "numberReturned": len(chunk),
    }


def _product(sessions: SessionsDep, viewer: Viewer, collection_id: str) -> ProductInfo:
    with sessions() as session:
        return get_product(session, collection_id, viewer)


@router.get("/collections/{collection_id}", summary="One collection (product)")
def one_collection(
    request: Request, collection_id: str, sessions: SessionsDep, viewer: ViewerDep
) -> dict[str, Any]:
    return stac.collection(_product(sessions, viewer, collection_id), _base(request))


@router.get(
    "/collections/{collection_id}/items",
    response_class=GeoJSONResponse,
    summary="The versions of a product, as items",
)
def items(
    request: Request,
    collection_id: str,
    sessions: SessionsDep,
    viewer: ViewerDep,
    bbox: str | None = None,
    datetime: str | None = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
    token: str | None = None,
) -> dict[str, Any]:
    product = _product(sessions, viewer, collection_id)
    with sessions() as session:
        versions = list_versions(session, product.id)
    query = stac.Query(bbox=_bbox(bbox), time=parse_datetime(datetime) if datetime else None)
    base = _base(request)
    found = [stac.item(product, v, base) for v in versions if stac.matches(product, v, query)]
    chunk, nxt = stac.page(found, stac.limit_value(limit), _token(token))
    links = [
        {"rel": "self", "href": str(request.url), "type": GEOJSON},
        {"rel": "root", "href": f"{base}/stac", "type": "application/json"},
        {"rel": "collection", "href": f"{base}/stac/collections/{product.id}"},
    ]
    if nxt is not None:
        href = str(request.url.include_query_params(token=f"next:{nxt}"))
        links.append({"rel": "next", "href": href, "type": GEOJSON})
    return {
        "type": "FeatureCollection",
        "features": chunk,
        "links": links,
        "numberMatched": len(found),
        "numberReturned": len(chunk),
    }


@router.get(
    "/collections/{collection_id}/items/{item_id}",
    response_class=GeoJSONResponse,
    summary="One version of a product",
)
def one_item(
    request: Request, collection_id: str, item_id: str, sessions: SessionsDep, viewer: ViewerDep
) -> dict[str, Any]:
    product = _product(sessions, viewer, collection_id)
    with sessions() as session:
        versions = {v.id: v for v in list_versions(session, product.id)}
    if item_id not in versions:
        raise NotFound(f"no item {item_id!r} in collection {collection_id!r}")
    return stac.item(product, versions[item_id], _base(request))


@router.get("/search", response_class=GeoJSONResponse, summary="Item search (GET)")
def search_get(
    request: Request,
    sessions: SessionsDep,
    viewer: ViewerDep,
    bbox: Annotated[str | None, Query(examples=["110,20,130,40"])] = None,
    intersects: Annotated[str | None, Query(description="GeoJSON geometry")] = None,
    datetime: str | None = None,
    collections: str | None = None,
    ids: str | None = None,
    q: Annotated[
        str | None, Query(description="free text; comma-separated terms are OR'ed")
    ] = None,
    theme: str | None = None,
    variable: str | None = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
    token: str | None = None,
) -> dict[str, Any]:
    body = SearchBody(
        bbox=None,
        intersects=_intersects(intersects),
        datetime=datetime,
        collections=list(_names("collections", collections) or []) or None,
        ids=list(_names("ids", ids) or []) or None,
        q=q,
        theme=list(_names("theme", theme) or []) or None,
        variable=list(_names("variable", variable) or []) or None,
        limit=limit,
        token=token,
    )
    if bbox is not None:
        try:
            body.bbox = [float(v) for v in bbox.split(",")]
        except ValueError:
            raise InvalidParameter("bbox", f"{bbox!r} is not 4 numbers") from None
    return _search(request, _visible(sessions, viewer), body, "GET")


@router.post("/search", response_class=GeoJSONResponse, summary="Item search (POST)")
def search_post(
    request: Request, body: SearchBody, sessions: SessionsDep, viewer: ViewerDep
) -> dict[str, Any]:
    return _search(request, _visible(sessions, viewer), body, "POST")
