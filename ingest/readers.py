"""Source readers: one per engine, each turning a file into an ``xarray.Dataset``.

Every reader raises ``SourceError`` naming the file for anything it cannot read, so the
CLI can print one line and publish nothing. GRIB and vector readers arrive with the
ingest issue; they implement the same ``Reader`` base.
"""

from __future__ import annotations

import abc
import gc
import warnings
from pathlib import Path
from typing import ClassVar

import xarray as xr

from oceanmart.errors import SourceError


class Reader(abc.ABC):
    """Opens one kind of source file lazily."""

    suffixes: ClassVar[tuple[str, ...]]

    @abc.abstractmethod
    def open(self, path: Path) -> xr.Dataset:
        """Return the file as a lazily loaded dataset; raise SourceError when unreadable."""


def _check_classic_complete(path: Path) -> None:
    """Refuse a truncated NetCDF-3 file.

    netCDF-C (and so netCDF4-python and even ncdump) reads the missing tail of a
    truncated classic file as zeros without an error. scipy's classic reader maps every
    variable at its header offset and fails when the file is too short, so we ask it.
    """
    from scipy.io import netcdf_file

    problem = None
    with warnings.catch_warnings():
        # A file that fails half-way through scipy's constructor is closed by its
        # destructor, which warns about the arrays it had already mapped.
        warnings.filterwarnings("ignore", "Cannot close a netcdf_file", RuntimeWarning)
        try:
            netcdf_file(path, mode="r", mmap=True).close()
        except (ValueError, TypeError, OSError) as exc:
            problem = str(exc)
        gc.collect()
    if problem is not None:
        raise SourceError(f"{path}: truncated or corrupt NetCDF-3 file ({problem})")


class NetCDFReader(Reader):
    """NetCDF 3 and 4 (and HDF5-based NetCDF) through netCDF4."""

    suffixes = (".nc", ".cdf", ".nc4", ".netcdf")

    def open(self, path: Path) -> xr.Dataset:
        if not path.exists():
            raise SourceError(f"{path}: no such file")
        with path.open("rb") as f:
            magic = f.read(4)
        if magic in (b"CDF\x01", b"CDF\x02"):  # CDF-5 is beyond scipy's reader
            _check_classic_complete(path)
        try:
            return xr.open_dataset(path, engine="netcdf4", decode_times=True)
        except ValueError as exc:
            if "decode time" not in str(exc) and "calendar" not in str(exc):
                raise SourceError(f"{path}: {exc}") from None
        except OSError as exc:
            raise SourceError(
                f"{path}: not a readable NetCDF file ({exc.strerror or exc})"
            ) from None
        # Times cftime cannot decode (e.g. climatologies `hour since 0000-01-01`): keep the
        # raw numbers; normalisation builds a proper coordinate from them.
        try:
            return xr.open_dataset(path, engine="netcdf4", decode_times=False)
        except (OSError, ValueError) as exc:
            raise SourceError(f"{path}: {exc}") from None


READERS: tuple[Reader, ...] = (NetCDFReader(),)


def open_source(path: Path) -> xr.Dataset:
    """Open ``path`` with the reader registered for its suffix."""
    for reader in READERS:
        if path.suffix.lower() in reader.suffixes:
            return reader.open(path)
    known = ", ".join(s for r in READERS for s in r.suffixes)
    raise SourceError(f"{path}: no reader for {path.suffix or 'files without a suffix'} ({known})")
