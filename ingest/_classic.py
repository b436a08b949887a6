"""The size a NetCDF-3 classic file needs, from its header alone.

netCDF-C (and so netCDF4-python and even ncdump) reads the missing tail of a truncated
classic file as zeros without an error, so a truncated file must be refused before it
is read. scipy's classic reader finds it (it maps every variable at its header offset),
but importing ``scipy.io``, mapping and collecting cost ~0.3 s per ingest; the header is
simple enough to read here (the NetCDF classic format spec, CDF-1 and CDF-2).
"""

from __future__ import annotations

import math
import struct
from typing import BinaryIO

# nc_type -> bytes per value: BYTE, CHAR, SHORT, INT, FLOAT, DOUBLE
_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8}
_DIMENSION, _VARIABLE, _ATTRIBUTE = 0x0A, 0x0B, 0x0C
_STREAMING = 0xFFFFFFFF


class _Header:
    def __init__(self, f: BinaryIO, offset_bytes: int) -> None:
        self.f = f
        self.offset_bytes = offset_bytes

    def read(self, n: int) -> bytes:
        data = self.f.read(n)
        if len(data) != n:
            raise ValueError("the header is cut short")
        return data

    def u32(self) -> int:
        value: int = struct.unpack(">I", self.read(4))[0]
        return value

    def offset(self) -> int:
        value: int = struct.unpack(
            ">Q" if self.offset_bytes == 8 else ">I", self.read(self.offset_bytes)
        )[0]
        return value

    def name(self) -> str:
        n = self.u32()
        return self.read(n + (-n % 4)).decode("utf-8", "replace")[:n]

    def count(self, tag: int) -> int:
        """The number of elements of a list with ``tag`` (0 for an absent list)."""
        found, n = self.u32(), self.u32()
        if found not in (0, tag) or (found == 0 and n != 0):
            raise ValueError(f"bad list tag {found:#x}")
        return n

    def skip_attributes(self) -> None:
        for _ in range(self.count(_ATTRIBUTE)):
            self.name()
            kind, n = self.u32(), self.u32()
            if kind not in _SIZES:
                raise ValueError(f"unknown attribute type {kind}")
            size = n * _SIZES[kind]
            self.read(size + (-size % 4))


def required_size(f: BinaryIO) -> int | None:
    """The bytes a classic file (open at its start) must hold for every variable's data,
    or None when its record count is not recorded (streaming). ValueError for a header
    that does not parse."""
    magic = f.read(4)
    if magic not in (b"CDF\x01", b"CDF\x02"):
        raise ValueError("not a NetCDF classic (CDF-1/CDF-2) file")
    h = _Header(f, 4 if magic[3] == 1 else 8)
    records = h.u32()
    dims = []
    for _ in range(h.count(_DIMENSION)):
        h.name()
        dims.append(h.u32())
    h.skip_attributes()
    fixed = 0
    record_vars: list[tuple[int, int]] = []  # (begin, bytes of one record)
    for _ in range(h.count(_VARIABLE)):
        h.name()
        ids = [h.u32() for _ in range(h.u32())]
        if any(i >= len(dims) for i in ids):
            raise ValueError("a variable names an unknown dimension")
        h.skip_attributes()
        kind = h.u32()
        if kind not in _SIZES:
            raise ValueError(f"unknown variable type {kind}")
        h.u32()  # vsize: may be clipped for large variables, recomputed below
        begin = h.offset()
        shape = [dims[i] for i in ids]
        if shape and shape[0] == 0:  # the record dimension
            record_vars.append((begin, math.prod(shape[1:]) * _SIZES[kind]))
        else:
            fixed = max(fixed, begin + math.prod(shape) * _SIZES[kind])
    if not record_vars or records == 0:
        return fixed
    if records == _STREAMING:
        return None
    # One record holds every record variable, each padded to 4 bytes unless it is the
    # only one (the spec's special case).
    record = (
        record_vars[0][1] if len(record_vars) == 1 else sum(n + (-n % 4) for _, n in record_vars)
    )
    last = max(begin + (records - 1) * record + n for begin, n in record_vars)
    return max(fixed, last)
