"""Zarr v3 over HTTP: product versions and purchased subsets, readable by ``xr.open_zarr``.

Stored objects are sent as they are (sendfile on a local store), with a strong ETag,
``If-None-Match`` and byte ranges. Every chunk of a data variable sent is one metered
access; metadata (``zarr.json``) and the chunks of dimension axes (times, latitudes,
depths: what STAC's ``cube:dimensions`` publishes free) pass the same gate unmetered.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import FileResponse

from api.deps import EntitledDep, SettingsDep, ZarrDep
from catalog.zarr_http import StoredObject, ZarrStores
from pricing.metering import Channel, Delivery

router = APIRouter(prefix="/zarr", tags=["zarr"])

ZARR_JSON = "application/json"
OCTETS = "application/octet-stream"
CACHE = "private, max-age=86400, immutable"
Key = Annotated[str, Path(description="a Zarr key: `zarr.json`, `NAME/zarr.json`, `NAME/c/0/1`")]
DATA = {"x-oceanmart-data": True}


def _send(
    request: Request, gate: EntitledDep, stores: ZarrStores, obj: StoredObject, copy: str
) -> Response:
    headers = {"ETag": obj.etag, "Cache-Control": CACHE, "Accept-Ranges": "bytes"}
    media = ZARR_JSON if obj.kind == "metadata" else OCTETS
    if obj.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    if request.method == "GET" and obj.kind == "chunk":
        access = gate.record(
            Delivery(
                product_id=gate.product.id,
                version_id=gate.version.id,
                channel=Channel.ZARR,
                selection_hash=obj.selection_hash,
                cells=obj.cells,
                bytes=obj.size,
                subset_id=gate.subset.id if gate.subset else None,
            )
        )
        headers["OceanMart-Access-Id"] = access.id
    headers["OceanMart-Product-Version"] = gate.version.id
    local = stores.local_path(obj)
    if local is not None:
        # Starlette's FileResponse answers Range requests (206) and HEAD itself.
        return FileResponse(local, media_type=media, headers=headers)
    body = stores.read(obj) if request.method == "GET" else b""
    headers["Content-Length"] = str(obj.size)
    return Response(body, media_type=media, headers=headers)


@router.head("/products/{product_id}/copies/{copy}/{key:path}", include_in_schema=False)
@router.get("/products/{product_id}/copies/{copy}/{key:path}", openapi_extra=DATA)
def product_copy(
    request: Request, gate: EntitledDep, stores: ZarrDep, product_id: str, copy: str, key: Key
) -> Response:
    """The current version of a product, map-chunked (`map`) or series-chunked (`series`)."""
    root = stores.version_root(gate.product, copy)
    obj = stores.resolve(root, key, f"{gate.version.id}/{copy}")
    return _send(request, gate, stores, obj, copy)


@router.head("/products/{product_id}/{key:path}", include_in_schema=False)
@router.get("/products/{product_id}/{key:path}", openapi_extra=DATA)
def product(
    request: Request, gate: EntitledDep, stores: ZarrDep, product_id: str, key: Key
) -> Response:
    """The current version of a product, map-chunked: `xr.open_zarr(".../zarr/products/ID")`.
    The series-chunked copy (fast time series at a point) is at `.../copies/series`."""
    root = stores.version_root(gate.product, "map")
    obj = stores.resolve(root, key, f"{gate.version.id}/map")
    return _send(request, gate, stores, obj, "map")


@router.head("/subsets/{subset_id}/{key:path}", include_in_schema=False)
@router.get("/subsets/{subset_id}/{key:path}", openapi_extra=DATA)
def subset(
    request: Request,
    gate: EntitledDep,
    stores: ZarrDep,
    settings: SettingsDep,
    subset_id: str,
    key: Key,
) -> Response:
    """A saved subset as its own Zarr store (materialised on first read)."""
    assert gate.subset is not None
    area = gate.area(gate.subset.selection)
    root = stores.materialise_subset(gate.subset, gate.product, settings.max_request_bytes, area)
    obj = stores.resolve(root, key, f"subset/{gate.subset.id}")
    return _send(request, gate, stores, obj, "subset")
