"""CF normalisation: one convention for axes, longitudes, latitudes, units and metadata.

Axes are found from their attributes through cf_xarray (``units: degrees_east``,
``positive: down``...), never from names. Every change is written to a report, per
variable, which is stored with the product version.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import cf_xarray  # noqa: F401  (registers the .cf accessor)
import cftime
import numpy as np
import xarray as xr

from ingest.spec import ProductSpec
from oceanmart.errors import SourceError

# Canonical dimension names (as in Copernicus Marine products).
LON, LAT, DEPTH, TIME = "longitude", "latitude", "depth", "time"

# Unit spellings seen in real files -> UDUNITS/CF spelling.
UNITS = {
    "deg c": "degC",
    "deg_c": "degC",
    "degrees c": "degC",
    "celsius": "degC",
    "degc": "degC",
    "meters": "m",
    "meter": "m",
    "metres": "m",
    "ppt": "1e-3",
    "psu": "1e-3",
    "m/s": "m s-1",
    "m/sec": "m s-1",
    "g/kg": "g kg-1",
    "mb": "hPa",
    "millibars": "hPa",
    "degrees_east": "degrees_east",
    "degrees_north": "degrees_north",
}

# Variable names of the corpus -> CF standard names, used when a file has none.
STANDARD_NAMES = {
    "TEMP": "sea_water_temperature",
    "SALT": "sea_water_salinity",
    "SST": "sea_surface_temperature",
    "AIRT": "air_temperature",
    "UWND": "eastward_wind",
    "VWND": "northward_wind",
    "WSPD": "wind_speed",
    "SLP": "air_pressure_at_mean_sea_level",
    "ROSE": "height_above_mean_sea_level",
    "SPEH": "specific_humidity",
    "t": "air_temperature",
    "z": "geopotential",
    "prmsl": "air_pressure_at_mean_sea_level",
}


@dataclass
class Report:
    """What normalisation changed, per variable (``"*"`` for the dataset)."""

    changes: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def add(self, name: str, change: str) -> None:
        self.changes.setdefault(name, []).append(change)

    def as_dict(self) -> dict[str, Any]:
        return {"changes": self.changes, "warnings": self.warnings}


def _variable(dims: str | tuple[str, ...], values: np.ndarray) -> xr.Variable:
    """A coordinate variable of numpy ``values``. ``fastpath`` skips xarray's check of
    the data for masked dask arrays, which imports ``dask.array`` (~0.4 s of an ingest
    that otherwise never needs it, ``pipeline._open_normalised``)."""
    return xr.Variable(dims, np.asarray(values), fastpath=True)


def _axis(ds: xr.Dataset, key: str) -> str | None:
    names = [n for n in ds.cf.coordinates.get(key, []) if n in ds.dims]
    return names[0] if names else None


_LENGTH_UNITS = {"m", "meter", "meters", "metre", "metres", "km", "cm", "dbar", ""}


def _depth_axis(ds: xr.Dataset) -> str | None:
    """The vertical axis when it is a depth or height in length units.

    Pressure levels (GRIB ``isobaricInhPa``), model levels and the like are vertical too,
    but not depths: they keep their own name and units.
    """
    name = _axis(ds, "vertical")
    if name is None:
        return None
    units = str(ds[name].attrs.get("units", "")).strip().lower()
    return name if units in _LENGTH_UNITS and units != "dbar" else None


def _time_axis(ds: xr.Dataset) -> str | None:
    for name in ds.dims:
        if name not in ds.coords:
            continue
        var = ds[name]
        units = str(var.attrs.get("units", var.encoding.get("units", "")))
        if np.issubdtype(var.dtype, np.datetime64) or " since " in units:
            return str(name)
    return None


def _normalise_longitude(ds: xr.Dataset, report: Report) -> xr.Dataset:
    lon = ds[LON].values.astype("float64")
    wrapped = ((lon + 180.0) % 360.0) - 180.0
    # A wrap column repeats the first longitude 360 degrees later (up to float noise in
    # the file: ETOPO20 has 20.16667 and 380.1667): drop columns within half a step of
    # a column already kept.
    if len(lon) > 1:
        half_step = float(np.median(np.abs(np.diff(lon)))) / 2
        order = np.argsort(wrapped, kind="stable")
        keep_sorted = [int(order[0])]
        for i in map(int, order[1:]):
            if wrapped[i] - wrapped[keep_sorted[-1]] >= half_step:
                keep_sorted.append(i)
            else:  # a repeat: keep whichever column comes first in the file
                keep_sorted[-1] = min(keep_sorted[-1], i)
        # the last column may also repeat the first across the -180/180 seam
        if len(keep_sorted) > 1 and (
            wrapped[keep_sorted[0]] + 360.0 - wrapped[keep_sorted[-1]] < half_step
        ):
            last = keep_sorted.pop()
            keep_sorted[0] = min(keep_sorted[0], last)
        if len(keep_sorted) < len(lon):
            keep = np.sort(np.array(keep_sorted))
            report.add(LON, f"dropped {len(lon) - len(keep)} wrap column(s)")
            ds = ds.isel({LON: keep})
            lon = lon[keep]
            wrapped = wrapped[keep]
    if not np.array_equal(wrapped, lon) or not np.all(np.diff(wrapped) > 0):
        order = np.argsort(wrapped, kind="stable")
        ds = ds.isel({LON: order}).assign_coords({LON: _variable(LON, wrapped[order])})
        report.add(LON, f"longitudes {lon.min():g}..{lon.max():g} mapped to -180..180, sorted")
    ds[LON].attrs.update(
        {
            "standard_name": "longitude",
            "units": "degrees_east",
            "axis": "X",
            "long_name": "longitude",
        }
    )
    ds[LON].attrs.pop("modulo", None)
    return ds


def _require_monotonic(ds: xr.Dataset, axis: str) -> None:
    values = ds[axis].values  # numbers, datetime64 or cftime objects: all compare
    if values.size < 2:
        return
    if not (np.all(values[1:] > values[:-1]) or np.all(values[1:] < values[:-1])):
        raise SourceError(f"the {axis} axis is not strictly monotonic")


_YEAR_ZERO = re.compile(r"^\s*(\w+?)s?\s+since\s+0+-0?1-0?1", re.IGNORECASE)


def _normalise_time(ds: xr.Dataset, report: Report) -> xr.Dataset:
    """Decoded times stay as they are (cftime for non-standard calendars); a climatology
    axis counted from year 0, which cftime's default calendar cannot decode, becomes a
    CF climatological time coordinate in nominal year 2000 with climatology bounds."""
    time = ds[TIME]
    units = str(time.attrs.get("units", ""))
    if time.dtype.kind in "fiu" and (m := _YEAR_ZERO.match(units)):
        unit = m.group(1).lower()
        # Year 0 exists in the proleptic Gregorian calendar (and is a leap year, as 2000).
        dates = cftime.num2date(
            time.values,
            f"{unit}s since 0000-01-01",
            calendar="proleptic_gregorian",
            has_year_zero=True,
        )
        values = np.array([np.datetime64(d.replace(year=2000).isoformat(), "ns") for d in dates])
        ds = ds.assign_coords({TIME: _variable(TIME, values)})
        months = [d.month for d in dates]
        if len(months) == 12 and sorted(months) == list(range(1, 13)):
            starts = np.array([np.datetime64(f"2000-{mo:02d}-01", "ns") for mo in months])
            ends = np.array(
                [np.datetime64(f"{2000 + mo // 12}-{mo % 12 + 1:02d}-01", "ns") for mo in months]
            )
            ds = ds.assign_coords(
                climatology_bounds=_variable((TIME, "nv"), np.stack([starts, ends], 1))
            )
            ds[TIME].attrs["climatology"] = "climatology_bounds"
        ds = ds.assign_coords(month=_variable(TIME, np.array(months, dtype="int8")))
        report.add(
            TIME,
            f"climatology axis {units!r} (year 0, not decodable) placed in nominal year 2000"
            + (" with monthly climatology bounds" if "climatology_bounds" in ds.coords else ""),
        )
    elif time.dtype.kind in "fiu":
        raise SourceError(f"the time axis ({units!r}) cannot be decoded")
    _require_monotonic(ds, TIME)
    if ds[TIME].size > 1 and ds[TIME].values[0] > ds[TIME].values[-1]:
        ds = ds.isel({TIME: slice(None, None, -1)})
        report.add(TIME, "time reversed to ascending")
    for stale in ("time_origin", "modulo", "units", "point_spacing"):
        ds[TIME].attrs.pop(stale, None)
    ds[TIME].attrs.update({"standard_name": "time", "axis": "T", "long_name": "time"})
    return ds


def _edges_to_bounds(ds: xr.Dataset, axis: str, report: Report) -> xr.Dataset:
    edges_name = ds[axis].attrs.get("edges")
    if not edges_name or edges_name not in ds.variables:
        return ds
    edges = ds[edges_name].values
    if edges.shape != (ds.sizes[axis] + 1,):
        report.warnings.append(f"{edges_name}: edges do not match {axis}, dropped")
        return ds.drop_vars(edges_name)
    bounds = np.stack([edges[:-1], edges[1:]], axis=1)
    bname = f"{axis}_bnds"
    ds = ds.drop_vars(edges_name)
    ds = ds.assign_coords({bname: _variable((axis, "nv"), bounds)})
    ds[axis].attrs.pop("edges", None)
    ds[axis].attrs["bounds"] = bname
    report.add(axis, f"edges {edges_name} turned into CF bounds {bname}")
    return ds


def normalise(ds: xr.Dataset, spec: ProductSpec) -> tuple[xr.Dataset, Report]:
    """Return a CF-normalised copy of ``ds`` and the report of what changed."""
    report = Report()
    axes = {
        LON: _axis(ds, "longitude"),
        LAT: _axis(ds, "latitude"),
        DEPTH: _depth_axis(ds),
        TIME: _time_axis(ds),
    }
    if axes[LON] is None or axes[LAT] is None:
        raise SourceError("no longitude/latitude axes found (units degrees_east/degrees_north)")
    renames = {old: new for new, old in axes.items() if old is not None and old != new}
    if renames:
        ds = ds.rename(renames)
        for old, new in renames.items():
            report.add(new, f"axis {old} renamed to {new}")

    for axis in (LON, LAT, DEPTH):
        if axis in ds.dims:
            _require_monotonic(ds, axis)
    ds = _normalise_longitude(ds, report)
    if TIME in ds.dims:
        ds = _normalise_time(ds, report)
    if ds[LAT].size > 1 and float(ds[LAT][0]) > float(ds[LAT][-1]):
        ds = ds.isel({LAT: slice(None, None, -1)})
        report.add(LAT, "latitudes reversed to ascending")
    ds[LAT].attrs.update(
        {
            "standard_name": "latitude",
            "units": "degrees_north",
            "axis": "Y",
            "long_name": "latitude",
        }
    )
    if DEPTH in ds.dims:
        ds = _edges_to_bounds(ds, DEPTH, report)
        if str(ds[DEPTH].attrs.get("positive", "down")).lower() == "up":
            ds = ds.assign_coords({DEPTH: -ds[DEPTH]})
            report.add(DEPTH, "positive-up heights turned into depths (positive down)")
        if ds[DEPTH].size > 1 and float(ds[DEPTH][0]) > float(ds[DEPTH][-1]):
            ds = ds.isel({DEPTH: slice(None, None, -1)})
            report.add(DEPTH, "depths reversed to ascending")
        depth_units = UNITS.get(str(ds[DEPTH].attrs.get("units", "")).strip().lower(), "m")
        ds[DEPTH].attrs.update(
            {"standard_name": "depth", "units": depth_units, "positive": "down", "axis": "Z"}
        )
        ds[DEPTH].attrs.pop("point_spacing", None)
    for axis in (LON, LAT):
        ds[axis].attrs.pop("point_spacing", None)

    for name in list(ds.data_vars):
        var_spec = spec.variables.get(str(name))
        attrs = ds[name].attrs
        units: str | None = attrs.get("units")
        if var_spec is not None and var_spec.units is not None:
            attrs["units"] = var_spec.units
            report.add(str(name), f"units set to {var_spec.units!r} by the spec")
        elif units is None:
            report.warnings.append(f"{name}: no units in the source")
            report.add(str(name), "units missing in the source")
        else:
            fixed = UNITS.get(str(units).strip().lower())
            if fixed is not None and fixed != units:
                attrs["units"] = fixed
                report.add(str(name), f"units {units!r} -> {fixed!r}")
        std = var_spec.standard_name if var_spec is not None else None
        std = std or attrs.get("standard_name") or STANDARD_NAMES.get(str(name))
        if std and attrs.get("standard_name") != std:
            attrs["standard_name"] = std
            report.add(str(name), f"standard_name set to {std!r}")
        if var_spec is not None and var_spec.long_name:
            attrs["long_name"] = var_spec.long_name
        if var_spec is not None and var_spec.long_name_zh:
            attrs["long_name_zh"] = var_spec.long_name_zh
        for stale in ("missing_value", "history"):
            if stale in attrs:
                attrs.pop(stale)
                report.add(str(name), f"attribute {stale} dropped (fill decoded to NaN)")
        ds[name].encoding.pop("missing_value", None)
        if var_spec is not None and var_spec.rename:
            ds = ds.rename({name: var_spec.rename})
            report.add(var_spec.rename, f"renamed from {name}")

    ds.attrs = _acdd(ds, spec)
    return ds, report


def _acdd(ds: xr.Dataset, spec: ProductSpec) -> dict[str, Any]:
    """Global attributes: CF + ACDD discovery metadata from the spec and the coordinates."""
    attrs: dict[str, Any] = {
        "Conventions": "CF-1.10, ACDD-1.3",
        "title": spec.title.en,
        "summary": spec.summary.en,
        "license": spec.license,
        "creator_name": spec.provider,
        "product_id": spec.id,
        "geospatial_lat_min": float(ds[LAT].min()),
        "geospatial_lat_max": float(ds[LAT].max()),
        "geospatial_lon_min": float(ds[LON].min()),
        "geospatial_lon_max": float(ds[LON].max()),
    }
    if spec.title.zh:
        attrs["title_zh"] = spec.title.zh
    if spec.summary.zh:
        attrs["summary_zh"] = spec.summary.zh
    if DEPTH in ds.dims:
        attrs["geospatial_vertical_min"] = float(ds[DEPTH].min())
        attrs["geospatial_vertical_max"] = float(ds[DEPTH].max())
        attrs["geospatial_vertical_positive"] = "down"
    if "history" in ds.attrs:
        attrs["source_history"] = ds.attrs["history"]
    return attrs
