"""One point's values (a time series, a profile) read without xarray's indexing.

The subset engine cuts a point with xarray (``subset.apply``): a few ``isel`` and
``assign_coords`` around zarr-python's read, ~2 ms of Python for a 365-step series whose
stored bytes take ~20 us to read. ``read_point`` gives the same dataset (the tests
compare them with ``assert_identical`` on every corpus product) from the planner's
indices, the version's coordinates (held per version, which never changes) and
``_chunks.ChunkReader``, which reads only the inner chunk of the point.

It answers None, and the caller cuts with xarray, for anything but one nearest point
over whole or sliced time and depth axes of variables on the horizontal grid, stored in
a layout the chunk reader knows, whose decoding is at most masking a fill value.
"""

from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from catalog._chunks import ArrayLayout, ChunkReader
from catalog.planner import Indexers, Plan, indexers, plan_indexed
from catalog.products import ProductInfo
from catalog.selection import Selection
from catalog.store import DataStore
from catalog.subset import IN_MEMORY_BYTES, check_limit, cut_planned, open_copy, with_variables

LON, LAT = "longitude", "latitude"
AXES_KEPT = 64  # time/depth slices whose coordinates a template keeps made
# Encoding keys that say nothing about the values (xarray's zarr backend sets them).
_HARMLESS = {"chunks", "preferred_chunks", "compressors", "filters", "serializer", "shards",
             "dtype", "fill_value", "_FillValue", "missing_value", "coordinates"}  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Var:
    name: str
    dims: tuple[str, ...]
    attrs: dict[str, Any]
    layout: ArrayLayout
    missing: tuple[float, ...]  # stored values xarray reads as NaN


@dataclass(frozen=True, slots=True)
class _Template:
    """What a point cut of some variables of one copy needs besides the values."""

    variables: tuple[_Var, ...]
    coords: tuple[tuple[str, tuple[str, ...], np.ndarray, dict[str, Any]], ...]
    attrs: dict[str, Any]
    # Coordinates off the grid cut to some slices (PointReader._axes), per slices.
    axes: dict[tuple[tuple[str, int, int], ...], _Axes] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Axes:
    """Coordinates off the grid cut to some slices, with their indexes (shared by the
    answers, which copy the variables: their attributes and encoding are their own)."""

    variables: dict[str, xr.Variable]
    indexes: dict[Any, Any]  # xr.Coordinates.xindexes, made once (~4 us each time)


class PointReader:
    """Point cuts of the versions of one data store (thread-safe)."""

    def __init__(self, store: DataStore) -> None:
        self.store = store
        self.chunks = ChunkReader(store)
        self._templates: dict[tuple[str, str, tuple[str, ...] | None], _Template | None] = {}
        self._lock = threading.Lock()

    def template(
        self, ds: xr.Dataset, store_path: str, copy: str, names: tuple[str, ...] | None
    ) -> _Template | None:
        key = (store_path, copy, names)
        with self._lock:
            if key in self._templates:
                return self._templates[key]
        made = self._template(ds, store_path, copy, names)
        with self._lock:
            self._templates[key] = made
        return made

    def _template(
        self, ds: xr.Dataset, store_path: str, copy: str, names: tuple[str, ...] | None
    ) -> _Template | None:
        if names is not None:
            ds = with_variables(ds, names)
        root = self.store.location(store_path, f"{copy}.zarr")
        meta = _metadata(self.store, root)
        if meta is None:
            return None
        variables = []
        for name, var in ds.data_vars.items():
            dims = tuple(map(str, var.dims))
            layout = ArrayLayout.of(f"{root}/{name}", meta.get(str(name), {}))
            if layout is None or LAT not in dims or LON not in dims:
                return None
            if set(var.encoding) - _HARMLESS or var.dtype != layout.dtype:
                return None  # scale/offset, times, a fill that turns ints into floats
            if layout.shape != var.shape or var.dtype.kind != "f":
                return None
            missing = tuple(
                float(var.encoding[k])
                for k in ("_FillValue", "missing_value")
                if k in var.encoding and np.ndim(var.encoding[k]) == 0
            )
            if np.ndim(var.encoding.get("missing_value", 0)) != 0:
                return None  # several missing values
            variables.append(_Var(str(name), dims, dict(var.attrs), layout, missing))
        coords = tuple(
            (str(c), tuple(map(str, v.dims)), np.asarray(v.values), dict(v.attrs))
            for c, v in ds.coords.items()
        )
        return _Template(tuple(variables), coords, dict(ds.attrs))

    def read(
        self,
        ds: xr.Dataset,
        store_path: str,
        copy: str,
        sel: Selection,
        idx: Indexers | None = None,
    ) -> xr.Dataset | None:
        """The cut of ``sel`` (one point) on ``copy`` of a version (``ds``, opened lazily) with
        its ``point`` axis dropped, as ``subset.apply(...).isel(point=0)`` gives it; None
        when xarray has to cut it."""
        if not _one_nearest_point(sel):
            return None
        tmpl = self.template(ds, store_path, copy, sel.variables)
        if tmpl is None:
            return None
        idx = idx or indexers(ds, sel)  # the same on both copies (same coordinates)
        assert idx.points is not None
        i, j = (int(v) for v in idx.points[0])
        at: dict[str, Any] = {LAT: i, LON: j}
        for d, where in idx.orth.items():
            lo, hi = int(where[0]), int(where[-1]) + 1
            if hi - lo != len(where):  # not one run (never, without stride or times)
                return None
            at[d] = slice(lo, hi)
        data = {}
        for v in tmpl.variables:
            box = tuple(
                at[d] if isinstance(at[d], slice) else slice(at[d], at[d] + 1) for d in v.dims
            )
            values = self.chunks.read(v.layout, box)
            values = values[tuple(slice(None) if isinstance(at[d], slice) else 0 for d in v.dims)]
            for m in v.missing:
                if not math.isnan(m):
                    values = np.where(values == m, np.nan, values).astype(values.dtype)
            dims = tuple(d for d in v.dims if isinstance(at[d], slice))
            data[v.name] = _variable(dims, values, v.attrs)
        axes = self._axes(tmpl, at)
        coords = {}
        for name, dims, values, attrs in tmpl.coords:
            if name in axes.variables:  # (xarray copies it into the answer: test_points)
                coords[name] = axes.variables[name]
                continue
            cut = values[tuple(at.get(d, slice(None)) for d in dims)]
            kept = tuple(d for d in dims if not isinstance(at.get(d), int))
            coords[name] = _variable(kept, np.asarray(cut), attrs)
        x, y = sel.points[0] if sel.points else (math.nan, math.nan)
        coords["point"] = _variable((), np.asarray(np.int64(0)), None)
        coords["requested_longitude"] = _variable((), np.asarray(np.float64(x)), None)
        coords["requested_latitude"] = _variable((), np.asarray(np.float64(y)), None)
        # Put together directly, with xarray's internal constructor for parts known to
        # agree (``Dataset(...)`` merging and aligning them was ~0.23 of a ~0.55 ms cut
        # of CPU here; xarray internals: tests/catalog/test_points.py checks the answers
        # on every corpus product), with the axes' indexes made (a pandas index of 365
        # instants costs ~0.1 ms) and their variables copied (their attributes and
        # encoding are the answer's own).
        variables = {
            name: _shallow(var) if name in axes.variables else var for name, var in coords.items()
        }
        variables.update(data)
        # The dimensions' sizes as ``calculate_dimensions`` finds them, without its checks
        # (~5 us): the variables were cut alike from ``at``.
        sizes: dict[Any, int] = {}
        for made in variables.values():
            for dim, size in zip(made._dims, made._data.shape, strict=True):
                sizes.setdefault(dim, size)
        return xr.Dataset._construct_direct(
            variables,
            set(coords),
            dims=sizes,
            attrs=dict(tmpl.attrs),
            indexes=dict(axes.indexes),
        )

    def _axes(self, tmpl: _Template, at: dict[str, Any]) -> _Axes:
        """The coordinates off the horizontal grid (times, depths, their bounds) cut to
        the slices of ``at``, with their indexes, made once per template and slices."""
        key = tuple((d, s.start, s.stop) for d, s in at.items() if isinstance(s, slice))
        with self._lock:
            held = tmpl.axes.get(key)
        if held is not None:
            return held
        cut = xr.Coordinates(
            {
                name: xr.Variable(dims, values[tuple(at.get(d, slice(None)) for d in dims)], attrs)
                for name, dims, values, attrs in tmpl.coords
                if LAT not in dims and LON not in dims
            }
        )
        made = _Axes({str(k): v for k, v in cut.variables.items()}, dict(cut.xindexes))
        with self._lock:
            if len(tmpl.axes) >= AXES_KEPT:
                tmpl.axes.clear()
            tmpl.axes[key] = made
        return made


def _variable(dims: tuple[str, ...], data: np.ndarray, attrs: dict[str, Any] | None) -> xr.Variable:
    """``xr.Variable(dims, data, attrs)``, for a numpy array of numbers, put together by
    hand: the constructor's checks and conversions (``as_compatible_data``, the parsing of
    the dimensions) cost ~2.5 us a variable, ~20 us of an answer's ~0.1 ms of Python,
    and for such an array they leave it as it is. What the constructor ends in: its four
    slots set, the attributes copied (an answer's are its own), no encoding. Anything
    else (times, objects) goes through the constructor. xarray internals:
    tests/catalog/test_points.py compares the answers with xarray's on every corpus
    product, and ``_variable`` with the constructor."""
    if type(data) is not np.ndarray or data.dtype.kind not in "biuf" or data.ndim != len(dims):
        return xr.Variable(dims, data, attrs)
    var = object.__new__(xr.Variable)
    var._dims = dims
    var._data = data
    var._attrs = dict(attrs) if attrs else None
    var._encoding = None
    return var


def _shallow(var: xr.Variable) -> xr.Variable:
    """``var.copy(deep=False)`` put together by hand (~1 us, not ~3.5 us; see
    ``_variable``): the same class, dimensions and data, its own attributes and encoding.
    Compared with ``copy`` in tests/catalog/test_points.py."""
    out = object.__new__(type(var))
    out._dims = var._dims
    out._data = var._data
    out._attrs = dict(var._attrs) if var._attrs else None
    out._encoding = None if var._encoding is None else dict(var._encoding)
    return out


_READERS: weakref.WeakKeyDictionary[DataStore, PointReader] = weakref.WeakKeyDictionary()
_READERS_LOCK = threading.Lock()


def reader(store: DataStore) -> PointReader:
    """The point reader of ``store`` (one per store: it holds what it read of versions)."""
    with _READERS_LOCK:
        held = _READERS.get(store)
        if held is None:
            held = _READERS[store] = PointReader(store)
        return held


class TooMuchToRead(Exception):
    """``cut_point(max_read=...)``: the plan reads more than that (nothing was read)."""


def cut_point(
    store: DataStore,
    product: ProductInfo,
    sel: Selection,
    limit_bytes: int,
    *,
    max_read: int | None = None,
) -> tuple[xr.Dataset, Plan]:
    """``subset.cut`` of a selection of one point (a series, a profile), with its
    ``point`` axis dropped: read by ``PointReader`` when it can, else by xarray.
    ``max_read``: raise TooMuchToRead, before reading, if the plan reads more bytes
    or the point reader cannot read it (for a caller that must not wait long)."""
    version = product.version
    assert version is not None
    p, idx = plan_indexed(product, store.open_version(version.store_path, dask=False), sel)
    check_limit(p, limit_bytes)
    if max_read is not None and p.bytes_to_read > max_read:
        raise TooMuchToRead(f"{p.bytes_to_read} bytes to read")
    if p.bytes <= IN_MEMORY_BYTES:
        ds = open_copy(store, version.store_path, p.copy, dask=False)
        got = reader(store).read(ds, version.store_path, p.copy, sel, idx)
        if got is not None:
            return got, p
    if max_read is not None:
        raise TooMuchToRead("not a direct read")
    selected = cut_planned(store, product, sel, p)
    return (selected.isel(point=0) if "point" in selected.dims else selected), p


def _one_nearest_point(sel: Selection) -> bool:
    return (
        sel.points is not None
        and len(sel.points) == 1
        and sel.method != "linear"
        and sel.route is None
        and sel.bbox is None
        and sel.polygon is None
        and sel.sea_area is None
        and sel.times is None
        and sel.stride == (1, 1)
    )


def _metadata(store: DataStore, root: str) -> dict[str, dict[str, Any]] | None:
    """The arrays' metadata from a copy's consolidated ``zarr.json``."""
    import json

    try:
        with store.fs.open(f"{root}/zarr.json", "rb") as f:
            doc = json.load(f)
    except (OSError, ValueError):
        return None
    consolidated = (doc.get("consolidated_metadata") or {}).get("metadata")
    return consolidated if isinstance(consolidated, dict) else None
