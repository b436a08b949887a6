"""A sharded series copy: what it costs to write, and what a point series then decodes.

The ingest writes the series copy of long series this way (``ingest/_chunkstore.py``);
this bench keeps the comparison with zarr-python's own sharding codec. One band of the generated
365x720x1440 float32 series (365 x 228 x 1444, ~0.32 of it) is written three ways as a
zarr v3 array, each in the same run:

- today's series chunks (365, 38, 38) through zarr-python (the reference);
- shards of (365, 38, 38) holding inner chunks (365, 2, 2), through zarr-python's
  sharding codec;
- the same shards written by hand in the format of the zarr v3 sharding spec (the inner
  chunks' zstd frames concatenated, then the index of (offset, nbytes) uint64 pairs in C
  order and its CRC-32C), read back by zarr-python unchanged and compared.

It prints seconds, CPU seconds and bytes for each, and the bytes a point series decodes
per byte it returns.

Run: ``.venv/bin/python bench/shard_series.py``.
"""

from __future__ import annotations

import os
import shutil
import struct
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import google_crc32c
import numpy as np
import zarr
from numcodecs import Zstd
from zarr.codecs import ZstdCodec

warnings.filterwarnings("ignore", category=UserWarning)
T, NY, NX = 365, 228, 1444
SHARD = (T, 38, 38)
INNER = (T, 2, 2)
EMPTY = 2**64 - 1  # index entry of an inner chunk not stored (all fill)


def band() -> np.ndarray:
    """The bench's SST-like field: a smooth latitude profile plus weather noise."""
    lat = np.linspace(-89.875, 89.875, 720)[:NY]
    base = (28 * np.cos(np.deg2rad(lat))[:, None] - 2) * np.ones((1, NX), "f4")
    rng = np.random.default_rng(42)
    return (base[None] + rng.normal(0, 0.3, (T, NY, NX))).astype("f4")


def create(path: Path, sharded: bool) -> zarr.Array:
    return zarr.create_array(
        str(path),
        shape=(T, NY, NX),
        dtype="f4",
        chunks=INNER if sharded else SHARD,
        shards=SHARD if sharded else None,
        compressors=[ZstdCodec(level=3)],
        fill_value=np.nan,
        zarr_format=3,
    )


def shard_bytes(tile: np.ndarray) -> bytes:
    """One shard in the sharding spec's format (index at the end, CRC-32C of the index)."""
    t, ny, nx = INNER
    blocks = np.ascontiguousarray(
        tile.reshape(T, SHARD[1] // ny, ny, SHARD[2] // nx, nx).transpose(1, 3, 0, 2, 4)
    ).reshape(-1, t * ny * nx)
    index = np.empty((blocks.shape[0], 2), "<u8")
    parts = []
    offset = 0
    z = Zstd(level=3)
    for k, values in enumerate(blocks):
        if np.isnan(values).all():
            index[k] = (EMPTY, EMPTY)
            continue
        frame = z.encode(values)
        parts.append(frame)
        index[k] = (offset, len(frame))
        offset += len(frame)
    raw = index.tobytes()
    return b"".join(parts) + raw + struct.pack("<I", google_crc32c.value(raw))


def by_hand(path: Path, data: np.ndarray) -> None:
    create(path, sharded=True)

    def one(j: int, i: int) -> None:
        tile = data[:, j * SHARD[1] : (j + 1) * SHARD[1], i * SHARD[2] : (i + 1) * SHARD[2]]
        folder = path / "c" / "0" / str(j)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / str(i)).write_bytes(shard_bytes(tile))

    jobs = [(j, i) for j in range(NY // SHARD[1]) for i in range(NX // SHARD[2])]
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        list(pool.map(lambda ji: one(*ji), jobs))


def timed(label: str, fn: object, rows: list[tuple[str, float, float, int]], path: Path) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    fn()  # type: ignore[operator]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    rows.append((label, wall, cpu, size))
    print(f"[bench] {label}: {wall:.1f} s", file=sys.stderr, flush=True)


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="om-bench-shard-"))
    data = band()
    rows: list[tuple[str, float, float, int]] = []
    plain, sharded, ours = work / "plain", work / "sharded", work / "ours"

    def zarr_plain() -> None:
        create(plain, sharded=False)[...] = data

    def zarr_sharded() -> None:
        create(sharded, sharded=True)[...] = data

    timed("series chunks (365,38,38), zarr-python", zarr_plain, rows, plain)
    timed("shards (365,38,38) of (365,2,2), zarr-python", zarr_sharded, rows, sharded)
    timed("same shards, written by hand", lambda: by_hand(ours, data), rows, ours)
    back = zarr.open_array(str(ours), mode="r")
    assert np.array_equal(back[...], data, equal_nan=True), "zarr reads other values"

    reads = []
    for path in (plain, ours):
        a = zarr.open_array(str(path), mode="r")
        start = time.perf_counter()
        for k in range(50):
            a[:, 3 * k, 20 * k]
        reads.append((time.perf_counter() - start) / 50 * 1000)
    shutil.rmtree(work)

    share = data.nbytes / (365 * 720 * 1440 * 4)
    print(f"\nSeries copy of {data.nbytes / 1e6:.0f} MB ({share:.2f} of the 365-step bench set)")
    print(f"{'layout':48} {'s':>6} {'cpu s':>6} {'MB':>6} {'vs chunks':>9}")
    for label, wall, cpu, size in rows:
        print(f"{label:48} {wall:>6.2f} {cpu:>6.2f} {size / 1e6:>6.0f} {wall / rows[0][1]:>9.1f}")
    print("zarr-python reads the hand-written shards back equal: yes")
    point = T * 4
    print(
        f"point series ({T} steps): decodes {np.prod(SHARD) * 4 / point:.0f} bytes per byte "
        f"returned with chunks, {np.prod(INNER) * 4 / point:.0f} with shards; zarr-python "
        f"reads one in {reads[0]:.1f} ms (chunks) and {reads[1]:.1f} ms (shards)"
    )


if __name__ == "__main__":
    main()
