"""The subset engine: apply a Selection to a product version and write the result.

Everything here stays lazy until the output is written, so the size check runs on
metadata alone.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import netCDF4
import numpy as np
import xarray as xr

from catalog.sea_areas import SeaAreaInfo, rasterise
from catalog.selection import Selection, parse_bbox
from catalog.store import DataStore
from oceanmart.errors import EmptySelection, InvalidParameter, RequestTooLarge

LON, LAT, DEPTH, TIME = "longitude", "latitude", "depth", "time"
IN_MEMORY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Estimate:
    cells: int
    bytes: int


def _select_longitude(ds: xr.Dataset, west: float, east: float) -> xr.Dataset:
    if west <= east:
        return ds.sel({LON: slice(west, east)})
    # Crossing the antimeridian: west..180 then -180..east shifted by 360, so the output
    # longitudes stay ascending and continuous (as CDO writes them).
    left = ds.sel({LON: slice(west, 180.0)})
    right = ds.sel({LON: slice(-180.0, east)})
    right = right.assign_coords({LON: right[LON] + 360.0})
    return xr.concat(
        [left, right],
        dim=LON,
        data_vars="minimal",
        coords="minimal",
        compat="override",
        join="override",
    )


def _time_slice(ds: xr.Dataset, start: datetime | None, end: datetime | None) -> slice:
    """Bounds for ``.sel`` on the time axis. A non-standard calendar (a cftime axis) takes
    ISO strings, which it reads in its own calendar; numpy time axes take datetimes."""
    if ds[TIME].dtype.kind == "O":
        return slice(*(None if t is None else t.isoformat() for t in (start, end)))
    return slice(start, end)


def apply(ds: xr.Dataset, sel: Selection, area: SeaAreaInfo | None = None) -> xr.Dataset:
    """Return the lazily selected part of ``ds``; raise if it is empty or names nothing.

    With a sea ``area`` (the resolved ``sel.sea_area``), the cut is the area's bounding box
    (or the given bbox) and cells whose centre lies outside the polygon become NaN.
    """
    if area is not None and sel.bbox is None:
        w, s, e, n = area.bbox
        sel = replace(sel, bbox=parse_bbox(f"{w},{s},{e},{n}"))
    if sel.variables is not None:
        missing = [v for v in sel.variables if v not in ds.data_vars]
        if missing:
            known = ", ".join(map(str, ds.data_vars))
            raise InvalidParameter(
                "variables", f"unknown variable(s) {', '.join(missing)} (known: {known})"
            )
        bounds = [
            str(ds[c].attrs["bounds"])
            for c in ds.coords
            if "bounds" in ds[c].attrs and ds[c].attrs["bounds"] in ds.variables
        ]
        ds = ds[list(sel.variables)].assign_coords({b: ds[b] for b in bounds})
    if sel.bbox is not None:
        b = sel.bbox
        ds = ds.sel({LAT: slice(b.south, b.north)})
        if not b.global_longitudes:
            ds = _select_longitude(ds, b.west, b.east)
    if sel.time is not None:
        if TIME not in ds.dims:
            raise InvalidParameter("datetime", "this product has no time axis")
        ds = ds.sel({TIME: _time_slice(ds, sel.time.start, sel.time.end)})
    if sel.depth is not None:
        if DEPTH not in ds.dims:
            raise InvalidParameter("depth", "this product has no depth axis")
        ds = ds.sel({DEPTH: slice(*sel.depth)})
    empty = [str(d) for d, n in ds.sizes.items() if n == 0]
    if empty:
        raise EmptySelection(
            f"no grid cell centre of {', '.join(empty)} lies inside the selection",
            extensions={"empty_dimensions": empty},
        )
    if area is not None:
        inside = rasterise(area, ds[LON].values, ds[LAT].values)
        if not inside.any():
            raise EmptySelection(
                f"no grid cell centre lies inside sea area {area.id!r} on this product's grid",
                extensions={"sea_area": area.id},
            )
        mask = xr.DataArray(inside, dims=(LAT, LON), coords={LAT: ds[LAT], LON: ds[LON]})
        for name, var in ds.data_vars.items():
            if LAT in var.dims and LON in var.dims:
                ds[name] = var.where(mask)
    return ds


def estimate(ds: xr.Dataset) -> Estimate:
    """Output cells and uncompressed bytes of the data variables, from metadata only."""
    cells = sum(math.prod(v.shape) for v in ds.data_vars.values())
    nbytes = sum(math.prod(v.shape) * v.dtype.itemsize for v in ds.data_vars.values())
    return Estimate(cells=int(cells), bytes=int(nbytes))


def check_limit(est: Estimate, limit_bytes: int) -> None:
    if est.bytes > limit_bytes:
        raise RequestTooLarge(
            f"the selection is {est.bytes} bytes; the per-request limit is {limit_bytes}",
            extensions={"cells": est.cells, "bytes": est.bytes, "limit_bytes": limit_bytes},
        )


def cut(
    store: DataStore,
    store_path: str,
    sel: Selection,
    limit_bytes: int,
    area: SeaAreaInfo | None = None,
) -> tuple[xr.Dataset, Estimate]:
    """Select, check the size limit from metadata, and prepare the data for writing.

    A selection up to IN_MEMORY_BYTES is read straight from zarr into memory: for small
    cuts dask's graph and its locked chunk-by-chunk NetCDF writes cost ~3x the read. A
    larger one stays a dask graph and is written chunk by chunk, so memory stays bounded.
    """
    selected = apply(store.open_version(store_path, dask=False), sel, area)
    est = estimate(selected)
    check_limit(est, limit_bytes)
    if est.bytes <= IN_MEMORY_BYTES:
        return selected.load(), est
    return apply(store.open_version(store_path, dask=True), sel, area), est


def write_netcdf(
    ds: xr.Dataset, path: Path, *, product_id: str, version_id: str, selection: Selection
) -> None:
    """Write a CF-1.10 NetCDF4 file with provenance attributes (``ds`` from ``cut``)."""
    out = ds.copy()
    for name, var in out.variables.items():
        var.encoding = {}
        if name in out.data_vars and np.issubdtype(var.dtype, np.floating):
            var.encoding = {
                "zlib": True,
                "complevel": 4,
                "_FillValue": netCDF4.default_fillvals[var.dtype.str[1:]],
            }
        elif np.issubdtype(var.dtype, np.floating):
            var.encoding = {"_FillValue": None}
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    out.attrs.update(
        {
            "date_created": now,
            "history": f"{now} subset by OceanMart from {product_id}@{version_id}",
            "oceanmart_product": product_id,
            "oceanmart_version": version_id,
            "oceanmart_selection": json.dumps(_selection_json(selection), sort_keys=True),
            "geospatial_lat_min": float(out[LAT].min()),
            "geospatial_lat_max": float(out[LAT].max()),
            "geospatial_lon_min": float(out[LON].min()),
            "geospatial_lon_max": float(out[LON].max()),
        }
    )
    if DEPTH in out.dims:
        out.attrs["geospatial_vertical_min"] = float(out[DEPTH].min())
        out.attrs["geospatial_vertical_max"] = float(out[DEPTH].max())
    out.to_netcdf(path, engine="netcdf4", format="NETCDF4")


def _selection_json(sel: Selection) -> dict[str, object]:
    out: dict[str, object] = {}
    if sel.bbox is not None:
        b = sel.bbox
        out["bbox"] = [b.west, b.south, b.east, b.north]
    if sel.depth is not None:
        out["depth"] = list(sel.depth)
    if sel.time is not None:
        out["datetime"] = "/".join(
            t.isoformat() if t is not None else ".." for t in (sel.time.start, sel.time.end)
        )
    if sel.variables is not None:
        out["variables"] = list(sel.variables)
    if sel.sea_area is not None:
        out["sea_area"] = sel.sea_area
    return out
