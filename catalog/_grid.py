"""Numerical kernels of the components on regular latitude/longitude grids: cell area
weights, weighted percentiles, calendar periods, and horizontal regridding.

xESMF would do the regridding, but it needs the ESMF library (not installable from the
registries here); on a regular lat/lon grid the conservative weights separate into a
latitude and a longitude overlap matrix, a few lines of numpy.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import xarray as xr

LON, LAT, DEPTH, TIME = "longitude", "latitude", "depth", "time"
Period = Literal["month", "season", "year"]


def edges(centres: np.ndarray) -> np.ndarray:
    """Cell edges half way between centres, the ends half a step out (as CDO assumes for
    a grid without bounds)."""
    c = np.asarray(centres, dtype="f8")
    if c.size == 1:
        return np.array([c[0] - 0.5, c[0] + 0.5])
    mid = (c[1:] + c[:-1]) / 2
    return np.concatenate([[c[0] - (c[1] - c[0]) / 2], mid, [c[-1] + (c[-1] - c[-2]) / 2]])


def lat_edges(ds: xr.Dataset) -> np.ndarray:
    """Latitude edges from the dataset's bounds when it has them, else from the centres."""
    name = ds[LAT].attrs.get("bounds")
    if name in ds.variables and ds[name].shape == (ds.sizes[LAT], 2):
        b = ds[name].values
        return np.concatenate([b[:, 0], b[-1:, 1]])
    return edges(ds[LAT].values)


def area_weights(ds: xr.Dataset) -> xr.DataArray:
    """Relative cell areas along latitude: sin(north edge) - sin(south edge), the exact
    area of a latitude/longitude cell on the sphere up to a constant (proportional to
    cos(latitude) on a regular grid)."""
    e = np.deg2rad(np.clip(lat_edges(ds), -90.0, 90.0))
    w = np.abs(np.sin(e[1:]) - np.sin(e[:-1]))
    return xr.DataArray(w, dims=LAT, coords={LAT: ds[LAT]}, name="area_weight")


def _percentiles(
    values: np.ndarray, weights: np.ndarray, q: np.ndarray, codes: np.ndarray, groups: int
) -> np.ndarray:
    """Percentiles of (..., steps, cells) arrays over the cells of every step in each
    group (``codes``: the group of each step), NaN skipped: the smallest value whose
    cumulative weight reaches q% (numpy's ``inverted_cdf``; with equal weights the
    nearest rank, CDO's default ``nrank``). Returns (..., groups, len(q))."""
    lead = values.shape[:-2]
    out = np.full((*lead, groups, q.size), np.nan)
    v = values.reshape(-1, *values.shape[-2:])
    w = np.broadcast_to(weights, values.shape).reshape(v.shape)
    o = out.reshape(-1, groups, q.size)
    for i in range(v.shape[0]):
        for g in range(groups):
            x, wx = v[i][codes == g].ravel(), w[i][codes == g].ravel()
            ok = ~np.isnan(x) & (wx > 0)
            if ok.any():
                o[i, g] = np.percentile(x[ok], q, weights=wx[ok], method="inverted_cdf")
    return out


def percentiles(
    da: xr.DataArray, weights: xr.DataArray | None, q: list[float], key: xr.DataArray | None
) -> xr.DataArray:
    """Percentiles of ``da`` over latitude and longitude (a new ``percentile`` axis),
    per time step, or with ``key`` (the period of each step) over every value of each
    period (the period axis is named time). Lazily, with dask."""
    w = xr.ones_like(da, dtype="f8") if weights is None else weights.broadcast_like(da)
    w = w.where(da.notnull(), 0.0)
    stacked, wstacked = da.stack(_cell=(LAT, LON)), w.stack(_cell=(LAT, LON))
    if key is None:  # each step its own group: steps stay a loop axis
        stacked, wstacked = stacked.expand_dims("_t", -2), wstacked.expand_dims("_t", -2)
        step_dim, codes, labels = "_t", np.zeros(1, dtype="i8"), None
    else:
        labels, codes = np.unique(key.values, return_inverse=True)
        step_dim = TIME
    core = {step_dim: -1, "_cell": -1}
    if stacked.chunks is not None:
        stacked, wstacked = stacked.chunk(core), wstacked.chunk(core)
    groups = 1 if labels is None else labels.size
    out = xr.apply_ufunc(
        _percentiles,
        stacked,
        wstacked,
        kwargs={"q": np.asarray(q, dtype="f8"), "codes": codes, "groups": groups},
        input_core_dims=[[step_dim, "_cell"], [step_dim, "_cell"]],
        output_core_dims=[["_group", "percentile"]],
        dask="parallelized",
        output_dtypes=["f8"],
        dask_gufunc_kwargs={"output_sizes": {"_group": groups, "percentile": len(q)}},
    )
    out = out.assign_coords(percentile=np.asarray(q, dtype="f8"))
    result: xr.DataArray = out.isel(_group=0) if labels is None else out.rename(_group=TIME)
    return result


# --- calendar periods ---------------------------------------------------------------------

_MONTHS = {"month": 1, "season": 3, "year": 12}


def _dates(like: xr.DataArray, years: np.ndarray, months: np.ndarray) -> np.ndarray:
    """First instants of (year, month) pairs, in the time axis' own kind and calendar."""
    if like.dtype.kind == "M":
        counts = (years - 1970) * 12 + (months - 1)
        return np.asarray(counts.astype("M8[M]").astype("M8[ns]"))
    import cftime

    cal = like.dt.calendar
    return np.array(
        [
            cftime.datetime(int(y), int(m), 1, calendar=cal)
            for y, m in zip(years, months, strict=True)
        ]
    )


def period_bounds(time: xr.DataArray, period: Period) -> tuple[np.ndarray, np.ndarray]:
    """The start and end of the calendar period holding each time step. Seasons are DJF,
    MAM, JJA, SON; December opens the next year's DJF (CDO ``seasmean`` groups alike)."""
    years = time.dt.year.values.astype("i8")
    months = time.dt.month.values.astype("i8")
    if period == "month":
        y0, m0 = years, months
    elif period == "season":
        m0 = np.where(months == 12, 12, (months // 3) * 3)
        m0 = np.where(m0 == 0, 12, m0)
        y0 = np.where(months <= 2, years - 1, years)
    else:
        y0, m0 = years, np.ones_like(months)
    k = (m0 - 1) + _MONTHS[period]
    return _dates(time, y0, m0), _dates(time, y0 + k // 12, k % 12 + 1)


def group_periods(obj: xr.Dataset, period: Period) -> tuple[xr.DataArray, xr.Dataset]:
    """The grouping key of each time step (its period's start) and, per period, its
    start, end and number of time steps (coordinates of the aggregated output)."""
    start, end = period_bounds(obj[TIME], period)
    key = xr.DataArray(start, dims=TIME, name="period")
    labels, first, counts = np.unique(start, return_index=True, return_counts=True)
    coords = xr.Dataset(
        coords={
            TIME: (TIME, labels),
            "time_bnds": ((TIME, "nv"), np.stack([labels, end[first]], axis=1)),
            "steps": (TIME, counts.astype("i4")),
        }
    )
    coords[TIME].attrs.update({"standard_name": "time", "axis": "T", "bounds": "time_bnds"})
    coords["steps"].attrs["long_name"] = "number of time steps in the period"
    return key, coords


# --- regridding ---------------------------------------------------------------------------


def step(values: np.ndarray) -> float:
    """The grid step of an axis (the median spacing; 1 for a single value)."""
    return float(np.median(np.diff(values))) if values.size > 1 else 1.0


def target_axis(lo: float, hi: float, res: float, origin: float) -> np.ndarray:
    """Centres ``origin + res/2 + k*res`` that lie in [lo, hi] (a grid aligned on whole
    multiples of the step, so tiles of different requests line up)."""
    first = np.ceil((lo - origin - res / 2) / res - 1e-9)
    last = np.floor((hi - origin - res / 2) / res + 1e-9)
    k = np.arange(first, last + 1)
    return np.round(origin + res / 2 + k * res, 10)


def frame(src: xr.Dataset) -> xr.Dataset:
    """``src`` with one wrapped column added on each side when it spans the globe, so
    cells at the seam have neighbours."""
    lon = src[LON].values
    if lon.size < 2 or abs(lon.size * step(lon) - 360.0) > 1e-6:
        return src
    left = src.isel({LON: [-1]}).assign_coords({LON: lon[-1:] - 360.0})
    right = src.isel({LON: [0]}).assign_coords({LON: lon[:1] + 360.0})
    return xr.concat([left, src, right], dim=LON, data_vars="minimal", coords="minimal",
                     compat="override", join="override")  # fmt: skip


def into(lon: np.ndarray, start: float) -> np.ndarray:
    """Longitudes moved by whole turns into [start, start + 360)."""
    return start + (np.asarray(lon, dtype="f8") - start) % 360.0


def _overlaps(src_edges: np.ndarray, dst_edges: np.ndarray) -> np.ndarray:
    """(n_dst, n_src) lengths of overlap between destination and source intervals."""
    lo = np.maximum(dst_edges[:-1, None], src_edges[None, :-1])
    hi = np.minimum(dst_edges[1:, None], src_edges[None, 1:])
    return np.asarray(np.clip(hi - lo, 0.0, None))


def regrid(
    src: xr.Dataset,
    lon: np.ndarray,
    lat: np.ndarray,
    method: Literal["nearest", "bilinear", "conservative"],
    res: float | None = None,
) -> xr.Dataset:
    """``src`` on the grid of ``lon`` x ``lat`` centres (cells ``res`` wide for the
    conservative method). Bilinear is NaN where any of the four neighbours is (as CDO
    ``remapbil``); conservative averages the overlapping source cells by area, over the
    valid ones (CDO ``remapcon`` with its default ``fracarea`` normalisation)."""
    src = frame(src)
    s_lon = src[LON].values
    x = into(lon, s_lon[0] - step(s_lon) / 2) if s_lon.size > 1 else np.asarray(lon)
    if method == "nearest":
        out = src.sel({LON: x, LAT: lat}, method="nearest")
    elif method == "bilinear":
        # In float64 up front: on dask arrays xarray declares float32 in, float32 out,
        # while the interpolation returns float64, so a later cast back would be skipped.
        wide = src.assign(
            {n: v.astype("f8") for n, v in src.data_vars.items() if v.dtype.kind == "f"}
        )
        out = wide.interp({LON: x, LAT: lat}, method="linear")
    else:
        r = res if res is not None else step(np.asarray(lon))
        w_lon = _overlaps(edges(s_lon), np.concatenate([x - r / 2, x[-1:] + r / 2]))
        s_lat = np.sin(np.deg2rad(np.clip(edges(src[LAT].values), -90, 90)))
        d_lat = np.clip(np.concatenate([lat - r / 2, lat[-1:] + r / 2]), -90, 90)
        w_lat = _overlaps(s_lat, np.sin(np.deg2rad(d_lat)))
        wx = xr.DataArray(w_lon, dims=("_x", LON))
        wy = xr.DataArray(w_lat, dims=("_y", LAT))
        out = xr.Dataset(coords={k: v for k, v in src.coords.items() if LON not in v.dims
                                 and LAT not in v.dims})  # fmt: skip
        for name, var in src.data_vars.items():
            if LON not in var.dims or LAT not in var.dims:
                out[name] = var
                continue
            valid = var.notnull().astype("f8")
            num = xr.dot(wy, wx, var.fillna(0.0).astype("f8"), dim=[LAT, LON])
            den = xr.dot(wy, wx, valid, dim=[LAT, LON])
            mean = (num / den.where(den > 0)).rename({"_y": LAT, "_x": LON})
            out[name] = mean.transpose(*var.dims)
    out = out.assign_coords({LON: np.asarray(lon, dtype="f8"), LAT: np.asarray(lat, "f8")})
    for name, var in src.data_vars.items():  # interpolation computes in float64
        out[name] = out[name].astype(var.dtype).assign_attrs(var.attrs)
    out.attrs = dict(src.attrs)
    for axis in (LON, LAT):
        out[axis].attrs = {k: v for k, v in src[axis].attrs.items() if k != "bounds"}
    return out.drop_vars([f"{LON}_bnds", f"{LAT}_bnds"], errors="ignore")
