"""The planner against what xarray actually selects, on real corpus products.

Cells: the planner's count equals the size of what the subset engine (xarray ``.sel``)
cuts. Bytes to read: equal to the sum of the chunk sizes of the chunks that hold the
selected cells, found independently by cutting a probe of flat cell ids and mapping
each id to its chunk.
"""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import datetime

import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.planner import plan
from catalog.products import ProductInfo, get_product
from catalog.selection import BBox, Selection, TimeRange, parse_bbox, selection_from_json
from catalog.subset import apply
from ingest import ingest, load_spec
from oceanmart.errors import EmptySelection
from tests.conftest import ROOT, Env

NAVY = ROOT / "ingest" / "specs" / "navy-winds-monthly.yaml"
SLOW = settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def products(env: Env, levitus: str) -> dict[str, ProductInfo]:
    ingest(
        load_spec(NAVY), sessions=env.sessions, store=env.store, corpus_dir=env.settings.corpus_dir
    )
    with env.sessions() as s:
        return {p: get_product(s, p) for p in (levitus, "navy-winds-monthly")}


def _ds(env: Env, product: ProductInfo, copy: str = "map") -> xr.Dataset:
    assert product.version is not None
    return env.store.open_version(product.version.store_path, copy, dask=False)


def _touched_bytes(ds: xr.Dataset, sel: Selection, chunks: dict[str, dict[str, int]]) -> int:
    total = 0
    for name in sel.variables or tuple(map(str, ds.data_vars)):
        var = ds[name]
        dims = tuple(map(str, var.dims))
        ids = np.arange(var.size, dtype=np.int64).reshape(var.shape)
        probe = xr.Dataset({name: (dims, ids)}, coords={d: ds[d] for d in dims if d in ds.coords})
        flat = apply(probe, replace(sel, variables=(name,)))[name].values.ravel()
        where = np.unravel_index(flat, var.shape)
        grid = chunks[name]
        chunk_ids = np.stack([w // grid[d] for w, d in zip(where, dims, strict=True)], axis=1)
        size = var.dtype.itemsize * math.prod(grid[d] for d in dims)
        total += len(np.unique(chunk_ids, axis=0)) * size
    return total


lons = st.floats(-180, 360, allow_nan=False).map(lambda x: round(x, 2))
lats = st.floats(-90, 90, allow_nan=False).map(lambda x: round(x, 2))


@st.composite
def boxes(draw: st.DrawFn) -> BBox:
    w, e = draw(lons), draw(lons)
    s, n = sorted((draw(lats), draw(lats)))
    return parse_bbox(f"{w},{s},{e},{n}")


@st.composite
def times(draw: st.DrawFn) -> TimeRange:
    day = st.datetimes(min_value=datetime(1981, 6, 1), max_value=datetime(1993, 6, 1))
    a, b = sorted((draw(day), draw(day)))
    return TimeRange(a.replace(microsecond=0), b.replace(microsecond=0))


def _check(env: Env, product: ProductInfo, sel: Selection) -> None:
    ds = _ds(env, product)
    try:
        cut = apply(ds, sel)
    except EmptySelection:
        with pytest.raises(EmptySelection):
            plan(product, ds, sel)
        return
    p = plan(product, ds, sel)
    assert p.cells == sum(v.size for v in cut.data_vars.values())
    assert p.bytes == sum(v.nbytes for v in cut.data_vars.values())
    assert product.version is not None
    for copy in ("map", "series"):
        grids = product.version.chunks[copy]["chunks"]
        assert p.copies[copy].bytes == _touched_bytes(ds, sel, grids), copy
    assert p.bytes_to_read == p.copies[p.copy].bytes


@SLOW
@given(
    box=st.none() | boxes(),
    depth=st.none() | st.tuples(st.floats(0, 5500), st.floats(0, 5500)).map(sorted),
    variables=st.sampled_from([None, ("TEMP",), ("SALT", "TEMP")]),
    stride=st.sampled_from([1, 1, 2, 3]),
)
def test_planned_cells_and_bytes_on_levitus(
    env: Env,
    products: dict[str, ProductInfo],
    box: BBox | None,
    depth: list[float] | None,
    variables: tuple[str, ...] | None,
    stride: int,
) -> None:
    sel = Selection(
        bbox=box,
        depth=None if depth is None else (round(depth[0], 1), round(depth[1], 1)),
        variables=variables,
        stride=(stride, 1),
    )
    _check(env, products["levitus-climatology"], sel)


@SLOW
@given(
    box=st.none() | boxes(),
    time=st.none() | times(),
    stride=st.tuples(st.sampled_from([1, 2, 5]), st.sampled_from([1, 3, 12])),
)
def test_planned_cells_and_bytes_on_navy_winds(
    env: Env,
    products: dict[str, ProductInfo],
    box: BBox | None,
    time: TimeRange | None,
    stride: tuple[int, int],
) -> None:
    _check(env, products["navy-winds-monthly"], Selection(bbox=box, time=time, stride=stride))


def test_points_routes_and_polygons_are_planned_as_cut(
    env: Env, products: dict[str, ProductInfo]
) -> None:
    navy = products["navy-winds-monthly"]
    ds = _ds(env, navy)
    for doc in (
        {"points": [[120.3, 30.1], [-179.9, 0], [179.9, 0.5]], "variables": ["UWND"]},
        {"point": [122.5, 30], "method": "linear", "datetime": "1985-01-01/1986-12-31"},
        {
            "route": [
                {"lon": 121.0, "lat": 30.0, "time": "1984-03-02T00:00:00Z"},
                {"lon": 125.0, "lat": 31.0, "time": "1984-03-05T12:00:00+08:00"},
            ]
        },
        {"polygon": "POLYGON((120 25, 130 25, 130 35, 120 35, 120 25))", "times": ["1990-01-15"]},
        {
            "polygon": {
                "type": "Polygon",
                "coordinates": [[[170, -5], [190, -5], [180, 5], [170, -5]]],
            }
        },
    ):
        sel = selection_from_json(doc)
        cut = apply(ds, sel)
        p = plan(navy, ds, sel)
        assert p.cells == sum(v.size for v in cut.data_vars.values()), doc
    # A long series at one point reads far fewer bytes from the series copy.
    p = plan(navy, ds, selection_from_json({"point": [140, 20]}))
    assert p.copy == "series" and p.copies["series"].bytes * 2 < p.copies["map"].bytes
    # A whole map at one time step reads the map copy.
    p = plan(navy, ds, selection_from_json({"times": ["1990-01-15"]}))
    assert p.copy == "map" and p.cells == 2 * ds.sizes["latitude"] * ds.sizes["longitude"]


@given(
    axis=st.lists(
        st.floats(-90, 90, allow_nan=False).map(lambda v: round(v, 2)), min_size=2, max_size=40
    ),
    targets=st.lists(st.floats(-120, 120, allow_nan=False), min_size=1, max_size=20),
)
def test_the_vectorised_nearest_latitude_is_pandas_nearest(
    axis: list[float], targets: list[float]
) -> None:
    import pandas as pd

    from catalog.planner import _nearest, _nearest_ascending

    index = pd.Index(sorted(set(axis)), dtype=float)
    # Midpoints between neighbours are ties: both ways must break them alike.
    values = index.values
    probes = np.asarray(targets + list((values[1:] + values[:-1]) / 2))
    np.testing.assert_array_equal(_nearest_ascending(index, probes), _nearest(index, list(probes)))


@settings(max_examples=300)
@given(
    st.lists(st.floats(-1e3, 1e3, allow_nan=False, width=32), min_size=1, max_size=40, unique=True),
    st.sampled_from(["float32", "float64"]),
    st.booleans(),
    st.data(),
)
def test_slice_indices_is_pandas_slice_indexer(
    values: list[float], dtype: str, descending: bool, data: st.DataObject
) -> None:
    """The binary-search slice takes the positions pandas' slice_indexer takes."""
    import pandas as pd

    from catalog.planner import _slice_indices

    axis = np.sort(np.asarray(values, dtype=dtype))
    if descending:
        axis = axis[::-1]
    index = pd.Index(axis)
    bound = st.none() | st.sampled_from([float(v) for v in axis]) | st.floats(-2e3, 2e3)
    lo, hi = data.draw(bound), data.draw(bound)
    expected = np.arange(len(index))[index.slice_indexer(lo, hi)]
    assert _slice_indices(index, lo, hi).tolist() == expected.tolist()


# --- one point's fast paths against the general ones ----------------------------------


def _ring(values: list[float], dtype: str) -> np.ndarray:
    return np.asarray(sorted(set(values)), dtype=dtype)


@settings(max_examples=300)
@given(
    st.lists(st.floats(-180, 179.75, allow_nan=False), min_size=2, max_size=60),
    st.sampled_from(["float32", "float64"]),
    st.sampled_from([0.0, 180.0]),
    st.lists(st.floats(-180, 180, allow_nan=False), min_size=1, max_size=10),
)
def test_one_nearest_longitude_is_the_whole_axis_argmin(
    values: list[float], dtype: str, shift: float, targets: list[float]
) -> None:
    """``_nearest_lon_one`` (a few cells around the point) picks the cell the pass over
    the whole axis picks, ties (midpoints, across the antimeridian too) included."""
    from catalog.planner import _is_ring, _nearest_lon, _nearest_lon_one

    lon = _ring([v + shift for v in values], dtype)  # -180..180 or 0..360
    if not _is_ring(lon):
        return
    wide = lon.astype(np.float64)
    probes = [*targets, *wide, *(wide[1:] + wide[:-1]) / 2, (wide[0] + wide[-1] + 360) / 2,
              (wide[0] + wide[-1] + 360) / 2 - 360, -180.0, 180.0, 0.0]  # fmt: skip
    for x in probes:
        x = float(x - 360.0 if x >= 180.0 else x)  # points are wrapped to [-180, 180)
        xs = np.asarray([x])
        assert _nearest_lon_one(lon, np.float64(x)) == _nearest_lon(lon, xs)[0], x


def test_regular_grids_are_rings_and_odd_ones_not() -> None:
    from catalog.planner import _is_ring

    assert _is_ring(np.arange(-179.875, 180, 0.25))
    assert _is_ring(np.arange(0, 360, 1.0, dtype=np.float32))
    assert not _is_ring(np.arange(-180, 181, 1.0))  # -180 and 180: one place twice
    assert not _is_ring(np.asarray([0.0, 2.0, 1.0]))
    assert not _is_ring(np.asarray([0.0, np.nan, 1.0]))
    assert not _is_ring(np.asarray([0.0]))


@given(
    st.lists(st.floats(-90, 90, allow_nan=False), min_size=2, max_size=40, unique=True),
    st.sampled_from(["float32", "float64"]),
    st.lists(st.floats(-120, 120, allow_nan=False), min_size=1, max_size=10),
)
def test_one_nearest_latitude_is_the_vectorised_one(
    values: list[float], dtype: str, targets: list[float]
) -> None:
    from catalog.planner import _nearest_sorted, _nearest_sorted_one

    axis = np.unique(np.asarray(values, dtype=dtype))
    if len(axis) < 2:
        return
    wide = axis.astype(np.float64)
    probes = np.asarray([*targets, *wide, *(wide[1:] + wide[:-1]) / 2])
    expected = _nearest_sorted(axis, probes)
    assert [_nearest_sorted_one(axis, np.float64(p)) for p in probes] == expected.tolist()


def _grid_dataset(lon: np.ndarray, lat: np.ndarray, times: int = 5) -> xr.Dataset:
    shape = (times, len(lat), len(lon))
    return xr.Dataset(
        {"v": (("time", "latitude", "longitude"), np.zeros(shape, dtype=np.float32))},
        coords={
            "time": np.arange(times).astype("datetime64[D]").astype("datetime64[ns]"),
            "latitude": lat,
            "longitude": lon,
        },
    )


@pytest.mark.parametrize(
    "lon",
    [
        np.arange(-179.875, 180, 0.25),
        np.arange(0, 360, 2.5, dtype=np.float32),
        np.arange(-180, 181, 10.0),  # not a ring: the pass over the axis
        np.asarray([-10.0, -5.0, 0.5, 3.0, 20.0]),  # regional
    ],
)
def test_one_point_is_indexed_and_planned_as_one_of_many(lon: np.ndarray) -> None:
    """A lone point's fast path (its indices, its chunk count) agrees with the general
    path, which a selection of several points takes."""
    from catalog.planner import _chunk_count, indexers, point_indices

    ds = _grid_dataset(lon, np.arange(-89.5, 90, 1.0))
    rng = np.random.default_rng(3)
    far = [179.99, -89.99]
    probes = [*zip(rng.uniform(-180, 180, 200), rng.uniform(-90, 90, 200), strict=True),
              *((float(x), 0.0) for x in (lon[:-1] + lon[1:]) / 2), (-180.0, -90.0)]  # fmt: skip
    for x, y in probes:
        x = x - 360.0 if x >= 180.0 else x
        one = selection_from_json({"point": [x, y]})
        two = selection_from_json({"points": [[x, y], far]})
        assert point_indices(ds, one).tolist() == point_indices(ds, two)[:1].tolist()
        assert point_indices(ds, one, touched=True).tolist() == point_indices(ds, one).tolist()
        idx = indexers(ds, one)
        assert list(idx.orth) == ["time"] and idx.is_run("time")
        assert idx.points is not None and idx.points.tolist() == point_indices(ds, one).tolist()
    for chunk in (1, 2, 3, 5, 7):
        assert _chunk_count(idx.orth["time"], chunk, True) == _chunk_count(idx.orth["time"], chunk)


def test_strided_or_listed_axes_are_not_counted_as_runs() -> None:
    from catalog.planner import indexers

    ds = _grid_dataset(np.arange(0, 360, 30.0), np.arange(-60, 61, 30.0), times=9)
    strided = indexers(ds, selection_from_json({"bbox": [0, -60, 330, 60], "stride": {"time": 2}}))
    assert not strided.is_run("time") and strided.orth["time"].tolist() == [0, 2, 4, 6, 8]
    assert strided.is_run("latitude") is False  # a bbox's slice: counted
    listed = indexers(
        ds, selection_from_json({"point": [1, 1], "times": ["1970-01-02", "1970-01-05"]})
    )
    assert not listed.is_run("time")
    sliced = indexers(
        ds, selection_from_json({"point": [1, 1], "datetime": "1970-01-02/1970-01-04"})
    )
    assert sliced.is_run("time") and sliced.orth["time"].tolist() == [1, 2, 3]
