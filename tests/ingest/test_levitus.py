"""Ingest of the real Levitus climatology: normalisation, versioning, atomic publish."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
from sqlalchemy import func, select

from catalog.models import Product, ProductVersion, Variable
from ingest import ingest, load_spec
from ingest.spec import ProductSpec, SourceRef
from oceanmart.errors import SourceError
from tests.conftest import LEVITUS_SPEC, Env


def _spec_for(path: Path, product_id: str = "corrupt-test") -> ProductSpec:
    base = load_spec(LEVITUS_SPEC)
    return base.model_copy(update={"id": product_id, "sources": [SourceRef(path=str(path))]})


def _run(env: Env, spec: ProductSpec):  # type: ignore[no-untyped-def]
    return ingest(spec, sessions=env.sessions, store=env.store, corpus_dir=env.settings.corpus_dir)


def test_levitus_is_normalised_to_cf(fresh_env: Env, levitus_file: Path) -> None:
    result = _run(fresh_env, load_spec(LEVITUS_SPEC))
    assert result.created
    ds = fresh_env.store.open_version(result.store_path)
    assert list(ds.TEMP.dims) == ["depth", "latitude", "longitude"]
    lon, lat = ds.longitude.values, ds.latitude.values
    assert lon[0] == -179.5 and lon[-1] == 179.5 and np.all(np.diff(lon) == 1.0)
    assert np.all(np.diff(lat) > 0)
    assert ds.TEMP.attrs["units"] == "degC"
    assert ds.SALT.attrs["units"] == "1e-3"
    assert ds.TEMP.attrs["standard_name"] == "sea_water_temperature"
    assert ds.depth.attrs["positive"] == "down" and ds.depth.attrs["units"] == "m"
    assert ds.depth_bnds.shape == (20, 2) and float(ds.depth_bnds[-1, 1]) == 5000.0
    assert ds.attrs["Conventions"].startswith("CF-")
    assert "units 'DEG C' -> 'degC'" in result.report["changes"]["TEMP"]
    # values are the source's, rotated from 20.5..379.5 to -179.5..179.5
    src = xr.open_dataset(levitus_file, decode_times=False)
    got = float(ds.TEMP.sel(depth=0.0, latitude=0.5, longitude=-10.5))
    want = float(src.TEMP.sel(ZAXLEVITR=0.0, YAXLEVITR=0.5, XAXLEVITR=349.5))
    assert got == pytest.approx(want)
    # the fill value -1e10 became NaN, not a number
    assert np.isnan(float(ds.TEMP.sel(depth=5000.0, latitude=45.5, longitude=100.5)))


def test_same_source_same_version_and_no_duplicate(fresh_env: Env, levitus_file: Path) -> None:
    first = _run(fresh_env, load_spec(LEVITUS_SPEC))
    second = _run(fresh_env, load_spec(LEVITUS_SPEC))
    assert second.version_id == first.version_id and not second.created
    with fresh_env.sessions() as s:
        assert s.scalar(select(func.count()).select_from(ProductVersion)) == 1
        assert s.scalar(select(func.count()).select_from(Variable)) == 2
        product = s.get(Product, "levitus-climatology")
        assert product is not None and product.current_version_id == first.version_id


def test_version_on_disk_but_not_in_catalog_is_recorded_on_rerun(
    fresh_env: Env, levitus_file: Path
) -> None:
    """A crash between the atomic rename and the catalog commit loses nothing."""
    first = _run(fresh_env, load_spec(LEVITUS_SPEC))
    with fresh_env.sessions() as s, s.begin():
        s.query(Variable).delete()
        s.query(ProductVersion).delete()
        s.query(Product).delete()
    again = _run(fresh_env, load_spec(LEVITUS_SPEC))
    assert again.version_id == first.version_id and again.created


@pytest.mark.parametrize("damage", ["missing", "garbage", "truncated"])
def test_bad_sources_publish_nothing(
    fresh_env: Env, levitus_file: Path, tmp_path: Path, damage: str
) -> None:
    bad = tmp_path / "levitus_bad.cdf"
    if damage == "garbage":
        bad.write_bytes(b"this is not netcdf\n" * 1000)
    elif damage == "truncated":
        data = levitus_file.read_bytes()
        bad.write_bytes(data[: len(data) // 3])
    with pytest.raises(SourceError) as info:
        _run(fresh_env, _spec_for(bad))
    assert str(bad) in info.value.detail
    assert "\n" not in info.value.detail
    with fresh_env.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Product)) == 0
        assert s.scalar(select(func.count()).select_from(ProductVersion)) == 0
    products = fresh_env.store.root / "products"
    assert not products.exists() or not any(products.iterdir())
    staging = fresh_env.store.root / ".staging"
    assert not staging.exists() or not any(staging.iterdir())


def test_staging_is_removed_when_writing_fails(
    fresh_env: Env, levitus_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ingest.pipeline as pipeline

    def differs(*datasets: xr.Dataset) -> str:
        return "TEMP[depth=0] differs from the source"  # as if the write had gone wrong

    monkeypatch.setattr(pipeline, "_sample_equal", differs)
    with pytest.raises(Exception, match="validation failed"):
        _run(fresh_env, load_spec(LEVITUS_SPEC))
    assert not any((fresh_env.store.root / ".staging").iterdir())
    assert not (fresh_env.store.root / "products").exists()


NAVY_SPEC = LEVITUS_SPEC.with_name("navy-winds-monthly.yaml")
FAULTS = ["other-values", "garbled", "lost", "codec"]
# (copy, spec, variable, fault): Levitus's series copy is plain chunks (a short depth
# series), the navy winds' (132 months) is sharded, with two faults of the shard index.
CASES = [
    *[(c, LEVITUS_SPEC, "TEMP", f) for c in ("map", "series") for f in FAULTS],
    *[("sharded", NAVY_SPEC, "UWND", f) for f in [*FAULTS, "index", "index-codec"]],
]


@pytest.mark.parametrize(("copy", "spec", "var", "fault"), CASES)
def test_a_copy_that_reads_back_differently_is_refused(
    fresh_env: Env,
    levitus_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    copy: str,
    spec: Path,
    var: str,
    fault: str,
) -> None:
    """Every chunk of both copies is read back from the store, decoded and compared with
    the source values it was cut from: a store that keeps other values, bytes that do not
    decode, or loses a write (storage faults), or an encoder that writes a valid frame of
    other values (a codec fault) fails the ingest. In a sharded copy, a store that keeps
    another shard, garbles the shard index, or a writer whose index (with a valid
    CRC-32C) points at the wrong inner chunks, fails it too."""
    from numcodecs import Blosc

    import ingest._chunkstore as chunkstore
    from ingest._chunkstore import ChunkIO, ChunkLayout

    sharded = copy == "sharded"
    prefix = f"{'series' if sharded else copy}.zarr/{var}/"
    real = ChunkIO.put
    encode = chunkstore._encode
    shard_index = chunkstore._shard_index
    earlier: list[bytes] = []

    def faulty(self: ChunkIO, key: str, data: bytes) -> None:
        if key.startswith(prefix):
            if fault == "lost":
                return
            if fault == "garbled":
                data = data[:8] + bytes(b ^ 0x5A for b in data[8:])
            elif fault == "index":  # the last index entry and the index's CRC-32C
                data = data[:-20] + bytes(b ^ 0x5A for b in data[-20:])
            elif sharded:  # a valid shard of other values: the one stored before
                earlier.append(data)
                data = earlier[-2] if len(earlier) > 1 else data
            else:
                # a chunk stored whole is a Blosc frame (``ingest.pipeline._prepare``)
                values = np.frombuffer(Blosc().decode(data), "<f4")
                data = Blosc("zstd", 1).encode(np.where(np.isnan(values), values, values + 0.5))
        real(self, key, data)

    def wrong(layout: ChunkLayout, whole: np.ndarray) -> bytes:
        if layout.copy == ("series" if sharded else copy) and layout.variable == var:
            whole = np.where(np.isnan(whole), whole, whole + 0.5)
        return encode(layout, whole)

    def reversed_index(index: np.ndarray) -> bytes:
        return shard_index(index[::-1])

    if fault == "codec":
        monkeypatch.setattr(chunkstore, "_encode", wrong)
    elif fault == "index-codec":
        monkeypatch.setattr(chunkstore, "_shard_index", reversed_index)
    else:
        monkeypatch.setattr(ChunkIO, "put", faulty)
    with pytest.raises(Exception, match=f"validation failed: {var} differs between the two copies"):
        _run(fresh_env, load_spec(spec))
    assert not any((fresh_env.store.root / ".staging").iterdir())
    assert not (fresh_env.store.root / "products").exists()


def test_a_long_series_is_sharded_and_read_back_by_zarr_and_xarray(
    fresh_env: Env, levitus_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The navy winds' series copy is sharded (132-month inner chunks of 2x2 cells), the
    catalog records the inner chunks as the grid a read decodes and the shards apart,
    the version id does not depend on the series copy's layout, and zarr-python and
    xarray read the hand-written shards as the same values as the map copy."""
    import zarr

    result = _run(fresh_env, load_spec(NAVY_SPEC))
    root = fresh_env.store.root / result.store_path
    array = zarr.open_array(root / "series.zarr" / "UWND", mode="r")
    assert array.shards == (132, 64, 64) and array.chunks == (132, 2, 2)
    # Codecs: a chunk stored whole is one Blosc block (zstd after a byte shuffle); a
    # shard's 2 KB inner chunks are zstd frames (a Blosc frame costs 2x to make per call).
    stored = json.loads((root / "map.zarr" / "UWND" / "zarr.json").read_text())
    chunk = stored["chunk_grid"]["configuration"]["chunk_shape"]
    assert [c["name"] for c in stored["codecs"]] == ["bytes", "blosc"]
    assert stored["codecs"][1]["configuration"] == {
        "typesize": 4, "cname": "zstd", "clevel": 1, "shuffle": "shuffle",
        "blocksize": 4 * math.prod(chunk),
    }  # fmt: skip
    frame = next(
        p for p in (root / "map.zarr" / "UWND" / "c").rglob("*") if p.is_file()
    ).read_bytes()
    assert frame[3] == 4 and frame[8:12] == frame[4:8]  # typesize; one block of nbytes
    sharding = json.loads((root / "series.zarr" / "UWND" / "zarr.json").read_text())["codecs"]
    inner_codecs = sharding[0]["configuration"]["codecs"]
    assert [c["name"] for c in inner_codecs] == ["bytes", "zstd"]
    assert inner_codecs[1]["configuration"]["level"] == 1
    with fresh_env.sessions() as s:
        version = s.get(ProductVersion, result.version_id)
        assert version is not None
        series = version.chunks["series"]
        assert series["chunks"]["UWND"] == {"time": 132, "latitude": 2, "longitude": 2}
        assert series["shards"]["UWND"] == {"time": 132, "latitude": 64, "longitude": 64}
        assert version.chunks["map"]["shards"] == {}
    a = xr.open_zarr(root / "map.zarr", zarr_format=3)
    b = xr.open_zarr(root / "series.zarr", zarr_format=3)
    for name in ("UWND", "VWND"):
        assert np.isfinite(b[name].values).any()
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)
    # One point series: the whole month axis from a single inner chunk.
    np.testing.assert_array_equal(array[:, 40, 100], a.UWND.isel(latitude=40, longitude=100).values)
    # Same values in an unsharded series copy: the same version (the id hashes the
    # metadata and the source's values, not the layout of the copies).
    from ingest import chunking

    monkeypatch.setattr(chunking, "SHARD_MIN_BYTES", 2**62)
    again = _run(fresh_env, load_spec(NAVY_SPEC))
    assert again.version_id == result.version_id and not again.created


@pytest.mark.parametrize(
    ("spec", "bounds"),
    [("levitus-climatology", "depth_bnds"), ("coads-climatology", "climatology_bounds")],
)
def test_both_copies_hold_the_same_coordinates(
    fresh_env: Env, levitus_file: Path, spec: str, bounds: str
) -> None:
    """Non-index coordinates (bounds) are in the series copy too, with their values, not
    only in the map copy."""
    result = _run(fresh_env, load_spec(LEVITUS_SPEC.with_name(f"{spec}.yaml")))
    root = fresh_env.store.root / result.store_path
    a = xr.open_zarr(root / "map.zarr", zarr_format=3, decode_times=False)
    b = xr.open_zarr(root / "series.zarr", zarr_format=3, decode_times=False)
    assert set(a.variables) == set(b.variables) and set(a.coords) == set(b.coords)
    assert bounds in b.variables
    for name in a.variables:
        if name not in a.data_vars:
            np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=str(name))
    assert not np.isnan(b[bounds].values.astype(float)).any()


def test_a_caller_that_starts_with_the_collector_off_gets_it_back(
    fresh_env: Env, levitus_file: Path
) -> None:
    """The CLI starts with the garbage collector off (start-up imports); the pipeline turns
    it back on once the sources are open, after freezing what exists, so the write runs
    with a collector (memory stays bounded) that does not walk the libraries' objects."""
    import gc
    from concurrent.futures import Future

    gc.disable()
    try:
        opened: Future[object] = Future()
        opened.set_result(fresh_env.sessions)  # the CLI's catalog, opened in a thread
        result = ingest(
            load_spec(LEVITUS_SPEC),
            sessions=opened,  # type: ignore[arg-type]
            store=fresh_env.store,
            corpus_dir=fresh_env.settings.corpus_dir,
        )
        assert gc.isenabled() and gc.get_freeze_count() > 0
        assert result.created
    finally:
        gc.enable()
        gc.unfreeze()
