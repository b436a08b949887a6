"""Zarr v3 stores as HTTP resources: resolve a request key to a stored object.

The HTTP layer serves the stored bytes as they are (no decode, no re-encode), so a
remote ``xr.open_zarr`` costs little more than a local one. Keys are checked against
the store's own metadata: a metadata document (``zarr.json``, ``NAME/zarr.json``) or a
chunk of a known array inside its chunk grid; anything else is not found. Every object
of a published version is immutable, so its ETag is the version id and the key.

Sharded arrays (zarr v3 ``sharding_indexed``: one stored object, a *shard*, holds many
inner chunks and an index of their (offset, length)) are read by zarr-python with byte
ranges: the index first (a suffix range, ``bytes=-N``, when the index is at the end),
then one range per inner chunk it needs. What a range delivers is metered as the inner
chunks it overlaps (their cells, the bytes sent); a range inside the index alone is free,
as metadata is. A whole shard is metered as all of its cells.

Purchased subsets are materialised once as their own Zarr store
(``<data>/subsets/<subset id>.zarr``), written to a staging name and renamed.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import re
import threading
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import xarray as xr

from catalog.products import ProductInfo, SubsetInfo
from catalog.sea_areas import SeaAreaInfo
from catalog.selection import selection_from_json
from catalog.store import DataStore
from oceanmart.errors import NotFound
from oceanmart.lru import LRU

COPIES = ("map", "series")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed entry times: the same subset zips the same


class _Sink(io.RawIOBase):
    """A write-only, unseekable file that hands out what was written so far."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self._parts.append(bytes(b))
        return len(b)

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


_NAME = r"[A-Za-z0-9_.\-]+"
_EMPTY = 2**64 - 1  # index entry of an inner chunk that is not stored (all fill value)
_INDEX_CACHE = 1024  # shard indexes kept in memory (a 19x19 shard's is 5.8 kB)
_METADATA = re.compile(rf"^(?:({_NAME})/)?zarr\.json$")
_CHUNK = re.compile(rf"^({_NAME})/c((?:/\d+)+)$")


@dataclass(frozen=True, slots=True)
class Shard:
    """The layout of a shard of a sharded array (zarr v3 ``sharding_indexed``)."""

    inner_cells: int  # values in one inner chunk
    count: int  # inner chunks per shard
    index_bytes: int  # the index: count x (offset, nbytes) as uint64, then its CRC-32C
    index_at_end: bool
    index_dtype: str  # "<u8" or ">u8"

    def index_span(self, size: int) -> tuple[int, int]:
        """Where the index of a shard of ``size`` bytes lies: [start, end)."""
        return (size - self.index_bytes, size) if self.index_at_end else (0, self.index_bytes)


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One object of a published Zarr store."""

    location: str  # path (local store) or URL (object store)
    # "chunk": values of a data variable (a shard, for a sharded one), metered;
    # "metadata" (zarr.json) and "coordinate" (a chunk of a dimension's own axis: times,
    # latitudes, ...) are gated but not metered, as the catalog publishes both free
    # (STAC cube:dimensions).
    kind: Literal["metadata", "coordinate", "chunk"]
    cells: int  # values in the chunk (the chunk grid's shape), 0 for metadata
    size: int  # stored bytes
    etag: str  # strong, stable: the store is immutable
    shard: Shard | None = None  # set for a shard of a sharded array

    @property
    def selection_hash(self) -> str:
        """What was asked, as a stable hash (the ledger records it)."""
        return hashlib.sha256(self.etag.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class _ArrayInfo:
    chunk: tuple[int, ...]  # the chunk grid's chunk (a shard, for a sharded array)
    grid: tuple[int, ...]  # chunks along each dimension
    axis: bool  # a dimension's own coordinate
    shard: Shard | None


def _shard(meta: dict[str, Any]) -> Shard | None:
    """The shard layout of an array's metadata, None when it is not sharded."""
    codecs = meta.get("codecs") or []
    if len(codecs) != 1 or codecs[0].get("name") != "sharding_indexed":
        return None
    conf = codecs[0]["configuration"]
    inner = [int(n) for n in conf["chunk_shape"]]
    outer = meta["chunk_grid"]["configuration"]["chunk_shape"]
    count = math.prod(int(o) // i for o, i in zip(outer, inner, strict=True))
    index_codecs = conf.get("index_codecs") or [{"name": "bytes"}]
    names = [c.get("name") for c in index_codecs]
    endian = next(
        (c.get("configuration", {}).get("endian", "little") for c in index_codecs
         if c.get("name") == "bytes"), "little",
    )  # fmt: skip
    return Shard(
        inner_cells=math.prod(inner),
        count=count,
        index_bytes=16 * count + (4 if "crc32c" in names else 0),
        index_at_end=conf.get("index_location", "end") == "end",
        index_dtype="<u8" if endian == "little" else ">u8",
    )


class ZarrStores:
    """Resolves keys of the Zarr stores in one data store (array metadata cached)."""

    def __init__(self, store: DataStore) -> None:
        self.store = store
        self._arrays: dict[str, _ArrayInfo] = {}
        self._coordinates: dict[str, frozenset[str]] = {}
        self._indexes: LRU[str, np.ndarray] = LRU(_INDEX_CACHE)
        self._lock = threading.Lock()

    def version_root(self, product: ProductInfo, copy: str) -> str:
        if copy not in COPIES:
            raise NotFound(f"no copy {copy!r} (copies: {', '.join(COPIES)})")
        assert product.version is not None
        return self.store.location(product.version.store_path, f"{copy}.zarr")

    def subset_root(self, subset_id: str) -> str:
        return self.store.location("subsets", f"{subset_id}.zarr")

    def _array(self, root: str, name: str) -> _ArrayInfo:
        """The chunk layout of array ``name`` of the store at ``root`` (read once)."""
        where = f"{root}/{name}"
        with self._lock:
            if where in self._arrays:
                return self._arrays[where]
        try:
            meta = json.loads(self.store.fs.cat_file(f"{where}/zarr.json"))
        except FileNotFoundError:
            raise NotFound(f"no array {name!r} in this store") from None
        if meta.get("node_type") != "array":
            raise NotFound(f"{name!r} is not an array")
        shape = tuple(int(n) for n in meta["shape"])
        chunks = tuple(int(n) for n in meta["chunk_grid"]["configuration"]["chunk_shape"])
        grid = tuple(math.ceil(s / c) if c else 0 for s, c in zip(shape, chunks, strict=True))
        axis = meta.get("dimension_names") == [name] or name in self._coordinate_names(root)
        info = _ArrayInfo(chunks, grid, axis, _shard(meta))
        with self._lock:
            self._arrays[where] = info
        return info

    def _coordinate_names(self, root: str) -> frozenset[str]:
        """Arrays the store's variables name as their coordinates (CF ``coordinates``, as
        xarray writes it: bounds such as ``climatology_bounds``, labels such as ``month``):
        they describe the grid, hold no data values, and are read free like its axes."""
        with self._lock:
            if root in self._coordinates:
                return self._coordinates[root]
        try:
            meta = json.loads(self.store.fs.cat_file(f"{root}/zarr.json"))
        except FileNotFoundError:
            raise NotFound("no Zarr store here") from None
        nodes = (meta.get("consolidated_metadata") or {}).get("metadata") or {}
        texts = [meta.get("attributes", {}).get("coordinates", "")]
        texts += [n.get("attributes", {}).get("coordinates", "") for n in nodes.values()]
        names = frozenset(w for t in texts if isinstance(t, str) for w in t.split())
        with self._lock:
            self._coordinates[root] = names
        return names

    def resolve(self, root: str, key: str, etag_base: str) -> StoredObject:
        """The object at ``key`` of the store at ``root`` or NotFound (a missing chunk is
        how Zarr says "all fill value", so clients expect the 404)."""
        cells = 0
        shard = None
        if (m := _METADATA.match(key)) is not None:
            kind: Literal["metadata", "coordinate", "chunk"] = "metadata"
        elif (m := _CHUNK.match(key)) is not None:
            info = self._array(root, m.group(1))
            kind = "coordinate" if info.axis else "chunk"
            index = tuple(int(i) for i in m.group(2).strip("/").split("/"))
            grid = info.grid
            if len(index) != len(grid) or any(i >= n for i, n in zip(index, grid, strict=True)):
                raise NotFound(f"no chunk {key!r}")
            cells, shard = math.prod(info.chunk), info.shard
        else:
            raise NotFound(f"no Zarr object {key!r}")
        location = f"{root}/{key}"
        try:
            size = int(self.store.fs.size(location))
        except FileNotFoundError:
            raise NotFound(f"no Zarr object {key!r}") from None
        return StoredObject(location, kind, cells, size, f'"{etag_base}/{key}"', shard)

    def _index(self, obj: StoredObject, shard: Shard) -> np.ndarray:
        """The (offset, nbytes) rows of a shard's inner chunks (cached: shards never
        change)."""

        def read() -> np.ndarray:
            start, _ = shard.index_span(obj.size)
            raw = self.read(obj, start, start + 16 * shard.count)
            return np.frombuffer(raw, dtype=shard.index_dtype).reshape(shard.count, 2)

        return self._indexes.get_or_make(obj.location, read)

    def metered(self, obj: StoredObject, span: tuple[int, int] | None) -> tuple[int, int] | None:
        """(cells, bytes) to meter for sending ``span`` ([start, end) bytes; None: all of
        it) of ``obj``, or None when nothing is metered: metadata, a coordinate chunk, or
        a range inside a shard's index (what a reader asks first, as free as metadata).
        A range of a shard is charged the inner chunks whose stored bytes it overlaps."""
        if obj.kind != "chunk":
            return None
        start, end = span if span is not None else (0, obj.size)
        sent = end - start
        shard = obj.shard
        if shard is None or span is None:
            return obj.cells, sent
        lo, hi = shard.index_span(obj.size)
        if lo <= start and end <= hi:
            return None
        rows = self._index(obj, shard)
        stored = rows[:, 0] != _EMPTY
        offset, nbytes = rows[stored, 0], rows[stored, 1]
        touched = int(np.count_nonzero((offset < end) & (offset + nbytes > start)))
        return touched * shard.inner_cells, sent

    def read(self, obj: StoredObject, start: int | None = None, end: int | None = None) -> bytes:
        data: bytes = self.store.fs.cat_file(obj.location, start=start, end=end)
        return data

    def iter_bytes(self, obj: StoredObject) -> Iterator[bytes]:
        return self.store.iter_bytes(obj.location)

    def local_path(self, obj: StoredObject) -> str | None:
        """The file behind ``obj`` on a local store (served with sendfile), else None."""
        return obj.location if self.store.local else None

    def size(self, root: str) -> int:
        return self.store.size(root)

    def iter_zip(self, root: str, block: int = 1 << 20) -> Iterator[bytes]:
        """The store at ``root`` as a zip archive (the store's root at the archive's root,
        as ``zarr.storage.ZipStore`` and ``zip::`` URLs expect), produced
        piece by piece: nothing is held whole in memory. Entries are stored, not
        deflated: the chunks are compressed already (Blosc or zstd)."""
        sink = _Sink()
        base = self.store.fs._strip_protocol(root).rstrip("/")
        with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
            for path in sorted(self.store.fs.find(root)):
                rel = path[len(base) :].lstrip("/")
                info = zipfile.ZipInfo(rel, date_time=_ZIP_EPOCH)
                with (
                    self.store.fs.open(path, "rb") as src,
                    zf.open(info, "w", force_zip64=True) as dst,
                ):
                    while piece := src.read(block):
                        dst.write(piece)
                        if out := sink.take():
                            yield out
        if out := sink.take():
            yield out

    def materialise_subset(
        self,
        subset: SubsetInfo,
        product: ProductInfo,
        limit_bytes: int,
        area: SeaAreaInfo | None = None,
    ) -> str:
        """The Zarr store of a saved subset, written once (atomic rename on a local
        store; copy-then-marker on an object store, as versions are published)."""
        from catalog.subset import cut

        root = self.subset_root(subset.id)
        if self.store.is_published(root):
            return root
        selection = selection_from_json(subset.selection)
        selected, _ = cut(self.store, product, selection, limit_bytes, area)
        staging = self.store.staging(f"subset-{subset.id[:16]}-{uuid.uuid4().hex[:8]}")
        target = f"{staging}/data.zarr"
        out: xr.Dataset = selected.copy()
        for var in out.variables.values():
            var.encoding = {}
        out.attrs.update(
            {
                "oceanmart_product": product.id,
                "oceanmart_version": subset.version_id,
                "oceanmart_subset": subset.id,
                "oceanmart_selection": json.dumps(subset.selection, sort_keys=True),
            }
        )
        out.to_zarr(target, zarr_format=3, consolidated=True, mode="w", **self.store.zarr_options)
        self.store.publish(target, root)
        self.store.remove(staging)
        return root
