"""Where product versions live on disk: ``<root>/products/<product>/<version>/map.zarr``."""

from __future__ import annotations

import warnings
from pathlib import Path

import xarray as xr

from oceanmart.errors import NotFound

# Consolidated metadata is a zarr-python extension to v3; we rely on it so that remote
# readers (``xr.open_zarr`` over HTTP) fetch one metadata document instead of many.
warnings.filterwarnings("ignore", message="Consolidated metadata", category=UserWarning)


class DataStore:
    """The local data folder of the embedded default (fsspec URLs come with ingest)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        # Versions are immutable, so an opened store never goes stale: keep it (lazy, so
        # only metadata is held) instead of re-reading its metadata on every request.
        self._open: dict[tuple[str, str, bool], xr.Dataset] = {}

    def staging_dir(self) -> Path:
        path = self.root / ".staging"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def version_dir(self, product_id: str, version_id: str) -> Path:
        return self.root / "products" / product_id / version_id

    def open_version(self, store_path: str, copy: str = "map", *, dask: bool = True) -> xr.Dataset:
        """Open a version lazily: with dask (for streaming large reads) or without (direct
        zarr reads, about half the overhead for small ones)."""
        cached = self._open.get((store_path, copy, dask))
        if cached is not None:
            return cached
        path = self.root / store_path / f"{copy}.zarr"
        if not path.exists():
            raise NotFound(f"the store of version {store_path} is missing from the data folder")
        ds: xr.Dataset = xr.open_zarr(
            path, zarr_format=3, consolidated=True, chunks={} if dask else None
        )
        self._open[(store_path, copy, dask)] = ds
        return ds
