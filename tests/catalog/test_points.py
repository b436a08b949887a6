"""The direct point reader (``catalog.points`` over ``catalog._chunks``) gives exactly the
dataset xarray cuts (``subset.apply(...).isel(point=0)``): on every corpus product and
copy, and on stores made for the odd cases (non-NaN fill values, chunks and inner
chunks not stored, edge chunks, big-endian or unknown codecs, scale/offset)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from catalog import points, subset
from catalog._chunks import ArrayLayout, ChunkReader
from catalog.selection import Selection, selection_from_json
from catalog.store import DataStore
from tests.catalog.conftest import PRODUCTS
from tests.conftest import Env

pytestmark = pytest.mark.xdist_group("compute")


def _xarray(ds: xr.Dataset, sel: Selection) -> xr.Dataset:
    return subset.apply(ds, sel).load().isel(point=0)


def _same(got: xr.Dataset | None, want: xr.Dataset) -> None:
    assert got is not None
    xr.testing.assert_identical(got, want)
    assert list(got.coords) == list(want.coords)  # CSV and CoverageJSON columns
    assert list(got.data_vars) == list(want.data_vars)
    for name, var in got.variables.items():
        assert var.dtype == want[name].dtype, name


@pytest.mark.parametrize("product_id", PRODUCTS)
@pytest.mark.parametrize("copy", ["map", "series"])
def test_every_corpus_product_reads_as_xarray_cuts(
    compute_env: Env, product_id: str, copy: str
) -> None:
    with compute_env.sessions() as s:
        from catalog.products import get_product

        version = get_product(s, product_id).version
    assert version is not None
    ds = subset.open_copy(compute_env.store, version.store_path, copy, dask=False)
    reader = points.PointReader(compute_env.store)
    names = [str(n) for n in ds.data_vars]
    lon, lat = ds["longitude"].values, ds["latitude"].values
    rnd = random.Random(product_id)
    # Random points, the grid's corners and edges (edge chunks), beyond the grid.
    spots = [(rnd.uniform(-180, 180), rnd.uniform(-90, 90)) for _ in range(12)]
    spots += [(lon[0], lat[0]), (lon[-1], lat[-1]), (lon[-1], lat[0]), (180.0, 90.0)]
    for k, (x, y) in enumerate(spots):
        doc: dict[str, Any] = {"points": [[float(x), float(y)]]}
        if k % 2:
            doc["variables"] = [names[k % len(names)]]
        if "time" in ds.dims and k % 3 == 1:
            t = ds["time"].values
            doc["datetime"] = f"{str(t[1])[:19]}Z/{str(t[-2])[:19]}Z"
        if "depth" in ds.dims and k % 3 == 2:
            doc["depth"] = [10, 500]
        sel = selection_from_json(doc)
        _same(reader.read(ds, version.store_path, copy, sel), _xarray(ds, sel))
    assert reader.chunks._indexes or not any(
        v.encoding.get("shards") for v in ds.data_vars.values()
    )


def test_cut_point_reads_without_xarray_and_falls_back(
    compute_env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from catalog.products import get_product

    with compute_env.sessions() as s:
        navy = get_product(s, "navy-winds-monthly")
    sel = selection_from_json({"points": [[141.2, 21.4]], "variables": ["UWND"]})
    want, _ = subset.cut(compute_env.store, navy, sel, 1 << 30)

    def no_xarray(*_: Any, **__: Any) -> Any:
        raise AssertionError("cut with xarray")

    monkeypatch.setattr(subset, "apply", no_xarray)
    got, plan = points.cut_point(compute_env.store, navy, sel, 1 << 30)
    _same(got, want.isel(point=0))
    assert plan.cells == 132
    # Two points, or interpolation, are cut by xarray.
    for doc in (
        {"points": [[141.2, 21.4], [0, 0]]},
        {"points": [[141.2, 21.4]], "method": "linear"},
    ):
        with pytest.raises(AssertionError, match="cut with xarray"):
            points.cut_point(compute_env.store, navy, selection_from_json(doc), 1 << 30)
    # ``max_read``: the same answer up to the plan's bytes; more, or a cut that needs
    # xarray, is refused before anything is read.
    got, _ = points.cut_point(compute_env.store, navy, sel, 1 << 30, max_read=plan.bytes_to_read)
    _same(got, want.isel(point=0))
    with pytest.raises(points.TooMuchToRead):
        points.cut_point(compute_env.store, navy, sel, 1 << 30, max_read=plan.bytes_to_read - 1)
    linear = selection_from_json({"points": [[141.2, 21.4]], "method": "linear"})
    with pytest.raises(points.TooMuchToRead):
        points.cut_point(compute_env.store, navy, linear, 1 << 30, max_read=1 << 30)


def _store(
    tmp_path: Path, ds: xr.Dataset, encoding: dict[str, Any]
) -> tuple[DataStore, xr.Dataset]:
    """``ds`` written as the series copy of version ``v`` of a store, opened as served."""
    root = tmp_path / "data"
    ds.to_zarr(root / "v" / "series.zarr", zarr_format=3, consolidated=True, encoding=encoding)
    store = DataStore(root)
    return store, xr.open_zarr(root / "v" / "series.zarr", zarr_format=3, chunks=None)


def _field(fill: float = np.nan) -> xr.Dataset:
    rng = np.random.default_rng(5)
    values = rng.normal(10, 3, (7, 9, 11)).astype("f4")
    values[:, :3, :3] = fill  # a corner that is all fill: chunks not stored
    return xr.Dataset(
        {"v": (("time", "latitude", "longitude"), values, {"units": "K"})},
        coords={
            "time": np.arange(7).astype("datetime64[D]").astype("datetime64[ns]"),
            "latitude": np.linspace(-80, 80, 9),
            "longitude": np.linspace(-170, 170, 11),
        },
        attrs={"title": "odd"},
    )


def _check_all_cells(store: DataStore, ds: xr.Dataset) -> points.PointReader:
    reader = points.PointReader(store)
    for y in ds["latitude"].values:
        for x in ds["longitude"].values:
            sel = selection_from_json({"points": [[float(x), float(y)]]})
            _same(reader.read(ds, "v", "series", sel), _xarray(ds, sel))
    return reader


@pytest.mark.parametrize(
    "encoding",
    [
        {"chunks": (7, 2, 2), "shards": (7, 4, 4)},  # shards and inner chunks at the edges
        {"chunks": (3, 4, 4), "shards": (6, 4, 8)},  # several shards along time
        {"chunks": (7, 4, 3)},  # not sharded, partial edge chunks
        {"chunks": (2, 9, 11)},  # map-like: one chunk per two steps
    ],
)
def test_layouts_and_edges_read_as_xarray_does(tmp_path: Path, encoding: dict[str, Any]) -> None:
    store, ds = _store(tmp_path, _field(), {"v": encoding})
    reader = _check_all_cells(store, ds)
    layout = reader.template(ds, "v", "series", None)
    assert layout is not None  # read directly, not by the xarray fallback


def test_a_fill_value_other_than_nan_is_masked(tmp_path: Path) -> None:
    store, ds = _store(
        tmp_path,
        _field(-999.0),
        {"v": {"chunks": (7, 2, 2), "shards": (7, 4, 4), "_FillValue": -999.0}},
    )
    assert ds["v"].encoding["_FillValue"] == -999.0
    reader = _check_all_cells(store, ds)
    assert reader.template(ds, "v", "series", None) is not None
    got = reader.read(ds, "v", "series", selection_from_json({"points": [[-170, -80]]}))
    assert got is not None and np.isnan(got["v"].values).all()


def test_scale_offset_and_unknown_codecs_fall_back_to_xarray(tmp_path: Path) -> None:
    field = _field(0.0)
    scaled = {"v": {"dtype": "i2", "scale_factor": 0.01, "add_offset": 5.0, "_FillValue": -1}}
    store, ds = _store(tmp_path / "a", field, scaled)
    sel = selection_from_json({"points": [[10, 20]]})
    assert points.PointReader(store).read(ds, "v", "series", sel) is None
    import zarr

    gzip = {"v": {"compressors": [zarr.codecs.GzipCodec()]}}
    store, ds = _store(tmp_path / "b", field, gzip)
    assert points.PointReader(store).read(ds, "v", "series", sel) is None


def test_layout_refuses_what_it_cannot_read() -> None:
    base = {
        "zarr_format": 3, "node_type": "array", "shape": [4], "data_type": "float32",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": "NaN",
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
    }  # fmt: skip
    assert ArrayLayout.of("x", base) is not None
    big = {**base, "codecs": [{"name": "bytes", "configuration": {"endian": "big"}}]}
    assert ArrayLayout.of("x", big) is None
    assert ArrayLayout.of("x", {**base, "data_type": "bool"}) is None
    assert ArrayLayout.of("x", {**base, "chunk_key_encoding": {"name": "v2"}}) is None
    assert ArrayLayout.of("x", {k: v for k, v in base.items() if k != "codecs"}) is None
    hexfill = ArrayLayout.of("x", {**base, "fill_value": "0x7fc00000"})
    assert hexfill is not None and np.isnan(hexfill.fill)


def test_a_damaged_shard_index_is_an_error(tmp_path: Path) -> None:
    store, ds = _store(tmp_path, _field(), {"v": {"chunks": (7, 2, 2), "shards": (7, 4, 4)}})
    shard = tmp_path / "data" / "v" / "series.zarr" / "v" / "c" / "0" / "1" / "1"
    raw = bytearray(shard.read_bytes())
    raw[-10] ^= 0xFF
    shard.write_bytes(bytes(raw))
    layout = points.PointReader(store).template(ds, "v", "series", None)
    assert layout is not None
    reader = ChunkReader(store)
    with pytest.raises(ValueError, match="CRC-32C"):
        reader.read(layout.variables[0].layout, (slice(0, 7), slice(5, 6), slice(5, 6)))


def test_answers_share_nothing_a_caller_may_change(tmp_path: Path) -> None:
    """The time axis is made once per slices and handed out again: a caller changing an
    answer's attributes or encoding (the NetCDF writer sets encodings) changes no other."""
    store, ds = _store(tmp_path, _field(), {"v": {"chunks": (7, 2, 2), "shards": (7, 4, 4)}})
    reader = points.PointReader(store)
    sel = selection_from_json({"points": [[10, 20]]})
    first = reader.read(ds, "v", "series", sel)
    assert first is not None
    first["time"].attrs["changed"] = 1
    first["time"].encoding["units"] = "days since 1900-01-01"
    first["v"].attrs["changed"] = 1
    first["latitude"].attrs["changed"] = 1
    first["latitude"].encoding["dtype"] = "float32"
    first["requested_longitude"].encoding["dtype"] = "float32"
    first.attrs["changed"] = 1
    _same(reader.read(ds, "v", "series", sel), _xarray(ds, sel))


@pytest.mark.parametrize(
    ("dims", "data", "attrs"),
    [
        ((), np.asarray(np.float64(1.5)), None),
        ((), np.asarray(np.int64(0)), {}),
        (("time",), np.arange(5, dtype=np.float32), {"units": "K"}),
        (("time", "nv"), np.zeros((3, 2)), {"a": [1, 2]}),
        (("time",), np.arange(3).astype("datetime64[s]"), None),  # the constructor's
        (("x",), np.asarray(["a", None], dtype=object), None),  # the constructor's
    ],
)
def test_hand_made_variables_are_the_constructors(
    dims: tuple[str, ...], data: np.ndarray, attrs: dict[str, Any] | None
) -> None:
    got = points._variable(dims, data, attrs)
    want = xr.Variable(dims, data, attrs)
    assert type(got) is type(want)
    xr.testing.assert_identical(got, want)
    assert got.dims == want.dims and got.dtype == want.dtype and got.encoding == want.encoding
    assert type(got._data) is type(want._data) and got._attrs == want._attrs
    if attrs:
        assert got.attrs is not attrs  # the answer's own


@pytest.mark.parametrize(
    "encoding",
    [
        {"chunks": (7, 2, 2), "shards": (7, 4, 4)},
        {"chunks": (3, 4, 4), "shards": (6, 4, 8)},
        {"chunks": (7, 4, 3)},
        {"chunks": (2, 9, 11)},
    ],
)
def test_a_box_in_one_chunk_reads_as_any_box(tmp_path: Path, encoding: dict[str, Any]) -> None:
    """``ChunkReader.read`` of a box inside one (inner) chunk, by its own path, gives what
    the general path gives: values, fill where nothing is stored, a fresh writable array."""
    store, ds = _store(tmp_path, _field(), {"v": encoding})
    tmpl = points.PointReader(store).template(ds, "v", "series", None)
    assert tmpl is not None
    layout = tmpl.variables[0].layout
    reader = ChunkReader(store)
    rnd = random.Random(11)
    inside = 0
    for _ in range(300):
        box = []
        for n in layout.shape:
            a = rnd.randrange(n)
            box.append(slice(a, rnd.randint(a + 1, min(n, a + 3))))
        got, want = reader.read(layout, tuple(box)), reader._read_box(layout, tuple(box))
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype and got.flags.writeable and got.flags.c_contiguous
        assert got.flags.owndata
        piece = layout.inner or layout.chunks
        inside += all(s.start // p == (s.stop - 1) // p for s, p in zip(box, piece, strict=True))
    assert inside > 20


def test_hand_made_copies_are_shallow_copies() -> None:
    coords = xr.Coordinates(
        {
            "time": (
                "time",
                np.arange(3).astype("datetime64[D]").astype("datetime64[ns]"),
                {"axis": "T"},
            )
        }
    )
    index_var = coords.variables["time"]
    index_var.encoding["units"] = "days since 2000-01-01"
    plain = xr.Variable(("x",), np.arange(3.0))  # no attributes, no encoding
    for var in (index_var, plain):
        got, want = points._shallow(var), var.copy(deep=False)
        assert type(got) is type(want)
        xr.testing.assert_identical(got, want)
        assert got._data is want._data and got._attrs == want._attrs
        assert got._encoding == want._encoding
        got.attrs["changed"] = 1
        got.encoding["changed"] = 1
        assert "changed" not in var.attrs and "changed" not in var.encoding
