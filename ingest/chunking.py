"""Chunk plans for the two copies of a version.

- map copy: one time step per chunk, whole horizontal fields (tiled only when a field is
  far above the target), depth levels grouped up to the target size. Reading a map or a
  few time steps touches few chunks.
- series copy: as many time steps as fit the target, one depth level, small horizontal
  tiles. Reading a long series at a point touches few chunks.

Targets are bytes per (uncompressed) chunk, 1-4 MB by default (Copernicus Marine and
Pangeo guidance).

Both copies are written from the source in *bands*: a range of latitude rows across all
longitudes, one series chunk deep along the series axis (and as deep as both copies'
chunks along any other axis), at most ``budget`` bytes. A band holds whole chunks of
both copies: ``plan`` aligns the map copy's latitude chunking with the bands, so each
band is read from the source once and cut into the chunks of both copies, and memory
does not grow with the length of the series.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ingest.normalise import DEPTH, LAT, LON, TIME

Chunks = dict[str, int]


def _tile(ny: int, nx: int, cells: int) -> tuple[int, int]:
    """A near-square horizontal tile of about ``cells`` cells, clipped to the grid."""
    if ny * nx <= cells:
        return ny, nx
    side = max(1, math.isqrt(max(1, cells)))
    ty = min(ny, side)
    tx = min(nx, max(1, cells // ty))
    return ty, tx


def map_chunks(dims: Sequence[str], sizes: Mapping[str, int], itemsize: int, target: int) -> Chunks:
    out: Chunks = {d: sizes[d] for d in dims}
    if TIME in out:
        out[TIME] = 1
    if DEPTH in out:
        out[DEPTH] = 1
    ny, nx = sizes.get(LAT, 1), sizes.get(LON, 1)
    if LAT in out and LON in out:
        field = ny * nx * itemsize
        if field > 2 * target:
            out[LAT], out[LON] = _tile(ny, nx, target // itemsize)
    per_level = math.prod(out.values()) * itemsize
    if DEPTH in out:
        out[DEPTH] = int(min(sizes[DEPTH], max(1, target // per_level)))
    return out


def series_chunks(
    dims: Sequence[str], sizes: Mapping[str, int], itemsize: int, target: int
) -> Chunks:
    out: Chunks = {d: sizes[d] for d in dims}
    # The "series" axis is time, or depth for a product without time (vertical profiles).
    series = TIME if TIME in out else DEPTH if DEPTH in out else None
    if series == TIME and DEPTH in out:
        out[DEPTH] = 1
    if series is not None:
        out[series] = int(min(sizes[series], max(1, target // itemsize)))
    cells = max(1, target // (itemsize * (out[series] if series else 1)))
    if LAT in out and LON in out:
        # Small tiles even when the field would fit, so a point series reads little; with
        # no series axis (a 2-D field) the tile only needs to stay near the target size.
        cap = 64 * 64 if series is not None else cells
        out[LAT], out[LON] = _tile(sizes[LAT], sizes[LON], min(cells, cap))
        if series is not None:
            # Spend what the tile saved on a longer series, up to the target.
            tile = out[LAT] * out[LON]
            out[series] = int(min(sizes[series], max(1, target // (itemsize * tile))))
    return out


# A series chunk smaller than SHARD_MIN_BYTES is not sharded: a point series decodes it
# whole in about a millisecond, and an index and many zstd frames would buy nothing. Nor
# is one whose inner chunks would be under INNER_MIN_BYTES (a short series): each inner
# chunk costs a frame header and a 16-byte index entry, and tiny frames compress badly.
SHARD_MIN_BYTES = 1024 * 1024
INNER_MIN_BYTES = 1024


def inner_chunks(
    dims: Sequence[str], series: Mapping[str, int], itemsize: int, numeric: bool
) -> Chunks | None:
    """The inner chunks of a sharded series copy whose shards are ``series``, or None when
    the series copy is better left unsharded.

    Rule: shard a numeric variable with a series axis (time, else depth) and a horizontal
    grid when its series chunk holds at least ``SHARD_MIN_BYTES`` and the inner chunk at
    least ``INNER_MIN_BYTES``. The inner chunk is the shard's whole series by 2x2 cells
    (1 along every other axis), so a point series decodes at most 4x the bytes it
    returns. Small products (tiny grids, few steps), 2-D fields and non-numeric variables
    stay unsharded."""
    axis = TIME if TIME in series else DEPTH if DEPTH in series else None
    if not numeric or axis is None or LAT not in series or LON not in series:
        return None
    inner = {
        d: series[d] if d == axis else min(2, series[d]) if d in (LAT, LON) else 1 for d in dims
    }
    if math.prod(series[d] for d in dims) * itemsize < SHARD_MIN_BYTES:
        return None
    if math.prod(inner.values()) * itemsize < INNER_MIN_BYTES:
        return None
    return inner


@dataclass(frozen=True, slots=True)
class Plan:
    """Chunks of both copies of one variable, and the latitude rows per series band.
    ``inner``: the series copy's inner chunks when it is sharded (``series`` is then the
    shard shape), else None."""

    map: Chunks
    series: Chunks
    band_rows: int
    inner: Chunks | None = None

    def band(self, dims: Sequence[str], sizes: Mapping[str, int]) -> Chunks:
        """The band's extent along every dimension (the last band of an axis may be
        shorter): whole longitudes, ``band_rows`` latitudes, and elsewhere the least
        common multiple of the two copies' chunks."""
        return {
            d: sizes[d]
            if d == LON
            else self.band_rows
            if d == LAT
            else min(sizes[d], math.lcm(self.map[d], self.series[d]))
            for d in dims
        }


def plan(
    dims: Sequence[str],
    sizes: Mapping[str, int],
    itemsize: int,
    target: int,
    budget: int,
    *,
    numeric: bool = True,
) -> Plan:
    map_ = map_chunks(dims, sizes, itemsize, target)
    series = series_chunks(dims, sizes, itemsize, target)
    inner = inner_chunks(dims, series, itemsize, numeric)
    if inner is not None:
        # Shards hold whole inner chunks: an odd tile grows by one row or column (an edge
        # shard may then reach past the grid, padded with the fill value as zarr does).
        for d in (LAT, LON):
            series[d] += series[d] % inner[d]
    if LAT not in series:
        return Plan(map_, series, 1, inner)
    ny, ty = sizes[LAT], series[LAT]
    # Bytes of one latitude row of one band: all longitudes, whole chunks of both copies
    # in every other dimension.
    row = itemsize * math.prod(
        sizes[d] if d == LON else min(sizes[d], math.lcm(map_[d], series[d]))
        for d in dims
        if d != LAT
    )
    band = min(ny, max(ty, budget // max(1, row) // ty * ty))
    if band < ny and band % map_[LAT]:
        # Several bands: map chunks of whole tile rows, as close to their planned height
        # as the band allows, and bands of whole map chunks.
        rows = ty * max(1, min(band // ty, round(map_[LAT] / ty)))
        map_[LAT] = rows
        band = rows * max(1, band // rows)
    return Plan(map_, series, band, inner)
