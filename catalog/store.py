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

    def staging_dir(self) -> Path:
        path = self.root / ".staging"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def version_dir(self, product_id: str, version_id: str) -> Path:
        return self.root / "products" / product_id / version_id

    def open_version(self, store_path: str, copy: str = "map") -> xr.Dataset:
        path = self.root / store_path / f"{copy}.zarr"
        if not path.exists():
            raise NotFound(f"the store of version {store_path} is missing from the data folder")
        ds: xr.Dataset = xr.open_zarr(path, zarr_format=3, consolidated=True)
        return ds
