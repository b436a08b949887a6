"""Multi-file series, bad inputs, a distributed cluster, and ingests killed mid-write."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from sqlalchemy import func, select

from catalog.models import Product, ProductVersion
from ingest import ingest, load_spec
from ingest.spec import ProductSpec, SourceRef, Text
from oceanmart.errors import SourceError
from tests.conftest import ROOT, Env, require_tool

NAVY = ROOT / "ingest" / "specs" / "navy-winds-monthly.yaml"
OCEANMART = str(Path(sys.executable).with_name("oceanmart"))


def _spec(product: str, *paths: str) -> ProductSpec:
    return ProductSpec(
        id=product, title=Text(en=product), sources=[SourceRef(path=p) for p in paths]
    )


def _run(env: Env, spec: ProductSpec, **kw: object):  # type: ignore[no-untyped-def]
    return ingest(
        spec, sessions=env.sessions, store=env.store, corpus_dir=env.settings.corpus_dir, **kw
    )  # type: ignore[arg-type]


def _nothing_published(env: Env) -> None:
    with env.sessions() as s:
        assert s.scalar(select(func.count()).select_from(ProductVersion)) == 0
        assert s.scalar(select(func.count()).select_from(Product)) == 0
    products = env.store.root / "products"
    assert not products.exists() or not any(products.rglob("zarr.json"))
    staging = env.store.root / ".staging"
    assert not staging.exists() or not any(staging.iterdir())


@pytest.fixture
def yearly(tmp_path: Path, corpus_dir: Path, levitus_file: Path) -> list[Path]:
    """monthly_navy_winds.cdf split into one file per year by CDO (a real multi-file series)."""
    from ingest.corpus import corpus_path

    cdo = require_tool("cdo")
    src = corpus_path("monthly_navy_winds.cdf", corpus_dir)
    subprocess.run([cdo, "-s", "splityear", str(src), str(tmp_path / "navy_")], check=True)
    files = sorted(tmp_path.glob("navy_*.nc"))
    assert len(files) == 11
    return files


def test_multi_file_series_equals_the_single_file(
    fresh_env: Env, yearly: list[Path], tmp_path: Path
) -> None:
    single = _run(fresh_env, load_spec(NAVY))
    multi = _run(fresh_env, _spec("navy-yearly", str(tmp_path / "navy_*.nc")))
    a = fresh_env.store.open_version(single.store_path)
    b = fresh_env.store.open_version(multi.store_path)
    assert b.sizes["time"] == 132
    np.testing.assert_array_equal(a.time.values, b.time.values)
    for name in ("UWND", "VWND"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
    assert "11 files concatenated along time" in multi.report["changes"]["*"]


def test_a_file_with_another_grid_breaks_the_series(
    fresh_env: Env, yearly: list[Path], tmp_path: Path
) -> None:
    odd = yearly[4]
    ds = xr.open_dataset(odd).load()
    shifted = ds.assign_coords(FNOCY=ds["FNOCY"] + 0.5)  # CDO keeps the file's axis names
    odd.unlink()
    shifted.to_netcdf(odd)
    with pytest.raises(SourceError) as info:
        _run(fresh_env, _spec("navy-bad", str(tmp_path / "navy_*.nc")))
    assert str(odd) in info.value.detail and "grid differs" in info.value.detail
    _nothing_published(fresh_env)


def _write(path: Path, ds: xr.Dataset) -> Path:
    ds.to_netcdf(path, format="NETCDF3_64BIT")
    return path


@pytest.mark.parametrize("case", ["empty", "no-coordinates", "non-monotonic", "bad-time"])
def test_bad_files_give_one_clear_error(fresh_env: Env, tmp_path: Path, case: str) -> None:
    lat = np.arange(-10.0, 10.0, 2.0)
    lon = np.arange(0.0, 20.0, 2.0)
    data = np.ones((lat.size, lon.size), "f4")
    coords = {
        "lat": ("lat", lat, {"units": "degrees_north"}),
        "lon": ("lon", lon, {"units": "degrees_east"}),
    }
    path = tmp_path / f"{case}.nc"
    if case == "empty":
        path.write_bytes(b"")
        expected = "not a readable NetCDF file"
    elif case == "no-coordinates":
        _write(path, xr.Dataset({"v": (("y", "x"), data)}))
        expected = "no longitude/latitude axes"
    elif case == "non-monotonic":
        shuffled = lat.copy()
        shuffled[[2, 5]] = shuffled[[5, 2]]
        coords["lat"] = ("lat", shuffled, {"units": "degrees_north"})
        _write(path, xr.Dataset({"v": (("lat", "lon"), data)}, coords=coords))
        expected = "latitude axis is not strictly monotonic"
    else:
        ds = xr.Dataset(
            {"v": (("time", "lat", "lon"), data[None])},
            coords={**coords, "time": ("time", [1.0], {"units": "fortnights since 1990"})},
        )
        _write(path, ds)
        expected = "time axis"
    with pytest.raises(SourceError) as info:
        _run(fresh_env, _spec("bad-file", str(path)))
    assert str(path) in info.value.detail and expected in info.value.detail, info.value.detail
    assert "\n" not in info.value.detail
    _nothing_published(fresh_env)


@pytest.mark.slow
def test_a_localcluster_of_two_processes_gives_the_same_version(fresh_env: Env) -> None:
    from distributed import LocalCluster

    local = _run(fresh_env, load_spec(NAVY))
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        remote = _run(fresh_env, load_spec(NAVY), scheduler=cluster.scheduler_address)
    assert remote.version_id == local.version_id and not remote.created


@pytest.mark.slow
def test_ingest_killed_at_any_moment_leaves_old_or_new_state(
    fresh_env: Env, tmp_path: Path
) -> None:
    """SIGKILL the CLI at several moments of an ETOPO5 ingest; every time, the catalog holds
    no version or a whole one, a published folder opens whole, and a rerun finishes."""
    spec = ROOT / "ingest" / "specs" / "etopo5.yaml"
    env = {
        **os.environ,
        "OCEANMART_DATABASE_URL": fresh_env.settings.database_url,
        "OCEANMART_DATA_URL": fresh_env.settings.data_url,
        "OCEANMART_CORPUS_DIR": str(fresh_env.settings.corpus_dir),
    }
    # A clean run tells how long an ingest takes and which version it must produce.
    clean = {
        **env,
        "OCEANMART_DATA_URL": str(tmp_path / "clean"),
        "OCEANMART_DATABASE_URL": f"sqlite:///{tmp_path / 'clean.db'}",
    }
    subprocess.run([OCEANMART, "db", "upgrade"], env=clean, check=True, capture_output=True)
    started = time.monotonic()
    r = subprocess.run(
        [OCEANMART, "ingest", str(spec)],
        env=clean,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    duration = time.monotonic() - started
    version = r.stdout.split(" version ")[1].split(":")[0]

    for fraction in (0.3, 0.5, 0.7, 0.85, 0.95):
        proc = subprocess.Popen(
            [OCEANMART, "ingest", str(spec)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(duration * fraction)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        with fresh_env.sessions() as s:
            versions = s.scalars(select(ProductVersion.id)).all()
        assert versions in ([], [version])
        for store in (fresh_env.store.root / "products").rglob("map.zarr"):
            ds = xr.open_zarr(store)
            assert ds.ROSE.shape == (2161, 4320)
            ds.ROSE.isel(latitude=slice(0, 10)).load()
    r = subprocess.run(
        [OCEANMART, "ingest", str(spec)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    assert f"version {version}:" in r.stdout
    staging = fresh_env.store.root / ".staging"
    assert not any(staging.iterdir())
    with fresh_env.sessions() as s:
        assert s.scalars(select(ProductVersion.id)).all() == [version]


@pytest.mark.parametrize("calendar", ["360_day", "365_day"])
def test_non_standard_calendars_are_kept_and_selectable(
    fresh_env: Env, tmp_path: Path, corpus_dir: Path, levitus_file: Path, calendar: str
) -> None:
    """The navy winds re-labelled by CDO with another calendar keep it through ingest, and
    a time range selects what xarray selects on the source in that calendar."""
    from catalog.selection import parse_datetime
    from catalog.subset import Selection, apply, write_netcdf
    from ingest.corpus import corpus_path

    cdo = require_tool("cdo")
    src = tmp_path / f"navy_{calendar}.nc"
    navy = corpus_path("monthly_navy_winds.cdf", corpus_dir)
    subprocess.run([cdo, "-s", f"setcalendar,{calendar}", str(navy), str(src)], check=True)
    result = _run(fresh_env, _spec(f"navy-{calendar.replace('_', '')}", str(src)))
    ds = fresh_env.store.open_version(result.store_path)
    source = xr.open_dataset(src, decode_times=xr.coders.CFDatetimeCoder(use_cftime=True))
    # cftime names 365_day "noleap"
    assert ds.time.dtype.kind == "O" and ds.time.dt.calendar == source.TIME.dt.calendar
    assert ds.time.dt.calendar == {"365_day": "noleap"}.get(calendar, calendar)
    np.testing.assert_array_equal(ds.time.values, source.TIME.values)

    got = apply(ds, Selection(time=parse_datetime("1985-02-01/1985-06-30")))
    want = source.sel(TIME=slice("1985-02-01", "1985-06-30"))
    assert got.sizes["time"] == want.sizes["TIME"] == 5
    np.testing.assert_array_equal(got.time.values, want.TIME.values)
    first = want.UWND.isel(TIME=0)
    first = first.assign_coords(FNOCX=(first.FNOCX + 180) % 360 - 180).sortby(["FNOCY", "FNOCX"])
    np.testing.assert_array_equal(got.UWND.isel(time=0).values, first.values)
    sel = Selection(time=parse_datetime("1985-02-01/1985-06-30"))
    write_netcdf(got, tmp_path / "out.nc", product_id="p", version_id="v", selection=sel)
    back = xr.open_dataset(
        tmp_path / "out.nc", decode_times=xr.coders.CFDatetimeCoder(use_cftime=True)
    )
    assert back.time.dt.calendar == ds.time.dt.calendar
    np.testing.assert_array_equal(back.time.values, want.TIME.values)


_MODULES_AT_EXIT = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('MODULES', 'dask.array' in sys.modules,"
    " 'distributed' in sys.modules, file=sys.stderr))\n"
    "from oceanmart.cli import main\n"
    "sys.argv = ['oceanmart', *sys.argv[1:]]\n"
    "main()\n"
)


def test_one_local_file_is_ingested_without_dask_arrays(fresh_env: Env) -> None:
    """One local file: read slab by slab by the pipeline's own threads, no dask graph and
    no import of dask.array or distributed (~0.5 s of a small ingest). (That it gives the
    version the dask path gives: ``test_a_localcluster_of_two_processes_...``.)"""
    env = {
        **os.environ,
        "OCEANMART_DATABASE_URL": fresh_env.settings.database_url,
        "OCEANMART_DATA_URL": fresh_env.settings.data_url,
        "OCEANMART_CORPUS_DIR": str(fresh_env.settings.corpus_dir),
    }
    r = subprocess.run(
        [sys.executable, "-c", _MODULES_AT_EXIT, "ingest", str(NAVY)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    assert "MODULES False False" in r.stderr
    version = r.stdout.split(" version ")[1].split(":")[0]
    with fresh_env.sessions() as s:
        assert s.scalars(select(ProductVersion.id)).all() == [version]


def test_the_dask_array_stand_in_still_recognises_dask_arrays() -> None:
    """xarray's dask check, deferred (``ingest._lazydask``), still tells dask arrays apart
    once dask.array is imported, and wraps them lazily."""
    code = (
        "import sys\n"
        "from ingest._lazydask import defer_dask_array_import\n"
        "assert defer_dask_array_import()\n"
        "import numpy as np, xarray as xr\n"
        "v = xr.Variable('x', np.arange(3.0))\n"
        "assert 'dask.array' not in sys.modules\n"
        "import dask.array as da\n"
        "from xarray.namedarray.pycompat import array_type\n"
        "a = da.ma.masked_equal(da.arange(4.0, chunks=2), 1.0)\n"
        "assert isinstance(a, array_type('dask')) and not isinstance(v.data, array_type('dask'))\n"
        "w = xr.Variable('x', a)\n"
        "assert w.chunks is not None and np.isnan(w.values[1]) and w.values[2] == 2.0\n"
        "print('OK')\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stdout.strip() == "OK", r.stderr
