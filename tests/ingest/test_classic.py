"""The NetCDF-3 classic header check that refuses truncated files (netCDF-C would read
their missing tail as zeros)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ingest._classic import required_size
from ingest.readers import ReadOptions, open_source
from oceanmart.errors import SourceError

# fixed-size variables only (etopo), and record variables along TIME (navy, coads)
FILES = [
    "etopo60.cdf",
    "levitus_climatology.cdf",
    "monthly_navy_winds.cdf",
    "coads_climatology.cdf",
]


@pytest.mark.parametrize("name", FILES)
def test_a_whole_classic_file_needs_exactly_its_size(levitus_file: Path, name: str) -> None:
    path = levitus_file.with_name(name)
    with path.open("rb") as f:
        assert required_size(f) == path.stat().st_size


@pytest.mark.parametrize("name", FILES)
@pytest.mark.parametrize("cut", [1, 4, 1000])
def test_a_classic_file_short_of_its_last_bytes_is_refused(
    levitus_file: Path, tmp_path: Path, name: str, cut: int
) -> None:
    data = levitus_file.with_name(name).read_bytes()
    short = tmp_path / name
    short.write_bytes(data[:-cut])
    with pytest.raises(SourceError, match="truncated NetCDF-3 file"):
        open_source(short, ReadOptions())


def test_a_cut_header_is_refused(levitus_file: Path, tmp_path: Path) -> None:
    short = tmp_path / "header.cdf"
    short.write_bytes(levitus_file.read_bytes()[:100])
    with pytest.raises(SourceError, match="corrupt NetCDF-3 header"):
        open_source(short, ReadOptions())
