"""Encoders: component results (and subsets) as CoverageJSON, CSV, GeoJSON and NetCDF.

Pure functions from an ``xr.Dataset`` or a ``ComponentResult`` to bytes. CSV and
CoverageJSON come in pieces (generators): each piece reads one slab of the (possibly
lazy) dataset, so a router can stream a large selection without holding its text.
Numbers are written in the shortest text that reads back to the same value in the
variable's own precision (float32 stays float32); missing values are ``null`` in JSON
and an empty field in CSV; instants are ISO 8601 UTC.

CoverageJSON (https://covjson.org/spec/) domain types follow the shape of the data:
``Grid`` (latitude x longitude, with depth and time axes when present), ``PointSeries``,
``VerticalProfile`` or ``Point`` at one position (``Grid`` with one x and y when both
time and depth vary), ``Trajectory`` for positions with their own times (routes),
``PolygonSeries``/``Polygon`` for statistics over a polygon, and a ``CoverageCollection``
of the above for several positions.
"""

from __future__ import annotations

import csv
import io
import json
import math
import tempfile
from collections.abc import Iterator, Sequence
from itertools import repeat
from pathlib import Path
from typing import Any, cast

import numpy as np
import orjson
import xarray as xr
from xarray.core.indexing import PandasIndexingAdapter

from catalog.compute import ComponentResult, Kind, iso_time, point_features
from catalog.subset import write_netcdf
from oceanmart.errors import InvalidParameter
from oceanmart.lru import LRU

__all__ = [
    "MEDIA_TYPES",
    "coveragejson_chunks",
    "csv_chunks",
    "encode",
    "formats",
    "geojson_bytes",
    "geojson_points",
    "write_result_netcdf",
]

LON, LAT, DEPTH, TIME, POINT = "longitude", "latitude", "depth", "time", "point"
PIECE = 65_536  # values (CoverageJSON) or rows (CSV) per piece

MEDIA_TYPES = {
    "coveragejson": "application/prs.coverage+json",
    "csv": "text/csv; charset=utf-8; header=present",
    "geojson": "application/geo+json",
    "netcdf": "application/x-netcdf",
}
_AXES = {TIME: "t", DEPTH: "z", LAT: "y", LON: "x"}
_ORDER = (TIME, DEPTH, LAT, LON, POINT)
_CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"


def _bad_format(fmt: str, why: str) -> InvalidParameter:
    return InvalidParameter("format", f"{fmt}: {why}")


# --- text of values -----------------------------------------------------------------------


def _float_strings(flat: np.ndarray, missing: str) -> list[str]:
    """Floats (a 1-d array) in their shortest round-trip text, ``missing`` for NaN and
    infinities. float32 and float64 through orjson (Rust; float32 in its shortest float32
    digits): NumPy's ``astype(str)`` took ~220 us of the ~400 us a 365-row CSV series
    cost, orjson ~20. Its numbers are JSON's: ``1e-7`` and ``123456790.0`` where NumPy
    writes ``1e-07`` and ``1.2345679e+08``: the same value (every finite float32 was
    checked to read back as its own bits; tests.catalog.test_encode checks samples).
    float16 through NumPy (orjson writes it with a float32's digits)."""
    if flat.dtype.kind == "f" and flat.dtype.itemsize in (4, 8):
        native = np.ascontiguousarray(flat, flat.dtype.newbyteorder("="))
        text = orjson.dumps(native, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1].decode()
        strings = text.split(",") if text else []
        if "null" in text:  # orjson writes NaN and infinities as null
            strings = [missing if t == "null" else t for t in strings]
        return strings
    bad = ~np.isfinite(flat)
    strings = flat.astype(str).tolist()
    return [missing if b else t for t, b in zip(strings, bad.tolist(), strict=True)]


def _texts(values: np.ndarray, missing: str) -> np.ndarray:
    """Each value as text: floats in their shortest round-trip form, instants ISO."""
    flat = np.asarray(values).ravel()
    kind = flat.dtype.kind
    if kind == "f":
        return np.array(_float_strings(flat, missing), dtype=str)
    if kind == "b":
        return np.where(flat, "true", "false")
    if kind in "iu":
        return flat.astype(str)
    if kind == "M":
        text = np.char.add(np.datetime_as_string(flat, unit="s"), "Z")
        return np.where(np.isnat(flat), missing, text)
    return np.array([missing if v is None else _object_text(v) for v in flat.tolist()])


def _strings(values: np.ndarray, missing: str) -> list[str]:
    """``_texts`` as a list (floats without an array of texts in between: a third of
    the cost for a million values)."""
    flat = np.asarray(values).ravel()
    if flat.dtype.kind == "f":
        return _float_strings(flat, missing)
    return cast(list[str], _texts(flat, missing).tolist())


def _object_text(v: Any) -> str:
    return iso_time(v) if hasattr(v, "calendar") else str(v)


def _blocks(shape: tuple[int, ...], limit: int) -> Iterator[tuple[slice, ...]]:
    """Slabs covering ``shape`` in C order, each of at most ``limit`` elements (or one
    row of the last axis)."""
    if not shape:
        yield ()
        return
    inner = math.prod(shape[1:])
    if inner <= limit or len(shape) == 1:
        n = max(1, limit // max(inner, 1))
        for i in range(0, shape[0], n):
            yield (slice(i, min(i + n, shape[0])),)
        return
    for i in range(shape[0]):
        for rest in _blocks(shape[1:], limit):
            yield (slice(i, i + 1), *rest)


def _slab(var: xr.DataArray, block: tuple[slice, ...]) -> np.ndarray:
    """One block of values, computed (only that block when ``var`` is lazy)."""
    if all(
        b.start in (0, None) and (b.stop is None or b.stop >= n)
        for b, n in zip(block, var.shape, strict=False)
    ):
        return np.asarray(var.values)  # the whole variable: an isel costs more than the rest
    return np.asarray(var.isel(dict(zip(var.dims, block, strict=False))).values)


# --- CSV ----------------------------------------------------------------------------------


def _table_dims(ds: xr.Dataset) -> tuple[str, ...]:
    # By name, through ``variables``: a DataArray per variable costs more than the rest.
    used = {str(d) for n in ds.data_vars for d in ds.variables[n].dims}
    return tuple(d for d in _ORDER if d in used) + tuple(sorted(used - set(_ORDER)))


def csv_chunks(ds: xr.Dataset, *, rows: int = PIECE) -> Iterator[bytes]:
    """CSV with one row per cell (every combination of the variables' axes), ERDDAP
    style: a header row of names, a second row of units, then the rows. Columns: the
    axes, coordinates along them (or constant, like a point's position), the variables
    (those lacking an axis repeat along it)."""
    dims = _table_dims(ds)
    shape = tuple(ds.sizes[d] for d in dims)
    # Variables, not DataArrays: a DataArray per column costs more than its text.
    columns: list[tuple[str, xr.Variable]] = []
    variables, coords, axes = ds.variables, list(ds.coords), set(dims)
    taken: set[Any] = set()
    for name in [*dims, *coords]:
        if name in taken or name not in variables or name not in coords:
            continue
        if set(variables[name].dims) <= axes:
            taken.add(name)
            columns.append((str(name), variables[name]))
    columns += [(str(n), variables[n]) for n in ds.data_vars]
    head = io.StringIO()
    writer = csv.writer(head, lineterminator="\n")
    writer.writerow([n for n, _ in columns])
    writer.writerow([_units(n, v) for n, v in columns])
    yield head.getvalue().encode()
    if len(dims) == 1 and 0 < shape[0] <= rows:  # a series: one block, one axis
        yield _series_rows(columns, shape[0]).encode()
        return
    for block in _blocks(shape, rows):
        sub = dict(zip(dims, block, strict=False))
        target = tuple(
            sub[d].stop - sub[d].start if d in sub else n for d, n in zip(dims, shape, strict=True)
        )
        if not math.prod(target):
            continue
        # Each column's texts, or its one text when it is the same on every row (a
        # point's position beside its series); neighbouring constant columns as one.
        texts: list[list[str] | str] = []
        whole = target == shape  # one block (a point series): no isel per column
        for _, var in columns:
            part = var if whole else var.isel({d: s for d, s in sub.items() if d in var.dims})
            values = _expand(np.asarray(part.values), [str(d) for d in part.dims], dims)
            # Text of each value once, then repeated along the axes the column lacks.
            text = _column_texts(values).reshape(values.shape)
            if text.size == 1:
                one = str(text.flat[0])
                if texts and isinstance(texts[-1], str):
                    texts[-1] += "," + one
                else:
                    texts.append(one)
            else:
                texts.append(np.broadcast_to(text, target).ravel().tolist())
        if all(isinstance(t, str) for t in texts):  # one row
            yield (",".join(cast(list[str], texts)) + "\n").encode()
            continue
        n = math.prod(target)
        lines = zip(*(repeat(t, n) if isinstance(t, str) else t for t in texts), strict=True)
        yield ("\n".join(map(",".join, lines)) + "\n").encode()


def _series_rows(columns: list[tuple[str, xr.Variable]], n: int) -> str:
    """The ``n`` rows of a table along one axis (a point's series or profile): what the
    block loop of ``csv_chunks`` writes for it, byte for byte, at ~60% of its CPU for a
    year of daily values.

    Hand-written layout: each row is ``g0 v1 g1 v2 ... vk gk`` where the ``v`` are the
    texts of the columns along the axis and each ``g`` the constant text between them
    (the separating commas and the texts of the constant columns, ``gk`` ending in the
    newline). The rows are one ``str.join`` over a list filled by slice assignment, one
    slot kind at a time, instead of a tuple and a join per row."""
    slots: list[Sequence[str] | str] = []
    glue = ""
    for i, (_, var) in enumerate(columns):
        glue += "," if i else ""
        values = _numpy(var)
        if values.size == 1:  # the same on every row (a 0-d coordinate, or n == 1)
            glue += _one_text(values)
            continue
        if glue:
            slots.append(glue)
        slots.append(_column_strings(values))
        glue = ""
    slots.append(glue + "\n")
    if len(slots) == 1:  # only constants (n == 1): one row
        return cast(str, slots[0])
    parts: list[str] = [""] * (n * len(slots))
    for j, slot in enumerate(slots):
        parts[j :: len(slots)] = [slot] * n if isinstance(slot, str) else slot
    return "".join(parts)


def _one_text(values: np.ndarray) -> str:
    """``_texts`` of one value, without an array of texts."""
    kind = values.dtype.kind
    if kind == "f":
        return _float_strings(values.reshape(1), "")[0]
    if kind in "iu":
        return str(values.reshape(()).item())
    return str(_column_texts(values).flat[0])


def _numpy(var: xr.Variable) -> np.ndarray:
    """``var.values`` (computed when lazy), without xarray's overhead for the two kinds
    of data a small series holds: a NumPy array, and an index (xarray parses NumPy's
    version string twice per read of an index's values: ~30 us)."""
    data: Any = var._data
    if isinstance(data, np.ndarray):
        return data
    # Exactly this type: a multi-index's adapter (a subclass) reads one level's values.
    if type(data) is PandasIndexingAdapter:
        values = data.array.values  # a period index's: objects, not of its dtype
        if isinstance(values, np.ndarray) and values.dtype == data.dtype:
            return values
    return np.asarray(var.values)


# The texts of time axes by their values: a version's time axis, or the slice of it a
# request selects, is written again and again (~0.1 ms for 365 instants).
_AXIS_TEXTS: LRU[tuple[str, tuple[int, ...], bytes], np.ndarray] = LRU(256)
_AXIS_TEXTS_MAX = 100_000  # instants of an axis kept (at most ~3 MB each)


def _column_texts(values: np.ndarray) -> np.ndarray:
    """``_texts(values, "")`` (missing values empty), instants' texts kept by value."""
    if values.dtype.kind != "M" or not 1 < values.size <= _AXIS_TEXTS_MAX:
        return _texts(values, "")
    key = (values.dtype.str, values.shape, values.tobytes())
    held = _AXIS_TEXTS.get(key)
    if held is None:
        held = _AXIS_TEXTS.put(key, _texts(values, ""))
        held.flags.writeable = False  # shared by every answer with this axis
    return held


# The same for the series path, as Python strings: making the 365 strings of a year's
# daily axis from its held texts (``tolist``) costs ~35 us, more than the rest of a row.
_AXIS_STRINGS: LRU[tuple[str, tuple[int, ...], bytes], tuple[str, ...]] = LRU(256)


def _column_strings(values: np.ndarray) -> Sequence[str]:
    """``_column_texts(values)`` as a sequence of ``str``, instants' kept by value."""
    if values.dtype.kind != "M" or not 1 < values.size <= _AXIS_TEXTS_MAX:
        return _strings(values, "")
    key = (values.dtype.str, values.shape, values.tobytes())
    held = _AXIS_STRINGS.get(key)
    if held is None:
        held = _AXIS_STRINGS.put(key, tuple(_column_texts(values).tolist()))
    return held


def _expand(values: np.ndarray, have: list[str], dims: tuple[str, ...]) -> np.ndarray:
    """``values`` (on axes ``have``) with its axes in the order of ``dims`` and the
    missing ones of length 1, ready to broadcast."""
    present = [d for d in dims if d in have]
    if values.ndim:
        values = np.transpose(values, [have.index(d) for d in present])
    return values.reshape([values.shape[present.index(d)] if d in present else 1 for d in dims])


def _units(name: str, var: xr.Variable) -> str:
    if name == TIME or var.dtype.kind == "M":
        return "UTC"
    return str(var.attrs.get("units", ""))


# --- CoverageJSON -------------------------------------------------------------------------


def _axis_values(var: xr.DataArray) -> list[Any]:
    values = np.asarray(var.values).ravel()
    if values.dtype.kind in "MO":
        return list(_strings(values, ""))
    return [float(v) for v in values]


def _referencing(axes: set[str], calendar: str = "Gregorian") -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if axes & {"x", "y"}:
        out.append({"coordinates": ["x", "y"], "system": {"type": "GeographicCRS", "id": _CRS84}})
    if "z" in axes:
        cs = {"csAxes": [{"name": {"en": "depth"}, "direction": "down", "unit": {"symbol": "m"}}]}
        out.append({"coordinates": ["z"], "system": {"type": "VerticalCRS", "cs": cs}})
    if "t" in axes:
        out.append({"coordinates": ["t"], "system": {"type": "TemporalRS", "calendar": calendar}})
    return out


def _parameter(var: xr.DataArray) -> dict[str, Any]:
    a = var.attrs
    label = {"en": str(a.get("long_name") or var.name)}
    if a.get("long_name_zh"):
        label["zh"] = str(a["long_name_zh"])
    prop: dict[str, Any] = {"label": label}
    if a.get("standard_name"):
        prop["id"] = f"https://vocab.nerc.ac.uk/standard_name/{a['standard_name']}/"
    out: dict[str, Any] = {"type": "Parameter", "description": label, "observedProperty": prop}
    units = a.get("units")
    if units:
        out["unit"] = {"symbol": str(units)}
    return out


def _data_type(var: xr.DataArray) -> str:
    return "float" if var.dtype.kind == "f" else "integer"


def _calendar(ds: xr.Dataset) -> str:
    if TIME in ds.coords and ds[TIME].dtype.kind == "O":
        cal = str(ds[TIME].dt.calendar)
        if cal not in ("standard", "gregorian", "proleptic_gregorian"):
            return f"https://cfconventions.org/cf-conventions/cf-conventions.html#calendar-{cal}"
    return "Gregorian"


def _coverage_domain(ds: xr.Dataset, area: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
    """The domain type and axes of one coverage (no ``point`` axis left)."""
    dims = set(_table_dims(ds))
    extra = dims - {TIME, DEPTH, LAT, LON}
    if extra:
        raise _bad_format("coveragejson", f"no CoverageJSON axis for {', '.join(sorted(extra))}")
    axes: dict[str, Any] = {}
    if LAT in ds.coords and LON in ds.coords:
        axes["x"] = {"values": _axis_values(ds[LON])}
        axes["y"] = {"values": _axis_values(ds[LAT])}
    for d in (DEPTH, TIME):
        if d in ds.coords and (d in dims or ds[d].ndim == 0):
            axes[_AXES[d]] = {"values": _axis_values(ds[d])}
    varies = {a for a in ("t", "z") if a in axes and len(axes[a]["values"]) > 1}
    if LAT in dims and LON in dims:
        return "Grid", axes
    if "x" in axes:
        if len(axes["x"]["values"]) != 1 or len(axes["y"]["values"]) != 1:
            raise _bad_format("coveragejson", "expected one position")
        kinds = {frozenset(): "Point", frozenset("t"): "PointSeries"}
        kinds[frozenset("z")] = "VerticalProfile"
        return kinds.get(frozenset(varies), "Grid"), axes
    if area is None or area.get("type") != "Polygon":
        raise _bad_format("coveragejson", "statistics over an area need a single polygon")
    if "z" in varies:
        raise _bad_format("coveragejson", "a polygon coverage holds one depth level")
    axes["composite"] = {
        "dataType": "polygon",
        "coordinates": ["x", "y"],
        "values": [area["coordinates"]],
    }
    if "t" in axes:
        return "PolygonSeries", axes
    return "Polygon", axes


def _trajectory_domain(ds: xr.Dataset) -> tuple[str, dict[str, Any]]:
    if DEPTH in _table_dims(ds) and ds.sizes[DEPTH] > 1:
        raise _bad_format("coveragejson", "a trajectory holds one depth level")
    lon = ds["requested_longitude"] if "requested_longitude" in ds.coords else ds[LON]
    lat = ds["requested_latitude"] if "requested_latitude" in ds.coords else ds[LAT]
    t = _axis_values(ds[TIME])
    values = [[ti, float(x), float(y)] for ti, x, y in zip(t, lon.values, lat.values, strict=True)]
    axes: dict[str, Any] = {
        "composite": {"dataType": "tuple", "coordinates": ["t", "x", "y"], "values": values}
    }
    if DEPTH in ds.coords:
        axes["z"] = {"values": _axis_values(ds[DEPTH])}
    return "Trajectory", axes


def _range_axes(var: xr.DataArray, trajectory: bool) -> list[str]:
    if trajectory:
        return ["composite"] + (["z"] if DEPTH in var.dims else [])
    return [_AXES[d] for d in _ORDER if d in var.dims and d in _AXES]


def _ranges(ds: xr.Dataset, trajectory: bool, limit: int) -> Iterator[str]:
    first = True
    for name, var in ds.data_vars.items():
        order = [d for d in (POINT, *_ORDER) if d in var.dims]
        var = var.transpose(*dict.fromkeys(order))
        head = {
            "type": "NdArray",
            "dataType": _data_type(var),
            "axisNames": _range_axes(var, trajectory),
            "shape": list(var.shape),
        }
        text = json.dumps(head, separators=(",", ":"))[:-1]
        yield ("" if first else ",") + json.dumps(str(name)) + ":" + text + ',"values":['
        first = False
        sep = ""
        for block in _blocks(var.shape, limit):
            values = _slab(var, block)
            if values.size:
                yield sep + ",".join(_strings(values, "null"))
                sep = ","
        yield "]}"


def _one_coverage(
    ds: xr.Dataset, area: dict[str, Any] | None, limit: int, *, standalone: bool
) -> Iterator[str]:
    trajectory = POINT in ds.dims
    kind, axes = _trajectory_domain(ds) if trajectory else _coverage_domain(ds, area)
    domain: dict[str, Any] = {"type": "Domain", "domainType": kind, "axes": axes}
    if standalone:
        names = set(axes) - {"composite"} | ({"x", "y", "t"} if trajectory else set())
        domain["referencing"] = _referencing(names, _calendar(ds))
    doc: dict[str, Any] = {"type": "Coverage", "domain": domain}
    if standalone:
        doc["parameters"] = {str(n): _parameter(v) for n, v in ds.data_vars.items()}
    yield json.dumps(doc, separators=(",", ":"), ensure_ascii=False)[:-1] + ',"ranges":{'
    yield from _ranges(ds, trajectory, limit)
    yield "}}"


def coveragejson_chunks(
    ds: xr.Dataset, *, area: dict[str, Any] | None = None, limit: int = PIECE
) -> Iterator[bytes]:
    """CoverageJSON of ``ds`` in pieces. ``area`` (a GeoJSON geometry) is the polygon of
    area statistics. Several positions without their own times (a ``point`` axis and no
    time along it) become a CoverageCollection of one coverage per position."""
    for piece in _coveragejson(ds, area, limit):
        yield piece.encode()


def _coveragejson(ds: xr.Dataset, area: dict[str, Any] | None, limit: int) -> Iterator[str]:
    per_point = POINT in ds.dims and not (TIME in ds.coords and ds[TIME].dims == (POINT,))
    if not per_point:
        yield from _one_coverage(ds, area, limit, standalone=True)
        return
    first = ds.isel({POINT: 0})
    kind, axes = _coverage_domain(first, None)
    head = {
        "type": "CoverageCollection",
        "domainType": kind,
        "parameters": {str(n): _parameter(v) for n, v in ds.data_vars.items()},
        "referencing": _referencing(set(axes), _calendar(ds)),
    }
    yield json.dumps(head, separators=(",", ":"), ensure_ascii=False)[:-1] + ',"coverages":['
    for i in range(ds.sizes[POINT]):
        yield from ([","] if i else [])
        yield from _one_coverage(ds.isel({POINT: i}), None, limit, standalone=False)
    yield "]}"


# --- GeoJSON ------------------------------------------------------------------------------


def geojson_bytes(result: ComponentResult) -> bytes:
    """A FeatureCollection of the result's features (alerts: MultiPoints of the cells
    over the threshold, one per alerting time step; routes: a Point per position)."""
    if not result.features and result.kind not in (Kind.ALERTS, Kind.TRAJECTORY):
        raise _bad_format("geojson", f"a {result.kind.value} result has no features")
    doc = {
        "type": "FeatureCollection",
        "features": list(result.features),
        "oceanmart": {
            "component": result.component,
            "sources": [
                {"role": s.role, "product": s.product_id, "version": s.version_id}
                for s in result.sources
            ],
        },
    }
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def geojson_points(ds: xr.Dataset) -> bytes:
    """A FeatureCollection of the positions of a point selection (a ``point`` axis, or
    one position): see ``catalog.compute.point_features``."""
    if "point" not in ds.dims and not (LAT in ds.coords and ds[LAT].ndim == 0):
        raise _bad_format("geojson", "only positions (points, routes) are written as GeoJSON")
    doc = {"type": "FeatureCollection", "features": list(point_features(ds))}
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


# --- NetCDF and dispatch ------------------------------------------------------------------


def write_result_netcdf(result: ComponentResult, path: Path) -> None:
    """A CF NetCDF4 file of the result's dataset with provenance (``write_netcdf``)."""
    src = result.source
    write_netcdf(
        result.dataset, path, product_id=src.product_id, version_id=src.version_id,
        selection=src.selection,
    )  # fmt: skip


def _netcdf_chunks(result: ComponentResult, size: int = 1 << 20) -> Iterator[bytes]:
    with tempfile.TemporaryDirectory(prefix="oceanmart-nc-") as tmp:
        path = Path(tmp) / "result.nc"
        write_result_netcdf(result, path)
        with path.open("rb") as f:
            while chunk := f.read(size):
                yield chunk


def _table(result: ComponentResult) -> xr.Dataset:
    if result.table is None:
        return result.dataset
    return result.dataset[list(result.table)]


def formats(result: ComponentResult) -> tuple[str, ...]:
    """The formats this result can be written in."""
    out = ["csv", "netcdf"]
    if result.kind in (Kind.ALERTS, Kind.TRAJECTORY):
        out.append("geojson")
    if result.kind != Kind.ALERTS:
        try:  # the header piece makes every check (it needs coordinates only)
            next(_coveragejson(_table(result), result.area, 1))
            out.append("coveragejson")
        except InvalidParameter:
            pass
    return tuple(sorted(out))


def encode(result: ComponentResult, fmt: str) -> Iterator[bytes]:
    """The result in ``fmt`` (see ``MEDIA_TYPES``), in pieces."""
    if fmt not in formats(result):
        raise _bad_format(fmt, f"a {result.component} result is written as "
                          f"{', '.join(formats(result))}")  # fmt: skip
    if fmt == "csv":
        return csv_chunks(_table(result))
    if fmt == "coveragejson":
        return coveragejson_chunks(_table(result), area=result.area)
    if fmt == "geojson":
        return iter([geojson_bytes(result)])
    return _netcdf_chunks(result)
