"""A digest of an array's values that does not depend on how it is chunked.

Each element contributes ``mix(bits, flat index)`` and the contributions are summed
modulo 2**64, so the sum can be computed chunk by chunk, in any order, in parallel, from
either copy of a version. Equal digests for the map and the series copy mean equal
values at equal positions (up to a 2**-64 collision chance); the version id is a hash of
the digests and the metadata. NaNs are canonicalised so that their payload bits do not
matter.

Written here because no library offers an order-independent positional digest of a
chunked array; it is 40 lines of numpy over dask blocks.
"""

from __future__ import annotations

import itertools

import dask
import numpy as np
import xarray as xr

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MASK = (1 << 64) - 1


def _splitmix(z: np.ndarray) -> np.ndarray:
    z = z + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    out: np.ndarray = z ^ (z >> np.uint64(31))
    return out


def _bits(block: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(block)
    if a.dtype.kind == "f":
        a = np.where(np.isnan(a), np.array(np.nan, dtype=a.dtype), a)
    if a.dtype.kind in "fiub" and a.dtype.itemsize in (1, 2, 4, 8):
        return a.view(f"u{a.dtype.itemsize}").astype(np.uint64).ravel()
    if a.dtype.kind == "M" or a.dtype.kind == "m":
        return a.view("u8").astype(np.uint64).ravel()
    raise TypeError(f"no digest for dtype {a.dtype}")


def block_digest(block: np.ndarray, offset: tuple[int, ...], shape: tuple[int, ...]) -> int:
    """Digest contribution of ``block`` placed at ``offset`` in an array of ``shape``."""
    if block.size == 0:
        return 0
    local = np.indices(block.shape, dtype=np.int64).reshape(block.ndim, -1)
    glob = tuple(local[i] + offset[i] for i in range(block.ndim))
    flat = (
        np.ravel_multi_index(glob, shape).astype(np.uint64)
        if block.ndim
        else np.zeros(1, np.uint64)
    )
    with np.errstate(over="ignore"):
        mixed = _splitmix(_bits(block) ^ _splitmix(flat))
        return int(mixed.sum(dtype=np.uint64))


def digest(var: xr.DataArray) -> int:
    """The chunking-independent digest of ``var``'s values (computed with dask if chunked)."""
    data = var.data
    shape = tuple(var.shape)
    if not hasattr(data, "to_delayed"):
        return block_digest(np.asarray(data), (0,) * var.ndim, shape)
    starts = [np.cumsum((0, *c[:-1])) for c in data.chunks]
    blocks = data.to_delayed()
    parts = [
        dask.delayed(block_digest)(
            blocks[idx], tuple(int(starts[d][i]) for d, i in enumerate(idx)), shape
        )
        for idx in itertools.product(*(range(len(c)) for c in data.chunks))
    ]
    total: int = sum(dask.compute(*parts)) & _MASK
    return total
