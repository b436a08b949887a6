"""Zarr v3 stores as HTTP resources: resolve a request key to a stored object.

The HTTP layer serves the stored bytes as they are (no decode, no re-encode), so a
remote ``xr.open_zarr`` costs little more than a local one. Keys are checked against
the store's own metadata: a metadata document (``zarr.json``, ``NAME/zarr.json``) or a
chunk of a known array inside its chunk grid; anything else is not found. Every object
of a published version is immutable, so its ETag is the version id and the key.

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

import xarray as xr

from catalog.products import ProductInfo, SubsetInfo
from catalog.sea_areas import SeaAreaInfo
from catalog.selection import selection_from_json
from catalog.store import DataStore
from oceanmart.errors import NotFound

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
_METADATA = re.compile(rf"^(?:({_NAME})/)?zarr\.json$")
_CHUNK = re.compile(rf"^({_NAME})/c((?:/\d+)+)$")


@dataclass(frozen=True, slots=True)
class StoredObject:
    """One object of a published Zarr store."""

    location: str  # path (local store) or URL (object store)
    # "chunk": values of a data variable, metered; "metadata" (zarr.json) and
    # "coordinate" (a chunk of a dimension's own axis: times, latitudes, ...) are gated
    # but not metered, as the catalog publishes both free (STAC cube:dimensions).
    kind: Literal["metadata", "coordinate", "chunk"]
    cells: int  # values in the chunk (the chunk grid's shape), 0 for metadata
    size: int  # stored bytes
    etag: str  # strong, stable: the store is immutable

    @property
    def selection_hash(self) -> str:
        """What was asked, as a stable hash (the ledger records it)."""
        return hashlib.sha256(self.etag.encode()).hexdigest()


class ZarrStores:
    """Resolves keys of the Zarr stores in one data store (array metadata cached)."""

    def __init__(self, store: DataStore) -> None:
        self.store = store
        self._chunks: dict[str, tuple[int, ...]] = {}
        self._grids: dict[str, tuple[int, ...]] = {}
        self._axes: dict[str, bool] = {}
        self._lock = threading.Lock()

    def version_root(self, product: ProductInfo, copy: str) -> str:
        if copy not in COPIES:
            raise NotFound(f"no copy {copy!r} (copies: {', '.join(COPIES)})")
        assert product.version is not None
        return self.store.location(product.version.store_path, f"{copy}.zarr")

    def subset_root(self, subset_id: str) -> str:
        return self.store.location("subsets", f"{subset_id}.zarr")

    def _array(self, root: str, name: str) -> tuple[tuple[int, ...], tuple[int, ...], bool]:
        """(chunk shape, chunk grid, is a dimension's axis) of array ``name`` of the
        store at ``root``."""
        where = f"{root}/{name}"
        with self._lock:
            if where in self._chunks:
                return self._chunks[where], self._grids[where], self._axes[where]
        try:
            meta = json.loads(self.store.fs.cat_file(f"{where}/zarr.json"))
        except FileNotFoundError:
            raise NotFound(f"no array {name!r} in this store") from None
        if meta.get("node_type") != "array":
            raise NotFound(f"{name!r} is not an array")
        shape = tuple(int(n) for n in meta["shape"])
        chunks = tuple(int(n) for n in meta["chunk_grid"]["configuration"]["chunk_shape"])
        grid = tuple(math.ceil(s / c) if c else 0 for s, c in zip(shape, chunks, strict=True))
        axis = meta.get("dimension_names") == [name.rsplit("/", 1)[-1]]
        with self._lock:
            self._chunks[where], self._grids[where], self._axes[where] = chunks, grid, axis
        return chunks, grid, axis

    def resolve(self, root: str, key: str, etag_base: str) -> StoredObject:
        """The object at ``key`` of the store at ``root`` or NotFound (a missing chunk is
        how Zarr says "all fill value", so clients expect the 404)."""
        cells = 0
        if (m := _METADATA.match(key)) is not None:
            kind: Literal["metadata", "coordinate", "chunk"] = "metadata"
        elif (m := _CHUNK.match(key)) is not None:
            chunks, grid, axis = self._array(root, m.group(1))
            kind = "coordinate" if axis else "chunk"
            index = tuple(int(i) for i in m.group(2).strip("/").split("/"))
            if len(index) != len(grid) or any(i >= n for i, n in zip(index, grid, strict=True)):
                raise NotFound(f"no chunk {key!r}")
            cells = math.prod(chunks)
        else:
            raise NotFound(f"no Zarr object {key!r}")
        location = f"{root}/{key}"
        try:
            size = int(self.store.fs.size(location))
        except FileNotFoundError:
            raise NotFound(f"no Zarr object {key!r}") from None
        return StoredObject(location, kind, cells, size, f'"{etag_base}/{key}"')

    def read(self, obj: StoredObject, start: int | None = None, end: int | None = None) -> bytes:
        data: bytes = self.store.fs.cat_file(obj.location, start=start, end=end)
        return data

    def local_path(self, obj: StoredObject) -> str | None:
        """The file behind ``obj`` on a local store (served with sendfile), else None."""
        return obj.location if self.store.local else None

    def size(self, root: str) -> int:
        return self.store.size(root)

    def iter_zip(self, root: str, block: int = 1 << 20) -> Iterator[bytes]:
        """The store at ``root`` as a zip archive (the store's root at the archive's root,
        as ``zarr.storage.ZipStore`` and ``zip::`` URLs expect), produced
        piece by piece: nothing is held whole in memory. Entries are stored, not
        deflated: the chunks are zstd-compressed already."""
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
