"""Product listing and the first data route: a NetCDF subset of a product."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Query
from fastapi.responses import FileResponse

from api.deps import (
    CatalogReader,
    EntitledDep,
    ProductDep,
    SessionsDep,
    SettingsDep,
    StoreDep,
    ViewerDep,
)
from api.routers import Router
from api.schemas import Compression, ProductList, ProductOut
from api.work import ScratchFileResponse
from catalog import subset as engine
from catalog.products import list_products
from catalog.sea_areas import resolve_area
from catalog.selection import parse_selection
from catalog.work import discard, scratch_path
from pricing.metering import Channel, Delivery

router = Router(prefix="/v1/products", tags=["products"])


@router.get("", response_model=ProductList)
def products(_: CatalogReader, sessions: SessionsDep, viewer: ViewerDep) -> ProductList:
    """Every published product the caller may see, with its current version and variables."""
    with sessions() as session:
        items = list_products(session, viewer)
    return ProductList(products=[ProductOut.model_validate(p) for p in items])


@router.get("/{product_id}", response_model=ProductOut)
def product(_: CatalogReader, item: ProductDep) -> ProductOut:
    return ProductOut.model_validate(item)


@router.get(
    "/{product_id}/subset",
    response_class=FileResponse,
    responses={200: {"content": {"application/x-netcdf": {}}, "description": "CF NetCDF4"}},
    openapi_extra={"x-oceanmart-data": True},
)
def subset(
    gate: EntitledDep,
    settings: SettingsDep,
    store: StoreDep,
    sessions: SessionsDep,
    bbox: Annotated[
        str | None,
        Query(
            description="west,south,east,north in degrees; cells whose centre is inside, "
            "both ends included; west > east crosses the antimeridian",
            examples=["-10,-20,10,20"],
        ),
    ] = None,
    depth: Annotated[
        str | None, Query(description="min,max depth in metres", examples=["0,100"])
    ] = None,
    variables: Annotated[
        str | None, Query(description="comma-separated variable names", examples=["TEMP"])
    ] = None,
    datetime: Annotated[
        str | None,
        Query(
            description="ISO 8601 instant or start/end interval (`..` for an open end), inclusive",
            examples=["1985-01-01/1986-12-31"],
        ),
    ] = None,
    sea_area: Annotated[
        str | None,
        Query(
            description="id of a stored sea area: cells whose centre is outside it are NaN",
            examples=["zhoushan-fishing-ground"],
        ),
    ] = None,
    format: Annotated[Literal["netcdf"], Query(description="output format")] = "netcdf",
    compression: Compression = 0,
) -> FileResponse:
    """Cut a subset of the product's current version and return it as CF NetCDF4."""
    selection = parse_selection(bbox, depth, variables, datetime, sea_area)
    version = gate.product.version
    assert version is not None  # get_product only returns published products
    area = None
    if selection.sea_area is not None:
        with sessions() as session:
            area = resolve_area(session, selection.sea_area)
    selected, planned = engine.cut(store, gate.product, selection, settings.max_request_bytes, area)
    tmp = scratch_path(f"{gate.product.id}_{version.id}_subset.nc")
    try:
        engine.write_netcdf(
            selected,
            tmp,
            product_id=gate.product.id,
            version_id=version.id,
            selection=selection,
            compression=compression,
        )
        access = gate.record(
            Delivery(
                product_id=gate.product.id,
                version_id=version.id,
                channel=Channel.SUBSET,
                selection_hash=planned.subset_id,
                cells=planned.cells,
                bytes=planned.bytes,
            )
        )
    except BaseException:
        discard(tmp)
        raise
    return ScratchFileResponse(
        tmp,
        media_type="application/x-netcdf",
        filename=tmp.name,
        headers={"OceanMart-Product-Version": version.id, "OceanMart-Access-Id": access.id},
    )
