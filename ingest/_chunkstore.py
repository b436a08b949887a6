"""Writing and checking the chunks of both copies without zarr-python's per-chunk cost.

zarr-python spends Python time on every chunk, and reading a copy back through it to
validate costs as much again. Here chunks are cut from in-memory slabs and bands,
encoded in threads (both codecs release the GIL) and written as one file (or object)
each. A chunk stored whole is one Blosc frame (zstd, byte shuffle, one block: numcodecs,
whose per-call context costs nothing next to a 1-4 MB chunk); a shard's inner chunks are
zstd frames from python-zstandard with one compression context per thread, reused
(numcodecs builds a context per call, which costs more than a 5.8 KB frame's encoding):

- ``write_slab``: the map copy's chunks of a slab of the source; keeps the CRC-32C of the
  values of every chunk and the SHA-256 of the slab (the version id).
- ``write_band``: the series copy's chunks of a band, cut from the band's map chunks read
  back from the store and decoded (each checked against its CRC-32C); each series chunk's
  stored bytes are read back and compared with the encoded ones, one in
  ``DECODE_EVERY`` is decoded and compared bit for bit with the band, and one chunk of
  each copy per band is read through zarr-python.

The arrays' metadata is created by xarray/zarr beforehand, and ``ChunkLayout.of`` takes
everything it needs from it (chunk grid, chunk key encoding, codecs, fill value),
refusing any codec chain it does not write exactly as zarr would: ``bytes`` (little
endian) then ``blosc`` (typesize the item size) or ``zstd``, or ``sharding_indexed``
holding inner chunks so encoded with its index as ``bytes`` (little endian) then
``crc32c`` at the end. A shard is written by hand
in the format of the zarr v3 sharding spec (zarr-python's sharding codec costs ~10x
more here, ``bench/shard_series.py``): the zstd frames of its inner chunks in C order,
then the index of (offset, nbytes) little-endian uint64 pairs in C order of the inner
chunks, (2^64-1, 2^64-1) for an inner chunk not stored, then the CRC-32C of the index.
Chunks (and inner chunks) that hold only the fill value are not written, as zarr does not
write them either (a reader returns the fill value for a missing chunk); the checks make
sure a missing chunk's values are indeed all fill.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import os
import struct
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import fsspec
import google_crc32c
import numpy as np
import zstandard
from numcodecs import blosc

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
    codec: str  # "blosc" or "zstd"
    level: int
    checksum: bool  # zstd's frame checksum
    separator: str
    # The inner chunks of a sharded array (``chunks`` is then the shard shape), else None.
    inner: tuple[int, ...] | None = None
    # Blosc's settings (``blosc`` only): its compressor, shuffle and block size.
    cname: str = ""
    shuffle: int = blosc.NOSHUFFLE
    blocksize: int = 0

    @classmethod
    def of(cls, array: Any, copy: str, variable: str, path: str) -> ChunkLayout:
        """The layout of a zarr v3 ``array`` (``zarr.Array``)."""
        name = f"{copy} copy of {variable}"
        from zarr.codecs import BloscCodec, BytesCodec, Crc32cCodec, ShardingCodec, ZstdCodec
        from zarr.core.chunk_key_encodings import DefaultChunkKeyEncoding

        meta = array.metadata
        codecs = tuple(meta.codecs)
        inner = None
        if len(codecs) == 1 and isinstance(codecs[0], ShardingCodec):
            sharding = codecs[0]
            index = tuple(sharding.index_codecs)
            ok = (
                str(sharding.index_location) == "end"
                and len(index) == 2
                and isinstance(index[0], BytesCodec)
                and index[0].endian in (None, "little")
                and isinstance(index[1], Crc32cCodec)
            )
            if not ok:
                raise IngestError(f"{name}: no fast writer for shard index {sharding!r}")
            inner = tuple(int(n) for n in sharding.chunk_shape)
            codecs = tuple(sharding.codecs)
        itemsize = np.dtype(array.dtype).itemsize
        compressor = codecs[1] if len(codecs) == 2 else None
        ok = (
            len(codecs) == 2
            and isinstance(codecs[0], BytesCodec)
            and codecs[0].endian in (None, "little")
            and isinstance(meta.chunk_key_encoding, DefaultChunkKeyEncoding)
            and (
                isinstance(compressor, ZstdCodec)
                # numcodecs takes the typesize from the array it is given
                or (isinstance(compressor, BloscCodec) and compressor.typesize == itemsize)
            )
        )
        if not ok:
            raise IngestError(f"{name}: no fast writer for codecs {codecs!r}")
        if isinstance(compressor, BloscCodec):
            shuffles = {"noshuffle": blosc.NOSHUFFLE, "shuffle": blosc.SHUFFLE,
                        "bitshuffle": blosc.BITSHUFFLE}  # fmt: skip
            codec: dict[str, Any] = {
                "codec": "blosc",
                "level": int(compressor.clevel),
                "checksum": False,
                "cname": str(getattr(compressor.cname, "value", compressor.cname)),
                "shuffle": shuffles[str(getattr(compressor.shuffle, "value", compressor.shuffle))],
                "blocksize": int(compressor.blocksize),
            }
        else:
            assert isinstance(compressor, ZstdCodec)
            codec = {
                "codec": "zstd",
                "level": int(compressor.level),
                "checksum": bool(compressor.checksum),
            }
        layout = cls(
            copy=copy,
            variable=variable,
            path=path,
            shape=tuple(int(n) for n in array.shape),
            chunks=tuple(int(n) for n in meta.chunk_grid.chunk_shape),
            dtype=np.dtype(array.dtype).newbyteorder("<").str,
            fill=np.asarray(meta.fill_value, dtype=array.dtype).item(),
            separator=str(meta.chunk_key_encoding.separator),
            inner=inner,
            **codec,
        )
        if inner is not None and layout.codec != "zstd":
            raise IngestError(f"{name}: no fast writer for inner chunks coded {compressor!r}")
        if inner is not None and any(c % i for c, i in zip(layout.chunks, inner, strict=True)):
            raise IngestError(f"{name}: shards {layout.chunks} of inner chunks {inner}")
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
    regular grid). A whole shard is returned as it is, a view of the band: ``_split``
    moves its values into inner-chunk order anyway (copying it first cost a pass over
    every value)."""
    if part.shape == layout.chunks:
        if layout.inner is not None and part.dtype == np.dtype(layout.dtype):
            return part
        return np.ascontiguousarray(part, dtype=layout.dtype)
    whole = np.full(layout.chunks, layout.fill, dtype=layout.dtype)
    whole[tuple(slice(0, s) for s in part.shape)] = part
    return whole


_contexts = threading.local()


def _compressor(layout: ChunkLayout) -> zstandard.ZstdCompressor:
    """This thread's compression context for ``layout``'s settings (contexts are not
    thread-safe, and building one per frame costs more than a small frame's encoding)."""
    held: dict[tuple[int, bool], zstandard.ZstdCompressor] | None
    held = getattr(_contexts, "compressors", None)
    if held is None:
        held = _contexts.compressors = {}
    key = (layout.level, layout.checksum)
    if key not in held:
        held[key] = zstandard.ZstdCompressor(level=layout.level, write_checksum=layout.checksum)
    return held[key]


def _unblosc(frame: Any, nbytes: int, out: np.ndarray | None = None) -> Any:
    """One Blosc frame of ``nbytes`` decoded bytes, into ``out`` when given (else new
    bytes); ValueError otherwise. The size is read from the frame's header (bytes 4-7 of
    its 16) first: numcodecs fills a destination larger than the frame without a word."""
    size = struct.unpack_from("<I", frame, 4)[0] if len(frame) >= 16 else -1
    if size != nbytes:
        raise ValueError(f"{size} bytes instead of {nbytes}")
    try:
        return blosc.decompress(frame, out)
    except RuntimeError as exc:
        raise ValueError(f"not a Blosc frame ({exc})") from None


def _decompress(frame: Any, nbytes: int, codec: str = "zstd") -> bytes:
    """One zstd (or Blosc) frame, which must decode to ``nbytes`` bytes (else ValueError)."""
    if codec == "blosc":
        decoded: bytes = _unblosc(frame, nbytes)
        return decoded
    held = getattr(_contexts, "decompressor", None)
    if held is None:
        held = _contexts.decompressor = zstandard.ZstdDecompressor()
    try:
        raw: bytes = held.decompress(frame, max_output_size=nbytes)
    except zstandard.ZstdError as exc:
        raise ValueError(str(exc)) from None
    if len(raw) != nbytes:
        raise ValueError(f"{len(raw)} bytes instead of {nbytes}")
    return raw


EMPTY = 2**64 - 1  # shard index entry of an inner chunk not stored (all fill)


def _inner_grid(layout: ChunkLayout) -> tuple[int, ...]:
    assert layout.inner is not None
    return tuple(c // i for c, i in zip(layout.chunks, layout.inner, strict=True))


def _moved(layout: ChunkLayout) -> np.dtype[Any]:
    """The element a shard is transposed by: a run of the innermost axis's inner chunk
    as one unsigned integer when it fits 8 bytes (2 float32 -> 1 uint64: half the
    elements to move, 2.4x faster than moving float32s), else one value."""
    assert layout.inner is not None
    run = layout.inner[-1] * np.dtype(layout.dtype).itemsize
    return np.dtype(f"<u{run}") if run in (1, 2, 4, 8) else np.dtype(layout.dtype)


def _split(layout: ChunkLayout, whole: np.ndarray) -> np.ndarray:
    """A shard's values as (inner chunk, values of that inner chunk), both in C order."""
    assert layout.inner is not None
    grid = _inner_grid(layout)
    moved = _moved(layout)
    inner = list(layout.inner)
    if moved != np.dtype(layout.dtype):
        inner[-1] = 1
    axes = [n for g, i in zip(grid, inner, strict=True) for n in (g, i)]
    order = [*range(0, 2 * len(grid), 2), *range(1, 2 * len(grid), 2)]
    blocks = np.ascontiguousarray(whole.view(moved).reshape(axes).transpose(order))
    return blocks.view(layout.dtype).reshape(math.prod(grid), -1)


def _join(layout: ChunkLayout, blocks: np.ndarray) -> np.ndarray:
    """The inverse of ``_split``: a whole shard from its inner chunks' values."""
    assert layout.inner is not None
    grid = _inner_grid(layout)
    n = len(grid)
    order = [k for d in range(n) for k in (d, n + d)]
    moved = _moved(layout)
    inner = list(layout.inner)
    if moved != np.dtype(layout.dtype):
        inner[-1] = 1
    whole = blocks.view(moved).reshape(*grid, *inner).transpose(order)
    return np.ascontiguousarray(whole).view(layout.dtype).reshape(layout.chunks)


def _fill_rows(layout: ChunkLayout, blocks: np.ndarray) -> np.ndarray:
    """Which inner chunks (rows of ``blocks``) hold only the fill value: their first
    value, for all at once, then the whole row only for those."""
    first = blocks[:, 0]
    nan = isinstance(layout.fill, float) and math.isnan(layout.fill)
    rows = np.isnan(first) if nan else first == layout.fill
    for k in np.flatnonzero(rows):
        rows[k] = layout.is_fill(blocks[k])
    return rows


def _shard_index(index: np.ndarray) -> bytes:
    """The shard index as stored at the end of a shard: (offset, nbytes) pairs as
    little-endian uint64 (``index``, in C order of the inner chunks), then their CRC-32C
    (the ``bytes`` and ``crc32c`` index codecs)."""
    raw = np.ascontiguousarray(index, dtype="<u8").tobytes()
    return raw + struct.pack("<I", google_crc32c.value(raw))


def _encode(layout: ChunkLayout, whole: np.ndarray) -> bytes:
    """The stored bytes of one chunk (or shard) of ``layout`` holding ``whole``."""
    if layout.codec == "blosc":
        # one frame of one block (``blocksize``: the chunk's bytes): 2x faster and smaller
        # than Blosc's automatic blocks of tens of KB, measured in README "Ingest"
        out: bytes = blosc.compress(
            whole, layout.cname.encode(), layout.level, layout.shuffle, layout.blocksize
        )
        return out
    compressor = _compressor(layout)
    if layout.inner is None:
        encoded: bytes = compressor.compress(whole.data)
        return encoded
    blocks = _split(layout, whole)
    fill = _fill_rows(layout, blocks)
    kept = np.flatnonzero(~fill)
    sizes = np.zeros(len(blocks), dtype="<u8")
    frames: Any = ()
    if kept.size:
        # All frames of the shard in one call (python-zstandard's multi_compress_to_buffer,
        # GIL released): no Python call per 2-6 KB frame, ~30% less time than a loop.
        step = blocks.shape[1] * blocks.itemsize
        segments = np.stack([kept.astype("<u8") * step, np.full(kept.size, step, "<u8")], 1)
        source = zstandard.BufferWithSegments(memoryview(blocks).cast("B"), segments.tobytes())
        frames = compressor.multi_compress_to_buffer(source, threads=1)
        sizes[kept] = np.fromiter(map(len, frames), dtype="<u8", count=kept.size)
    index = np.stack([np.cumsum(sizes) - sizes, sizes], axis=1)
    index[fill] = EMPTY
    return b"".join(itertools.chain(frames, [_shard_index(index)]))


def _decoded(layout: ChunkLayout, stored: bytes) -> bytes:
    """``_decode``'s values as bytes (no copy for a plain chunk)."""
    if layout.inner is None:
        nbytes = math.prod(layout.chunks) * np.dtype(layout.dtype).itemsize
        return _decompress(stored, nbytes, layout.codec)
    return _decode(layout, stored).tobytes()


def _decode(layout: ChunkLayout, stored: bytes) -> np.ndarray:
    """The values of one stored chunk (or shard) of ``layout``: ValueError when the bytes
    do not decode to a whole chunk (a shard: its index does not check or points outside
    the shard, or an inner chunk does not decode)."""
    itemsize = np.dtype(layout.dtype).itemsize
    if layout.inner is None:
        raw = _decoded(layout, stored)
        return np.frombuffer(raw, dtype=layout.dtype).reshape(layout.chunks)
    n = math.prod(_inner_grid(layout))
    size = 16 * n + 4
    if len(stored) < size:
        raise ValueError("shorter than its index")
    view = memoryview(stored)
    raw_index = bytes(view[len(stored) - size : len(stored) - 4])
    if google_crc32c.value(raw_index) != struct.unpack("<I", view[-4:])[0]:
        raise ValueError("the shard index does not match its CRC-32C")
    index = np.frombuffer(raw_index, dtype="<u8").reshape(n, 2)
    blocks = np.full((n, math.prod(layout.inner)), layout.fill, dtype=layout.dtype)
    end = len(stored) - size
    for k, (offset, nbytes) in enumerate(index.tolist()):
        if offset == EMPTY and nbytes == EMPTY:
            continue
        if offset + nbytes > end:
            raise ValueError(f"inner chunk {k} lies outside the shard")
        frame = view[offset : offset + nbytes]
        blocks[k] = np.frombuffer(_decompress(frame, blocks.shape[1] * itemsize), layout.dtype)
    return _join(layout, blocks)


def _crc(data: bytes | np.ndarray) -> int:
    """CRC-32C of a chunk's values, bytes or a C-contiguous array (google-crc32c: ~3x
    faster than zlib's CRC-32; it reads an array's buffer, no copy, and refuses one that
    is not contiguous)."""
    crc: int = google_crc32c.value(data)
    return crc


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
    ``origin``). Returns the SHA-256 of the block and, per chunk, the CRC-32C of the values
    it must hold (None for a chunk of fill values, not written): ``write_band`` checks
    the stored chunks against them."""
    block = np.ascontiguousarray(block, dtype=np.dtype(layout.dtype))

    def one(index: tuple[int, ...]) -> tuple[tuple[int, ...], int | None]:
        part = block[_local(_region(layout, index), origin)]
        if layout.is_fill(part):
            return index, None
        whole = _whole(layout, part)
        io.put(layout.key(index), _encode(layout, whole))
        return index, _crc(whole)

    jobs: list[Callable[[], Any]] = [lambda: hashlib.sha256(block.data).digest()]
    jobs += [functools.partial(one, i) for i in _chunk_indices(layout, origin, block.shape)]
    digest, *crcs = _run(jobs, workers)
    return digest, dict(crcs)


def _load(
    layout: ChunkLayout, io: ChunkIO, index: tuple[int, ...], crc: int | None, out: np.ndarray
) -> bool:
    """Decode a stored map chunk into ``out`` (its part of a band) and check it against the
    CRC-32C of the values it must hold. False for a chunk not stored (all fill)."""
    key = layout.key(index)
    stored = io.get(key)
    if stored is None:
        if crc is None:
            return False
        raise _failure(layout, f"chunk {key} is missing")
    try:
        if _decode_into(layout, stored, out):
            values = out  # decoded in place: a whole chunk, contiguous in the band
        else:
            raw = _decoded(layout, stored)
            values = np.frombuffer(raw, dtype=layout.dtype).reshape(layout.chunks)
    except ValueError:
        raise _failure(layout, f"chunk {key} does not decode") from None
    if crc is None or _crc(values) != crc:
        raise _failure(layout, f"chunk {key} does not hold the source's values")
    if values is not out:
        out[...] = values[tuple(slice(0, s) for s in out.shape)]
    return True


def _decode_into(layout: ChunkLayout, stored: bytes, out: np.ndarray) -> bool:
    """Decode a whole Blosc chunk straight into ``out`` when ``out`` is the chunk's own
    contiguous memory (a map chunk of whole rows in a band): no decoded copy to allocate
    and move. False, touching nothing, when it is not; ValueError for a frame that is
    not one chunk's worth."""
    if not (
        layout.codec == "blosc"
        and layout.inner is None
        and out.shape == layout.chunks
        and out.flags.c_contiguous
        and out.dtype == np.dtype(layout.dtype)
    ):
        return False
    _unblosc(stored, out.nbytes, out)
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

    The band's map chunks are read from the store, decoded and checked against the CRC-32C
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
            got = _decode(series, encoded)
        except ValueError as exc:
            raise _failure(series, f"chunk {key} does not decode ({exc})") from None
        got = got[tuple(slice(0, s) for s in part.shape)]
        if not np.array_equal(_bits(got), _bits(part)):
            raise _failure(series, f"chunk {key} does not hold the source's values")

    indices = _chunk_indices(series, origin, shape)
    _run([functools.partial(one, n, i) for n, i in enumerate(indices)], workers)
    for layout in layouts:
        _zarr_check(layout, io, band, origin)
