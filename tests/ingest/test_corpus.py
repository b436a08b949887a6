"""Every corpus product ingests from its spec, and cuts of the published Zarr equal what
CDO and NCO cut from the same source file (boxes across 0 on 20..380 and 0..360 grids,
across the antimeridian, depth ranges, time ranges)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from catalog.selection import parse_selection
from catalog.subset import apply
from ingest import ingest, load_spec
from ingest.corpus import corpus_path
from oceanmart.errors import CorpusUnavailable
from tests.conftest import ROOT, Env, _make_env, require_tool, unavailable

SPECS = sorted((ROOT / "ingest" / "specs").glob("*.yaml"))


@pytest.fixture(scope="module")
def catalog_env(tmp_path_factory: pytest.TempPathFactory, corpus_dir: Path) -> Iterator[Env]:
    made, _ = _make_env("sqlite", tmp_path_factory.mktemp("corpus"), corpus_dir)
    try:
        for spec in SPECS:
            ingest(load_spec(spec), sessions=made.sessions, store=made.store, corpus_dir=corpus_dir)
    except CorpusUnavailable as exc:
        unavailable(f"corpus: {exc.detail}")
    yield made


def _published(env: Env, product: str, copy: str = "map") -> xr.Dataset:
    from catalog.products import get_product

    with env.sessions() as s:
        version = get_product(s, product).version
    assert version is not None
    return env.store.open_version(version.store_path, copy)


@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_every_spec_publishes_two_identical_copies(catalog_env: Env, spec: Path) -> None:
    from catalog.models import ProductVersion
    from catalog.products import get_product

    product = load_spec(spec).id
    with catalog_env.sessions() as s:
        info = get_product(s, product)
        assert info.version is not None
        row = s.get(ProductVersion, info.version.id)
        assert row is not None
    for copy in ("map", "series"):
        meta = row.chunks[copy]
        assert meta["stored_bytes"] > 0 and meta["value_count"] == row.value_count
        # the store's own walk (``DataStore.size``) against fsspec's
        where = catalog_env.store.location(row.store_path, f"{copy}.zarr")
        assert meta["stored_bytes"] == catalog_env.store.fs.du(where, total=True)
    a, b = _published(catalog_env, product, "map"), _published(catalog_env, product, "series")
    for name in a.data_vars:
        np.testing.assert_array_equal(a[name].values, b[name].values)
        assert a[name].encoding["chunks"] != b[name].encoding["chunks"] or a[name].ndim < 3
    lon, lat = a.longitude.values, a.latitude.values
    assert lon.min() >= -180 and lon.max() < 180 and np.all(np.diff(lon) > 0)
    assert np.all(np.diff(lat) > 0)
    for var in a.data_vars.values():
        assert var.attrs.get("units"), f"{var.name} has units"
        assert var.attrs.get("standard_name"), f"{var.name} has a standard_name"
    assert a.attrs["title"] and a.attrs["license"] and a.attrs["creator_name"]


def _src(name: str, corpus_dir: Path) -> Path:
    return corpus_path(name, corpus_dir)


def _run(argv: list[str]) -> None:
    subprocess.run(argv, check=True, capture_output=True)


def _as_ours(ref: xr.Dataset, renames: dict[str, str], *, continuous: bool = False) -> xr.Dataset:
    ref = ref.rename({k: v for k, v in renames.items() if k in ref.variables})
    lon = ref.longitude.values
    lon = ((lon + 180.0) % 360.0) - 180.0
    if continuous:  # an antimeridian box: keep longitudes running on past 180
        lon = np.where(lon < 0, lon + 360.0, lon)
    return ref.assign_coords(longitude=lon).sortby("longitude").sortby("latitude")


def _same(ours: xr.DataArray, ref: xr.DataArray) -> None:
    ref = ref.transpose(*ours.dims)
    assert ours.shape == ref.shape and ours.size > 0
    for axis in ("longitude", "latitude"):
        np.testing.assert_allclose(ours[axis].values, ref[axis].values, atol=1e-4)
    np.testing.assert_array_equal(ours.values, ref.values)


def test_navy_winds_box_across_0_on_a_20_380_grid_and_a_time_range(
    catalog_env: Env, corpus_dir: Path, tmp_path: Path
) -> None:
    cdo = require_tool("cdo")
    out = tmp_path / "cdo.nc"
    _run(
        [
            cdo,
            "-s",
            "-sellonlatbox,-20,20,-30,30",
            "-seldate,1985-01-01,1986-12-31",
            str(_src("monthly_navy_winds.cdf", corpus_dir)),
            str(out),
        ]
    )
    ref = _as_ours(
        xr.open_dataset(out).load(), {"FNOCX": "longitude", "FNOCY": "latitude", "TIME": "time"}
    )
    sel = parse_selection(bbox="-20,-30,20,30", datetime="1985-01-01/1986-12-31")
    ours = apply(_published(catalog_env, "navy-winds-monthly"), sel).load()
    assert ours.sizes["time"] == 24
    np.testing.assert_array_equal(ours.time.values, ref.time.values)
    for name in ("UWND", "VWND"):
        _same(ours[name], ref[name])


def test_navy_winds_box_across_the_antimeridian(
    catalog_env: Env, corpus_dir: Path, tmp_path: Path
) -> None:
    ncks = require_tool("ncks")
    out = tmp_path / "ncks.nc"
    # 160E..160W is 160..200 on the file's 20..380 axis: one contiguous hyperslab
    _run(
        [
            ncks,
            "-O",
            "-v",
            "UWND",
            "-d",
            "FNOCX,160.,200.",
            "-d",
            "FNOCY,-10.,10.",
            "-d",
            "TIME,0,5",
            str(_src("monthly_navy_winds.cdf", corpus_dir)),
            str(out),
        ]
    )
    ref = _as_ours(
        xr.open_dataset(out).load(),
        {"FNOCX": "longitude", "FNOCY": "latitude", "TIME": "time"},
        continuous=True,
    )
    sel = parse_selection(
        bbox="160,-10,-160,10", variables="UWND", datetime="1982-01-01/1982-06-30"
    )
    ours = apply(_published(catalog_env, "navy-winds-monthly", "series"), sel).load()
    assert ours.longitude.values[0] == 160 and ours.longitude.values[-1] == 200
    _same(ours.UWND, ref.UWND)


def test_etopo5_box_across_0_on_a_0_360_grid(
    catalog_env: Env, corpus_dir: Path, tmp_path: Path
) -> None:
    cdo = require_tool("cdo")
    out = tmp_path / "cdo.nc"
    _run([cdo, "-s", "-sellonlatbox,-3,3,50,53", str(_src("etopo5.cdf", corpus_dir)), str(out)])
    ref = _as_ours(xr.open_dataset(out).load(), {"ETOPO05_X": "longitude", "ETOPO05_Y": "latitude"})
    ours = apply(_published(catalog_env, "etopo5"), parse_selection(bbox="-3,50,3,53")).load()
    assert ours.sizes["longitude"] == 72 and ours.sizes["latitude"] == 37
    _same(ours.ROSE, ref.ROSE)


def test_ocean_atlas_depth_and_month_range(
    catalog_env: Env, corpus_dir: Path, tmp_path: Path
) -> None:
    ncks = require_tool("ncks")
    out = tmp_path / "ncks.nc"
    _run(
        [
            ncks,
            "-O",
            "-d",
            "ZAXLEVIT19,50.,300.",
            "-d",
            "TIME,5,7",
            "-d",
            "XAX_SUBSET,100.,160.",
            "-d",
            "YAX_SUBSET,0.,40.",
            str(_src("ocean_atlas_subset.nc", corpus_dir)),
            str(out),
        ]
    )
    ref = _as_ours(
        xr.open_dataset(out, decode_times=False).load(),
        {
            "XAX_SUBSET": "longitude",
            "YAX_SUBSET": "latitude",
            "ZAXLEVIT19": "depth",
            "TIME": "time",
        },
    )
    sel = parse_selection(bbox="100,0,160,40", depth="50,300", datetime="2000-06-01/2000-08-31")
    ours = apply(_published(catalog_env, "ocean-atlas-monthly"), sel).load()
    assert ours.month.values.tolist() == [6, 7, 8]
    np.testing.assert_array_equal(ours.depth.values, ref.depth.values)
    _same(ours.TEMP, ref.TEMP)


def test_coads_climatology_axis_and_values(catalog_env: Env, corpus_dir: Path) -> None:
    src = xr.open_dataset(_src("coads_climatology.cdf", corpus_dir), decode_times=False)
    ours = _published(catalog_env, "coads-climatology")
    assert ours.time.attrs["climatology"] == "climatology_bounds"
    assert ours.month.values.tolist() == list(range(1, 13))
    bounds = ours.climatology_bounds.values
    assert str(bounds[0, 0])[:10] == "2000-01-01" and str(bounds[11, 1])[:10] == "2001-01-01"
    # the file's 21..379 longitudes: 23E stays 23E, 201E becomes 159W
    for lon_src, lon_ours in ((23.0, 23.0), (201.0, -159.0)):
        a = ours.SST.isel(time=6).sel(latitude=-1.0, longitude=lon_ours).values
        b = src.SST.isel(TIME=6).sel(COADSY=-1.0, COADSX=lon_src).values
        np.testing.assert_array_equal(a, b)
    assert ours.SLP.attrs["units"] == "hPa" and ours.SPEH.attrs["units"] == "g kg-1"


def test_grib_box_across_0_on_a_0_360_grid_equals_cdo(
    catalog_env: Env, corpus_dir: Path, tmp_path: Path
) -> None:
    cdo = require_tool("cdo")
    out = tmp_path / "cdo.nc"
    _run(
        [
            cdo,
            "-s",
            "-f",
            "nc4",
            "-sellonlatbox,-15,15,30,60",
            str(_src("regular_ll_msl.grib", corpus_dir)),
            str(out),
        ]
    )
    ref = _as_ours(xr.open_dataset(out).load(), {"lon": "longitude", "lat": "latitude"})
    ours = apply(
        _published(catalog_env, "msl-analysis"), parse_selection(bbox="-15,30,15,60")
    ).load()
    assert ours.sizes["longitude"] == 31 and ours.sizes["latitude"] == 31
    ref_var = next(iter(ref.data_vars.values())).squeeze(drop=True)
    _same(ours.prmsl, ref_var)


def test_grib_and_its_netcdf_twin_agree_within_the_packing(
    catalog_env: Env, corpus_dir: Path
) -> None:
    """The ERA5 sample's NetCDF twin holds float64 (with a scale_factor attribute) where
    the GRIB decodes to float32: values agree to float32 rounding; axes, members and
    times are identical."""
    twin_path = _src("era5-levels-members.nc", corpus_dir)
    grib = _published(catalog_env, "era5-pressure-levels-ensemble")
    spec = load_spec(ROOT / "ingest" / "specs" / "era5-pressure-levels-ensemble.yaml")
    twin_spec = spec.model_copy(
        update={"id": "era5-twin", "sources": [type(spec.sources[0])(path=str(twin_path))]}
    )
    ingest(twin_spec, sessions=catalog_env.sessions, store=catalog_env.store, corpus_dir=corpus_dir)
    nc = _published(catalog_env, "era5-twin")
    for axis in ("longitude", "latitude", "time", "number", "isobaricInhPa"):
        np.testing.assert_array_equal(grib[axis].values, nc[axis].values)
    for name in ("t", "z"):
        a, b = grib[name].values.astype("f8"), nc[name].values
        assert a.shape == b.shape == (10, 4, 2, 61, 120)
        float32_step = np.nanmax(np.abs(b)) * np.finfo(np.float32).eps
        assert 0 < np.nanmax(np.abs(a - b)) <= float32_step
        assert grib[name].dtype == np.float32 and nc[name].dtype == np.float64


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("era5-levels-corrupted.grib", "not a readable GRIB file"),
        (
            "t_on_different_level_types.grib",
            "2 hypercubes that do not merge (t on hybrid; t on isobaricInhPa)",
        ),
        ("ds.waveh.5.grib", "grid type 'mercator' is not a regular latitude/longitude grid"),
    ],
)
def test_grib_files_we_refuse_say_why(corpus_dir: Path, name: str, message: str) -> None:
    from ingest.readers import open_source
    from oceanmart.errors import SourceError

    path = _src(name, corpus_dir)
    with pytest.raises(SourceError) as info:
        open_source(path)
    assert str(path) in info.value.detail and message in info.value.detail
