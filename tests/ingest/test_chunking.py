"""Chunk plans: sizes near the target, and series bands aligned with map chunks."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from ingest.chunking import INNER_MIN_BYTES, SHARD_MIN_BYTES, plan

MB = 1024 * 1024
DIMS = ("time", "latitude", "longitude")


@given(
    steps=st.integers(1, 5000),
    ny=st.integers(1, 4000),
    nx=st.integers(1, 8000),
    itemsize=st.sampled_from([2, 4, 8]),
    budget_mb=st.sampled_from([64, 256]),
)
def test_bands_are_whole_map_chunks_and_whole_series_tiles(
    steps: int, ny: int, nx: int, itemsize: int, budget_mb: int
) -> None:
    sizes = {"time": steps, "latitude": ny, "longitude": nx}
    p = plan(DIMS, sizes, itemsize, 2 * MB, budget_mb * MB)
    assert p.map["time"] == 1
    # (a sharded series copy's odd tile may grow by one cell to hold whole inner chunks)
    grown = 1 if p.inner is not None else 0
    assert all(1 <= p.map[d] <= sizes[d] and 1 <= p.series[d] <= sizes[d] + grown for d in DIMS)
    # Every band edge is a map chunk edge and a series chunk edge, so the series copy
    # decodes each map chunk once and writes each series chunk once.
    edges = range(0, ny, p.band_rows)
    assert all(e % p.map["latitude"] == 0 and e % p.series["latitude"] == 0 for e in edges)
    if p.band_rows < ny:
        band = p.band_rows * nx * itemsize * p.series["time"]
        # within the budget unless a single tile row is already larger
        assert band <= budget_mb * MB or p.band_rows == p.series["latitude"]


def test_a_daily_global_field_plans_1_to_4_mb_chunks() -> None:
    sizes = {"time": 182, "latitude": 720, "longitude": 1440}
    p = plan(DIMS, sizes, 4, 2 * MB, 256 * MB)
    for chunks in (p.map, p.series):
        size = 4 * math.prod(chunks.values())
        assert MB <= size <= 4 * MB, chunks
    assert p.series["time"] == 182 and p.band_rows % p.map["latitude"] == 0


@given(
    steps=st.integers(1, 400),
    levels=st.integers(1, 60),
    ny=st.integers(1, 800),
    nx=st.integers(1, 1600),
)
def test_bands_hold_whole_chunks_of_both_copies(steps: int, levels: int, ny: int, nx: int) -> None:
    """Both copies are cut from the same bands (the series copy's from decoded map chunks),
    so along every dimension a band starts on a chunk edge of both copies."""
    dims = ("time", "depth", "latitude", "longitude")
    sizes = {"time": steps, "depth": levels, "latitude": ny, "longitude": nx}
    p = plan(dims, sizes, 4, 2 * MB, 512 * MB)
    band = p.band(dims, sizes)
    for d in dims:
        for start in range(0, sizes[d], band[d]):
            assert start % p.map[d] == 0 and start % p.series[d] == 0, (d, start, p)


@given(
    steps=st.integers(1, 5000),
    ny=st.integers(1, 2000),
    nx=st.integers(1, 4000),
    itemsize=st.sampled_from([2, 4, 8]),
)
def test_sharded_series_decode_at_most_4x_a_point_series(
    steps: int, ny: int, nx: int, itemsize: int
) -> None:
    """A sharded series copy's shards hold whole inner chunks, and a point series decodes
    at most 4x the bytes it returns; a series chunk left unsharded is small or short."""
    sizes = {"time": steps, "latitude": ny, "longitude": nx}
    p = plan(DIMS, sizes, itemsize, 2 * MB, 512 * MB)
    if p.inner is None:
        size = itemsize * math.prod(p.series.values())
        cells = min(2, p.series["latitude"]) * min(2, p.series["longitude"])
        assert size < SHARD_MIN_BYTES or itemsize * p.series["time"] * cells < INNER_MIN_BYTES
        return
    assert all(p.series[d] % p.inner[d] == 0 for d in DIMS)
    assert p.inner["time"] == p.series["time"]
    decoded = itemsize * math.prod(p.inner.values())
    assert decoded <= 4 * itemsize * p.inner["time"]
    # an odd tile grows by one cell at most to hold whole inner chunks
    assert all(p.series[d] <= sizes[d] + 1 for d in ("latitude", "longitude"))


def test_the_365_step_bench_set_is_sharded_like_the_shard_bench() -> None:
    sizes = {"time": 365, "latitude": 720, "longitude": 1440}
    p = plan(DIMS, sizes, 4, 2 * MB, 512 * MB)
    assert p.inner == {"time": 365, "latitude": 2, "longitude": 2}
    assert p.series["time"] == 365 and p.series["latitude"] % 2 == 0


def test_short_series_and_fields_without_series_stay_unsharded() -> None:
    era5 = {"number": 10, "time": 4, "isobaricInhPa": 2, "latitude": 61, "longitude": 120}
    assert plan(tuple(era5), era5, 4, 2 * MB, 512 * MB).inner is None
    field = {"latitude": 2161, "longitude": 4320}
    assert plan(tuple(field), field, 4, 2 * MB, 512 * MB).inner is None
    strings = {"time": 365, "latitude": 720, "longitude": 1440}
    assert plan(DIMS, strings, 4, 2 * MB, 512 * MB, numeric=False).inner is None
