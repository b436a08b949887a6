"""Where product versions live: ``<data>/products/<product>/<version>/{map,series}.zarr``.

``<data>`` is a local folder (the embedded default) or any fsspec URL (``s3://bucket/x``,
``gs://...``, ``memory://...``) with its storage options. Publishing a version moves it
from ``<data>/.staging/<run>/`` to its final place: a rename on a local folder (atomic),
a copy then delete on an object store, which has no rename. There a ``.published``
marker is written after the last object, so a move cut short is recognised and redone;
on a local folder the rename itself is the marker.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fsspec
import xarray as xr
from fsspec.implementations.local import LocalFileSystem

from oceanmart.errors import ConfigurationError, NotFound

if TYPE_CHECKING:
    from oceanmart.settings import Settings

# Consolidated metadata is a zarr-python extension to v3; we rely on it so that remote
# readers (``xr.open_zarr`` over HTTP) fetch one metadata document instead of many.
warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)

MARKER = ".published"


class DataStore:
    """The data store: a local folder or an fsspec URL."""

    def __init__(self, url: str | Path, storage_options: dict[str, Any] | None = None) -> None:
        self.storage_options = dict(storage_options or {})
        text = str(url).removeprefix("file://").rstrip("/")
        try:
            self.fs, path = fsspec.core.url_to_fs(text, **self.storage_options)
        except (ImportError, ValueError) as exc:
            # e.g. s3:// without s3fs installed; the message names the package, not secrets
            raise ConfigurationError(f"OCEANMART_DATA_URL: {exc}") from None
        self.local = isinstance(self.fs, LocalFileSystem)
        # A local store keeps its path as given (relative paths stay relative).
        self.root_url = text if self.local else self.fs.unstrip_protocol(path).rstrip("/")
        # Versions are immutable, so an opened store never goes stale: keep it (lazy, so
        # only metadata is held) instead of re-reading its metadata on every request.
        self._open: dict[tuple[str, str, bool], xr.Dataset] = {}
        self._derived: dict[tuple[str, str, bool], xr.Dataset] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> DataStore:
        options = settings.data_storage_options
        try:
            parsed = json.loads(options.get_secret_value()) if options is not None else {}
        except json.JSONDecodeError:
            parsed = None
        if not isinstance(parsed, dict):
            raise ConfigurationError("OCEANMART_DATA_STORAGE_OPTIONS: not a JSON object")
        return cls(settings.data_url, parsed)

    @property
    def root(self) -> Path:
        """The local folder (local stores only)."""
        if not self.local:
            raise TypeError("a remote data store has no local folder")
        return Path(self.root_url)

    def location(self, *parts: str) -> str:
        """Path (local) or URL (remote) of ``parts`` under the store, for zarr and xarray."""
        return "/".join([self.root_url, *parts])

    @property
    def zarr_options(self) -> dict[str, Any]:
        """Keyword arguments that let zarr and xarray reach a location of this store."""
        return {} if self.local else {"storage_options": self.storage_options}

    def exists(self, location: str) -> bool:
        return bool(self.fs.exists(location))

    def size(self, location: str) -> int:
        """Bytes of the objects under ``location``."""
        if self.local:
            # os.walk: fsspec's du builds an info dict per file in Python, ~0.5 ms per
            # folder and file (~1 s for a 365-step product's copies)
            if os.path.isfile(location):  # noqa: PTH113
                return os.path.getsize(location)  # noqa: PTH202
            return sum(
                os.stat(os.path.join(folder, name)).st_size  # noqa: PTH118, PTH116
                for folder, _, names in os.walk(location)
                for name in names
            )
        return int(self.fs.du(location, total=True))

    def iter_bytes(self, location: str, block: int = 1 << 20) -> Iterator[bytes]:
        """The object at ``location``, piece by piece."""
        with self.fs.open(location, "rb") as f:
            while piece := f.read(block):
                yield piece

    def remove(self, location: str) -> None:
        if self.fs.exists(location):
            self.fs.rm(location, recursive=True)

    def staging_runs(self) -> list[str]:
        """Names of the staging folders of ingest runs (live or dead)."""
        where = self.location(".staging")
        if not self.fs.exists(where):
            return []
        return [str(p).rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(where, detail=False)]

    def staging(self, run: str) -> str:
        if self.local:
            (self.root / ".staging" / run).mkdir(parents=True, exist_ok=True)
        return self.location(".staging", run)

    def version_location(self, product_id: str, version_id: str) -> str:
        return self.location("products", product_id, version_id)

    def is_published(self, final: str) -> bool:
        if self.local:
            return Path(final).exists()
        return self.exists(f"{final}/{MARKER}")

    def publish(self, staging: str, final: str) -> None:
        """Move a validated staging folder to its final place (see the module docstring)."""
        if self.local:
            Path(final).parent.mkdir(parents=True, exist_ok=True)
            try:
                Path(staging).rename(final)
            except OSError:
                if not Path(final).exists():  # another run published the same version
                    raise
            return
        self.remove(final)  # a copy cut short by an earlier run
        # File by file: object stores have no directories, and a recursive ``mv`` of
        # their pseudo-folders fails on some backends (s3fs copies the prefix itself).
        sources = [str(p) for p in self.fs.find(staging)]
        base = self.fs._strip_protocol(staging)
        dest = self.fs._strip_protocol(final)
        self.fs.copy(sources, [dest + p[len(base) :] for p in sources])
        self.fs.pipe(f"{final}/{MARKER}", b"")
        self.remove(staging)

    def derived(self, key: tuple[str, str, bool], make: Callable[[], xr.Dataset]) -> xr.Dataset:
        """A dataset built from opened versions (``make``), built once: versions never
        change, so neither does anything made of them alone."""
        cached = self._derived.get(key)
        if cached is None:
            cached = self._derived[key] = make()
        return cached

    def open_version(self, store_path: str, copy: str = "map", *, dask: bool = True) -> xr.Dataset:
        """Open a version lazily: with dask (for streaming large reads) or without (direct
        zarr reads, about half the overhead for small ones)."""
        cached = self._open.get((store_path, copy, dask))
        if cached is not None:
            return cached
        final = self.location(store_path)
        if not self.is_published(final):
            raise NotFound(f"the store of version {store_path} is missing from the data folder")
        where = f"{final}/{copy}.zarr"
        ds: xr.Dataset = xr.open_zarr(
            where, zarr_format=3, consolidated=True, chunks=None, **self.zarr_options
        )
        if dask:
            # One dask chunk per stored object: a shard for a sharded array. xarray (up
            # to 2026.9 at least, pydata/xarray#11460) takes a sharded array's inner
            # chunks as its preferred dask chunks: 259,200 tasks for one 720x1440 grid
            # of 2x2 inner chunks, a second to build before anything is read.
            shards = {
                str(d): n
                for v in ds.data_vars.values()
                if v.encoding.get("shards")
                for d, n in zip(v.dims, v.encoding["shards"], strict=True)
            }
            ds = xr.open_zarr(
                where, zarr_format=3, consolidated=True, chunks=shards, **self.zarr_options
            )
        self._open[(store_path, copy, dask)] = ds
        return ds
