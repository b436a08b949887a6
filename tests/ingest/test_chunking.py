"""Chunk plans: sizes near the target, and series bands aligned with map chunks."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from ingest.chunking import plan

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
    assert all(1 <= p.map[d] <= sizes[d] and 1 <= p.series[d] <= sizes[d] for d in DIMS)
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
