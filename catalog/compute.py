"""Component runs: what each component reads, planned before any read, and what it
computes from the data the subset engine cuts.

A caller (the HTTP layer, a job) plans first, then runs::

    rp = plan_run("area-statistics", parameters, "coads-climatology", source)
    # price, meter and limit with rp.cells / rp.bytes / rp.points; check the caller's
    # entitlement to every product in rp.products (a climatology anomaly reads two)
    result = execute(rp, source)
    # write it with catalog.encode (CoverageJSON, CSV, GeoJSON, NetCDF)

``reads`` says, from the parameters alone, which selection of which product a run reads;
``plan_run`` plans each (``catalog.planner.plan``: copy, chunks, cells, bytes) and makes
the checks that need the product's metadata (variable without a depth axis, product
without a time axis...), so a bad call fails before any data is read. ``execute`` cuts
each planned selection with ``catalog.subset.apply`` (small ones read into memory, large
ones left as dask graphs) and computes. Reductions (statistics, alerts) are computed;
gridded results (aggregation, anomaly, regrid) stay lazy when their input was large, so
an encoder can write them piece by piece.

Conventions shared with CDO, against which the tests check them: area weights are the
exact areas of latitude/longitude cells (sin north - sin south, i.e. cos latitude on a
regular grid), missing values are skipped and the weights renormalised (``fldmean``);
percentiles are nearest-rank (``fldpctl`` with ``nrank``), weighted by area unless
``weighted`` is false; periods are calendar months, DJF/MAM/JJA/SON seasons (December
opens the next year's DJF) and years, stamped with their start and bounds, with the
number of steps in each (incomplete periods are kept, as ``seasmean`` keeps them).

An anomaly is taken against either a ``baseline`` period of the same product (the mean
of each calendar month over it, ``ymonmean``) or a separate ``climatology`` product: one
with 12 monthly steps and a ``month`` coordinate (COADS, the ocean atlas), interpolated
bilinearly onto the product's grid (``remapbil``) from its cells around the area (its
read is planned one cell wider). Units must agree, and for variables with depth the
product's levels must be levels of the climatology.
"""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np
import xarray as xr
from pydantic import BaseModel

from catalog import _grid
from catalog.components import (
    AreaStatistics,
    ClimatologyAnomaly,
    Component,
    PointSeries,
    Regrid,
    RouteSampling,
    TemporalAggregation,
    ThresholdAlert,
    VerticalProfile,
    parse_call,
)
from catalog.planner import Plan, plan
from catalog.products import ProductInfo
from catalog.sea_areas import SeaAreaInfo, rasterise
from catalog.selection import Selection, parse_bbox, polygon_bbox, selection_from_json
from catalog.store import DataStore
from catalog.subset import IN_MEMORY_BYTES, apply, check_limit, open_copy
from oceanmart.errors import EmptySelection, InvalidParameter, NotFound

__all__ = [
    "ComponentResult",
    "Kind",
    "PlannedRead",
    "Provenance",
    "Read",
    "RunPlan",
    "Source",
    "execute",
    "iso_time",
    "plan_run",
    "point_features",
    "reads",
    "run_component",
]

LON, LAT, DEPTH, TIME = "longitude", "latitude", "depth", "time"
PARAMS = "component.parameters"
BLOCK = 32 * 1024 * 1024  # bytes of a dask block of a large input


# --- values crossing the boundary ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Source:
    """Where runs read. ``product`` resolves a product id to its current version: the
    caller's visibility and entitlement checks belong there (it raises NotFound or
    NotEntitled). ``area`` resolves a sea area id (``catalog.sea_areas.resolve_area``)."""

    store: DataStore
    product: Callable[[str], ProductInfo]
    area: Callable[[str], SeaAreaInfo]


@dataclass(frozen=True, slots=True)
class Read:
    """One selection of one product that a run reads. ``fields`` name the component
    parameter behind each selection field (for errors); ``margin`` widens the box by
    that many grid cells and ``margin_degrees`` by at least that much when planned
    (interpolation needs the cells around the edge)."""

    role: str  # "data", "baseline" or "climatology"
    product_id: str
    selection: Selection
    fields: Mapping[str, str] = field(default_factory=dict)
    product_field: str | None = None  # the parameter naming the product, if any
    margin: int = 0
    margin_degrees: float = 0.0


@dataclass(frozen=True, slots=True)
class PlannedRead:
    """A read with its plan. ``selection`` and ``area`` are what is cut (a margin widens
    the box and drops the mask); ``requested`` and ``requested_area`` what was asked."""

    role: str
    product: ProductInfo
    selection: Selection
    area: SeaAreaInfo | None
    plan: Plan
    requested: Selection
    requested_area: SeaAreaInfo | None


@dataclass(frozen=True, slots=True)
class RunPlan:
    """A checked component call and the plan of everything it reads."""

    component: Component
    parameters: BaseModel
    reads: tuple[PlannedRead, ...]
    points: int = 0  # positions asked for (the "points" price basis)

    @property
    def products(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.product.id for r in self.reads))

    @property
    def cells(self) -> int:
        return sum(r.plan.cells for r in self.reads)

    @property
    def bytes(self) -> int:
        return sum(r.plan.bytes for r in self.reads)

    @property
    def bytes_to_read(self) -> int:
        return sum(r.plan.bytes_to_read for r in self.reads)

    def read(self, role: str) -> PlannedRead:
        return next(r for r in self.reads if r.role == role)

    def as_dict(self) -> dict[str, Any]:
        return {
            "component": self.component.id,
            "parameters": self.parameters.model_dump(mode="json"),
            "price": {"basis": self.component.price.basis, "factor": self.component.price.factor},
            "cells": self.cells,
            "bytes": self.bytes,
            "bytes_to_read": self.bytes_to_read,
            "points": self.points,
            "reads": [{"role": r.role, **r.plan.as_dict()} for r in self.reads],
        }


class Kind(StrEnum):
    """The shape of a result, which decides the formats it can be written in."""

    GRID = "grid"  # (time, depth,) latitude, longitude
    POINT = "point"  # one position: over time and/or depth
    TRAJECTORY = "trajectory"  # positions along ``point``, each with its own time
    AREA = "area"  # statistics over an area, per time step or period
    ALERTS = "alerts"  # per time step: cells over the threshold; features where


@dataclass(frozen=True, slots=True)
class Provenance:
    role: str
    product_id: str
    version_id: str
    selection: Selection


@dataclass(frozen=True, slots=True)
class ComponentResult:
    """What a run computed. ``dataset`` always holds the values (lazy when large);
    ``features`` are GeoJSON Features (alerts, route positions); ``area`` is the GeoJSON
    geometry of the area the run covered; ``table`` names the variables of one row per
    step for CSV when the dataset also holds maps (alerts)."""

    component: str
    kind: Kind
    dataset: xr.Dataset
    sources: tuple[Provenance, ...]
    features: tuple[dict[str, Any], ...] = ()
    area: dict[str, Any] | None = None
    table: tuple[str, ...] | None = None

    @property
    def source(self) -> Provenance:
        return self.sources[0]


# --- parameters -> reads ------------------------------------------------------------------

_AREA = {"bbox": "area.bbox", "polygon": "area.polygon", "sea_area": "area.sea_area"}
_COMMON = {"variables": "variables", "datetime": "datetime", "depth": "depth"}


def _param(name: str) -> str:
    return f"{PARAMS}.{name}"


def _renamed(exc: InvalidParameter, fields: Mapping[str, str]) -> InvalidParameter:
    """The same error, naming the component parameter behind a selection field."""
    detail = exc.detail.split(": ", 1)[-1]
    return InvalidParameter(_param(fields.get(exc.parameter, exc.parameter)), detail)


def _select(doc: dict[str, Any], fields: Mapping[str, str]) -> Selection:
    try:
        return selection_from_json(doc)
    except InvalidParameter as exc:
        raise _renamed(exc, fields) from None


def _area_doc(area: Any) -> dict[str, Any]:
    doc = {k: getattr(area, k) for k in ("bbox", "polygon", "sea_area")}
    doc = {k: v for k, v in doc.items() if v is not None}
    if not doc:
        raise InvalidParameter(_param("area"), "give a bbox, a polygon or a sea_area")
    return doc


def _common(p: Any, variables: list[str]) -> dict[str, Any]:
    doc: dict[str, Any] = {"variables": variables}
    for key in ("datetime", "depth"):
        value = getattr(p, key, None)
        if value is not None:
            doc[key] = value
    return doc


def _area_read(p: Any, product_id: str, variables: list[str], **extra: Any) -> Read:
    doc = {**_area_doc(p.area), **_common(p, variables)}
    fields = {**_AREA, **_COMMON}
    return Read("data", product_id, _select(doc, fields), fields, **extra)


def _reads_point(p: PointSeries | VerticalProfile, product_id: str) -> tuple[Read, ...]:
    fields = {**_COMMON, "points": "point", "point": "point", "method": "method"}
    doc = {"point": p.point, "method": p.method, **_common(p, p.variables)}
    return (Read("data", product_id, _select(doc, fields), fields),)


def _reads_area(p: AreaStatistics | TemporalAggregation, product_id: str) -> tuple[Read, ...]:
    return (_area_read(p, product_id, p.variables),)


def _alert_variables(p: ThresholdAlert) -> list[str]:
    return [p.variable] if isinstance(p.variable, str) else list(p.variable)


def _reads_alert(p: ThresholdAlert, product_id: str) -> tuple[Read, ...]:
    read = _area_read(p, product_id, _alert_variables(p))
    return (replace(read, fields={**read.fields, "variables": "variable"}),)


def _reads_route(p: RouteSampling, product_id: str) -> tuple[Read, ...]:
    fields = {**_COMMON, "route": "route", "method": "method"}
    doc = {"route": p.route, "method": p.method, **_common(p, p.variables)}
    return (Read("data", product_id, _select(doc, fields), fields),)


def _reads_regrid(p: Regrid, product_id: str) -> tuple[Read, ...]:
    if p.method == "conservative":  # target cells reach half a step past their centres
        return (_area_read(p, product_id, p.variables, margin=1, margin_degrees=p.resolution / 2),)
    return (_area_read(p, product_id, p.variables, margin=1),)


def _reads_anomaly(p: ClimatologyAnomaly, product_id: str) -> tuple[Read, ...]:
    if (p.baseline is None) == (p.climatology is None):
        raise InvalidParameter(
            _param("baseline"),
            "give either baseline (a period of this product) or climatology (a product)",
        )
    data = _area_read(p, product_id, p.variables)
    if p.baseline is not None:
        doc = {**_area_doc(p.area), **_common(p, p.variables), "datetime": p.baseline}
        fields = {**_AREA, **_COMMON, "datetime": "baseline"}
        return data, Read("baseline", product_id, _select(doc, fields), fields)
    assert p.climatology is not None
    names = [p.climatology.variables.get(v, v) for v in p.variables]
    doc = {**_area_doc(p.area), "variables": names}
    if p.depth is not None:
        doc["depth"] = p.depth
    fields = {**_AREA, "variables": "climatology.variables", "depth": "depth"}
    clim = Read(
        "climatology",
        p.climatology.product,
        _select(doc, fields),
        fields,
        product_field="climatology.product",
        margin=1,
    )
    return data, clim


# --- planning -----------------------------------------------------------------------------


def _box(sel: Selection, area: SeaAreaInfo | None) -> tuple[float, float, float, float]:
    if sel.bbox is not None:
        b = sel.bbox
    elif sel.polygon is not None:
        b = polygon_bbox(sel.polygon)
    else:
        assert area is not None
        w, s, e, n = area.bbox
        b = parse_bbox(f"{w},{s},{e},{n}")
    return b.west, b.south, b.east, b.north


def _widen(sel: Selection, area: SeaAreaInfo | None, ds: xr.Dataset, read: Read) -> Selection:
    """The selection's box grown by the read's margin, as a plain box (no mask)."""
    w, s, e, n = _box(sel, area)
    dx = max(read.margin * _grid.step(ds[LON].values), read.margin_degrees)
    dy = max(read.margin * _grid.step(ds[LAT].values), read.margin_degrees)
    width = (e - w) % 360.0 if w != e else 0.0
    if (sel.bbox is not None and sel.bbox.global_longitudes) or width + 2 * dx >= 360.0:
        west, east = -180.0, 180.0
    else:
        west, east = (w - dx + 180.0) % 360.0 - 180.0, (e + dx + 180.0) % 360.0 - 180.0
    south, north = max(s - dy, -90.0), min(n + dy, 90.0)
    box = parse_bbox(f"{west},{south},{east},{north}")
    return replace(sel, bbox=box, polygon=None, sea_area=None)


def _plan_read(read: Read, source: Source) -> PlannedRead:
    try:
        product = source.product(read.product_id)
    except NotFound:
        if read.product_field is None:
            raise
        raise InvalidParameter(
            _param(read.product_field), f"no product {read.product_id!r}"
        ) from None
    assert product.version is not None
    ds = source.store.open_version(product.version.store_path, dask=False)
    sel = asked = read.selection
    try:
        area = asked_area = source.area(sel.sea_area) if sel.sea_area is not None else None
        if read.margin or read.margin_degrees:
            if LAT not in ds.dims or LON not in ds.dims:
                raise InvalidParameter("bbox", "this product has no horizontal grid")
            sel, area = _widen(sel, area, ds, read), None
        planned = plan(product, ds, sel, area)
    except InvalidParameter as exc:
        raise _renamed(exc, read.fields) from None
    return PlannedRead(read.role, product, sel, area, planned, asked, asked_area)


def _meta(pr: PlannedRead, source: Source) -> xr.Dataset:
    """The product's metadata (a lazy open: coordinates only)."""
    assert pr.product.version is not None
    return source.store.open_version(pr.product.version.store_path, dask=False)


def reads(component_id: str, parameters: Mapping[str, Any], product_id: str) -> tuple[Read, ...]:
    """What a call reads, from its parameters alone (the planner plans each)."""
    component, params = parse_call(component_id, dict(parameters))
    return ENGINES[component.id].reads(params, product_id)


def plan_run(
    component_id: str, parameters: Mapping[str, Any], product_id: str, source: Source
) -> RunPlan:
    """Check a component call and plan every read, from metadata alone."""
    component, params = parse_call(component_id, dict(parameters))
    engine = ENGINES[component.id]
    planned = tuple(_plan_read(r, source) for r in engine.reads(params, product_id))
    points = len(getattr(params, "route", ())) or (1 if hasattr(params, "point") else 0)
    rp = RunPlan(component, params, planned, points)
    engine.check(params, rp, {r.role: _meta(r, source) for r in planned})
    return rp


def _cut(pr: PlannedRead, source: Source) -> xr.Dataset:
    """The planned selection from the planned copy: read into memory when small, a dask
    graph when large (as ``catalog.subset.cut`` does)."""
    assert pr.product.version is not None
    small = pr.plan.bytes_to_read <= IN_MEMORY_BYTES
    ds = open_copy(source.store, pr.product.version.store_path, pr.plan.copy, dask=not small)
    out = apply(ds, pr.selection, pr.area)
    if small:
        return out.load()
    # The map copy's chunks of one time step each make thousands of tiny tasks: merge
    # steps into blocks of about BLOCK bytes, which still bounds memory.
    timed = [v for v in out.data_vars.values() if TIME in v.dims]
    if timed and max(timed[0].chunksizes.get(TIME, (1,))) == 1:
        step = max(v.nbytes // v.sizes[TIME] for v in timed)
        out = out.chunk({TIME: max(1, BLOCK // max(step, 1))})
    return out


def execute(rp: RunPlan, source: Source) -> ComponentResult:
    """Run a planned call: cut what it reads, then compute."""
    data = {r.role: _cut(r, source) for r in rp.reads}
    result = ENGINES[rp.component.id].run(rp.parameters, data, rp)
    attrs = {
        "oceanmart_component": rp.component.id,
        "oceanmart_component_version": rp.component.version,
        "oceanmart_parameters": json.dumps(rp.parameters.model_dump(mode="json"), sort_keys=True),
        "oceanmart_sources": json.dumps(
            [{"role": s.role, "product": s.product_id, "version": s.version_id}
             for s in result.sources]
        ),
    }  # fmt: skip
    # a new Dataset: its attrs may be those of the opened (and cached) version
    return replace(result, dataset=result.dataset.assign_attrs(attrs))


def run_component(
    component_id: str,
    parameters: Mapping[str, Any],
    product_id: str,
    source: Source,
    *,
    limit_bytes: int | None = None,
) -> tuple[RunPlan, ComponentResult]:
    """Plan, refuse a run reading more than ``limit_bytes`` (RequestTooLarge), execute."""
    rp = plan_run(component_id, parameters, product_id, source)
    if limit_bytes is not None:
        check_limit(replace(rp.reads[0].plan, cells=rp.cells, bytes=rp.bytes), limit_bytes)
    return rp, execute(rp, source)


# --- checks that need metadata ------------------------------------------------------------


def _no_check(p: Any, rp: RunPlan, meta: dict[str, xr.Dataset]) -> None:
    return None


def _check_depth(p: VerticalProfile, rp: RunPlan, meta: dict[str, xr.Dataset]) -> None:
    ds = meta["data"]
    for name in p.variables:
        if DEPTH not in ds[name].dims:
            raise InvalidParameter(_param("variables"), f"{name} has no depth axis")


def _require_time(ds: xr.Dataset, names: list[str], rp: RunPlan) -> None:
    if TIME not in ds.dims:
        raise InvalidParameter("product", f"{rp.reads[0].product.id} has no time axis")
    for name in names:
        if TIME not in ds[name].dims:
            raise InvalidParameter(_param("variables"), f"{name} has no time axis")


def _check_time(p: TemporalAggregation, rp: RunPlan, meta: dict[str, xr.Dataset]) -> None:
    _require_time(meta["data"], p.variables, rp)


def _check_area_stats(p: AreaStatistics, rp: RunPlan, meta: dict[str, xr.Dataset]) -> None:
    ds = meta["data"]
    for name in p.variables:
        if LAT not in ds[name].dims or LON not in ds[name].dims:
            raise InvalidParameter(_param("variables"), f"{name} has no horizontal grid")
    if p.group_by != "none":
        _require_time(ds, p.variables, rp)
    if not p.statistics and not p.percentiles:
        raise InvalidParameter(_param("statistics"), "ask for a statistic or a percentile")


def _check_alert(p: ThresholdAlert, rp: RunPlan, meta: dict[str, xr.Dataset]) -> None:
    ds = meta["data"]
    names = _alert_variables(p)
    dims = {tuple(ds[n].dims) for n in names}
    if len(dims) > 1:
        raise InvalidParameter(_param("variable"), "the two components must share their axes")
    if LAT not in ds[names[0]].dims or LON not in ds[names[0]].dims:
        raise InvalidParameter(_param("variable"), f"{names[0]} has no horizontal grid")
    if DEPTH in ds[names[0]].dims and rp.reads[0].plan.shape.get(DEPTH, 1) != 1:
        raise InvalidParameter(
            _param("depth"),
            f"{names[0]} has a depth axis: give a depth range holding one level",
        )


def _check_regrid(p: Regrid, rp: RunPlan, meta: dict[str, xr.Dataset]) -> None:
    ds = meta["data"]
    finest = min(_grid.step(ds[LON].values), _grid.step(ds[LAT].values))
    if p.resolution < finest / 2:
        raise InvalidParameter(
            _param("resolution"),
            f"{p.resolution:g} degrees is finer than half the product's grid step "
            f"({finest:g} degrees)",
        )


def _period_months(ds: xr.Dataset, sel: Selection) -> set[int]:
    time = ds[TIME]
    if sel.time is not None:
        lo, hi = (
            None if t is None else (t.isoformat() if time.dtype.kind == "O" else t)
            for t in (sel.time.start, sel.time.end)
        )
        time = time.sel({TIME: slice(lo, hi)})
    return set(time.dt.month.values.tolist())


def _check_anomaly(p: ClimatologyAnomaly, rp: RunPlan, meta: dict[str, xr.Dataset]) -> None:
    ds = meta["data"]
    _require_time(ds, p.variables, rp)
    months = _period_months(ds, rp.read("data").selection)
    if p.baseline is not None:
        missing = months - _period_months(ds, rp.read("baseline").selection)
        if missing:
            raise InvalidParameter(
                _param("baseline"), f"the baseline has no data for months {sorted(missing)}"
            )
        return
    assert p.climatology is not None
    clim = meta["climatology"]
    where = _param("climatology.product")
    if TIME not in clim.dims or "month" not in clim.coords or clim.sizes[TIME] != 12:
        raise InvalidParameter(where, f"{p.climatology.product} is not a monthly climatology")
    for name in p.variables:
        other = p.climatology.variables.get(name, name)
        units = (ds[name].attrs.get("units"), clim[other].attrs.get("units"))
        if units[0] != units[1]:
            raise InvalidParameter(
                _param("climatology.variables"),
                f"{name} is in {units[0]!r} but the climatology's {other} in {units[1]!r}",
            )
        if (DEPTH in ds[name].dims) != (DEPTH in clim[other].dims):
            raise InvalidParameter(where, f"{name} and {other} differ in having a depth axis")
        depth = rp.read("data").selection.depth
        if DEPTH in ds[name].dims:
            levels = ds[DEPTH] if depth is None else ds[DEPTH].sel({DEPTH: slice(*depth)})
            if not set(levels.values.tolist()) <= set(clim[DEPTH].values.tolist()):
                raise InvalidParameter(where, "its depth levels differ from the product's")


# --- computations -------------------------------------------------------------------------


def _provenance(rp: RunPlan) -> tuple[Provenance, ...]:
    return tuple(Provenance(r.role, r.product.id, r.plan.version_id, r.selection) for r in rp.reads)


def _geometry(pr: PlannedRead) -> dict[str, Any]:
    """The GeoJSON geometry of the area a read was asked for."""
    import shapely
    from shapely.geometry import box, mapping

    sel = pr.requested
    if sel.polygon is not None:
        geometry = mapping(shapely.from_wkt(sel.polygon))
    elif pr.requested_area is not None and sel.bbox is None:
        geometry = pr.requested_area.geometry
    else:
        w, s, e, n = _box(sel, pr.requested_area)
        geometry = mapping(box(w, s, e if e > w else e + 360.0, n))
    out: dict[str, Any] = json.loads(json.dumps(geometry))  # plain lists, as GeoJSON reads
    return out


def _mask(pr: PlannedRead, lon: np.ndarray, lat: np.ndarray) -> xr.DataArray | None:
    """Cells of a new grid whose centre lies in the asked-for polygon or sea area."""
    sel = pr.requested
    if sel.polygon is None and pr.requested_area is None:
        return None
    area = pr.requested_area
    if sel.polygon is not None:
        area = SeaAreaInfo("polygon", "polygon", "", "sea-area", "selection",
                           _box(sel, None), 0.0, _geometry(pr))  # fmt: skip
    assert area is not None
    inside = rasterise(area, lon, lat)
    return xr.DataArray(inside, dims=(LAT, LON), coords={LAT: lat, LON: lon})


def _point(ds: xr.Dataset) -> xr.Dataset:
    return ds.isel(point=0)


def _run_point(p: PointSeries, data: dict[str, xr.Dataset], rp: RunPlan) -> ComponentResult:
    return ComponentResult(rp.component.id, Kind.POINT, _point(data["data"]), _provenance(rp))


def _json_values(values: np.ndarray) -> Any:
    """Numbers (nested lists along axes) as JSON values, NaN as null."""
    if values.ndim == 0:
        return _json_number(values)
    return [_json_values(v) for v in values]


def point_features(ds: xr.Dataset) -> tuple[dict[str, Any], ...]:
    """A GeoJSON Point Feature per position of ``ds`` (along ``point``, or the one
    position of a point result): at the requested position when known; properties: the
    time (or the list of times of a series), the grid cell of the values, and each
    variable's value (lists along time, then depth)."""
    rows = [ds.isel(point=i) for i in range(ds.sizes["point"])] if "point" in ds.dims else [ds]
    features = []
    for i, row in enumerate(rows):
        x = row["requested_longitude"] if "requested_longitude" in row.coords else row[LON]
        y = row["requested_latitude"] if "requested_latitude" in row.coords else row[LAT]
        props: dict[str, Any] = {"index": i}
        if TIME in row.coords:
            times = np.atleast_1d(row[TIME].values)
            stamps = [iso_time(t) for t in times]
            props[TIME] = stamps[0] if row[TIME].ndim == 0 else stamps
        if DEPTH in row.coords:
            props[DEPTH] = _json_values(row[DEPTH].values)
        props["cell"] = [float(row[LON]), float(row[LAT])]
        for name, var in row.data_vars.items():
            order = [d for d in (TIME, DEPTH) if d in var.dims]
            props[str(name)] = _json_values(var.transpose(*order, ...).values)
        lon = ((float(x) + 180.0) % 360.0) - 180.0
        point = {"type": "Point", "coordinates": [lon, float(y)]}
        features.append({"type": "Feature", "id": i, "geometry": point, "properties": props})
    return tuple(features)


def _run_route(p: RouteSampling, data: dict[str, xr.Dataset], rp: RunPlan) -> ComponentResult:
    ds = data["data"]
    features = point_features(ds)
    return ComponentResult(rp.component.id, Kind.TRAJECTORY, ds, _provenance(rp), features)


_STAT_METHODS = {"mean": "mean", "min": "minimum", "max": "maximum", "std": "standard_deviation",
                 "sum": "sum"}  # CF cell methods (a count has none)  # fmt: skip


def _statistics(
    da: xr.DataArray, w: xr.DataArray | None, key: xr.DataArray | None, p: AreaStatistics
) -> dict[str, xr.DataArray]:
    """The statistics of ``da`` over the area, per time step (``key`` None) or over every
    value of each period (``key``: the period of each time step). One pass over the data
    reduces it over space; the periods are then reduced from those small series."""
    space = (LAT, LON)
    valid = da.notnull()
    wv = valid * (w if w is not None else 1.0)  # weight of each valid value, 0 elsewhere
    wanted = set(p.statistics)
    parts = {"weight": wv.sum(space), "weighted": (da.fillna(0.0) * wv).sum(space)}
    parts |= {"count": valid.sum(space), "sum": da.fillna(0.0).sum(space)}
    parts |= {how: getattr(da, how)(space) for how in ("min", "max") if how in wanted}
    reduced = xr.Dataset(parts).load()

    def per_period(x: xr.DataArray, how: str = "sum") -> xr.DataArray:
        return x if key is None else getattr(x.groupby(key), how)(TIME).rename(period=TIME)

    weight = per_period(reduced["weight"])
    mean = per_period(reduced["weighted"]) / weight.where(weight > 0)
    count = per_period(reduced["count"])
    out: dict[str, xr.DataArray] = {}
    for stat in dict.fromkeys(p.statistics):
        if stat == "mean":
            out[stat] = mean
        elif stat == "std":  # a second pass: the spread about each mean
            back = mean if key is None else mean.rename({TIME: "period"}).sel(period=key)
            spread = (((da - back) ** 2).fillna(0.0) * wv).sum(space).load()
            out[stat] = (per_period(spread) / weight.where(weight > 0)) ** 0.5
        elif stat == "count":
            out[stat] = count.astype("i8")
        elif stat == "sum":
            out[stat] = per_period(reduced["sum"]).where(count > 0).astype(da.dtype)
        else:
            out[stat] = per_period(reduced[stat], stat)
    if p.percentiles:
        q = list(dict.fromkeys(p.percentiles))
        pct = _grid.percentiles(da, w, q, key)
        for k, value in enumerate(q):
            out[f"p{value:g}"] = pct.isel(percentile=k, drop=True).astype(da.dtype)
    return out


def _run_area_stats(p: AreaStatistics, data: dict[str, xr.Dataset], rp: RunPlan) -> ComponentResult:
    ds = data["data"]
    w = _grid.area_weights(ds) if p.weighted else None
    out = xr.Dataset()
    key = coords = None
    if p.group_by != "none":
        key, coords = _grid.group_periods(ds, p.group_by)
    for name in p.variables:
        da = ds[name]
        for stat, v in _statistics(da, w, key, p).items():
            v = v.drop_vars([c for c in v.coords if c not in (TIME, DEPTH)])
            attrs = {
                "long_name": f"{stat} of {da.attrs.get('long_name', name)} over the area",
                "units": "1" if stat == "count" else da.attrs.get("units", ""),
            }
            if stat in _STAT_METHODS:
                attrs["cell_methods"] = f"area: {_STAT_METHODS[stat]}"
            elif stat.startswith("p"):
                attrs["percentile"] = float(stat[1:])
            out[f"{name}_{stat}"] = v.assign_attrs(attrs)
    if coords is not None:
        out = out.assign_coords(coords.coords)
    if DEPTH in out.dims:
        out[DEPTH].attrs = ds[DEPTH].attrs
    out.attrs["weights"] = "cell area (cos latitude)" if p.weighted else "none"
    pr = rp.read("data")
    return ComponentResult(
        rp.component.id, Kind.AREA, out.load(), _provenance(rp), area=_geometry(pr)
    )


def _run_temporal(
    p: TemporalAggregation, data: dict[str, xr.Dataset], rp: RunPlan
) -> ComponentResult:
    ds = data["data"][p.variables]
    ds = ds.drop_vars([c for c in ds.coords if c != TIME and TIME in ds[c].dims])
    key, coords = _grid.group_periods(ds, p.period)
    grouped = getattr(ds.groupby(key), p.statistic)(TIME, keep_attrs=True)
    out = grouped.rename(period=TIME).assign_coords(coords.coords)
    for name in p.variables:  # (dask computes some statistics of float32 in float64)
        out[name] = out[name].astype(ds[name].dtype).assign_attrs(ds[name].attrs)
        out[name].attrs["cell_methods"] = f"time: {_STAT_METHODS[p.statistic]}"
    out.attrs["period"] = p.period
    return ComponentResult(
        rp.component.id, Kind.GRID, out, _provenance(rp), area=_geometry(rp.read("data"))
    )


def _monthly(clim: xr.Dataset, months: np.ndarray, like: xr.Dataset) -> xr.Dataset:
    """The climatology's value for the month of each of ``like``'s time steps."""
    index = {int(m): i for i, m in enumerate(clim["month"].values)}
    picked = clim.isel(month=[index[int(m)] for m in months])
    return picked.drop_vars("month").rename(month=TIME).assign_coords({TIME: like[TIME]})


def _run_anomaly(
    p: ClimatologyAnomaly, data: dict[str, xr.Dataset], rp: RunPlan
) -> ComponentResult:
    ds = data["data"][p.variables]
    months = ds[TIME].dt.month.values
    if p.baseline is not None:
        base = data["baseline"][p.variables]
        clim = base.groupby(base[TIME].dt.month.rename("month")).mean(TIME)
        what = f"the {p.baseline} monthly means"
    else:
        assert p.climatology is not None
        names = {p.climatology.variables.get(v, v): v for v in p.variables}
        src = data["climatology"][list(names)].rename(names)
        along_time = [c for c in src.coords if c not in (TIME, "month") and TIME in src[c].dims]
        src = src.drop_vars(along_time).swap_dims({TIME: "month"}).drop_vars(TIME)
        if DEPTH in ds.dims:
            src = src.sel({DEPTH: ds[DEPTH].values})
        clim = _grid.regrid(src, ds[LON].values, ds[LAT].values, "bilinear")
        what = f"the monthly climatology {p.climatology.product}"
    out = ds - _monthly(clim, months, ds)
    out.attrs = dict(data["data"].attrs)
    for name in p.variables:
        out[name] = out[name].astype(ds[name].dtype)
        attrs = dict(ds[name].attrs)
        attrs["long_name"] = f"anomaly of {attrs.get('long_name', name)} against {what}"
        attrs.pop("standard_name", None)
        out[name].attrs = attrs
    out = out.assign_coords(month=(TIME, months.astype("i1")))
    return ComponentResult(
        rp.component.id, Kind.GRID, out, _provenance(rp), area=_geometry(rp.read("data"))
    )


def _run_regrid(p: Regrid, data: dict[str, xr.Dataset], rp: RunPlan) -> ComponentResult:
    ds = data["data"]
    pr = rp.read("data")
    w, s, e, n = _box(pr.requested, pr.requested_area)
    if pr.requested.bbox is not None and pr.requested.bbox.global_longitudes:
        e = 180.0 - 1e-9  # -180 and 180 are one meridian: take it once
    lon = _grid.target_axis(w, e if e >= w else e + 360.0, p.resolution, -180.0)
    lat = _grid.target_axis(s, n, p.resolution, -90.0)
    if lon.size == 0 or lat.size == 0:
        raise EmptySelection(
            f"no cell of the {p.resolution:g} degree grid has its centre inside the area"
        )
    out = _grid.regrid(ds, lon, lat, p.method, p.resolution)
    inside = _mask(pr, lon, lat)
    for name in p.variables:
        var = out[name].transpose(*ds[name].dims)
        out[name] = var if inside is None else var.where(inside)
    out.attrs["regrid"] = f"{p.method} onto a {p.resolution:g} degree grid"
    return ComponentResult(rp.component.id, Kind.GRID, out, _provenance(rp), area=_geometry(pr))


_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le,
}  # fmt: skip


def _run_alert(p: ThresholdAlert, data: dict[str, xr.Dataset], rp: RunPlan) -> ComponentResult:
    ds = data["data"]
    names = _alert_variables(p)
    if len(names) == 2:
        u, v = ds[names[0]], ds[names[1]]
        x = ((u**2 + v**2) ** 0.5).rename("magnitude")
        x.attrs = {"long_name": f"magnitude of ({names[0]}, {names[1]})",
                   "units": u.attrs.get("units", "")}  # fmt: skip
        label = f"|({names[0]}, {names[1]})|"
    else:
        x, label = ds[names[0]], names[0]
    if DEPTH in x.dims:
        x = x.isel({DEPTH: 0})
    space = (LAT, LON)
    hit = _OPS[p.operator](x, p.threshold) & x.notnull()
    w = _grid.area_weights(ds)
    valid_area = (x.notnull() * w).sum(space)
    low = p.operator in ("lt", "le")
    extreme = x.where(hit).min(space) if low else x.where(hit).max(space)
    timed = TIME in x.dims
    out = xr.Dataset(
        {
            "cells": hit.sum(space).astype("i4"),
            "area_fraction": (hit * w).sum(space) / valid_area.where(valid_area > 0),
            "extreme": extreme.assign_attrs(units=x.attrs.get("units", "")),
            "exceedances": (hit.sum(TIME) if timed else hit.astype("i4")).where(
                x.notnull().any(TIME) if timed else x.notnull()
            ),
            "_hit": hit.transpose(*((TIME,) if timed else ()), LAT, LON),
        }
    ).load()  # one pass over the data for all of them
    hits, out = out["_hit"].values, out.drop_vars("_hit")
    if not timed:
        hits = hits[None]
    out["alert"] = out["cells"] >= p.min_cells
    units = {"cells": "1", "area_fraction": "1", "exceedances": "1"}
    for name, unit in units.items():
        out[name].attrs["units"] = unit
    out["cells"].attrs["long_name"] = f"cells where {label} {p.operator} {p.threshold:g}"
    out["area_fraction"].attrs["long_name"] = "share of the area's valid cells, by area"
    out["extreme"].attrs["long_name"] = f"{'lowest' if low else 'highest'} {label} among them"
    out["exceedances"].attrs["long_name"] = "time steps in which the cell crosses the threshold"
    out["alert"].attrs["long_name"] = f"at least {p.min_cells} cells cross the threshold"
    lon = ((x[LON].values + 180.0) % 360.0) - 180.0
    lat = x[LAT].values
    features = []
    for t in np.flatnonzero(np.atleast_1d(out["alert"].values)):
        ii, jj = np.nonzero(hits[t])
        step = out.isel({TIME: t}) if timed else out
        props = {
            "time": iso_time(x[TIME].values[t]) if timed else None,
            "variable": label,
            "operator": p.operator,
            "threshold": p.threshold,
            "units": x.attrs.get("units", ""),
            "cells": int(step["cells"]),
            "area_fraction": _json_number(step["area_fraction"].values),
            "extreme": _json_number(step["extreme"].values),
        }
        points = [[float(lon[j]), float(lat[i])] for i, j in zip(ii, jj, strict=True)]
        geometry = {"type": "MultiPoint", "coordinates": points}
        features.append(
            {"type": "Feature", "id": int(t), "geometry": geometry, "properties": props}
        )
    table = ("cells", "area_fraction", "extreme", "alert")
    return ComponentResult(
        rp.component.id, Kind.ALERTS, out, _provenance(rp), tuple(features),
        area=_geometry(rp.read("data")), table=table,
    )  # fmt: skip


def iso_time(t: Any) -> str:
    """An instant as ISO 8601 UTC text (cftime instants in their own calendar)."""
    if isinstance(t, np.datetime64):
        return str(np.datetime_as_string(t, unit="s")) + "Z"
    return str(t.isoformat(timespec="seconds") if hasattr(t, "hour") else t) + "Z"


def _json_number(v: Any) -> float | int | None:
    f = float(v)
    return None if not np.isfinite(f) else (int(f) if isinstance(v, np.integer | int) else f)


# --- the engines --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Engine:
    reads: Callable[[Any, str], tuple[Read, ...]]
    run: Callable[[Any, dict[str, xr.Dataset], RunPlan], ComponentResult]
    check: Callable[[Any, RunPlan, dict[str, xr.Dataset]], None] = _no_check


ENGINES: dict[str, _Engine] = {
    "point-series": _Engine(_reads_point, _run_point),
    "vertical-profile": _Engine(_reads_point, _run_point, _check_depth),
    "area-statistics": _Engine(_reads_area, _run_area_stats, _check_area_stats),
    "temporal-aggregation": _Engine(_reads_area, _run_temporal, _check_time),
    "climatology-anomaly": _Engine(_reads_anomaly, _run_anomaly, _check_anomaly),
    "threshold-alert": _Engine(_reads_alert, _run_alert, _check_alert),
    "route-sampling": _Engine(_reads_route, _run_route),
    "regrid": _Engine(_reads_regrid, _run_regrid, _check_regrid),
}
