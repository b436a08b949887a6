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
