"""Zarr v3 over HTTP: product versions and purchased subsets, readable by ``xr.open_zarr``.

Stored objects are sent as they are, with a strong ETag, ``If-None-Match`` and a byte
range (``bytes=a-b``, ``bytes=a-``, and the suffix ``bytes=-N`` zarr-python asks for a
shard's index). Every delivery of data-variable bytes is one metered access (for a
range of a shard: the inner chunks it overlaps, see ``catalog.zarr_http``); metadata
(``zarr.json``), the chunks of dimension axes (times, latitudes, depths: what STAC's
``cube:dimensions`` publishes free) and shard indexes pass the same gate unmetered.

Each request is gated, resolved, metered and read in one go: on the event loop when the
store is local and the object (or range) small, as most of a client's requests are
(``api.work.loop_first``), else in one worker thread.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from typing import Annotated

from fastapi import Path, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, StreamingResponse
from sqlalchemy import Connection
from starlette.exceptions import HTTPException

from api.deps import Entitled, Gate, GateDep, SettingsDep, ZarrDep
from api.routers import Router
from api.work import NotOnLoop, loop_first
from catalog.zarr_http import ZarrStores
from pricing.metering import Channel, Delivery

router = Router(prefix="/zarr", tags=["zarr"])

ZARR_JSON = "application/json"
OCTETS = "application/octet-stream"
CACHE = "private, max-age=86400, immutable"
Key = Annotated[str, Path(description="a Zarr key: `zarr.json`, `NAME/zarr.json`, `NAME/c/0/1`")]
DATA = {"x-oceanmart-data": True}
# Objects (or ranges) up to this size are served on the event loop from a local store.
LOOP_BYTES = 256 * 1024
# Objects up to this size are read in the worker thread and sent as one body; larger ones
# (rare: chunks are planned at a few MB) are sent from the file (local) or streamed.
WHOLE_BYTES = 16 << 20
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one range ``header`` asks of ``size`` bytes as [start, end), or None to send
    everything: no header, several ranges or one the server cannot read (RFC 9110
    lets a server ignore those). An unsatisfiable range is a 416."""
    if header is None:
        return None
    m = _RANGE.match(header.strip().replace(" ", ""))
    if m is None or m.group(1) == m.group(2) == "":
        return None
    first, last = m.group(1), m.group(2)
    if first == "":  # a suffix: the last N bytes
        start, end = max(size - int(last), 0), size
    else:
        start = int(first)
        end = size if last == "" else min(int(last) + 1, size)
        if last != "" and int(last) < start:
            return None  # invalid: ignored, as RFC 9110 says
    if start >= end:
        raise HTTPException(
            416, f"the object has {size} bytes", headers={"Content-Range": f"bytes */{size}"}
        )
    return start, end


def _deliver(
    request: Request,
    question: Gate,
    stores: ZarrStores,
    locate: Callable[[Entitled], tuple[str, str]],
    key: str,
    connection: Connection | None = None,
    decided: Entitled | None = None,
) -> Response:
    """Decide the gate, resolve ``key`` in the store ``locate`` gives (root, ETag base),
    meter and read it, all in the calling thread (an open_zarr and a point series are
    eight requests, six of them metadata). With ``connection``: on the event loop (see
    ``loop_first``), raising ``NotOnLoop`` before anything is metered or read when the
    store is not local or more than ``LOOP_BYTES`` would be read (carrying the gate's
    answer once decided: ``decided``, in the thread, is that answer)."""
    on_loop = connection is not None
    if on_loop and not stores.store.local:
        raise NotOnLoop  # (resolving a key reads the object store)
    gate = decided or question.decide(
        request.app.state.loop_sessions if on_loop else None, connection
    )
    root, etag_base = locate(gate)
    obj = stores.resolve(root, key, etag_base)
    headers = {
        "ETag": obj.etag,
        "Cache-Control": CACHE,
        "Accept-Ranges": "bytes",
        "OceanMart-Product-Version": gate.version.id,
    }
    media = ZARR_JSON if obj.kind == "metadata" else OCTETS
    if obj.etag in request.headers.get("if-none-match", ""):
        return Response(status_code=304, headers=headers)
    # Objects never change, so an If-Range (which can only name this ETag) always holds.
    span = byte_range(request.headers.get("range"), obj.size)
    get = request.method == "GET"
    if on_loop and get and (span[1] - span[0] if span else obj.size) > LOOP_BYTES:
        raise NotOnLoop(gate.detached(question.sessions))
    if get and (metered := stores.metered(obj, span)) is not None:
        access = gate.record(
            Delivery(
                product_id=gate.product.id,
                version_id=gate.version.id,
                channel=Channel.ZARR,
                selection_hash=obj.selection_hash,
                cells=metered[0],
                bytes=metered[1],
                subset_id=gate.subset.id if gate.subset else None,
            )
        )
        headers["OceanMart-Access-Id"] = access.id
    if span is not None:
        start, end = span
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{obj.size}"
        headers["Content-Length"] = str(end - start)
        body = stores.read(obj, start, end) if get else b""
        return Response(body, status_code=206, media_type=media, headers=headers)
    headers["Content-Length"] = str(obj.size)
    if not get:
        return Response(b"", media_type=media, headers=headers)
    if obj.size <= WHOLE_BYTES:
        return Response(stores.read(obj), media_type=media, headers=headers)
    local = stores.local_path(obj)
    if local is not None:
        return FileResponse(local, media_type=media, headers=headers)
    return StreamingResponse(stores.iter_bytes(obj), media_type=media, headers=headers)


async def _serve(
    request: Request,
    gate: Gate,
    stores: ZarrStores,
    locate: Callable[[Entitled], tuple[str, str]],
    key: str,
) -> Response:
    """``_deliver`` on the event loop when it can be, else in a worker thread (a saved
    subset's route always: its first read materialises the subset)."""
    return await loop_first(
        request,
        lambda connection: _deliver(request, gate, stores, locate, key, connection),
        lambda decided: run_in_threadpool(
            partial(_deliver, decided=decided), request, gate, stores, locate, key
        ),
    )


@router.head("/products/{product_id}/copies/{copy}/{key:path}", include_in_schema=False)
@router.get("/products/{product_id}/copies/{copy}/{key:path}", openapi_extra=DATA)
async def product_copy(
    request: Request, gate: GateDep, stores: ZarrDep, product_id: str, copy: str, key: Key
) -> Response:
    """The current version of a product, map-chunked (`map`) or series-chunked (`series`)."""

    def locate(gate: Entitled) -> tuple[str, str]:
        return stores.version_root(gate.product, copy), f"{gate.version.id}/{copy}"

    return await _serve(request, gate, stores, locate, key)


@router.head("/products/{product_id}/{key:path}", include_in_schema=False)
@router.get("/products/{product_id}/{key:path}", openapi_extra=DATA)
async def product(
    request: Request, gate: GateDep, stores: ZarrDep, product_id: str, key: Key
) -> Response:
    """The current version of a product, map-chunked: `xr.open_zarr(".../zarr/products/ID")`.
    The series-chunked copy (fast time series at a point) is at `.../copies/series`."""

    def locate(gate: Entitled) -> tuple[str, str]:
        return stores.version_root(gate.product, "map"), f"{gate.version.id}/map"

    return await _serve(request, gate, stores, locate, key)


@router.head("/subsets/{subset_id}/{key:path}", include_in_schema=False)
@router.get("/subsets/{subset_id}/{key:path}", openapi_extra=DATA)
async def subset(
    request: Request,
    gate: GateDep,
    stores: ZarrDep,
    settings: SettingsDep,
    subset_id: str,
    key: Key,
) -> Response:
    """A saved subset as its own Zarr store (materialised on first read)."""

    def locate(gate: Entitled) -> tuple[str, str]:
        assert gate.subset is not None
        area = gate.area(gate.subset.selection)
        root = stores.materialise_subset(
            gate.subset, gate.product, settings.max_request_bytes, area
        )
        return root, f"subset/{gate.subset.id}"

    return await run_in_threadpool(_deliver, request, gate, stores, locate, key)
