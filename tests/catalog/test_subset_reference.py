"""Subsets through the real HTTP API equal what CDO and NCO cut from the same source file."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from oceanmart.accounts import create_account, create_key
from oceanmart.db import transaction
from pricing.entitlements import grant
from tests.conftest import Server, require_tool, unique

SRC_LON, SRC_LAT, SRC_Z = "XAXLEVITR", "YAXLEVITR", "ZAXLEVITR"


@pytest.fixture(scope="module")
def buyer_key(server: Server, levitus: str) -> str:
    name = unique("buyer")
    with transaction(server.env.sessions) as s:
        create_account(s, name, "enterprise")
        grant(s, name, levitus, granted_by="test")
        return create_key(s, name, "catalog:read,data:read")[1]


def _download(server: Server, key: str, tmp: Path, **params: str) -> xr.Dataset:
    with server.client(key) as c:
        r = c.get("/v1/products/levitus-climatology/subset", params={**params, "format": "netcdf"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-netcdf"
    # A new file each time: xarray keeps files it opened in a cache keyed by path, and a
    # second download rewritten in place under the same name would be read through the
    # first one's open handle.
    path = tmp / f"ours-{len(list(tmp.glob('ours-*.nc')))}.nc"
    path.write_bytes(r.content)
    with xr.open_dataset(path) as ds:
        return ds.load()


def _as_ours(ref: xr.Dataset) -> xr.Dataset:
    """Put a reference output on our axis names and -180..180 longitudes, ascending."""
    ref = ref.rename({SRC_LON: "longitude", SRC_LAT: "latitude", SRC_Z: "depth"})
    lon = ((ref.longitude.values + 180.0) % 360.0) - 180.0
    return ref.assign_coords(longitude=lon).sortby(["longitude", "latitude", "depth"])


def _assert_same(ours: xr.Dataset, ref: xr.Dataset, var: str) -> None:
    for axis in ("longitude", "latitude", "depth"):
        np.testing.assert_array_equal(ours[axis].values, ref[axis].values, err_msg=axis)
    a, b = ours[var].values, ref[var].transpose(*ours[var].dims).values
    assert a.shape == b.shape and a.size > 0
    assert np.isnan(a).sum() > 0, "the box should contain land (NaN) cells"
    np.testing.assert_array_equal(a, b)


def test_box_across_the_prime_meridian_equals_cdo_sellonlatbox(
    server: Server, buyer_key: str, levitus_file: Path, tmp_path: Path
) -> None:
    cdo = require_tool("cdo")
    ref_path = tmp_path / "cdo.nc"
    subprocess.run(
        [
            cdo,
            "-s",
            "-sellevel,0,10,20,30,50,75,100",
            "-sellonlatbox,-10,10,-20,20",
            str(levitus_file),
            str(ref_path),
        ],
        check=True,
    )
    ref = _as_ours(xr.open_dataset(ref_path).load())
    ours = _download(
        server, buyer_key, tmp_path, bbox="-10,-20,10,20", depth="0,100", variables="TEMP"
    )
    assert {d: ours.sizes[d] for d in ("depth", "latitude", "longitude")} == {
        "depth": 7,
        "latitude": 40,
        "longitude": 20,
    }
    assert ours.longitude.values[0] == -9.5 and ours.longitude.values[-1] == 9.5
    _assert_same(ours, ref, "TEMP")
    assert "SALT" not in ours


def test_depth_range_and_box_equal_ncks(
    server: Server, buyer_key: str, levitus_file: Path, tmp_path: Path
) -> None:
    ncks = require_tool("ncks")
    ref_path = tmp_path / "ncks.nc"
    # NCO wants the file's own 20..380 longitudes: -30..15 is 330..375 there.
    subprocess.run(
        [
            ncks,
            "-O",
            "-v",
            "SALT",
            "-d",
            f"{SRC_LON},330.,375.",
            "-d",
            f"{SRC_LAT},-5.,35.",
            "-d",
            f"{SRC_Z},150.,1200.",
            str(levitus_file),
            str(ref_path),
        ],
        check=True,
    )
    ref = _as_ours(xr.open_dataset(ref_path).load())
    ours = _download(
        server, buyer_key, tmp_path, bbox="-30,-5,15,35", depth="150,1200", variables="SALT"
    )
    assert ours.depth.values.tolist() == [150, 200, 300, 400, 600, 800, 1000, 1200]
    _assert_same(ours, ref, "SALT")


def test_antimeridian_box_is_continuous_and_matches_the_source(
    server: Server, buyer_key: str, levitus_file: Path, tmp_path: Path
) -> None:
    ours = _download(
        server, buyer_key, tmp_path, bbox="170,-10,-170,10", variables="TEMP", depth="0,0"
    )
    lon = ours.longitude.values
    assert lon[0] == 170.5 and lon[-1] == 189.5 and np.all(np.diff(lon) == 1)
    src = xr.open_dataset(levitus_file, decode_times=False)
    # the file's own longitudes 170.5..189.5 are contiguous: compare directly
    want = src.TEMP.sel({SRC_Z: 0.0, SRC_LAT: slice(-10, 10), SRC_LON: slice(170, 190)}).values
    np.testing.assert_array_equal(ours.TEMP.isel(depth=0).values, want)


def test_output_is_cf_with_provenance(server: Server, buyer_key: str, tmp_path: Path) -> None:
    ours = _download(server, buyer_key, tmp_path, bbox="120,20,130,30", variables="TEMP,SALT")
    assert ours.attrs["Conventions"].startswith("CF-1")
    assert ours.attrs["oceanmart_product"] == "levitus-climatology"
    assert len(ours.attrs["oceanmart_version"]) == 20
    assert '"bbox": [120.0, 20.0, 130.0, 30.0]' in ours.attrs["oceanmart_selection"]
    assert ours.TEMP.attrs["standard_name"] == "sea_water_temperature"
    assert ours.TEMP.attrs["units"] == "degC"
    assert ours.longitude.attrs["units"] == "degrees_east"
    assert ours.depth.attrs["positive"] == "down"
    assert ours.TEMP.encoding["_FillValue"] == pytest.approx(9.969209968386869e36)
    # the netCDF C tools read it as CF too
    header = subprocess.run(
        [require_tool("ncdump"), "-h", ours.encoding["source"]],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert 'TEMP:standard_name = "sea_water_temperature"' in header
    assert "depth_bnds(depth, nv)" in header


def test_streamed_path_gives_the_same_values_as_the_in_memory_path(
    server: Server, buyer_key: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Selections above IN_MEMORY_BYTES are written chunk by chunk through dask."""
    import catalog.subset as engine

    params = {"bbox": "100,-40,180,40", "depth": "0,500", "variables": "TEMP,SALT"}
    in_memory = _download(server, buyer_key, tmp_path, **params)
    monkeypatch.setattr(engine, "IN_MEMORY_BYTES", 0)
    streamed = _download(server, buyer_key, tmp_path, **params)
    for name in ("TEMP", "SALT"):
        np.testing.assert_array_equal(streamed[name].values, in_memory[name].values)
    assert streamed.sizes == in_memory.sizes
