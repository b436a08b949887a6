"""Direct reads of a small box (a point series, a profile) from a version's Zarr v3 arrays.

zarr-python reads a point series from a sharded array in ~0.7 ms, most of it Python
around two small reads (its codec pipeline, the hand-overs to its asyncio thread); the
two reads themselves cost ~20 us. Here the same stored bytes are read by hand: for a
sharded array the shard's index (kept, versions are immutable) and then only the inner
chunks the box touches, for a plain one the chunks it touches; each is decoded (zstd or
Blosc) and copied into the output. The format is the zarr v3 spec's (chunk keys, regular
grid, ``bytes`` then ``zstd``, ``blosc`` or nothing, ``sharding_indexed`` with its
``bytes``+``crc32c`` index);
any other layout or codec (``ArrayLayout.of`` returns None) is read by xarray instead,
as are variables whose decoding xarray does more than masking for (scale/offset).

Reads are checked as zarr checks them: the shard index against its CRC-32C, each
decoded chunk against its expected size. ``tests/catalog/test_chunks.py`` compares this
reader with xarray on every corpus product and on odd cases.
"""

from __future__ import annotations

import math
import os
import struct
import threading
from dataclasses import dataclass
from itertools import product as cartesian
from typing import Any

import google_crc32c
import numpy as np
import zstandard
from numcodecs import blosc

from catalog.store import DataStore
from oceanmart.lru import LRU

EMPTY = 2**64 - 1  # index entry of an inner chunk that is not stored (all fill value)
INDEX_CACHE = 4096  # shard indexes kept (a 19x19 shard's is 5.8 kB)


@dataclass(frozen=True, slots=True)
class ArrayLayout:
    """How one array is stored: what a reader needs from its ``zarr.json``."""

    location: str  # the array's folder (path or URL)
    shape: tuple[int, ...]
    chunks: tuple[int, ...]  # the chunk grid's chunk: a shard, for a sharded array
    inner: tuple[int, ...] | None  # inner chunks of a sharded array, else None
    dtype: np.dtype[Any]
    fill: Any
    codec: str  # "zstd" or "blosc" frames, or "" for raw bytes
    separator: str
    index_at_end: bool = True

    @classmethod
    def of(cls, location: str, meta: dict[str, Any]) -> ArrayLayout | None:
        """The layout of the array at ``location`` with metadata ``meta``, or None for a
        layout this reader does not know (xarray reads those)."""
        try:
            return cls._of(location, meta)
        except (KeyError, TypeError, ValueError):
            return None

    @classmethod
    def _of(cls, location: str, meta: dict[str, Any]) -> ArrayLayout | None:
        if meta.get("zarr_format") != 3 or meta.get("node_type") != "array":
            return None
        if meta.get("storage_transformers"):
            return None
        grid, keys = meta["chunk_grid"], meta["chunk_key_encoding"]
        if grid["name"] != "regular" or keys["name"] != "default":
            return None
        separator = str(keys.get("configuration", {}).get("separator", "/"))
        if not isinstance(meta["data_type"], str):
            return None
        dtype = np.dtype(meta["data_type"])
        if dtype.kind not in "fiu":
            return None
        codecs = list(meta["codecs"])
        inner = None
        at_end = True
        if codecs and codecs[0]["name"] == "sharding_indexed":
            if len(codecs) != 1:
                return None
            conf = codecs[0]["configuration"]
            index = [c["name"] for c in conf["index_codecs"]]
            if index != ["bytes", "crc32c"] or not _little(conf["index_codecs"][0], 8):
                return None
            inner = tuple(int(n) for n in conf["chunk_shape"])
            at_end = conf.get("index_location", "end") == "end"
            codecs = list(conf["codecs"])
        names = [c["name"] for c in codecs]
        if names[:1] != ["bytes"] or names[1:] not in ([], ["zstd"], ["blosc"]):
            return None
        if not _little(codecs[0], dtype.itemsize):
            return None
        dtype = dtype.newbyteorder("<")
        fill = _fill(meta["fill_value"], dtype)
        shape = tuple(int(n) for n in meta["shape"])
        chunks = tuple(int(n) for n in grid["configuration"]["chunk_shape"])
        if len(shape) != len(chunks) or (inner is not None and len(inner) != len(chunks)):
            return None
        if inner is not None and any(c % i for c, i in zip(chunks, inner, strict=True)):
            return None
        return cls(location, shape, chunks, inner, dtype, fill, "".join(names[1:]),
                   separator, at_end)  # fmt: skip

    def key(self, index: tuple[int, ...]) -> str:
        return f"{self.location}/" + self.separator.join(["c", *map(str, index)])


def _little(codec: dict[str, Any], itemsize: int) -> bool:
    endian = (codec.get("configuration") or {}).get("endian")
    return endian == "little" or (endian is None and itemsize == 1)


def _fill(value: Any, dtype: np.dtype[Any]) -> Any:
    """A zarr v3 fill value (a number, "NaN", "Infinity", "-Infinity" or hex bits)."""
    if isinstance(value, str):
        if value.startswith("0x"):
            raw = int(value, 16).to_bytes(dtype.itemsize, "big")
            return np.frombuffer(raw, dtype=dtype.newbyteorder(">"))[0].astype(dtype).item()
        return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[value]
    return np.asarray(value, dtype=dtype).item()


_local = threading.local()


def _decompressor() -> zstandard.ZstdDecompressor:
    # One context per thread, reused: contexts are not thread-safe, and making one per
    # frame costs more than a small frame's decoding.
    held: zstandard.ZstdDecompressor | None = getattr(_local, "zstd", None)
    if held is None:
        held = _local.zstd = zstandard.ZstdDecompressor()
    return held


class ChunkReader:
    """Reads boxes of arrays of one data store (thread-safe; keeps shard indexes)."""

    def __init__(self, store: DataStore) -> None:
        self.store = store
        self._indexes: LRU[str, np.ndarray | None] = LRU(INDEX_CACHE)

    # --- stored bytes -------------------------------------------------------------------

    def _get(self, location: str, start: int | None = None, length: int | None = None) -> bytes:
        """The object at ``location`` (a range of it; a negative ``start`` counts from
        its end), or FileNotFoundError."""
        if self.store.local:
            fd = os.open(location, os.O_RDONLY)
            try:
                if start is None:
                    size = os.fstat(fd).st_size
                    start, length = 0, size
                elif start < 0:
                    size = os.fstat(fd).st_size
                    start = size + start
                    if start < 0:
                        raise ValueError(f"{location}: shorter than its shard index")
                assert length is not None
                data = os.pread(fd, length, start)
            finally:
                os.close(fd)
            if len(data) != length:
                raise ValueError(f"{location}: {len(data)} bytes read instead of {length}")
            return data
        fs = self.store.fs
        if start is None:
            return bytes(fs.cat_file(location))
        if start < 0:
            size = int(fs.size(location))
            start = size + start
        assert length is not None
        data = bytes(fs.cat_file(location, start=start, end=start + length))
        if len(data) != length:
            raise ValueError(f"{location}: {len(data)} bytes read instead of {length}")
        return data

    def _index(self, layout: ArrayLayout, key: str) -> np.ndarray | None:
        """A shard's index as (offset, nbytes) rows in C order of its inner chunks; None
        for a shard that is not stored (all fill). Kept: versions are immutable."""
        return self._indexes.get_or_make(key, lambda: self._read_index(layout, key))

    def _read_index(self, layout: ArrayLayout, key: str) -> np.ndarray | None:
        assert layout.inner is not None
        count = math.prod(c // i for c, i in zip(layout.chunks, layout.inner, strict=True))
        size = 16 * count + 4
        try:
            raw = self._get(key, -size if layout.index_at_end else 0, size)
        except FileNotFoundError:
            return None
        body = raw[:-4]
        if google_crc32c.value(body) != struct.unpack("<I", raw[-4:])[0]:
            raise ValueError(f"{key}: the shard index does not match its CRC-32C")
        return np.frombuffer(body, dtype="<u8").reshape(count, 2)

    def _decode(self, layout: ArrayLayout, data: bytes, shape: tuple[int, ...]) -> np.ndarray:
        nbytes = math.prod(shape) * layout.dtype.itemsize
        if layout.codec == "zstd":
            raw = _decompressor().decompress(data, max_output_size=nbytes)
        elif layout.codec == "blosc":
            try:
                raw = blosc.decompress(data)
            except RuntimeError as exc:
                raise ValueError(f"a chunk is not a Blosc frame ({exc})") from None
        else:
            raw = data
        if len(raw) != nbytes:
            raise ValueError(f"a chunk decodes to {len(raw)} bytes instead of {nbytes}")
        return np.frombuffer(raw, dtype=layout.dtype).reshape(shape)

    # --- boxes --------------------------------------------------------------------------

    def read(self, layout: ArrayLayout, box: tuple[slice, ...]) -> np.ndarray:
        """The values of ``box`` (one slice of step 1 per dimension, inside the array),
        the fill value where nothing is stored."""
        piece = layout.inner or layout.chunks
        cell = [s.start // p for s, p in zip(box, piece, strict=True)]
        if all(s.start < s.stop and (s.stop - 1) // p == c
               for s, p, c in zip(box, piece, cell, strict=True)):  # fmt: skip
            return self._read_piece(layout, box, piece, cell)
        return self._read_box(layout, box)

    def _read_piece(
        self, layout: ArrayLayout, box: tuple[slice, ...], piece: tuple[int, ...], cell: list[int]
    ) -> np.ndarray:
        """``read`` of a box inside one piece (inner chunk, or chunk): a point's series or
        profile. The same reads as ``_read_box``'s, without its loops over touched chunks
        and its placing into a filled box (~12 us of a ~35 us read of one inner chunk);
        test_points compares the two."""
        origin = [c * p for c, p in zip(cell, piece, strict=True)]
        part = tuple(slice(s.start - o, s.stop - o) for s, o in zip(box, origin, strict=True))
        if layout.inner is None:
            try:
                data = self._get(layout.key(tuple(cell)))
            except FileNotFoundError:
                return self._filled(layout, box)
            return self._decode(layout, data, piece)[part].copy()
        ratio = [c // p for c, p in zip(layout.chunks, piece, strict=True)]  # pieces a shard
        key = layout.key(tuple(c // r for c, r in zip(cell, ratio, strict=True)))
        index = self._index(layout, key)
        if index is None:
            return self._filled(layout, box)
        flat = 0  # the piece's place in the shard, C order (np.ravel_multi_index)
        for c, r in zip(cell, ratio, strict=True):
            flat = flat * r + c % r
        offset, nbytes = (int(v) for v in index[flat])
        if offset == EMPTY and nbytes == EMPTY:
            return self._filled(layout, box)
        return self._decode(layout, self._get(key, offset, nbytes), piece)[part].copy()

    @staticmethod
    def _filled(layout: ArrayLayout, box: tuple[slice, ...]) -> np.ndarray:
        return np.full([s.stop - s.start for s in box], layout.fill, dtype=layout.dtype)

    def _read_box(self, layout: ArrayLayout, box: tuple[slice, ...]) -> np.ndarray:
        """``read`` of any box: each chunk (inner chunk) it touches placed in it."""
        starts = [s.start for s in box]
        stops = [s.stop for s in box]
        out = np.full([b - a for a, b in zip(starts, stops, strict=True)], layout.fill,
                      dtype=layout.dtype)  # fmt: skip
        if not out.size:
            return out
        piece = layout.inner or layout.chunks
        for outer in _touched(starts, stops, layout.chunks):
            key = layout.key(outer)
            origin = [o * c for o, c in zip(outer, layout.chunks, strict=True)]
            if layout.inner is None:
                try:
                    data = self._get(key)
                except FileNotFoundError:
                    continue
                _place(out, self._decode(layout, data, layout.chunks), origin, starts, stops)
                continue
            index = self._index(layout, key)
            if index is None:
                continue
            lo = [max(a, o) for a, o in zip(starts, origin, strict=True)]
            hi = [min(b, o + c) for b, o, c in zip(stops, origin, layout.chunks, strict=True)]
            local_lo = [a - o for a, o in zip(lo, origin, strict=True)]
            local_hi = [b - o for b, o in zip(hi, origin, strict=True)]
            grid = [c // i for c, i in zip(layout.chunks, piece, strict=True)]
            for inner in _touched(local_lo, local_hi, piece):
                offset, nbytes = (int(v) for v in index[np.ravel_multi_index(inner, grid)])
                if offset == EMPTY and nbytes == EMPTY:
                    continue
                values = self._decode(layout, self._get(key, offset, nbytes), piece)
                at = [o + k * p for o, k, p in zip(origin, inner, piece, strict=True)]
                _place(out, values, at, starts, stops)
        return out


def _touched(starts: list[int], stops: list[int], chunk: tuple[int, ...]) -> Any:
    """Indices of the chunks of shape ``chunk`` that the box [starts, stops) overlaps."""
    return cartesian(
        *(range(a // c, (b - 1) // c + 1) for a, b, c in zip(starts, stops, chunk, strict=True))
    )


def _place(
    out: np.ndarray, values: np.ndarray, at: list[int], starts: list[int], stops: list[int]
) -> None:
    """Copy the part of ``values`` (a chunk whose first cell is ``at``) inside the box
    [starts, stops) into ``out`` (the box)."""
    src, dst = [], []
    for a, n, s, e in zip(at, values.shape, starts, stops, strict=True):
        lo, hi = max(a, s), min(a + n, e)
        src.append(slice(lo - a, hi - a))
        dst.append(slice(lo - s, hi - s))
    out[tuple(dst)] = values[tuple(src)]
