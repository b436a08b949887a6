"""Downloads of saved subsets: CF NetCDF4, zipped Zarr, CSV."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Query, Request, Response
from fastapi.responses import StreamingResponse

from api.deps import EntitledDep, LimiterDep, SettingsDep, StoreDep, ZarrDep
from api.routers import Router
from api.schemas import Compression
from api.work import ScratchFileResponse, run_cancellable
from catalog import subset as engine
from catalog.selection import selection_from_json
from catalog.work import discard, scratch_path, watched
from pricing.metering import AccessInfo, Channel, Delivery, new_access_id

router = Router(prefix="/v1/subsets", tags=["subsets"])

Format = Literal["netcdf", "zarr"]


@router.get(
    "/{subset_id}/download",
    openapi_extra={"x-oceanmart-data": True},
    responses={
        200: {
            "content": {"application/x-netcdf": {}, "application/zip": {}},
            "description": "the subset as CF-1.10 NetCDF4 or as a zipped Zarr v3 store",
        }
    },
)
async def download(
    request: Request,
    subset_id: str,
    gate: EntitledDep,
    settings: SettingsDep,
    store: StoreDep,
    stores: ZarrDep,
    limiter: LimiterDep,
    format: Annotated[Format, Query(description="output format")] = "netcdf",
    compression: Compression = 0,
) -> Response:
    """A saved subset (planned at `POST /v1/plans` or bought with an order) of the
    product version it was planned on. Always a heavy request for the key's limits."""
    subset = gate.subset
    assert subset is not None
    area = gate.area(subset.selection)
    selection = selection_from_json(subset.selection)
    version = gate.version.id
    name = f"{gate.product.id}_{version}_{subset.id[:12]}"

    def delivery(cells: int, size: int) -> Delivery:
        return Delivery(
            product_id=gate.product.id,
            version_id=version,
            channel=Channel.DOWNLOAD,
            selection_hash=subset.id,
            cells=cells,
            bytes=size,
            subset_id=subset.id,
        )

    if format == "zarr":

        def materialise(cancel: threading.Event) -> tuple[str, AccessInfo]:
            with limiter.heavy(gate.principal.key_id), watched(cancel):
                root = stores.materialise_subset(
                    subset, gate.product, settings.max_request_bytes, area
                )
            return root, gate.record(delivery(subset.cells, stores.size(root)))

        root, access = await run_cancellable(request, materialise)
        return StreamingResponse(
            stores.iter_zip(root),
            media_type="application/zip",
            headers={
                "Content-Disposition": f'attachment; filename="{name}.zarr.zip"',
                "OceanMart-Access-Id": access.id,
                "OceanMart-Product-Version": version,
            },
        )

    def write_netcdf(cancel: threading.Event) -> tuple[Path, AccessInfo]:
        access_id = new_access_id()
        tmp = scratch_path(f"{name}.nc")
        try:
            with limiter.heavy(gate.principal.key_id), watched(cancel):
                selected, planned = engine.cut(
                    store, gate.product, selection, settings.max_request_bytes, area
                )
                engine.write_netcdf(
                    selected,
                    tmp,
                    product_id=gate.product.id,
                    version_id=version,
                    selection=selection,
                    extra={"oceanmart_subset": subset.id, "oceanmart_access_id": access_id},
                    compression=compression,
                )
            return tmp, gate.record(delivery(planned.cells, planned.bytes), access_id)
        except BaseException:
            discard(tmp)
            raise

    tmp, access = await run_cancellable(request, write_netcdf)
    return ScratchFileResponse(
        tmp,
        media_type="application/x-netcdf",
        filename=f"{name}.nc",
        headers={"OceanMart-Access-Id": access.id, "OceanMart-Product-Version": version},
    )
