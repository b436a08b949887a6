"""OGC API - Environmental Data Retrieval at ``/edr``: products are collections.

Queries (``position``, ``area``, ``cube``, ``trajectory``, ``radius``) become selections
(``catalog.edr``), are planned and cut like every other selection, and are written as
CoverageJSON (default), GeoJSON, CSV or NetCDF, streamed.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Awaitable, Iterator
from contextlib import ExitStack, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import Connection

from api.deps import (
    CatalogReader,
    Entitled,
    Gate,
    GateDep,
    ProductDep,
    SessionsDep,
    ViewerDep,
)
from api.limits import KeyLimiter
from api.routers import Router
from api.schemas import Compression
from api.work import NotOnLoop, ScratchFileResponse, held, loop_first, run_cancellable
from catalog import edr, encode, points
from catalog import subset as engine
from catalog.products import ProductInfo, list_products
from catalog.selection import selection_from_json
from catalog.store import DataStore
from catalog.work import discard, scratch_path, watched
from oceanmart.errors import InvalidParameter
from oceanmart.settings import Settings
from pricing.metering import Channel, Delivery, new_access_id

router = Router(prefix="/edr", tags=["edr"])

FORMATS = {
    "coveragejson": "coveragejson",
    "covjson": "coveragejson",
    "geojson": "geojson",
    "csv": "csv",
    "netcdf": "netcdf",
    "nc": "netcdf",
}
OUTPUT_FORMATS = ["CoverageJSON", "GeoJSON", "CSV", "NetCDF"]
CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
CONFORMANCE = [
    "http://www.opengis.net/spec/ogcapi-common-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-common-2/1.0/conf/collections",
    "http://www.opengis.net/spec/ogcapi-edr-1/1.1/conf/core",
    "http://www.opengis.net/spec/ogcapi-edr-1/1.1/conf/collections",
    "http://www.opengis.net/spec/ogcapi-edr-1/1.1/conf/json",
    "http://www.opengis.net/spec/ogcapi-edr-1/1.1/conf/geojson",
    "http://www.opengis.net/spec/ogcapi-edr-1/1.1/conf/covjson",
    "http://www.opengis.net/spec/ogcapi-edr-1/1.1/conf/oas30",
]
META = {"x-oceanmart-metadata": True}  # catalog documents: no data, no gate
DATA = {"x-oceanmart-data": True}
# Answers of at most this many value bytes are encoded whole in the worker thread and
# sent as one body; larger ones stream piece by piece.
WHOLE_BYTES = 1 << 20
# Selection fields back to the EDR parameter a client wrote.
PARAMETER = {"points": "coords", "route": "coords", "polygon": "coords", "depth": "z",
             "variables": "parameter-name", "time": "datetime"}  # fmt: skip

Coords = Annotated[str | None, Query(description="WKT geometry, lon lat in CRS84")]
Z = Annotated[str | None, Query(description="depth in metres: `10` or `0/100`")]
Datetime = Annotated[str | None, Query(description="ISO 8601 instant or interval")]
Parameters = Annotated[
    str | None, Query(alias="parameter-name", description="comma-separated variables")
]
Fmt = Annotated[str | None, Query(alias="f", description="CoverageJSON, GeoJSON, CSV, NetCDF")]
Method = Annotated[str | None, Query(description="`nearest` (default) or `linear`")]


def _collection(request: Request, product: ProductInfo) -> dict[str, Any]:
    version = product.version
    assert version is not None
    base = str(request.base_url).rstrip("/") + f"/edr/collections/{product.id}"
    ext = version.extent
    lon, lat = ext.get("longitude", [-180.0, 180.0]), ext.get("latitude", [-90.0, 90.0])
    extent: dict[str, Any] = {"spatial": {"bbox": [[lon[0], lat[0], lon[1], lat[1]]], "crs": CRS84}}
    if "time" in ext:
        extent["temporal"] = {"interval": [ext["time"]], "trs": 'TIMECRS["DateTime"]'}
    if "depth" in ext:
        extent["vertical"] = {"interval": [[str(v) for v in ext["depth"]]], "vrs": "depth (m)"}
    queries = {
        q: {
            "link": {
                "href": f"{base}/{q}",
                "rel": "data",
                "variables": {
                    "query_type": q,
                    "output_formats": OUTPUT_FORMATS,
                    "default_output_format": "CoverageJSON",
                    **({"within_units": list(edr.UNITS_KM)} if q == "radius" else {}),
                },
            }
        }
        for q in edr.QUERIES
    }
    return {
        "id": product.id,
        "title": product.title,
        "description": product.summary,
        "keywords": [product.theme],
        "links": [{"href": base, "rel": "self", "type": "application/json"}],
        "extent": extent,
        "data_queries": queries,
        "crs": [CRS84],
        "output_formats": OUTPUT_FORMATS,
        "parameter_names": {
            v.name: {
                "type": "Parameter",
                "description": v.long_name or v.name,
                "unit": {"symbol": v.units},
                "observedProperty": {
                    "id": v.standard_name or v.name,
                    "label": v.long_name or v.name,
                },
            }
            for v in version.variables
        },
    }


@router.get("", openapi_extra=META, summary="EDR landing page")
def landing(request: Request) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/") + "/edr"
    return {
        "title": "OceanMart EDR",
        "description": "Ocean data products as OGC API - EDR collections.",
        "links": [
            {"href": base, "rel": "self", "type": "application/json"},
            {"href": f"{base}/conformance", "rel": "conformance", "type": "application/json"},
            {"href": f"{base}/collections", "rel": "data", "type": "application/json"},
            {
                "href": str(request.base_url).rstrip("/") + "/openapi.json",
                "rel": "service-desc",
                "type": "application/vnd.oai.openapi+json;version=3.0",
            },
        ],
    }


@router.get("/conformance", openapi_extra=META)
def conformance() -> dict[str, Any]:
    return {"conformsTo": CONFORMANCE}


@router.get("/collections", openapi_extra=META)
def collections(
    request: Request, _: CatalogReader, sessions: SessionsDep, viewer: ViewerDep
) -> dict[str, Any]:
    with sessions() as session:
        products = list_products(session, viewer)
    return {
        "links": [{"href": str(request.url), "rel": "self", "type": "application/json"}],
        "collections": [_collection(request, p) for p in products],
    }


@router.get("/collections/{product_id}", openapi_extra=META)
def collection(request: Request, _: CatalogReader, product: ProductDep) -> dict[str, Any]:
    return _collection(request, product)


def _edr_error(exc: InvalidParameter) -> InvalidParameter:
    """The same error, naming the EDR parameter the client wrote."""
    name = PARAMETER.get(exc.parameter, exc.parameter)
    return InvalidParameter(name, exc.detail.split(": ", 1)[-1])


@dataclass(frozen=True, slots=True)
class Serving:
    """What every EDR query takes besides its own geometry: the request, the gate's
    decision, where data is, the key's limits, and the parameters all queries share."""

    request: Request
    gate: Gate  # decided in the query's worker thread
    settings: Settings
    store: DataStore
    limiter: KeyLimiter
    z: str | None
    datetime: str | None
    parameter_name: str | None
    f: str | None
    compression: int


async def _serving(
    request: Request, gate: GateDep, z: Z = None, datetime: Datetime = None,
    parameter_name: Parameters = None, f: Fmt = None, compression: Compression = 0,
) -> Serving:  # fmt: skip
    # The app's objects straight from its state (what SettingsDep, StoreDep and LimiterDep
    # give): every dependency FastAPI resolves costs each query ~20 us.
    state = request.app.state
    return Serving(
        request, gate, state.settings, state.store, state.limiter, z, datetime,
        parameter_name, f, compression,
    )  # fmt: skip


ServingDep = Annotated[Serving, Depends(_serving)]


async def _query(serving: Serving, query: str, **params: str | None) -> Response:
    try:
        return await _answer(serving, query, **params)
    except InvalidParameter as exc:
        raise _edr_error(exc) from None


# One POINT (a series or a profile) whose plan reads at most LOOP_BYTES is answered on
# the event loop: its work (gate, plan, read, CSV, access record: ~2 ms of CPU) would not
# leave the loop free anyway (the GIL), while the hand-over to a worker thread and back
# cost more than the cut (both threads contending for the GIL; as for quotes, see
# api.routers.quotes). Anything else, or a lock to wait for, goes to a worker thread.
LOOP_BYTES = 256 * 1024
_ON_LOOP = re.compile(r"\s*POINT\s*\(", re.IGNORECASE)


@dataclass(slots=True)
class _Answer:
    """What the worker thread hands back to the event loop."""

    body: bytes | Iterator[bytes] | None
    stack: ExitStack
    kind: str
    product_id: str
    version_id: str
    access_id: str
    tmp: Path | None


async def _answer(serving: Serving, query: str, **params: str | None) -> Response:
    request, settings, store, limiter = (
        serving.request, serving.settings, serving.store, serving.limiter
    )  # fmt: skip
    fmt, compression = serving.f, serving.compression
    params.update(z=serving.z, datetime_=serving.datetime, parameter_name=serving.parameter_name)

    def work(
        cancel: threading.Event | None,
        connection: Connection | None,
        decided: Entitled | None = None,
    ) -> _Answer:
        """Decide the gate, parse, cut, encode (or write the file), meter: all in one
        worker thread, so the event loop never waits on the data or the database, and a
        request costs one hand-over to a thread. The gate is decided first: a caller
        without access learns nothing about its query. A small answer is encoded whole
        here; a large one is returned as pieces, holding the heavy slot while it streams.

        ``cancel`` None: on the event loop, for one POINT (see ``LOOP_BYTES``), through
        ``connection`` (see ``loop_first``): the gate and the access record share it (one
        pool checkout; their transactions stay apart, none is open during the cut);
        raises ``NotOnLoop`` (not one point, more than ``LOOP_BYTES`` to read, or not a
        direct read) before any data is read, carrying the gate's answer (``decided``, in
        the thread), and a lock timeout if it met a lock."""
        gate = decided or serving.gate.decide(
            request.app.state.loop_sessions if cancel is None else None, connection
        )
        kind = FORMATS.get((fmt or "CoverageJSON").strip().lower())
        if kind is None:
            raise InvalidParameter("f", f"one of {', '.join(OUTPUT_FORMATS)}")
        doc = edr.selection(query, **params)
        selection = selection_from_json(doc)
        # One POINT is one coverage (a series or a profile), not a collection of one.
        single = query == "position" and len(doc["points"]) == 1
        if cancel is None and not single:
            raise NotOnLoop(gate.detached(serving.gate.sessions))
        product, version = gate.product, gate.version.id
        access_id = new_access_id()
        tmp: Path | None = None
        stack = ExitStack()
        try:
            if kind == "netcdf":
                tmp = scratch_path(f"{product.id}_{query}.nc")
            with watched(cancel) if cancel is not None else nullcontext():
                if single:  # a series or a profile: read directly when it can be
                    try:
                        selected, planned = points.cut_point(
                            store, product, selection, settings.max_request_bytes,
                            max_read=LOOP_BYTES if cancel is None else None,
                        )  # fmt: skip
                    except points.TooMuchToRead:
                        raise NotOnLoop(gate.detached(serving.gate.sessions)) from None
                else:
                    selected, planned = engine.cut(
                        store, product, selection, settings.max_request_bytes
                    )
                if planned.bytes_to_read > settings.heavy_request_bytes:
                    stack.enter_context(limiter.heavy(gate.principal.key_id))
                body: bytes | Iterator[bytes] | None = None
                if tmp is not None:
                    engine.write_netcdf(
                        selected, tmp, product_id=product.id, version_id=version,
                        selection=selection, extra={"oceanmart_access_id": access_id},
                        compression=compression,
                    )  # fmt: skip
                    stack.close()
                else:
                    body = _pieces(kind, selected)
                    if planned.bytes <= WHOLE_BYTES:
                        body = b"".join(body)
                        stack.close()
            gate.record(
                Delivery(
                    product_id=product.id,
                    version_id=version,
                    channel=Channel.EDR,
                    selection_hash=planned.subset_id,
                    cells=planned.cells,
                    bytes=planned.bytes,
                ),
                access_id,
            )
            return _Answer(body, stack, kind, product.id, version, access_id, tmp)
        except BaseException:
            stack.close()
            if tmp is not None:
                discard(tmp)
            raise

    def in_thread(decided: Entitled | None) -> Awaitable[_Answer]:
        return run_cancellable(request, lambda cancel: work(cancel, None, decided))

    if (
        query == "position"
        and _ON_LOOP.match(params.get("coords") or "")
        and FORMATS.get((fmt or "CoverageJSON").strip().lower()) != "netcdf"
    ):
        done = await loop_first(request, lambda connection: work(None, connection), in_thread)
    else:
        done = await in_thread(None)
    headers = {"OceanMart-Access-Id": done.access_id, "OceanMart-Product-Version": done.version_id}
    media = encode.MEDIA_TYPES[done.kind]
    if done.tmp is not None:
        return ScratchFileResponse(
            done.tmp, media_type=media, filename=done.tmp.name, headers=headers
        )
    if isinstance(done.body, bytes):
        return Response(done.body, media_type=media, headers=headers)
    assert done.body is not None
    return StreamingResponse(held(done.body, done.stack), media_type=media, headers=headers)


def _pieces(kind: str, selected: Any) -> Iterator[bytes]:
    if kind == "csv":
        return encode.csv_chunks(selected)
    if kind == "geojson":
        return iter([encode.geojson_points(selected)])
    return encode.coveragejson_chunks(selected)


@router.get("/collections/{product_id}/position", openapi_extra=DATA)
async def position(
    product_id: str, serving: ServingDep, coords: Coords = None, method: Method = None
) -> Response:
    """Values at a POINT (a time series, a profile) or at each point of a MULTIPOINT."""
    return await _query(serving, "position", coords=coords, method=method)


@router.get("/collections/{product_id}/area", openapi_extra=DATA)
async def area(product_id: str, serving: ServingDep, coords: Coords = None) -> Response:
    """Cells whose centre lies inside a POLYGON (others are missing values)."""
    return await _query(serving, "area", coords=coords)


@router.get("/collections/{product_id}/cube", openapi_extra=DATA)
async def cube(
    product_id: str,
    serving: ServingDep,
    bbox: Annotated[str | None, Query(description="west,south,east,north")] = None,
) -> Response:
    """Every cell whose centre lies in a box (both ends included), over depth and time."""
    return await _query(serving, "cube", bbox=bbox)


@router.get("/collections/{product_id}/trajectory", openapi_extra=DATA)
async def trajectory(
    product_id: str, serving: ServingDep, coords: Coords = None, method: Method = None
) -> Response:
    """Values along a ship track: `LINESTRING M (lon lat epoch_seconds, ...)` samples each
    vertex at its own time; a plain `LINESTRING` samples the vertices over `datetime`."""
    return await _query(serving, "trajectory", coords=coords, method=method)


@router.get("/collections/{product_id}/radius", openapi_extra=DATA)
async def radius(
    product_id: str,
    serving: ServingDep,
    coords: Coords = None,
    within: Annotated[str | None, Query(description="the radius")] = None,
    within_units: Annotated[
        str | None, Query(alias="within-units", description="km, m, mi or nm")
    ] = None,
) -> Response:
    """Cells whose centre lies within a distance of a POINT."""
    return await _query(serving, "radius", coords=coords, within=within, within_units=within_units)
