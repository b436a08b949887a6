"""The subset engine on a sharded series copy reads a shard's index and the inner chunks
it needs, not whole shards (zarr-python's sharding codec, through the engine's point
path)."""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr
from zarr.abc.store import ByteRequest, RangeByteRequest
from zarr.storage import LocalStore, WrapperStore

from catalog import subset
from catalog.products import get_product
from catalog.selection import selection_from_json
from tests.conftest import Env


class _Recording(WrapperStore[LocalStore]):
    """A store that lists every (key, byte range) read through it."""

    def __init__(self, store: LocalStore) -> None:
        super().__init__(store)
        self.reads: list[tuple[str, ByteRequest | None]] = []

    async def get(self, key: str, prototype: Any, byte_range: ByteRequest | None = None) -> Any:
        self.reads.append((key, byte_range))
        return await self._store.get(key, prototype, byte_range)

    def get_ranges_sync(self, key: str, byte_ranges: Any, **kw: Any) -> Any:
        ranges = list(byte_ranges)
        self.reads.extend((key, r) for r in ranges)
        return self._store.get_ranges_sync(key, ranges, **kw)

    def get_ranges(self, key: str, byte_ranges: Any, **kw: Any) -> Any:
        ranges = list(byte_ranges)
        self.reads.extend((key, r) for r in ranges)
        return self._store.get_ranges(key, ranges, **kw)


def test_a_point_series_reads_the_index_and_one_inner_chunk(env: Env, coads_sharded: str) -> None:
    with env.sessions() as s:
        version = get_product(s, coads_sharded).version
    assert version is not None
    path = env.store.location(version.store_path, "series.zarr")
    store = _Recording(LocalStore(path, read_only=True))
    ds = xr.open_zarr(store, zarr_format=3, chunks=None, consolidated=True)
    store.reads.clear()
    sel = selection_from_json({"points": [[-150.3, 10.2]], "variables": ["SST"]})
    got = subset.apply(ds, sel).load()
    sst = [(k, type(r).__name__) for k, r in store.reads if k.startswith("SST/")]
    # The shard's index (a suffix read), then the one inner chunk (a range): 2 reads.
    assert sst == [("SST/c/0/0/0", "SuffixByteRequest"), ("SST/c/0/0/0", "RangeByteRequest")]
    chunk = store.reads[[k for k, _ in store.reads].index("SST/c/0/0/0") + 1][1]
    assert isinstance(chunk, RangeByteRequest) and chunk.end - chunk.start < 400  # 48 values
    plain = xr.open_zarr(env.store.location(version.store_path, "map.zarr"), zarr_format=3)
    want = plain["SST"].sel(longitude=-150.3, latitude=10.2, method="nearest").values
    np.testing.assert_array_equal(got["SST"].values[:, 0], want)


def test_large_reads_take_one_dask_chunk_per_shard(env: Env, coads_sharded: str) -> None:
    with env.sessions() as s:
        version = get_product(s, coads_sharded).version
    assert version is not None
    ds = env.store.open_version(version.store_path, "series", dask=True)
    # xarray alone would make one dask chunk per 12x2x2 inner chunk (45x90 per variable).
    assert ds["SST"].data.chunksize == (12, 64, 64)
    assert ds["SST"].data.npartitions == 2 * 3
    plain = xr.open_zarr(env.store.location(version.store_path, "map.zarr"), zarr_format=3)
    np.testing.assert_array_equal(ds["SST"].compute().values, plain["SST"].values)


def test_the_planner_counts_what_each_chunk_read_costs(env: Env, coads_sharded: str) -> None:
    from catalog.planner import CHUNK_COST_BYTES, plan

    with env.sessions() as s:
        product = get_product(s, coads_sharded)
    assert product.version is not None
    ds = env.store.open_version(product.version.store_path, dask=False)
    point = plan(product, ds, selection_from_json({"point": [-150.3, 10.2], "variables": ["SST"]}))
    assert point.copy == "series" and (point.chunks, point.bytes_to_read) == (1, 12 * 2 * 2 * 4)
    # 20x20 degrees, all months: 30 inner chunks of the series copy (5.8 kB) against the
    # 12 map steps (778 kB). Bytes alone would pick the series copy; 30 chunk reads cost
    # more than the 12 larger ones.
    box = plan(
        product, ds, selection_from_json({"bbox": [-160, 0, -140, 20], "variables": ["SST"]})
    )
    series, map_ = box.copies["series"], box.copies["map"]
    assert (series.chunks, map_.chunks) == (30, 12)
    assert 2 * series.bytes < map_.bytes
    assert 2 * (series.bytes + 30 * CHUNK_COST_BYTES) > map_.bytes + 12 * CHUNK_COST_BYTES
    assert box.copy == "map" and box.bytes_to_read == map_.bytes
