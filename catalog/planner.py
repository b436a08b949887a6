"""Plan a selection before reading anything: which copy, which chunks, how many cells
and bytes. Pricing, the size limit and the subset engine all use the same plan.

Inputs are metadata only: the version's coordinates (small arrays, read once and cached
by the DataStore) and the chunk grids recorded in the catalog at ingest. Indices are
found with the pandas indexes xarray itself uses for ``.sel``, so the planned cells are
exactly the cells the subset engine cuts.

Copy choice: the map copy unless the series copy costs less than half as much (the
bias of Copernicus Marine's toolbox, which prefers the map-chunked "geoChunked" store
unless the time-series store touches far fewer chunks). A copy's cost is the bytes it
decodes plus CHUNK_COST_BYTES per chunk: zarr-python spends ~0.15-0.35 ms on each chunk
it reads besides decoding, which on a sharded series copy (inner chunks of 2x2 cells x
365 steps, 5.8 kB) outweighs the bytes: a 10x10 degree box x 30 days is 400 inner chunks
(2.3 MB) read in 145 ms, against 30 map chunks (39 MB) in 110 ms (measured on the bench
product, load ~5; decoding ran at ~2.5 ms per MB, so a chunk's overhead is ~130 kB).
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from catalog.products import ProductInfo
from catalog.sea_areas import SeaAreaInfo
from catalog.selection import (
    Selection,
    canonical,
    canonical_subset_id,
    parse_bbox,
    polygon_bbox,
)
from oceanmart.errors import EmptySelection, InvalidParameter

LON, LAT, DEPTH, TIME = "longitude", "latitude", "depth", "time"
COPIES = ("map", "series")
CHUNK_COST_BYTES = 128 * 1024  # what reading one more chunk costs, in bytes decoded
RING_GAP = 1e-6  # degrees between longitudes for ``_nearest_lon_one``


@dataclass(frozen=True, slots=True)
class CopyCost:
    chunks: int
    bytes: int  # decoded bytes of every chunk touched


@dataclass(frozen=True, slots=True)
class Plan:
    product_id: str
    version_id: str
    subset_id: str
    selection: dict[str, object]
    copy: str
    cells: int  # output values, all variables
    bytes: int  # output bytes (values only)
    chunks: int  # chunks touched in the chosen copy
    bytes_to_read: int  # decoded bytes of those chunks
    copies: dict[str, CopyCost]
    variables: tuple[str, ...]
    shape: dict[str, int] = field(default_factory=dict)  # output size of each dimension

    def as_dict(self) -> dict[str, Any]:
        return {
            "product": self.product_id,
            "version": self.version_id,
            "subset_id": self.subset_id,
            "selection": self.selection,
            "copy": self.copy,
            "cells": self.cells,
            "bytes": self.bytes,
            "chunks": self.chunks,
            "bytes_to_read": self.bytes_to_read,
            "copies": {k: {"chunks": v.chunks, "bytes": v.bytes} for k, v in self.copies.items()},
            "variables": list(self.variables),
            "shape": self.shape,
        }


def _slice_indices(index: Any, lo: object, hi: object) -> np.ndarray:
    """Positions of ``index`` between ``lo`` and ``hi`` (inclusive), as pandas'
    ``slice_indexer`` gives them. For an ascending float axis and number bounds, the same
    two binary searches pandas does, without its label checks (~30 us a call here, three
    or four calls per plan); anything else goes through pandas."""
    values = index.values
    if (
        values.dtype.kind == "f"
        and isinstance(lo, float | int | None)
        and isinstance(hi, float | int | None)
        and index.is_monotonic_increasing
    ):
        # Bounds in the axis' own dtype, as pandas casts them (float32: 1e-300 is 0).
        cast = values.dtype.type
        i = 0 if lo is None else int(np.searchsorted(values, cast(lo), side="left"))
        j = len(values) if hi is None else int(np.searchsorted(values, cast(hi), side="right"))
        return np.arange(i, max(i, j))
    out: np.ndarray = np.arange(len(index))[index.slice_indexer(lo, hi)]
    return out


def _time_bound(ds: xr.Dataset, t: Any) -> Any:
    # A cftime axis (non-standard calendar) takes ISO text, read in its own calendar.
    return None if t is None else t.isoformat() if ds[TIME].dtype.kind == "O" else t


def _nearest(index: Any, values: list[Any]) -> np.ndarray:
    return np.asarray(index.get_indexer(values, method="nearest"), dtype=np.int64)


def _nearest_ascending(index: Any, targets: np.ndarray) -> np.ndarray:
    """``_nearest`` for an ascending numeric axis (latitudes), with numpy's searchsorted:
    pandas' ``get_indexer`` costs ~0.2 ms a call, most of a point's planning. Same
    answer, ties included: the cell above wins unless the one below is strictly nearer."""
    values = np.asarray(index.values)
    if values.dtype.kind != "f" or not index.is_monotonic_increasing or len(values) < 2:
        return _nearest(index, list(targets))
    return _nearest_sorted(values, targets)


def _nearest_sorted(values: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """``_nearest_ascending`` on the axis' values, known ascending floats (>= 2 of them)."""
    above = np.clip(np.searchsorted(values, targets, side="left"), 0, len(values) - 1)
    below = np.clip(np.searchsorted(values, targets, side="right") - 1, 0, len(values) - 1)
    nearer_below = np.abs(values[below] - targets) < np.abs(values[above] - targets)
    return np.where(nearer_below, below, above).astype(np.int64)


def _nearest_sorted_one(values: np.ndarray, target: np.float64) -> int:
    """``_nearest_sorted`` of one target, on numpy scalars (~3 us): the array form's
    clips, ``abs`` and ``where`` cost 15-25 us for one value. ``target`` is a float64
    scalar, so the differences are taken in float64 as in the array form (a Python
    float would leave them in a float32 axis' dtype)."""
    last = len(values) - 1
    above = min(int(values.searchsorted(target, side="left")), last)
    below = min(max(int(values.searchsorted(target, side="right")) - 1, 0), last)
    return below if abs(values[below] - target) < abs(values[above] - target) else above


@dataclass(frozen=True, slots=True)
class _Grid:
    """A dataset's horizontal axes as numpy arrays, for nearest-cell lookups."""

    lat: np.ndarray | None  # None: not ascending floats (pandas' nearest decides)
    lon: np.ndarray
    lon_ring: bool = False  # ``_nearest_lon_one`` may look up one point


def _is_ring(lon: np.ndarray) -> bool:
    """Whether ``lon`` is ascending floats within one turn, each at least RING_GAP
    degrees from the next around the globe (the last from the first + 360), of
    moderate size: then around a point only its neighbours can be the nearest."""
    if lon.dtype.kind != "f" or len(lon) < 2:
        return False
    wide = lon.astype(np.float64)
    if not np.isfinite(wide).all() or np.abs(wide).max() > 720.0:
        return False
    gaps = np.diff(wide)
    return bool(gaps.min() > RING_GAP and wide[0] + 360.0 - wide[-1] > RING_GAP)


# Per opened dataset (a version's copy, opened once and kept by the store; datasets are
# never changed in place): its axes' values, which xarray otherwise hands out through
# a new index mapping and a new DataArray each request (~40 us of a point's planning).
# Keyed by the dataset's id (datasets are not hashable), each entry dropped when its
# dataset is collected (so an id used again never finds another dataset's axes).
# (Plain dict operations, atomic under the GIL: no lock, which the collector's callback
# could otherwise find held by the thread it interrupted.)
_GRIDS: dict[int, tuple[weakref.ref[xr.Dataset], _Grid]] = {}


def _grid(ds: xr.Dataset) -> _Grid:
    key = id(ds)
    found = _GRIDS.get(key)
    if found is not None and found[0]() is ds:
        return found[1]
    index = ds.indexes[LAT]
    lat = np.asarray(index.values)
    ascending = lat.dtype.kind == "f" and index.is_monotonic_increasing and len(lat) >= 2
    lon = np.asarray(ds[LON].values)
    made = _Grid(lat if ascending else None, lon, _is_ring(lon))

    def forget(ref: weakref.ref[xr.Dataset]) -> None:
        entry = _GRIDS.get(key)
        if entry is not None and entry[0] is ref:
            _GRIDS.pop(key, None)

    _GRIDS[key] = (weakref.ref(ds, forget), made)
    return made


def _nearest_lon(lon: np.ndarray, xs: np.ndarray) -> np.ndarray:
    """Nearest longitude of each of ``xs``, measured around the globe (179.9 is next to
    -179.9); on a tie the first, as ``np.argmin`` picks. In blocks of points, so a long
    route does not build one points x longitudes matrix."""
    if len(xs) == 1:  # one point: the same arithmetic on the axis alone (float64)
        nearest = np.argmin(np.abs((lon - xs[0] + 180.0) % 360.0 - 180.0))
        return np.asarray([nearest], dtype=np.int64)
    out = np.empty(len(xs), dtype=np.int64)
    for k in range(0, len(xs), 1024):
        block = xs[k : k + 1024, None]
        out[k : k + 1024] = np.argmin(np.abs((lon - block + 180.0) % 360.0 - 180.0), axis=1)
    return out


def _nearest_lon_one(lon: np.ndarray, x: np.float64) -> int:
    """``_nearest_lon`` of one longitude on a ring axis (``_is_ring``), without its pass
    over the whole axis (25-30 us on 1440 longitudes; ~5 us so): the same arithmetic on
    the few cells around ``x``. On a ring the nearest cell around the globe is one of the two
    cells either side of ``x``, every other cell being at least RING_GAP farther than
    one of them, far beyond the arithmetic's rounding (~1e-13); a cell more on each
    side covers a rounding of ``x``'s position. Ties go to the first index, as
    ``np.argmin`` gives them (test_planner compares the two)."""
    n = len(lon)
    at = lon[0] + (x - lon[0]) % 360.0  # x within [lon[0], lon[0] + 360)
    below = int(lon.searchsorted(at, side="right")) - 1
    best, nearest = -1, math.inf
    for k in sorted({k % n for k in range(below - 1, below + 3)}):  # on numpy scalars
        d = abs((lon[k] - x + 180.0) % 360.0 - 180.0)
        if d < nearest:  # (the first of equals, as argmin)
            best, nearest = k, d
    return best


def _bracket(values: np.ndarray, x: float) -> list[int]:
    """Indices of the grid values around ``x`` (linear interpolation reads both)."""
    i = int(np.clip(np.searchsorted(values, x), 1, len(values) - 1)) if len(values) > 1 else 0
    return sorted({max(i - 1, 0), i})


def time_indices(ds: xr.Dataset, times: tuple[Any, ...]) -> np.ndarray:
    """The nearest time step of each instant, once each, ascending."""
    wanted: list[Any] = list(times)
    if ds[TIME].dtype.kind == "O":
        import cftime

        cal = ds[TIME].dt.calendar
        wanted = [cftime.datetime(*t.timetuple()[:6], calendar=cal) for t in times]
    return np.unique(_nearest(ds.indexes[TIME], wanted))


def point_dims(sel: Selection) -> tuple[str, ...]:
    return (LAT, LON, TIME) if sel.route is not None else (LAT, LON)


def point_indices(ds: xr.Dataset, sel: Selection, *, touched: bool = False) -> np.ndarray:
    """Rows of (lat, lon[, time]) indices, one per point: the nearest cell. With
    ``touched`` and linear interpolation, the four cells around each point instead
    (with ``touched`` the rows are unique and sorted)."""
    name = "points" if sel.points is not None else "route"
    if LAT not in ds.dims or LON not in ds.dims:
        raise InvalidParameter(name, "this product has no horizontal grid")
    pairs = [(p[0], p[1]) for p in (sel.points or sel.route or ())]
    positions = np.asarray(pairs, dtype=float).reshape(-1, 2)
    extra: list[np.ndarray] = []
    if sel.route is not None:
        if TIME not in ds.dims:
            raise InvalidParameter("route", "this product has no time axis")
        extra = [_nearest(ds.indexes[TIME], [_time_bound(ds, p[2]) for p in sel.route])]
    if touched and sel.method == "linear":
        lat, lon = ds[LAT].values, ds[LON].values
        rows = [
            [i, j, *(int(e[k]) for e in extra)]
            for k, (x, y) in enumerate(positions)
            for i in _bracket(lat, y)
            for j in _bracket(lon, x)
        ]
        return np.unique(np.asarray(rows, dtype=np.int64), axis=0)
    # One vectorised lookup per axis (pandas' nearest, as ``.sel`` uses, for latitude).
    grid = _grid(ds)
    if len(positions) == 1 and not extra and grid.lat is not None:
        # One point (a series, a profile): its two indices without the array lookups'
        # column_stack/astype (test_planner checks it against them).
        x, y = np.float64(positions[0, 0]), np.float64(positions[0, 1])
        if grid.lon_ring:
            j = _nearest_lon_one(grid.lon, x)
        else:
            j = int(_nearest_lon(grid.lon, positions[:, 0])[0])
        return np.asarray([[_nearest_sorted_one(grid.lat, y), j]], dtype=np.int64)
    out = np.column_stack(
        [
            _nearest_ascending(ds.indexes[LAT], positions[:, 1])
            if grid.lat is None
            else _nearest_sorted(grid.lat, positions[:, 1]),
            _nearest_lon(grid.lon, positions[:, 0]),
            *extra,
        ]
    ).astype(np.int64)
    return np.unique(out, axis=0) if touched else out


@dataclass
class Indexers:
    """Per-dimension index arrays, plus optional point-wise (lat, lon[, time]) rows."""

    orth: dict[str, np.ndarray]
    points: np.ndarray | None = None  # rows of indices, one per point (output cells)
    touched: np.ndarray | None = None  # rows of indices read (linear reads neighbours)
    point_dims: tuple[str, ...] = ()
    # Index arrays of ``orth`` made as one ascending run (a whole axis, a slice), by
    # dimension: their chunks are counted from the run's ends. An array replaced in
    # ``orth`` (a stride, a bbox) is no longer the one held here, and is counted.
    runs: dict[str, np.ndarray] = field(default_factory=dict)

    def is_run(self, d: str) -> bool:
        return self.runs.get(d) is self.orth[d]


def _spatial_box(ds: xr.Dataset, sel: Selection, area: SeaAreaInfo | None) -> dict[str, np.ndarray]:
    box = sel.bbox
    if box is None and sel.polygon is not None:
        box = polygon_bbox(sel.polygon)
    if box is None and area is not None:
        w, s, e, n = area.bbox
        box = parse_bbox(f"{w},{s},{e},{n}")
    out: dict[str, np.ndarray] = {}
    if box is None:
        return out
    if LAT not in ds.dims or LON not in ds.dims:
        raise InvalidParameter("bbox", "this product has no horizontal grid")
    out[LAT] = _slice_indices(ds.indexes[LAT], box.south, box.north)
    lon = ds.indexes[LON]
    if box.global_longitudes:
        out[LON] = np.arange(len(lon))
    elif box.west <= box.east:
        out[LON] = _slice_indices(lon, box.west, box.east)
    else:  # across the antimeridian: west..180 then -180..east, as the engine cuts it
        out[LON] = np.concatenate(
            [_slice_indices(lon, box.west, 180.0), _slice_indices(lon, -180.0, box.east)]
        )
    return out


def indexers(ds: xr.Dataset, sel: Selection, area: SeaAreaInfo | None = None) -> Indexers:
    """The indices of ``sel`` on each axis of ``ds`` (and of its points): the cells the
    subset engine cuts."""
    # Whole axes, but for the horizontal ones a selection of points drops (~3 us for
    # 720 + 1440 indices built to be thrown away).
    dropped = point_dims(sel) if sel.points is not None or sel.route is not None else ()
    idx = Indexers(
        orth={str(d): np.arange(n) for d, n in ds.sizes.items() if d not in dropped},
    )
    idx.runs.update(idx.orth)
    idx.orth.update(_spatial_box(ds, sel, area))
    if sel.time is not None or sel.times is not None:
        if TIME not in ds.dims:
            raise InvalidParameter(
                "datetime" if sel.time else "times", "this product has no time axis"
            )
        if sel.time is not None:
            lo, hi = (_time_bound(ds, t) for t in (sel.time.start, sel.time.end))
            idx.orth[TIME] = idx.runs[TIME] = _slice_indices(ds.indexes[TIME], lo, hi)
        else:
            assert sel.times is not None
            idx.orth[TIME] = time_indices(ds, sel.times)
    if sel.depth is not None:
        if DEPTH not in ds.dims:
            raise InvalidParameter("depth", "this product has no depth axis")
        idx.orth[DEPTH] = idx.runs[DEPTH] = _slice_indices(ds.indexes[DEPTH], *sel.depth)
    if sel.points is not None or sel.route is not None:
        idx.point_dims = point_dims(sel)
        idx.points = point_indices(ds, sel)
        idx.touched = (
            point_indices(ds, sel, touched=True)
            if sel.method == "linear"
            else _unique_rows(idx.points)
        )
        for d in idx.point_dims:
            idx.orth.pop(d, None)
    space, every = sel.stride
    for d, step in ((LAT, space), (LON, space), (TIME, every)):
        if step > 1 and d in idx.orth:
            idx.orth[d] = idx.orth[d][::step]
    empty = [d for d, a in idx.orth.items() if a.size == 0]
    if empty:
        raise EmptySelection(
            f"no grid cell centre of {', '.join(empty)} lies inside the selection",
            extensions={"empty_dimensions": empty},
        )
    return idx


def _unique_rows(rows: np.ndarray) -> np.ndarray:
    """``np.unique(rows, axis=0)``; one row as it is (~40 us less per point query)."""
    return rows if len(rows) <= 1 else np.unique(rows, axis=0)


def _chunk_count(where: np.ndarray, chunk: int, run: bool = False) -> int:
    """How many chunks of ``chunk`` cells the indices ``where`` fall in: for one ascending
    run (a whole axis, a slice; ``run``: known to be one) from its ends, else by
    counting them."""
    if len(where) and (
        run or (where[-1] - where[0] + 1 == len(where) and (np.diff(where) == 1).all())
    ):
        return int(where[-1] // chunk - where[0] // chunk + 1)
    return len(np.unique(where // chunk))


def _variable_cost(
    dims: tuple[str, ...], idx: Indexers, chunks: dict[str, int], itemsize: int
) -> CopyCost:
    count = 1
    for d in dims:
        if d in idx.orth:
            count *= _chunk_count(idx.orth[d], chunks[d], idx.is_run(d))
    # (One cell read, one point's: one chunk.)
    touched = idx.touched
    if touched is not None and len(touched) != 1 and all(d in dims for d in idx.point_dims):
        grid = np.asarray([chunks[d] for d in idx.point_dims])
        count *= len(_unique_rows(touched // grid))
    return CopyCost(count, count * itemsize * math.prod(chunks[d] for d in dims))


def _cells(dims: tuple[str, ...], idx: Indexers) -> int:
    n = math.prod(len(idx.orth[d]) for d in dims if d in idx.orth)
    if idx.points is not None and all(d in dims for d in idx.point_dims):
        n *= len(idx.points)
    return n


def plan(
    product: ProductInfo,
    ds: xr.Dataset,
    sel: Selection,
    area: SeaAreaInfo | None = None,
) -> Plan:
    """Plan ``sel`` on the current version of ``product`` (``ds``: its map copy, lazy)."""
    return plan_indexed(product, ds, sel, area)[0]


def plan_indexed(
    product: ProductInfo,
    ds: xr.Dataset,
    sel: Selection,
    area: SeaAreaInfo | None = None,
) -> tuple[Plan, Indexers]:
    """``plan``, and the indices it found (``indexers``), for a reader that cuts them."""
    version = product.version
    assert version is not None
    names = tuple(sel.variables) if sel.variables is not None else tuple(map(str, ds.data_vars))
    missing = [v for v in names if v not in ds.data_vars]
    if missing:
        known = ", ".join(map(str, ds.data_vars))
        raise InvalidParameter(
            "variables", f"unknown variable(s) {', '.join(missing)} (known: {known})"
        )
    idx = indexers(ds, sel, area)
    costs = {c: CopyCost(0, 0) for c in COPIES}
    cells = out_bytes = 0
    for name in names:
        var = ds.variables[name]  # its dims and dtype; ``ds[name]`` builds a DataArray
        dims = tuple(map(str, var.dims))
        n = _cells(dims, idx)
        cells += n
        out_bytes += n * var.dtype.itemsize
        for copy in COPIES:
            grid = version.chunks[copy]["chunks"][name]
            c = _variable_cost(dims, idx, grid, var.dtype.itemsize)
            costs[copy] = CopyCost(costs[copy].chunks + c.chunks, costs[copy].bytes + c.bytes)
    cost = {c: costs[c].bytes + CHUNK_COST_BYTES * costs[c].chunks for c in COPIES}
    choice = "series" if 2 * cost["series"] < cost["map"] else "map"
    used = {str(d) for name in names for d in ds.variables[name].dims}
    shape = {d: len(a) for d, a in idx.orth.items() if d in used}
    if idx.points is not None:
        shape["points"] = len(idx.points)
    canon = canonical(sel)
    made = Plan(
        product_id=product.id,
        version_id=version.id,
        subset_id=canonical_subset_id(product.id, version.id, canon),
        selection=canon,
        copy=choice,
        cells=cells,
        bytes=out_bytes,
        chunks=costs[choice].chunks,
        bytes_to_read=costs[choice].bytes,
        copies=costs,
        variables=names,
        shape=shape,
    )
    return made, idx
