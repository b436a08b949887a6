"""Writing and checking the chunks of both copies without zarr-python's per-chunk cost.

zarr-python spends Python time on every chunk, and reading a copy back through it to
validate costs as much again. Here chunks are cut from in-memory slabs and bands,
encoded with zstd in threads (numcodecs releases the GIL), and written as one file (or
object) each:

- ``write_slab``: the map copy's chunks of a slab of the source; keeps the CRC-32 of the
  values of every chunk and the SHA-256 of the slab (the version id).
- ``write_band``: the series copy's chunks of a band, cut from the band's map chunks read
  back from the store and decoded (each checked against its CRC-32); each series chunk's
  stored bytes are read back and compared with the encoded ones, one in
  ``DECODE_EVERY`` is decoded and compared bit for bit with the band, and one chunk of
  each copy per band is read through zarr-python.

The arrays' metadata is created by xarray/zarr beforehand, and ``ChunkLayout.of`` takes
everything it needs from it (chunk grid, chunk key encoding, codecs, fill value),
refusing any codec chain it does not write exactly as zarr would: ``bytes`` (little
endian) then ``zstd``. Chunks that hold only the fill value are not written, as zarr does
not write them either (a reader returns the fill value for a missing chunk); the checks
make sure a missing chunk's values are indeed all fill.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import os
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import fsspec
import numpy as np
from numcodecs import Zstd

from oceanmart.errors import IngestError


@dataclass(frozen=True, slots=True)
class ChunkIO:
    """Puts and gets whole chunk files under a store root: plain file calls on a local
    folder, fsspec for an object store. Picklable, so band tasks can run on a cluster."""

    root: str
    local: bool
    options: str = field(default="{}", repr=False)  # fsspec storage options, as JSON

    @property
    def storage_options(self) -> dict[str, Any]:
        parsed: dict[str, Any] = json.loads(self.options)
        return parsed

    def put(self, key: str, data: bytes) -> None:
        path = f"{self.root}/{key}"
        if self.local:
            try:
                f = open(path, "wb")  # noqa: SIM115, PTH123  (hot path: one call per chunk)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(path), exist_ok=True)  # noqa: PTH103, PTH120
                f = open(path, "wb")  # noqa: SIM115, PTH123
            with f:
                f.write(data)
        else:
            _fs(self.root, self.options).pipe_file(path, data)

    def get(self, key: str) -> bytes | None:
        path = f"{self.root}/{key}"
        try:
            if self.local:
                with open(path, "rb") as f:  # noqa: PTH123
                    return f.read()
            return bytes(_fs(self.root, self.options).cat_file(path))
        except FileNotFoundError:
            return None


@cache
def _fs(root: str, options: str) -> Any:
    fs, _ = fsspec.core.url_to_fs(root, **json.loads(options))
    return fs


@dataclass(frozen=True, slots=True)
class ChunkLayout:
    """How one array of a copy is stored: everything a chunk writer needs, read from the
    array's zarr metadata."""

    copy: str  # "map" or "series", for messages
    variable: str
    path: str  # the array's folder relative to ChunkIO.root
    shape: tuple[int, ...]
    chunks: tuple[int, ...]
    dtype: str  # numpy dtype string, little endian
    fill: Any
    level: int
    checksum: bool
    separator: str

    @classmethod
    def of(cls, array: Any, copy: str, variable: str, path: str) -> ChunkLayout:
        """The layout of a zarr v3 ``array`` (``zarr.Array``)."""
        name = f"{copy} copy of {variable}"
        from zarr.codecs import BytesCodec, ZstdCodec
        from zarr.core.chunk_key_encodings import DefaultChunkKeyEncoding

        meta = array.metadata
        codecs = tuple(meta.codecs)
        ok = (
            len(codecs) == 2
            and isinstance(codecs[0], BytesCodec)
            and codecs[0].endian in (None, "little")
            and isinstance(codecs[1], ZstdCodec)
            and isinstance(meta.chunk_key_encoding, DefaultChunkKeyEncoding)
        )
        if not ok:
            raise IngestError(f"{name}: no fast writer for codecs {codecs!r}")
        layout = cls(
            copy=copy,
            variable=variable,
            path=path,
            shape=tuple(int(n) for n in array.shape),
            chunks=tuple(int(n) for n in meta.chunk_grid.chunk_shape),
            dtype=np.dtype(array.dtype).newbyteorder("<").str,
            fill=np.asarray(meta.fill_value, dtype=array.dtype).item(),
            level=int(codecs[1].level),
            checksum=bool(codecs[1].checksum),
            separator=str(meta.chunk_key_encoding.separator),
        )
        # The key spelling is zarr's: check ours against it once.
        corner = (0,) * len(layout.shape)
        if layout.key(corner) != f"{path}/{meta.encode_chunk_key(corner)}":
            raise IngestError(f"{name}: unexpected chunk key {meta.encode_chunk_key(corner)}")
        return layout

    def key(self, index: tuple[int, ...]) -> str:
        return self.separator.join([f"{self.path}/c", *map(str, index)])

    def is_fill(self, part: np.ndarray) -> bool:
        if not part.size:
            return True
        if isinstance(self.fill, float) and math.isnan(self.fill):
            # cheap test first: most chunks are not empty, and their first value says so
            return bool(np.isnan(part.flat[0])) and bool(np.isnan(part).all())
        return bool(part.flat[0] == self.fill) and bool((part == self.fill).all())


def _region(layout: ChunkLayout, index: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(
        slice(i * c, min((i + 1) * c, n))
        for i, c, n in zip(index, layout.chunks, layout.shape, strict=True)
    )


def _chunk_indices(layout: ChunkLayout, origin: tuple[int, ...], shape: tuple[int, ...]) -> Any:
    """Indices of the chunks that tile the box at ``origin`` of ``shape`` (which must start
    and end on chunk edges, or at the array's end)."""
    ranges = []
    for o, s, c, n in zip(origin, shape, layout.chunks, layout.shape, strict=True):
        end = o + s
        if o % c or (end % c and end != n):
            raise IngestError(
                f"{layout.copy} copy of {layout.variable}: band {origin}+{shape} is not "
                "aligned with its chunks"
            )
        ranges.append(range(o // c, -(-end // c)))
    return itertools.product(*ranges)


def _bits(a: np.ndarray) -> np.ndarray:
    """The values as unsigned integers of the same size: compared bit for bit, NaN == NaN."""
    return a.view(f"u{a.dtype.itemsize}") if a.dtype.kind == "f" else a


def _whole(layout: ChunkLayout, part: np.ndarray) -> np.ndarray:
    """A chunk's values as stored: edge chunks whole, padded with the fill value (zarr's
    regular grid)."""
    if part.shape == layout.chunks:
        return np.ascontiguousarray(part, dtype=layout.dtype)
    whole = np.full(layout.chunks, layout.fill, dtype=layout.dtype)
    whole[tuple(slice(0, s) for s in part.shape)] = part
    return whole


def _encode(layout: ChunkLayout, whole: np.ndarray) -> bytes:
    encoded: bytes = Zstd(level=layout.level, checksum=layout.checksum).encode(whole)
    return encoded


def _local(region: tuple[slice, ...], origin: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(r.start - o, r.stop - o) for r, o in zip(region, origin, strict=True))


def _failure(layout: ChunkLayout, problem: str) -> IngestError:
    # Both copies come from the same values, so a copy that does not hold them differs
    # from the other.
    return IngestError(
        f"validation failed: {layout.variable} differs between the two copies "
        f"({layout.copy} copy: {problem})"
    )


def _run(jobs: list[Callable[[], Any]], workers: int) -> list[Any]:
    if workers <= 1 or len(jobs) <= 1:
        return [job() for job in jobs]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda job: job(), jobs))


def write_slab(
    block: np.ndarray, origin: tuple[int, ...], layout: ChunkLayout, io: ChunkIO, workers: int
) -> tuple[bytes, dict[tuple[int, ...], int | None]]:
    """Write the chunks of the map copy that lie in ``block`` (the source's values from
    ``origin``). Returns the SHA-256 of the block and, per chunk, the CRC-32 of the values
    it must hold (None for a chunk of fill values, not written): ``write_band`` checks
    the stored chunks against them."""
    block = np.ascontiguousarray(block, dtype=np.dtype(layout.dtype))

    def one(index: tuple[int, ...]) -> tuple[tuple[int, ...], int | None]:
        part = block[_local(_region(layout, index), origin)]
        if layout.is_fill(part):
            return index, None
        whole = _whole(layout, part)
        io.put(layout.key(index), _encode(layout, whole))
        return index, zlib.crc32(whole)

    jobs: list[Callable[[], Any]] = [lambda: hashlib.sha256(block.data).digest()]
    jobs += [functools.partial(one, i) for i in _chunk_indices(layout, origin, block.shape)]
    digest, *crcs = _run(jobs, workers)
    return digest, dict(crcs)


def _load(
    layout: ChunkLayout, io: ChunkIO, index: tuple[int, ...], crc: int | None, out: np.ndarray
) -> bool:
    """Decode a stored map chunk into ``out`` (its part of a band) and check it against the
    CRC-32 of the values it must hold. False for a chunk not stored (all fill)."""
    key = layout.key(index)
    stored = io.get(key)
    if stored is None:
        if crc is None:
            return False
        raise _failure(layout, f"chunk {key} is missing")
    whole = out.shape == layout.chunks and out.flags.c_contiguous
    try:
        # Straight into the band when the chunk is a contiguous part of it (no copy).
        raw = Zstd().decode(stored, out=out) if whole else Zstd().decode(stored)
    except (RuntimeError, ValueError):
        raise _failure(layout, f"chunk {key} does not decode") from None
    if crc is None or zlib.crc32(raw) != crc:
        raise _failure(layout, f"chunk {key} does not hold the source's values")
    if not whole:
        values = np.frombuffer(raw, dtype=layout.dtype).reshape(layout.chunks)
        out[...] = values[tuple(slice(0, s) for s in out.shape)]
    return True


def _zarr_check(
    layout: ChunkLayout, io: ChunkIO, band: np.ndarray, origin: tuple[int, ...]
) -> None:
    """Read one chunk of the band back through zarr-python, the reader every client uses,
    and compare it with the band: the metadata, keys and codecs agree with what we wrote."""
    import zarr

    indices = list(_chunk_indices(layout, origin, band.shape))
    region = _region(layout, indices[len(indices) // 2])
    options: dict[str, Any] = {} if io.local else {"storage_options": io.storage_options}
    array = zarr.open_array(f"{io.root}/{layout.path}", mode="r", zarr_format=3, **options)
    got = np.asarray(array[region])
    if not np.array_equal(_bits(got), _bits(band[_local(region, origin)])):
        raise _failure(layout, f"zarr reads other values at {region}")


# One series chunk in DECODE_EVERY is decoded again and compared with the band (the codec
# round trip); the others are checked by their stored bytes (see ``write_band``).
DECODE_EVERY = 8
_buffers = threading.local()


def _buffer(shape: tuple[int, ...], dtype: str) -> np.ndarray:
    """A buffer of this thread, reused from band to band: a fresh one of hundreds of MB
    costs a page fault per 4 KB."""
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    held = getattr(_buffers, "band", None)
    if held is None or held.nbytes < nbytes:
        _buffers.band = held = None
        held = np.empty(nbytes, np.uint8)
        _buffers.band = held
    return held[:nbytes].view(dtype).reshape(shape)


def write_band(
    origin: tuple[int, ...],
    shape: tuple[int, ...],
    layouts: tuple[ChunkLayout, ChunkLayout],
    crcs: dict[tuple[int, ...], int | None],
    io: ChunkIO,
    workers: int,
) -> None:
    """Write the series copy's chunks of one band from the map copy's, and check both.

    The band's map chunks are read from the store, decoded and checked against the CRC-32
    of the source values they must hold (``write_slab``), so every map chunk decodes to
    the source's values. The band is cut into series chunks, each encoded and written,
    and its stored bytes read back and compared with the encoded ones; one in
    ``DECODE_EVERY`` is also decoded and compared bit for bit with the band (a codec
    that encodes wrongly fails on every chunk, so a sample finds it; decoding them all
    would cost as much as encoding). Finally one chunk of each copy is read through
    zarr-python (``_zarr_check``)."""
    map_, series = layouts
    band = _buffer(shape, map_.dtype)

    def load(index: tuple[int, ...]) -> None:
        target = band[_local(_region(map_, index), origin)]
        if not _load(map_, io, index, crcs.get(index), target):
            target[...] = map_.fill

    _run([functools.partial(load, i) for i in _chunk_indices(map_, origin, shape)], workers)

    def one(n: int, index: tuple[int, ...]) -> None:
        part = band[_local(_region(series, index), origin)]
        key = series.key(index)
        encoded = None if series.is_fill(part) else _encode(series, _whole(series, part))
        if encoded is not None:
            io.put(key, encoded)
        stored = io.get(key)
        if stored != encoded:
            what = "is missing" if stored is None else "reads back other bytes than written"
            raise _failure(series, f"chunk {key} {what}")
        if encoded is None or n % DECODE_EVERY:
            return
        try:
            raw = Zstd().decode(encoded)
        except RuntimeError:
            raise _failure(series, f"chunk {key} does not decode") from None
        if len(raw) != math.prod(series.chunks) * band.dtype.itemsize:
            raise _failure(series, f"chunk {key} has the wrong size")
        got = np.frombuffer(raw, dtype=series.dtype).reshape(series.chunks)
        got = got[tuple(slice(0, s) for s in part.shape)]
        if not np.array_equal(_bits(got), _bits(part)):
            raise _failure(series, f"chunk {key} does not hold the source's values")

    indices = _chunk_indices(series, origin, shape)
    _run([functools.partial(one, n, i) for n, i in enumerate(indices)], workers)
    for layout in layouts:
        _zarr_check(layout, io, band, origin)
