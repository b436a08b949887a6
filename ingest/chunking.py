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


@dataclass(frozen=True, slots=True)
class Plan:
    """Chunks of both copies of one variable, and the latitude rows per series band."""

    map: Chunks
    series: Chunks
    band_rows: int

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
    dims: Sequence[str], sizes: Mapping[str, int], itemsize: int, target: int, budget: int
) -> Plan:
    map_ = map_chunks(dims, sizes, itemsize, target)
    series = series_chunks(dims, sizes, itemsize, target)
    if LAT not in series:
        return Plan(map_, series, 1)
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
    return Plan(map_, series, band)
