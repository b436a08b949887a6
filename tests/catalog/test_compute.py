"""Component runs on the real corpus products, each value checked against an independent
computation on the source file: CDO where it has the operator, numpy otherwise."""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest
import xarray as xr

import catalog.compute as compute
from catalog.compute import Kind, Source, execute, plan_run, reads, run_component
from catalog.planner import plan
from catalog.selection import selection_from_json
from catalog.store import DataStore
from oceanmart.errors import InvalidParameter, RequestTooLarge
from tests.conftest import require_tool

pytestmark = pytest.mark.xdist_group("compute")

SourceFile = Callable[[str], Path]
NAVY, COADS, LEVITUS, ATLAS = (
    "navy-winds-monthly", "coads-climatology", "levitus-climatology", "ocean-atlas-monthly",
)  # fmt: skip
NAVY_AXES = {"FNOCX": "longitude", "FNOCY": "latitude", "TIME": "time"}


def cdo(*args: object) -> None:
    subprocess.run([require_tool("cdo"), "-s", *map(str, args)], check=True, capture_output=True)


def cdo_values(path: Path, name: str) -> np.ndarray:
    """A variable of a CDO output, missing values as NaN."""
    with netCDF4.Dataset(path) as nc:
        return np.ma.filled(nc[name][:].astype("f8"), np.nan)


def cdo_grid(path: Path, renames: dict[str, str], *, continuous: bool = False) -> xr.Dataset:
    """A CDO output on our axis names, longitudes -180..180 (or running on past 180 for a
    box across the antimeridian), sorted."""
    ref = xr.open_dataset(path).load()
    ref = ref.rename({k: v for k, v in renames.items() if k in ref.variables})
    lon = ((ref.longitude.values + 180.0) % 360.0) - 180.0
    if continuous:
        lon = np.where(lon < 0, lon + 360.0, lon)
    return ref.assign_coords(longitude=lon).sortby(["longitude", "latitude"])


def run(source: Source, component: str, product: str, **params: Any) -> compute.ComponentResult:
    return run_component(component, params, product, source)[1]


# --- area statistics ----------------------------------------------------------------------


def _band_areas(box: Path, tmp: Path) -> Path:
    """CDO's cell-area file for ``box`` with the exact areas of latitude/longitude cells
    (R^2 * dlon * (sin north - sin south)) in place of CDO's great-circle cells."""
    out = tmp / "band_areas.nc"
    cdo("gridarea", box, out)
    with netCDF4.Dataset(out, "a") as nc:
        lat = np.deg2rad(nc["COADSY"][:] if "COADSY" in nc.variables else nc["lat"][:])
        half = np.deg2rad(1.0)
        band = 6371000.0**2 * np.deg2rad(2.0) * (np.sin(lat + half) - np.sin(lat - half))
        nc["cell_area"][:] = np.broadcast_to(band[:, None], nc["cell_area"].shape)
    return out


def test_area_statistics_equal_cdo_field_statistics(
    source: Source, source_file: SourceFile, tmp_path: Path
) -> None:
    box = tmp_path / "box.nc"
    cdo("-sellonlatbox,100,125,10,40", "-selname,SST", source_file(COADS), box)
    ours = run(
        source, "area-statistics", COADS, variables=["SST"], area={"bbox": [100, 10, 125, 40]},
        statistics=["mean", "min", "max", "std", "sum", "count"], percentiles=[10, 50, 90],
    ).dataset  # fmt: skip
    assert ours.sizes == {"time": 12}
    values = cdo_values(box, "SST")
    assert np.isnan(values).any(), "the box holds land cells"
    for op, name in (("fldmin", "min"), ("fldmax", "max")):
        cdo(op, box, tmp_path / f"{op}.nc")
        np.testing.assert_array_equal(
            ours[f"SST_{name}"], cdo_values(tmp_path / f"{op}.nc", "SST").ravel()
        )
    cdo("fldsum", box, tmp_path / "sum.nc")
    np.testing.assert_allclose(
        ours.SST_sum, cdo_values(tmp_path / "sum.nc", "SST").ravel(), rtol=1e-6
    )
    np.testing.assert_array_equal(ours.SST_count, np.sum(~np.isnan(values), axis=(1, 2)))
    # CDO's own cell areas (great-circle edges) differ from exact band areas by ~1e-4
    # relative: the means agree to 1e-3 degC (unweighted ones are off by 0.2-0.5 degC).
    for op, name in (("fldmean", "mean"), ("fldstd", "std")):
        cdo(op, box, tmp_path / f"{op}.nc")
        ref = cdo_values(tmp_path / f"{op}.nc", "SST").ravel()
        np.testing.assert_allclose(ours[f"SST_{name}"], ref, atol=1e-3)
        # with our band areas handed to CDO, to float rounding
        cdo(op, f"-setgridarea,{_band_areas(box, tmp_path)}", box, tmp_path / f"{op}_b.nc")
        ref = cdo_values(tmp_path / f"{op}_b.nc", "SST").ravel()
        np.testing.assert_allclose(ours[f"SST_{name}"], ref, rtol=2e-6)
    unweighted = np.nanmean(values, axis=(1, 2))
    assert np.abs(unweighted - ours.SST_mean.values).max() > 0.1


def test_percentiles_are_cdo_nearest_rank_and_area_weighted_by_definition(
    source: Source, source_file: SourceFile, tmp_path: Path
) -> None:
    box = tmp_path / "box.nc"
    cdo("-sellonlatbox,100,125,10,40", "-selname,SST", source_file(COADS), box)
    params = {"variables": ["SST"], "area": {"bbox": [100, 10, 125, 40]}, "statistics": []}
    plain = run(
        source, "area-statistics", COADS, **params, percentiles=[10, 50, 90], weighted=False
    )
    for q in (10, 50, 90):
        out = tmp_path / f"p{q}.nc"
        subprocess.run(
            [require_tool("cdo"), "-s", "--percentile", "nrank", f"fldpctl,{q}", box, out],
            check=True, capture_output=True,
        )  # fmt: skip
        np.testing.assert_array_equal(plain.dataset[f"SST_p{q}"], cdo_values(out, "SST").ravel())
    weighted = run(source, "area-statistics", COADS, **params, percentiles=[5, 50, 95]).dataset
    values = cdo_values(box, "SST")
    lat = np.deg2rad(cdo_values(box, "COADSY"))
    w = np.broadcast_to((np.sin(lat + np.deg2rad(1)) - np.sin(lat - np.deg2rad(1)))[:, None],
                        values.shape[1:])  # fmt: skip
    differs = 0
    for t in range(values.shape[0]):
        ok = ~np.isnan(values[t])
        v, wt = values[t][ok], w[ok]
        for q in (5, 50, 95):
            p = float(weighted[f"SST_p{q}"][t])
            # the smallest value whose cumulative area share reaches q %
            assert p in v
            share = q / 100 * wt.sum()
            assert wt[v < p].sum() < share <= wt[v <= p].sum() * (1 + 1e-12)
            differs += p != np.percentile(v, q, method="inverted_cdf")
    assert differs > 0, "area weights change some percentiles"


def test_sea_area_statistics_equal_cdo_maskregion(
    source: Source, source_file: SourceFile, tmp_path: Path
) -> None:
    import json

    from tests.conftest import ROOT

    doc = json.loads((ROOT / "ingest" / "specs" / "sea-areas.geojson").read_text())
    (ring,) = next(
        f["geometry"]["coordinates"] for f in doc["features"]
        if f["properties"]["id"] == "east-china-sea"
    )  # fmt: skip
    region = tmp_path / "region.txt"
    region.write_text("".join(f"{x} {y}\n" for x, y in ring))
    masked = tmp_path / "masked.nc"
    cdo(f"-maskregion,{region}", "-selname,SST", source_file(COADS), masked)
    ours = run(
        source, "area-statistics", COADS, variables=["SST"], area={"sea_area": "east-china-sea"},
        statistics=["mean", "max", "count"],
    ).dataset  # fmt: skip
    values = cdo_values(masked, "SST")
    np.testing.assert_array_equal(ours.SST_count, np.sum(~np.isnan(values), axis=(1, 2)))
    assert 10 < int(ours.SST_count[0]) < 40
    cdo("fldmax", masked, tmp_path / "max.nc")
    np.testing.assert_array_equal(ours.SST_max, cdo_values(tmp_path / "max.nc", "SST").ravel())
    cdo("fldmean", masked, tmp_path / "mean.nc")
    np.testing.assert_allclose(
        ours.SST_mean, cdo_values(tmp_path / "mean.nc", "SST").ravel(), atol=1e-3
    )


def test_statistics_over_each_year_and_season_pool_every_value(
    source: Source, source_file: SourceFile, tmp_path: Path
) -> None:
    box = tmp_path / "box.nc"
    cdo("-sellonlatbox,120,135,20,40", "-selname,UWND", source_file(NAVY), box)
    area = {"bbox": [120, 20, 135, 40]}
    for group, op in (("year", "year"), ("season", "seas")):
        ours = run(
            source, "area-statistics", NAVY, variables=["UWND"], area=area, group_by=group,
            statistics=["mean", "max", "count"],
        ).dataset  # fmt: skip
        cdo(f"{op}max", "-fldmax", box, tmp_path / "max.nc")
        np.testing.assert_array_equal(
            ours.UWND_max, cdo_values(tmp_path / "max.nc", "UWND").ravel()
        )
        # no missing winds: the pooled area-weighted mean is the mean of the fldmeans
        cdo(f"{op}mean", "-fldmean", box, tmp_path / "mean.nc")
        ref = cdo_values(tmp_path / "mean.nc", "UWND").ravel()
        np.testing.assert_allclose(ours.UWND_mean, ref, atol=2e-4)
        np.testing.assert_array_equal(ours.UWND_count, ours.steps * 9 * 7)
    assert ours.sizes["time"] == 45 and ours.steps.values[[0, -1]].tolist() == [2, 1]


# --- temporal aggregation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "statistic", "operator"),
    [("month", "mean", "monmean"), ("season", "mean", "seasmean"), ("year", "mean", "yearmean"),
     ("year", "max", "yearmax"), ("season", "std", "seasstd"), ("year", "sum", "yearsum")],
)  # fmt: skip
def test_temporal_aggregation_equals_cdo(
    source: Source, source_file: SourceFile, tmp_path: Path, period: str, statistic: str,
    operator: str,
) -> None:  # fmt: skip
    """A box across the antimeridian: 160E..160W."""
    ref_path = tmp_path / "ref.nc"
    cdo(
        operator, "-sellonlatbox,160,-160,-10,10", "-selname,UWND,VWND", source_file(NAVY), ref_path
    )
    ref = cdo_grid(ref_path, NAVY_AXES, continuous=True)
    result = run(
        source, "temporal-aggregation", NAVY, variables=["UWND", "VWND"],
        area={"bbox": [160, -10, -160, 10]}, period=period, statistic=statistic,
    )  # fmt: skip
    assert result.kind is Kind.GRID
    ours = result.dataset
    assert (
        ours.sizes["time"] == ref.sizes["time"] == {"month": 132, "season": 45, "year": 11}[period]
    )
    np.testing.assert_array_equal(ours.longitude, ref.longitude)
    np.testing.assert_array_equal(ours.latitude, ref.latitude)
    for name in ("UWND", "VWND"):
        np.testing.assert_allclose(
            ours[name], ref[name].transpose(*ours[name].dims), rtol=1e-5, atol=1e-5
        )
    # CDO stamps each period with its middle time step: inside our period bounds
    bounds = ours.time_bnds.values
    assert np.all((bounds[:, 0] <= ref.time.values) & (ref.time.values < bounds[:, 1]))
    assert int(ours.steps.sum()) == 132


# --- anomalies ----------------------------------------------------------------------------


def test_anomaly_against_a_baseline_period_equals_cdo_ymonsub_ymonmean(
    source: Source, source_file: SourceFile, tmp_path: Path
) -> None:
    box = tmp_path / "box.nc"
    cdo("-sellonlatbox,120,135,20,40", "-selname,UWND", source_file(NAVY), box)
    period, baseline = "-seldate,1990-01-01,1990-12-31", "-seldate,1982-01-01,1986-12-31"
    cdo("ymonsub", period, box, "-ymonmean", baseline, box, tmp_path / "ref.nc")
    ref = cdo_grid(tmp_path / "ref.nc", NAVY_AXES)
    rp = plan_run(
        "climatology-anomaly",
        {"variables": ["UWND"], "area": {"bbox": [120, 20, 135, 40]},
         "datetime": "1990-01-01/1990-12-31", "baseline": "1982-01-01/1986-12-31"},
        NAVY, source,
    )  # fmt: skip
    assert [r.role for r in rp.reads] == ["data", "baseline"]
    assert [r.plan.shape["time"] for r in rp.reads] == [12, 60]
    ours = execute(rp, source).dataset
    np.testing.assert_allclose(ours.UWND, ref.UWND.transpose(*ours.UWND.dims), atol=2e-6)
    assert ours.month.values.tolist() == list(range(1, 13))


def test_anomaly_against_a_climatology_product_equals_cdo_remapbil_ymonsub(
    source: Source, source_file: SourceFile, tmp_path: Path
) -> None:
    """Navy winds 1988 against the COADS monthly climatology (2 degree grid), which is
    interpolated bilinearly onto the 2.5 degree navy grid."""
    box = tmp_path / "box.nc"
    cdo("-seldate,1988-01-01,1988-12-31", "-sellonlatbox,-40,-10,-30,0", "-selname,UWND",
        source_file(NAVY), box)  # fmt: skip
    cdo(
        "ymonsub", box, f"-remapbil,{box}", "-selname,UWND", source_file(COADS), tmp_path / "ref.nc"
    )
    ref = cdo_grid(tmp_path / "ref.nc", NAVY_AXES)
    rp = plan_run(
        "climatology-anomaly",
        {"variables": ["UWND"], "area": {"bbox": [-40, -30, -10, 0]},
         "datetime": "1988-01-01/1988-12-31", "climatology": {"product": COADS}},
        NAVY, source,
    )  # fmt: skip
    assert rp.products == (NAVY, COADS)
    clim = rp.read("climatology")
    # one COADS cell around the box, for the bilinear neighbours: -41..-9, -31..1
    assert clim.plan.shape == {"time": 12, "latitude": 17, "longitude": 17}
    ours = execute(rp, source).dataset
    assert ours.UWND.dtype == np.float32 and ours.sizes["time"] == 12
    np.testing.assert_allclose(ours.UWND, ref.UWND.transpose(*ours.UWND.dims), atol=1e-5)
    assert np.isnan(ours.UWND.values).sum() < ours.UWND.size // 4  # COADS has no land values


# --- threshold alerts ---------------------------------------------------------------------


def test_wind_speed_above_beaufort_7_equals_cdo_expr_gtc(
    source: Source, source_file: SourceFile, tmp_path: Path
) -> None:
    speed = tmp_path / "speed.nc"
    cdo("-expr,speed=sqrt(UWND*UWND+VWND*VWND)", "-seldate,1985-01-01,1985-12-31",
        "-sellonlatbox,-60,60,-70,-30", source_file(NAVY), speed)  # fmt: skip
    cdo("-gtc,13.9", speed, tmp_path / "hit.nc")
    cdo("fldsum", tmp_path / "hit.nc", tmp_path / "cells.nc")
    cdo("timsum", tmp_path / "hit.nc", tmp_path / "steps.nc")
    result = run(
        source, "threshold-alert", NAVY, variable=["UWND", "VWND"], operator="gt", threshold=13.9,
        area={"bbox": [-60, -70, 60, -30]}, datetime="1985-01-01/1985-12-31", min_cells=3,
    )  # fmt: skip
    ours = result.dataset
    cells = cdo_values(tmp_path / "cells.nc", "speed").ravel().astype(int)
    np.testing.assert_array_equal(ours.cells, cells)
    assert cells.max() > 10 and (cells == 0).any()
    steps = cdo_grid(tmp_path / "steps.nc", NAVY_AXES)
    np.testing.assert_array_equal(ours.exceedances, steps.speed.squeeze())
    np.testing.assert_array_equal(ours.alert, cells >= 3)
    # each alert names the very cells CDO flags, with the highest speed among them
    hit = cdo_grid(tmp_path / "hit.nc", NAVY_AXES)
    spd = cdo_grid(speed, NAVY_AXES).speed.values
    assert len(result.features) == int((cells >= 3).sum())
    for feature in result.features:
        t = feature["id"]
        want = hit.speed.isel(time=t).values == 1
        ii, jj = np.nonzero(want)
        expected = {
            (float(hit.longitude[j]), float(hit.latitude[i])) for i, j in zip(ii, jj, strict=True)
        }
        assert {tuple(c) for c in feature["geometry"]["coordinates"]} == expected
        props = feature["properties"]
        assert props["cells"] == len(expected) and props["units"] == "m s-1"
        assert props["extreme"] == pytest.approx(float(spd[t][want].max()), rel=1e-6)
        assert props["time"].startswith(str(ours.time.values[t])[:10])


def test_single_variable_alert_below_a_threshold_equals_cdo_ltc(
    source: Source, source_file: SourceFile, tmp_path: Path
) -> None:
    cdo("fldsum", "-ltc,2", "-sellonlatbox,100,160,-10,30", "-selname,WSPD", source_file(COADS),
        tmp_path / "cells.nc")  # fmt: skip
    result = run(
        source, "threshold-alert", COADS, variable="WSPD", operator="lt", threshold=2.0,
        area={"bbox": [100, -10, 160, 30]},
    )  # fmt: skip
    cells = cdo_values(tmp_path / "cells.nc", "WSPD").ravel()
    np.testing.assert_array_equal(result.dataset.cells, cells)
    assert cells.sum() > 0
    assert all(f["properties"]["extreme"] < 2.0 for f in result.features)


# --- points, profiles, routes -------------------------------------------------------------


@pytest.mark.parametrize(("method", "remap"), [("nearest", "remapnn"), ("linear", "remapbil")])
def test_vertical_profile_equals_cdo_remap_to_the_point(
    source: Source, source_file: SourceFile, tmp_path: Path, method: str, remap: str
) -> None:
    cdo(
        f"{remap},lon=150.3_lat=-20.1",
        "-selname,TEMP,SALT",
        source_file(LEVITUS),
        tmp_path / "ref.nc",
    )
    result = run(
        source, "vertical-profile", LEVITUS, variables=["TEMP", "SALT"], point=[150.3, -20.1],
        method=method,
    )  # fmt: skip
    assert result.kind is Kind.POINT
    ours = result.dataset
    assert ours.TEMP.dims == ("depth",) and ours.sizes["depth"] == 20
    for name in ("TEMP", "SALT"):
        ref = cdo_values(tmp_path / "ref.nc", name).ravel()
        np.testing.assert_allclose(ours[name], ref, rtol=1e-6, equal_nan=True)
        assert np.isnan(ref).any() and not np.isnan(ref[:8]).any()


def test_vertical_profile_over_months_equals_cdo(
    source: Source, source_file: SourceFile, tmp_path: Path
) -> None:
    cdo("remapnn,lon=-30.2_lat=40.7", "-seltimestep,3,4", source_file(ATLAS), tmp_path / "ref.nc")
    ours = run(
        source, "vertical-profile", ATLAS, variables=["TEMP"], point=[-30.2, 40.7],
        datetime="2000-03-01/2000-04-30", depth=[0, 500],
    ).dataset  # fmt: skip
    ref = cdo_values(tmp_path / "ref.nc", "TEMP")[:, :, 0, 0]
    levels = cdo_values(tmp_path / "ref.nc", "ZAXLEVIT19")
    assert ours.TEMP.dims == ("time", "depth") and ours.sizes == {"time": 2, "depth": 14}
    np.testing.assert_array_equal(ours.depth, levels[levels <= 500])
    np.testing.assert_array_equal(ours.TEMP, ref[:, :14])
    assert not np.isnan(ref[:, :14]).any()


@pytest.mark.parametrize(("method", "remap"), [("nearest", "remapnn"), ("linear", "remapbil")])
def test_point_series_equals_cdo(
    source: Source, source_file: SourceFile, tmp_path: Path, method: str, remap: str
) -> None:
    cdo(f"{remap},lon=150.3_lat=-20.1", "-seldate,1985-01-01,1986-12-31", source_file(NAVY),
        tmp_path / "ref.nc")  # fmt: skip
    ours = run(
        source, "point-series", NAVY, variables=["UWND", "VWND"], point=[150.3, -20.1],
        datetime="1985-01-01/1986-12-31", method=method,
    ).dataset  # fmt: skip
    assert ours.UWND.dims == ("time",) and ours.sizes["time"] == 24
    for name in ("UWND", "VWND"):
        np.testing.assert_allclose(
            ours[name], cdo_values(tmp_path / "ref.nc", name).ravel(), rtol=1e-6
        )
    assert float(ours.requested_longitude) == 150.3


ROUTE = [
    {"lon": 150.0, "lat": -20.0, "time": "1985-01-03T00:00:00Z"},
    {"lon": 165.3, "lat": -12.4, "time": "1985-02-20T06:00:00Z"},
    {"lon": 179.2, "lat": -8.8, "time": "1985-03-30T00:00:00Z"},  # across the seam
    {"lon": -171.1, "lat": -3.3, "time": "1985-05-02T12:00:00Z"},
]


def _navy_reference(source_file: SourceFile, method: str) -> dict[str, list[Any]]:
    """Route values by numpy on the source file: the nearest time step, then the nearest
    cell or bilinear weights between the four cells around (longitudes wrap)."""
    src = xr.open_dataset(source_file(NAVY)).load()
    lon, lat = src.FNOCX.values % 360.0, src.FNOCY.values
    out: dict[str, list[Any]] = {"UWND": [], "VWND": [], "time": []}
    for p in ROUTE:
        t = int(np.argmin(np.abs(src.TIME.values - np.datetime64(p["time"][:-1]))))
        out["time"].append(str(src.TIME.values[t])[:19] + "Z")
        x, y = p["lon"] % 360.0, p["lat"]
        for name in ("UWND", "VWND"):
            field = src[name].values[t]
            if method == "nearest":
                j = int(np.argmin(np.abs((lon - x + 180) % 360 - 180)))
                out[name].append(float(field[int(np.argmin(np.abs(lat - y))), j]))
                continue
            west = np.floor(x / 2.5) * 2.5
            j0 = int(np.argmin(np.abs(lon - west)))
            j1 = int(np.argmin(np.abs(lon - (west + 2.5) % 360.0)))
            i0 = int(np.searchsorted(lat, y)) - 1
            fx = (x - west) / 2.5
            fy = (y - lat[i0]) / 2.5
            v = (field[i0, j0] * (1 - fx) * (1 - fy) + field[i0, j1] * fx * (1 - fy)
                 + field[i0 + 1, j0] * (1 - fx) * fy + field[i0 + 1, j1] * fx * fy)  # fmt: skip
            out[name].append(float(v))
    return out


@pytest.mark.parametrize("method", ["nearest", "linear"])
def test_route_sampling_equals_numpy_on_the_source(
    source: Source, source_file: SourceFile, method: str
) -> None:
    rp, result = run_component(
        "route-sampling", {"variables": ["UWND", "VWND"], "route": ROUTE, "method": method},
        NAVY, source,
    )  # fmt: skip
    assert rp.points == 4 and result.kind is Kind.TRAJECTORY
    want = _navy_reference(source_file, method)
    for name in ("UWND", "VWND"):
        np.testing.assert_allclose(result.dataset[name], want[name], rtol=1e-5)
    assert [f["properties"]["time"] for f in result.features] == want["time"]
    assert len(set(want["time"])) == 4
    first = result.features[2]
    assert first["geometry"] == {"type": "Point", "coordinates": [179.2, -8.8]}
    assert first["properties"]["UWND"] == pytest.approx(want["UWND"][2], rel=1e-5)


# --- regrid -------------------------------------------------------------------------------


def _grid_file(tmp: Path, lon0: float, lat0: float, nx: int, ny: int, step: float) -> Path:
    path = tmp / "grid.txt"
    path.write_text(
        f"gridtype = lonlat\nxsize = {nx}\nysize = {ny}\nxfirst = {lon0}\nxinc = {step}\n"
        f"yfirst = {lat0}\nyinc = {step}\n"
    )
    return path


@pytest.mark.parametrize(
    ("method", "remap"),
    [("bilinear", "remapbil"), ("nearest", "remapnn"), ("conservative", "remapcon")],
)
@pytest.mark.parametrize(
    ("bbox", "first", "size"),
    [
        ([120, 20, 135, 40], (121.25, 21.25), (6, 8)),
        ([170, -10, -170, 10], (171.25, -8.75), (8, 8)),
    ],
)
def test_regrid_equals_cdo_remap(
    source: Source, source_file: SourceFile, tmp_path: Path, method: str, remap: str,
    bbox: list[float], first: tuple[float, float], size: tuple[int, int],
) -> None:  # fmt: skip
    grid = _grid_file(tmp_path, *first, *size, 2.5)
    cdo(
        f"{remap},{grid}",
        "-sellevel,0,10,20,30,50",
        "-selname,TEMP",
        source_file(LEVITUS),
        tmp_path / "ref.nc",
    )
    result = run(
        source, "regrid", LEVITUS, variables=["TEMP"], area={"bbox": bbox}, resolution=2.5,
        depth=[0, 50], method=method,
    )  # fmt: skip
    ours = result.dataset
    assert ours.TEMP.dims == ("depth", "latitude", "longitude") and ours.TEMP.dtype == np.float32
    assert ours.longitude.values[0] == first[0] and ours.latitude.values[0] == first[1]
    assert (ours.sizes["longitude"], ours.sizes["latitude"]) == size
    ref = cdo_values(tmp_path / "ref.nc", "TEMP")
    np.testing.assert_allclose(ours.TEMP, ref, rtol=1e-6, atol=1e-5, equal_nan=True)
    assert np.isnan(ref).sum() < ref.size // 2


def test_regrid_over_a_sea_area_masks_target_cells_outside(source: Source) -> None:
    import shapely
    from shapely.geometry import shape

    params = {"variables": ["TEMP"], "resolution": 2.5, "depth": [0, 0]}
    inside = run(source, "regrid", LEVITUS, **params, area={"sea_area": "east-china-sea"}).dataset
    area = source.area("east-china-sea")
    w, s, e, n = area.bbox
    box = run(source, "regrid", LEVITUS, **params, area={"bbox": [w, s, e, n]}).dataset
    xx, yy = np.meshgrid(inside.longitude, inside.latitude)
    centre_in = shapely.contains_xy(shape(area.geometry), xx, yy)
    assert 0 < centre_in.sum() < centre_in.size
    a, b = inside.TEMP.isel(depth=0).values, box.TEMP.isel(depth=0).values
    assert np.isnan(a[~centre_in]).all()
    np.testing.assert_array_equal(a[centre_in], b[centre_in])


# --- plans, limits, errors ----------------------------------------------------------------


def test_a_run_plans_what_it_reads_from_metadata_alone(
    source: Source, compute_env: Any, tmp_path: Path
) -> None:
    params = {"variables": ["UWND"], "area": {"bbox": [120, 20, 135, 40]}, "period": "year"}
    (read,) = reads("temporal-aggregation", params, NAVY)
    assert read.selection == selection_from_json(
        {"bbox": [120, 20, 135, 40], "variables": ["UWND"]}
    )
    rp = plan_run("temporal-aggregation", params, NAVY, source)
    product = source.product(NAVY)
    assert product.version is not None
    meta = source.store.open_version(product.version.store_path, dask=False)
    assert rp.reads[0].plan == plan(product, meta, read.selection)
    assert rp.cells == 132 * 9 * 7 and rp.bytes == rp.cells * 4
    # the same plan from a copy of the store without a single chunk of data
    stripped = tmp_path / "data"
    shutil.copytree(compute_env.store.root / "products" / NAVY, stripped / "products" / NAVY)
    removed = [c for c in stripped.rglob("c") if c.is_dir() and c.parent.name in ("UWND", "VWND")]
    for c in removed:
        shutil.rmtree(c)
    assert len(removed) == 4
    bare = Source(DataStore(stripped), source.product, source.area)
    assert plan_run("temporal-aggregation", params, NAVY, bare).as_dict() == rp.as_dict()


def _same_features(a: Any, b: Any) -> bool:
    """Equal, except that floats may differ in the last bits: a sum over dask chunks adds
    in another order than one numpy sum (the datasets are compared with rtol 1e-6)."""
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-12)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same_features(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple) and type(a) is type(b):
        return len(a) == len(b) and all(_same_features(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def test_the_dask_path_gives_the_same_results(
    source: Source, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = [
        ("area-statistics", NAVY, {"variables": ["UWND"], "area": {"sea_area": "east-china-sea"},
                                   "percentiles": [25, 75], "group_by": "season"}),
        ("temporal-aggregation", NAVY, {"variables": ["VWND"], "period": "season",
                                        "area": {"bbox": [160, -10, -160, 10]},
                                        "statistic": "std"}),
        ("threshold-alert", NAVY, {"variable": ["UWND", "VWND"], "operator": "ge", "threshold": 10,
                                   "area": {"bbox": [-60, -70, 60, -30]}}),
        ("regrid", LEVITUS, {"variables": ["SALT"], "area": {"bbox": [100, -20, 140, 30]},
                             "resolution": 5, "method": "conservative", "depth": [0, 100]}),
        ("regrid", LEVITUS, {"variables": ["TEMP"], "area": {"bbox": [170, -20, -170, 30]},
                             "resolution": 2.5, "method": "bilinear", "depth": [0, 100]}),
        ("climatology-anomaly", NAVY, {"variables": ["VWND"], "area": {"bbox": [0, 0, 30, 30]},
                                       "datetime": "1991-01-01/1991-12-31",
                                       "climatology": {"product": COADS}}),
    ]  # fmt: skip
    in_memory = [run_component(c, p, prod, source)[1] for c, prod, p in calls]
    monkeypatch.setattr(compute, "IN_MEMORY_BYTES", 0)
    for (c, prod, p), eager in zip(calls, in_memory, strict=True):
        lazy = run_component(c, p, prod, source)[1]
        assert any(v.chunks is not None for v in lazy.dataset.data_vars.values()) or c in (
            "area-statistics", "threshold-alert",
        ), c  # fmt: skip
        loaded = lazy.dataset.load()
        xr.testing.assert_allclose(loaded, eager.dataset, rtol=1e-6)
        assert {n: v.dtype for n, v in loaded.data_vars.items()} == {
            n: v.dtype for n, v in eager.dataset.data_vars.items()
        }, c
        assert _same_features(lazy.features, eager.features), c


def test_a_run_over_the_limit_is_refused_with_its_size(source: Source) -> None:
    params = {
        "variables": ["UWND", "VWND"],
        "area": {"bbox": [-180, -90, 180, 90]},
        "period": "year",
    }
    with pytest.raises(RequestTooLarge) as info:
        run_component("temporal-aggregation", params, NAVY, source, limit_bytes=1_000_000)
    assert info.value.extensions["bytes"] == 2 * 132 * 73 * 144 * 4


ANOMALY = {
    "variables": ["UWND"],
    "area": {"bbox": [0, 0, 10, 10]},
    "datetime": "1990-01-01/1990-12-31",
}


@pytest.mark.parametrize(
    ("component", "product", "params", "parameter", "words"),
    [
        ("area-statistics", COADS, {"variables": ["SSS"], "area": {"bbox": [0, 0, 10, 10]}},
         "component.parameters.variables", "unknown variable(s) SSS"),
        ("area-statistics", COADS, {"variables": ["SST"], "area": {}},
         "component.parameters.area", "give a bbox"),
        ("area-statistics", COADS, {"variables": ["SST"], "area": {"sea_area": "atlantis"}},
         "component.parameters.area.sea_area", "no sea area 'atlantis'"),
        ("area-statistics", COADS, {"variables": ["SST"], "area": {"bbox": [0, 0, 10, 10]},
                                    "datetime": "last week"},
         "component.parameters.datetime", "ISO 8601"),
        ("area-statistics", LEVITUS, {"variables": ["TEMP"], "area": {"bbox": [0, 0, 10, 10]},
                                      "group_by": "year"},
         "product", "no time axis"),
        ("area-statistics", COADS, {"variables": ["SST"], "area": {"bbox": [0, 0, 10, 10]},
                                    "percentiles": [101]},
         "component.parameters.percentiles.0", "less than or equal to 100"),
        ("temporal-aggregation", LEVITUS, {"variables": ["TEMP"], "area": {"bbox": [0, 0, 10, 10]},
                                           "period": "year"},
         "product", "levitus-climatology has no time axis"),
        ("vertical-profile", NAVY, {"variables": ["UWND"], "point": [150, -20]},
         "component.parameters.variables", "UWND has no depth axis"),
        ("point-series", NAVY, {"variables": ["UWND"], "point": [150, -95]},
         "component.parameters.point", "not a lon, lat position"),
        ("threshold-alert", LEVITUS, {"variable": "TEMP", "area": {"bbox": [0, 0, 10, 10]},
                                      "operator": "gt", "threshold": 20, "depth": [0, 100]},
         "component.parameters.depth", "one level"),
        ("threshold-alert", NAVY, {"variable": ["UWND", "WSPD"], "area": {"bbox": [0, 0, 10, 10]},
                                   "operator": "gt", "threshold": 20},
         "component.parameters.variable", "unknown variable(s) WSPD"),
        ("climatology-anomaly", NAVY, {"variables": ["UWND"], "area": {"bbox": [0, 0, 10, 10]},
                                       "datetime": "1990-01-01/1990-12-31"},
         "component.parameters.baseline", "give either baseline"),
        ("climatology-anomaly", NAVY, {**ANOMALY, "climatology": {"product": NAVY}},
         "component.parameters.climatology.product", "not a monthly climatology"),
        ("climatology-anomaly", NAVY, {**ANOMALY, "climatology": {"product": "nope"}},
         "component.parameters.climatology.product", "no product 'nope'"),
        ("climatology-anomaly", NAVY, {"variables": ["UWND"], "area": {"bbox": [0, 0, 10, 10]},
                                       "datetime": "1990-01-01/1990-12-31", "climatology": {
                                           "product": COADS, "variables": {"UWND": "SST"}}},
         "component.parameters.climatology.variables", "'m s-1' but the climatology's SST"),
        ("climatology-anomaly", NAVY, {**ANOMALY, "datetime": "1990-01-01/1990-03-31",
                                       "baseline": "1985-06-01/1985-12-31"},
         "component.parameters.baseline", "no data for months [1, 2, 3]"),
        ("route-sampling", LEVITUS, {"variables": ["TEMP"], "route": ROUTE[:1]},
         "component.parameters.route", "no time axis"),
        ("regrid", NAVY, {"variables": ["UWND"], "area": {"bbox": [0, 0, 10, 10]}, "resolution": 1},
         "component.parameters.resolution", "finer than half the product's grid step"),
        ("teleport", NAVY, {}, "component", "no component 'teleport'"),
    ],
)  # fmt: skip
def test_bad_calls_name_the_parameter_before_reading(
    source: Source, component: str, product: str, params: dict[str, Any], parameter: str,
    words: str,
) -> None:  # fmt: skip
    with pytest.raises(InvalidParameter) as info:
        plan_run(component, params, product, source)
    assert info.value.parameter == parameter
    assert words in info.value.detail
