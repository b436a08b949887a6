"""The ingest pipeline: sources -> CF-normalised dataset -> two Zarr v3 copies -> a version.

1. Every source is opened lazily and read in bounded pieces (dask), normalised, and
   checked against the others (same grid) before a multi-file series is concatenated
   along time.
2. Both copies' metadata and coordinates are written by xarray into
   ``<data>/.staging/<run>/{map,series}.zarr``; their chunks are written by
   ``ingest._chunkstore`` (zstd in threads, one file per chunk, no zarr-python per-chunk
   overhead): the map copy from the source, read once in slabs in its own order
   (``_write_map``), then the series copy from the map copy, band by band in bounded
   memory (``_write_series``, bands from ``chunking.plan``).
3. Validation, before anything is published (``ingest._chunkstore``):
   - every stored map chunk is read back, decoded, and its CRC-32C compared with that of
     the source values it was cut from (kept while writing): the map copy decodes to the
     source's values;
   - every series chunk's (or shard's: ``chunking.inner_chunks`` says which variables
     are sharded) stored bytes are read back and compared with the bytes encoded from
     the band (of checked map chunks) it was cut from, and one in eight is decoded (a
     shard: its index checked against its CRC-32C, every inner chunk decoded) and
     compared bit for bit with the band (the codec round trip); a chunk not stored must
     be all fill value;
   - one chunk (or shard) of each copy per band is read through zarr-python (the readers'
     library: metadata, keys, codecs and shard index agree), and the first, middle and
     last slab of the map copy, and a box of each from the series copy, are read
     through xarray and compared with the source, read again.
4. The version id is a hash of the metadata and of the values (SHA-256 of the source
   slabs, in order); the staging folder is renamed to
   ``<data>/products/<id>/<version>/`` (atomic on one filesystem), and only then is the
   version recorded in the catalog, in one transaction.

A run killed at any point leaves at most an unpublished staging folder (swept by the
next run) or a published folder not yet in the catalog (recorded by the next run);
catalog readers never see either. Unchanged sources give the same version id.
"""

from __future__ import annotations

import contextlib
import gc
import glob
import hashlib
import itertools
import json
import math
import os
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog
import xarray as xr
from zarr.codecs import BloscCodec, ZstdCodec

from catalog.store import DataStore
from ingest._chunkstore import ChunkIO, ChunkLayout, write_band, write_slab
from ingest._lazydask import defer_dask_array_import
from ingest.chunking import Chunks, Plan, plan
from ingest.corpus import corpus_path, sha256_file
from ingest.normalise import TIME, Report, normalise
from ingest.readers import ReadOptions, open_source
from ingest.spec import ProductSpec
from oceanmart.errors import IngestError, OceanMartError, SourceError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

# The catalog (SQLAlchemy, its models and Alembic's schema check: ~0.4 s of imports and
# queries) is needed only to record a version: the CLI opens it in a thread while the data
# are written (``ingest(sessions=Future)``), and this module imports it only then.

log = structlog.get_logger(__name__)

Progress = Callable[[str], None]
READ_PIECE_BYTES = 64 * 1024 * 1024
BAND_BYTES = 512 * 1024 * 1024
ZSTD_LEVEL = 3  # coordinates and the arrays xarray writes
# A shard's inner chunks (2-6 KB): zstd's level changes nothing there (navy winds 1.072
# and 1.059, the generated field 1.117, at levels 1, 3 and 5), level 1 is 10% faster.
SHARD_ZSTD_LEVEL = 1
# A numeric chunk stored whole: Blosc (a zarr v3 core codec) with zstd at level 1 after
# a byte shuffle, one block per chunk. Against plain zstd at level 3, measured on the
# corpus and the generated field (README "Ingest"): 2.2-3.5x faster to encode, 1.4x
# faster to decode, and 1-32% fewer bytes.
BLOSC_LEVEL = 1
COPIES = ("map", "series")


@dataclass(frozen=True, slots=True)
class IngestResult:
    product_id: str
    version_id: str
    created: bool  # False when this exact version was already published
    store_path: str
    bytes_read: int
    stored_bytes: int
    value_count: int
    uncompressed_bytes: int
    seconds: float
    report: dict[str, Any]

    @property
    def compression_ratio(self) -> float:
        """Uncompressed bytes of both copies over the bytes written for them."""
        return len(COPIES) * self.uncompressed_bytes / max(1, self.stored_bytes)


def resolve_sources(spec: ProductSpec, corpus_dir: Path) -> list[tuple[Path, ReadOptions]]:
    """Source paths in order (corpus names, paths and globs relative to the spec file), each
    with its GRIB hypercube filter."""
    out: list[tuple[Path, ReadOptions]] = []
    for src in spec.sources:
        keys = ReadOptions(filter_by_keys=src.filter_by_keys, resolution=src.resolution)
        if src.corpus is not None:
            out.append((corpus_path(src.corpus, corpus_dir), keys))
            continue
        assert src.path is not None
        pattern = src.path if Path(src.path).is_absolute() else str(spec.base_dir / src.path)
        if glob.has_magic(pattern):
            # absolute patterns, which Path.glob does not take
            matches = sorted(Path(p) for p in glob.glob(pattern))  # noqa: PTH207
            if not matches:
                raise SourceError(f"{pattern}: no file matches")
            out.extend((m, keys) for m in matches)
        else:
            out.append((Path(pattern), keys))
    return out


def _read_chunks(ds: xr.Dataset) -> dict[str, int]:
    """Dask chunks for reading: pieces of ~64 MB along each variable's first dimension."""
    chunks: dict[str, int] = {}
    for var in ds.data_vars.values():
        if var.ndim < 2:
            continue
        lead = str(var.dims[0])
        per_slice = var.dtype.itemsize * math.prod(var.shape[1:])
        n = int(max(1, READ_PIECE_BYTES // max(1, per_slice)))
        chunks[lead] = min(chunks.get(lead, n), n)
    return chunks


def _open_normalised(
    path: Path, keys: ReadOptions, spec: ProductSpec, *, use_dask: bool
) -> tuple[xr.Dataset, Report]:
    """The source, normalised. With ``use_dask`` its variables are dask arrays of ~64 MB
    pieces (multi-file series, a cluster); else xarray's lazily indexed backend arrays,
    read slab by slab by ``_write_map`` (no dask graph, no dask import)."""
    raw = open_source(path, keys)
    ds, report = normalise(raw.chunk(_read_chunks(raw)) if use_dask else raw, spec)
    return ds, report


def _combine(parts: list[tuple[Path, xr.Dataset]]) -> xr.Dataset:
    """Concatenate a multi-file series along time after checking that the grids match."""
    if len(parts) == 1:
        return parts[0][1]
    first_path, first = parts[0]
    for path, ds in parts[1:]:
        if TIME not in ds.dims:
            raise SourceError(f"{path}: a multi-file series needs a time axis in every file")
        if set(ds.data_vars) != set(first.data_vars):
            raise SourceError(f"{path}: variables differ from {first_path.name}")
        for axis in (d for d in first.dims if d != TIME and d in first.coords):
            if axis not in ds.coords or not np.array_equal(ds[axis].values, first[axis].values):
                raise SourceError(f"{path}: the {axis} grid differs from {first_path.name}")
    combined = xr.concat(
        [ds for _, ds in parts],
        dim=TIME,
        data_vars="minimal",
        coords="minimal",
        compat="override",
        join="override",
        combine_attrs="override",
    )
    combined = combined.sortby(TIME)
    times = combined[TIME].values
    if np.any(times[1:] == times[:-1]):
        raise SourceError(f"{first_path.parent}: the files of the series overlap in time")
    return combined


def _plan(ds: xr.Dataset, target: int) -> dict[str, Plan]:
    return {
        str(n): plan(
            [str(d) for d in v.dims],
            {str(k): int(n) for k, n in v.sizes.items()},
            v.dtype.itemsize,
            target,
            BAND_BYTES,
            numeric=_fast(v),
        )
        for n, v in ds.data_vars.items()
    }


def _prepare(
    ds: xr.Dataset, plan: dict[str, Chunks], shards: dict[str, Chunks]
) -> tuple[xr.Dataset, dict[str, Any]]:
    """Encodings: NaN fill for floats, the planned chunks (inner chunks of the planned
    ``shards`` for a sharded variable) and the codec: Blosc for the planned variables'
    whole chunks (``ingest._chunkstore`` writes them), zstd for the rest."""
    out = ds.copy()
    encoding: dict[str, Any] = {}
    for name in list(out.variables):
        var = out[name]
        var.encoding = {}
        enc: dict[str, Any] = {"compressors": [ZstdCodec(level=ZSTD_LEVEL)]}
        if str(name) in plan:
            enc["chunks"] = tuple(plan[str(name)][str(d)] for d in var.dims)
        if str(name) in shards:
            enc["shards"] = tuple(shards[str(name)][str(d)] for d in var.dims)
            enc["compressors"] = [ZstdCodec(level=SHARD_ZSTD_LEVEL)]
        elif str(name) in plan:
            itemsize = var.dtype.itemsize
            blocksize = itemsize * math.prod(enc["chunks"])
            enc["compressors"] = [
                BloscCodec(
                    typesize=itemsize,
                    cname="zstd",
                    clevel=BLOSC_LEVEL,
                    shuffle="shuffle",
                    blocksize=blocksize,
                )
            ]
        if np.issubdtype(var.dtype, np.floating):
            enc["_FillValue"] = np.nan
        encoding[str(name)] = enc
    for name in out.variables:
        out[name].encoding = {}
    return out, encoding


def _run_name() -> str:
    """Staging folder name of this run: host and pid tell a later run whether it is dead."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex}"


def _sweep_staging(store: DataStore) -> None:
    """Remove staging folders of ingests on this host that are no longer running."""
    host = socket.gethostname()
    for run in store.staging_runs():
        run_host, _, rest = run.rpartition("-")[0].rpartition("-")
        pid_text = rest
        if run_host != host or not pid_text.isdigit():
            continue  # another machine's run: it sweeps its own
        try:
            os.kill(int(pid_text), 0)
        except ProcessLookupError:
            store.remove(store.location(".staging", run))
        except PermissionError:
            pass  # alive, another user's


class _Bar:
    """A progress bar on stderr for work done piece by piece by this process (the direct
    path, where no dask graph runs for dask's ProgressBar to follow)."""

    def __init__(self, label: str, total: int, show: bool) -> None:
        self.label, self.total, self.done, self.show = label, max(1, total), 0, show

    def tick(self) -> None:
        self.done += 1
        if self.show:
            filled = 40 * self.done // self.total
            end = "\n" if self.done >= self.total else ""
            sys.stderr.write(
                f"\r[{'#' * filled}{' ' * (40 - filled)}] {100 * self.done // self.total:3d}% "
                f"| {self.label}{end}"
            )
            sys.stderr.flush()


@contextlib.contextmanager
def _compute_step(label: str, say: Progress, show_bar: bool) -> Iterator[None]:
    """Announce a step, show dask's progress bar on a terminal (``show_bar``: dask
    computes this step), and log its duration."""
    say(label)
    started, cpu = time.perf_counter(), time.process_time()
    with contextlib.ExitStack() as stack:
        if show_bar:
            from dask.diagnostics import ProgressBar

            stack.enter_context(ProgressBar(out=sys.stderr, minimum=1.0))
        yield
    log.info(
        "ingest.step",
        step=label,
        seconds=round(time.perf_counter() - started, 3),
        cpu_seconds=round(time.process_time() - cpu, 3),  # all threads of this process
    )


def _bands(shape: tuple[int, ...], dims: tuple[str, ...], plan: Plan) -> list[tuple[slice, ...]]:
    """Regions of the source written at once (``Plan.band``): each holds whole chunks of
    both copies."""
    extent = plan.band(dims, dict(zip(dims, shape, strict=True)))
    step = [extent[d] for d in dims]
    starts = [range(0, n, s) for n, s in zip(shape, step, strict=True)]
    return [
        tuple(slice(c, min(c + s, n)) for c, s, n in zip(corner, step, shape, strict=True))
        for corner in itertools.product(*starts)
    ]


def _fast(var: xr.DataArray) -> bool:
    """Whether a data variable's chunks are written by ``_chunkstore`` (numbers with at
    least one dimension); anything else is small or rare and goes through xarray."""
    return var.ndim > 0 and var.dtype.kind in "fiu"


class _MetadataOnly:
    """xarray's ``ArrayWriter`` role for ``dump_to_store``: writes every variable's values
    (coordinates, bounds, the few variables ``_chunkstore`` does not take) except those
    of the ``skip`` arrays, whose chunks ``_chunkstore`` writes."""

    def __init__(self, skip: set[str]) -> None:
        self.skip = skip

    def add(self, source: Any, target: Any, region: Any = None) -> None:
        if str(target.basename) in self.skip:
            return
        if region:
            target[region] = source
        else:
            target[...] = source


def _create(
    store: DataStore, staging: str, ds: xr.Dataset, plans: dict[str, Plan]
) -> dict[str, tuple[ChunkLayout, ChunkLayout]]:
    """Create both copies' metadata and coordinates (and the few data variables the fast
    writer does not take), and return each variable's two chunk layouts.

    xarray writes the metadata, exactly as ``to_zarr`` would (``dump_to_store``, the
    function ``to_zarr`` runs), so the stored zarr.json and attributes are xarray's. The
    data variables are zero-strided numpy placeholders of their shape and dtype (no
    memory) that a metadata-only writer skips: ``to_zarr(compute=False)`` would need
    dask placeholders, and wrapping them in a Delayed imports ``distributed`` (~0.5 s)."""
    import zarr
    from xarray.backends.writers import dump_to_store, get_writable_zarr_store

    template = ds.copy()  # shallow: loading its variables leaves ``ds`` lazy
    for name, var in template.variables.items():
        if name not in template.data_vars or not _fast(template[name]):
            var.load()
    layouts: dict[str, list[ChunkLayout]] = {str(n): [] for n in plans if _fast(ds[n])}
    placeholders = template.assign(
        {
            n: template[n].copy(
                data=np.broadcast_to(np.zeros((), template[n].dtype), template[n].shape)
            )
            for n in layouts
        }
    )
    for copy in COPIES:
        chunks = {n: getattr(plans[n], copy) for n in layouts}
        shards = {}
        if copy == "series":
            # A sharded series copy: the planned series chunks are the shards.
            shards = {n: chunks[n] for n in layouts if plans[n].inner is not None}
            chunks = {n: plans[n].inner or chunks[n] for n in layouts}
        prepared, encoding = _prepare(placeholders, chunks, shards)
        zstore = get_writable_zarr_store(
            f"{staging}/{copy}.zarr",
            mode="w-",
            consolidated=True,
            zarr_format=3,
            storage_options=store.zarr_options.get("storage_options"),
        )
        try:
            zstore._validate_encoding(encoding)
            dump_to_store(prepared, zstore, _MetadataOnly(set(layouts)), encoding=encoding)
        finally:
            zstore.close()
        for name in layouts:
            array = zarr.open_array(
                f"{staging}/{copy}.zarr/{name}", mode="r", zarr_format=3, **store.zarr_options
            )
            layouts[name].append(ChunkLayout.of(array, copy, name, f"{copy}.zarr/{name}"))
    return {n: (m, s) for n, (m, s) in layouts.items()}


READ_SUB_BYTES = 16 * 1024 * 1024


def _read(var: xr.Variable, region: tuple[slice, ...], out: np.ndarray) -> np.ndarray:
    """A slab of the source, read into ``out`` (no concatenation of pieces).

    A dask-backed variable is stored into ``out`` by dask; a lazily indexed one (the
    direct path) is read by xarray's backend in pieces of ~16 MB along the first axis:
    each piece is a fresh array, and pieces this small are recycled by malloc instead of
    being mapped (and page-faulted) anew for every slab."""
    piece = var[region]
    if piece.chunks is not None:
        import dask.array as da

        da.store(piece.data, out, lock=False, scheduler="sync")
        return out
    if not out.ndim:
        out[...] = piece.values
        return out
    row = max(1, out[:1].nbytes)
    step = max(1, READ_SUB_BYTES // row)
    for i in range(0, out.shape[0], step):
        out[i : i + step] = piece[i : i + step].values
    return out


def _slabs(shape: tuple[int, ...], layout: ChunkLayout) -> list[tuple[slice, ...]]:
    """Regions of the source read at once for the map copy: ~READ_PIECE_BYTES of whole map
    chunks along the first dimension, whole in the others (so the source is read once, in
    its storage order)."""
    if not shape:
        return [()]
    lead = layout.chunks[0]
    per_chunk = lead * math.prod(shape[1:]) * np.dtype(layout.dtype).itemsize
    step = lead * max(1, READ_PIECE_BYTES // max(1, per_chunk))
    rest = tuple(slice(0, n) for n in shape[1:])
    return [(slice(i, min(i + step, shape[0])), *rest) for i in range(0, shape[0], step)]


def _origin(region: tuple[slice, ...]) -> tuple[int, ...]:
    return tuple(int(r.start) for r in region)


def _size(region: tuple[slice, ...]) -> tuple[int, ...]:
    return tuple(int(r.stop - r.start) for r in region)


Layouts = dict[str, tuple[ChunkLayout, ChunkLayout]]
Crcs = dict[str, dict[tuple[int, ...], int | None]]


def _workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _write_map(
    ds: xr.Dataset, layouts: Layouts, io: ChunkIO, client: Any | None, bar: bool = False
) -> tuple[dict[str, bytes], Crcs]:
    """Write the map copy from the source, read once in its own order, slab by slab (the
    next slab is read while this one is encoded), keeping the CRC-32C of every chunk's
    values. Returns, per variable, a SHA-256 over the SHA-256 of its slabs in order (the
    values' part of the version id), and the CRCs."""
    slabs = [(n, r) for n, (m, _) in layouts.items() for r in _slabs(tuple(ds[n].shape), m)]
    if client is not None:
        import dask

        tasks = [
            dask.delayed(write_slab, pure=False)(
                ds[n].data[r], _origin(r), layouts[n][0], io, _workers()
            )
            for n, r in slabs
        ]
        (written,) = dask.compute(tasks, scheduler=client)
    else:
        written = []
        progress = _Bar("map copy", len(slabs), bar)
        # Two buffers, reused: the reader fills one while the other is encoded.
        nbytes = max(
            (math.prod(_size(r)) * np.dtype(layouts[n][0].dtype).itemsize for n, r in slabs),
            default=0,
        )
        buffers = [np.empty(nbytes, np.uint8), np.empty(nbytes, np.uint8)]
        with ThreadPoolExecutor(1) as reader:

            def read(i: int) -> Future[np.ndarray]:
                name, region = slabs[i]
                dtype = layouts[name][0].dtype
                n = math.prod(_size(region)) * np.dtype(dtype).itemsize
                out = buffers[i % 2][:n].view(dtype).reshape(_size(region))
                return reader.submit(_read, ds[name].variable, region, out)

            pending = read(0) if slabs else None
            for i, (name, region) in enumerate(slabs):
                assert pending is not None
                block = pending.result()
                pending = read(i + 1) if i + 1 < len(slabs) else None
                written.append(write_slab(block, _origin(region), layouts[name][0], io, _workers()))
                del block
                progress.tick()
    digests: dict[str, list[bytes]] = {name: [] for name in layouts}
    crcs: Crcs = {name: {} for name in layouts}
    for (name, _), (digest, chunk_crcs) in zip(slabs, written, strict=True):
        digests[name].append(digest)
        crcs[name].update(chunk_crcs)
    return {n: hashlib.sha256(b"".join(parts)).digest() for n, parts in digests.items()}, crcs


def _write_series(
    ds: xr.Dataset,
    plans: dict[str, Plan],
    layouts: Layouts,
    crcs: Crcs,
    io: ChunkIO,
    client: Any | None,
    bar: bool = False,
) -> None:
    """Write the series copy from the map copy, band by band (``chunking.plan``), checking
    every stored chunk of both copies (``_chunkstore.write_band``); on a cluster every
    worker takes bands."""
    bands = [
        (n, r)
        for n in layouts
        for r in _bands(tuple(ds[n].shape), tuple(map(str, ds[n].dims)), plans[n])
    ]

    def band_crcs(name: str, region: tuple[slice, ...]) -> dict[tuple[int, ...], int | None]:
        chunks = layouts[name][0].chunks
        return {
            i: c
            for i, c in crcs[name].items()
            if all(r.start <= k * n < r.stop for k, n, r in zip(i, chunks, region, strict=True))
        }

    args = [(_origin(r), _size(r), layouts[n], band_crcs(n, r), io, _workers()) for n, r in bands]
    if client is not None:
        import dask

        dask.compute([dask.delayed(write_band, pure=False)(*a) for a in args], scheduler=client)
    else:
        progress = _Bar("series copy", len(args), bar)
        for a in args:
            write_band(*a)
            progress.tick()


SAMPLE_CELLS = 8  # cells along each axis of the box read from the series copy


def _sample_equal(written: xr.Dataset, series: xr.Dataset, source: xr.Dataset) -> str | None:
    """Compare the first, middle and last slab of every variable of the map copy
    (``written``) with the source, and a box of each of those slabs from the middle of
    the grid in the series copy (a few chunks, or inner chunks of a shard)."""
    for name, var in written.data_vars.items():
        if var.ndim == 0:
            continue
        lead = var.dims[0]
        n = var.sizes[lead]
        box = {d: slice(k // 2, k // 2 + SAMPLE_CELLS) for d, k in var.sizes.items() if d != lead}
        for i in sorted({0, n // 2, n - 1}):
            a = var.isel({lead: i}).values
            b = source[name].isel({lead: i}).values
            if not np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"):
                return f"{name}[{lead}={i}] differs from the source"
            c = series[name].isel({lead: i, **box}).values
            want = b[tuple(box[d] for d in var.dims if d != lead)]
            if not np.array_equal(c, want, equal_nan=c.dtype.kind in "fc"):
                return f"{name}[{lead}={i}] in the series copy differs from the source"
    return None


def _content_hash(ds: xr.Dataset, digests: dict[str, bytes]) -> str:
    h = hashlib.sha256()
    h.update(json.dumps(ds.attrs, sort_keys=True, default=str).encode())
    for name in sorted(map(str, ds.variables)):
        var = ds[name]
        header = {
            "name": name,
            "dims": list(map(str, var.dims)),
            "dtype": str(var.dtype),
            "shape": list(var.shape),
            "attrs": var.attrs,
        }
        h.update(json.dumps(header, sort_keys=True, default=str).encode())
        if name in digests:
            h.update(digests[name])
        elif var.dtype.kind == "O":  # cftime coordinates
            h.update("\n".join(map(str, var.values.ravel())).encode())
        else:
            h.update(np.ascontiguousarray(var.values).tobytes())
    return h.hexdigest()[:20]


def _open_copy(store: DataStore, location: str) -> xr.Dataset:
    ds: xr.Dataset = xr.open_zarr(
        location, zarr_format=3, consolidated=True, chunks=None, **store.zarr_options
    )
    return ds


def _write_and_validate(
    ds: xr.Dataset,
    spec: ProductSpec,
    store: DataStore,
    staging: str,
    say: Progress,
    show_bar: bool,
    client: Any | None,
    use_dask: bool,
) -> str:
    """Write both copies into ``staging``, validate them, and return the version id.

    dask's progress bar follows the steps dask computes (a cluster); the direct path
    (``use_dask`` false: the slabs are read by this process) shows its own."""
    plans = _plan(ds, int(spec.chunk_target_mb * 1024 * 1024))
    layouts = _create(store, staging, ds, plans)
    io = ChunkIO(staging, store.local, json.dumps(store.storage_options, sort_keys=True))
    dask_bar = show_bar and use_dask
    own_bar = show_bar and not use_dask
    with _compute_step("writing the map copy from the source", say, dask_bar):
        digests, crcs = _write_map(ds, layouts, io, client, own_bar)
    with _compute_step("writing the series copy from the map copy", say, dask_bar):
        _write_series(ds, plans, layouts, crcs, io, client, own_bar)
    with _compute_step("comparing sampled slabs with the source", say, False):
        written = _open_copy(store, f"{staging}/map.zarr")
        series = _open_copy(store, f"{staging}/series.zarr")
        problem = _sample_equal(written, series, ds)
    if problem is not None:
        raise IngestError(f"validation failed: {problem}")
    return _content_hash(written, digests)


def _record(
    session: Session, spec: ProductSpec, version_id: str, ds: xr.Dataset, meta: dict[str, Any]
) -> bool:
    from catalog.models import Product, ProductVersion, Variable
    from oceanmart.db import utcnow

    now = utcnow()
    product = session.get(Product, spec.id)
    if product is None:
        product = Product(id=spec.id, created_at=now)
        session.add(product)
    product.title = spec.title.en
    product.title_zh = spec.title.zh
    product.summary = spec.summary.en
    product.summary_zh = spec.summary.zh
    product.theme = spec.theme.value
    product.license = spec.license
    product.provider = spec.provider
    product.visibility = spec.visibility.value
    product.updated_at = now
    created = session.get(ProductVersion, version_id) is None
    if created:
        session.add(ProductVersion(id=version_id, product_id=spec.id, created_at=now, **meta))
        session.flush()
        for name, var in ds.data_vars.items():
            session.add(
                Variable(
                    version_id=version_id,
                    name=str(name),
                    standard_name=str(var.attrs.get("standard_name", "")),
                    units=str(var.attrs.get("units", "")),
                    long_name=str(var.attrs.get("long_name", "")),
                    dims=[str(d) for d in var.dims],
                    dtype=str(var.dtype),
                )
            )
    product.current_version_id = version_id
    return created


def _extent(ds: xr.Dataset) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for dim in ds.dims:
        if dim in ds.coords and ds[dim].size:
            values = ds[dim].values
            out[str(dim)] = (
                [str(values.min()), str(values.max())]
                if values.dtype.kind in "MO"
                else [values.min().item(), values.max().item()]
            )
    return out


def _copies_meta(store: DataStore, final: str) -> dict[str, Any]:
    """Each published copy's chunk grid, bytes and value count, read from the store itself
    (a version published by an earlier run keeps the chunks it was written with).

    ``chunks[var]`` is the grid a read decodes (dim -> length): the inner chunks of a
    sharded variable; ``shards[var]`` is the shard shape (one stored object), present
    only for sharded variables."""
    out: dict[str, Any] = {}
    for copy in COPIES:
        path = f"{final}/{copy}.zarr"
        ds = _open_copy(store, path)
        out[copy] = {
            "chunks": {
                str(n): dict(zip(map(str, v.dims), map(int, v.encoding["chunks"]), strict=True))
                for n, v in ds.data_vars.items()
            },
            "shards": {
                str(n): dict(zip(map(str, v.dims), map(int, v.encoding["shards"]), strict=True))
                for n, v in ds.data_vars.items()
                if v.encoding.get("shards") is not None
            },
            "stored_bytes": store.size(path),
            "value_count": int(sum(math.prod(v.shape) for v in ds.data_vars.values())),
        }
    return out


@contextlib.contextmanager
def _scheduler(address: str | None) -> Iterator[Any | None]:
    """Run dask work on a distributed cluster when given its address, else in threads."""
    if address is None:
        yield None
        return
    from distributed import Client

    try:
        client = Client(address, timeout="10s")
    except OSError as exc:
        raise IngestError(f"cannot reach the dask scheduler at {address}: {exc}") from None
    with client:
        yield client


def _resume_gc() -> None:
    """End a start-up run with the garbage collector off (the CLI's: its imports make
    ~1M objects, and the collections they trigger cost ~0.3 s of a small ingest): what
    exists now (modules, classes, the opened sources) is moved out of the collector's
    sight (``gc.freeze``) and collection resumes, so the collections during the write
    walk only what the write allocates. A caller that left the collector on is not
    affected."""
    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def ingest(
    spec: ProductSpec,
    *,
    sessions: sessionmaker[Session] | Future[sessionmaker[Session]],
    store: DataStore,
    corpus_dir: Path,
    progress: Progress | None = None,
    show_bar: bool = False,
    scheduler: str | None = None,
) -> IngestResult:
    """Ingest ``spec`` and publish its version; nothing is visible unless all succeeds.

    ``sessions`` may be a future (the CLI opens and checks the catalog in a thread while
    the data are written); it is waited for, and its error raised, before anything is
    published."""
    defer_dask_array_import()
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    sources = resolve_sources(spec, corpus_dir)
    paths = [p for p, _ in sources]
    _sweep_staging(store)
    staging = store.staging(_run_name())
    # The sources' SHA-256 (recorded with the version) is computed while they are ingested.
    hasher = ThreadPoolExecutor(1)
    hashes = [hasher.submit(sha256_file, p) for p in paths]
    # dask where the issue needs it: a multi-file series (concatenated lazily along time)
    # and a cluster (``--scheduler``). One local file is read slab by slab through
    # xarray's lazy indexing by a reader thread while a pool of threads encodes the
    # previous slab (``_write_map``): the same bounded memory without building and
    # running a dask graph (and without importing dask.array, ~0.4 s).
    use_dask = scheduler is not None or len(sources) > 1
    try:
        parts = []
        reports = []
        for path, keys in sources:
            say(f"reading {path}")
            try:
                ds_i, report_i = _open_normalised(path, keys, spec, use_dask=use_dask)
            except SourceError as exc:
                detail = exc.detail if str(path) in exc.detail else f"{path}: {exc.detail}"
                raise SourceError(detail) from None
            parts.append((path, ds_i))
            reports.append(report_i)
        ds = _combine(parts)
        _resume_gc()
        report = reports[0]
        if len(paths) > 1:
            report.add("*", f"{len(paths)} files concatenated along time")
        with _scheduler(scheduler) as client:
            version_id = _write_and_validate(
                ds, spec, store, staging, say, show_bar, client, use_dask
            )
        if isinstance(sessions, Future):
            sessions = sessions.result()  # e.g. "the database schema is not up to date"
        final = store.version_location(spec.id, version_id)
        if store.is_published(final):
            say(f"version {version_id} is already published; recording it")
        else:
            store.publish(staging, final)
        copies = _copies_meta(store, final)
    except OceanMartError:
        raise
    except (OSError, RuntimeError, ValueError, KeyError, TypeError) as exc:
        # netCDF4 reports truncated or corrupt data only when it is read.
        where = str(paths[0]) if len(paths) == 1 else f"{paths[0]} (+{len(paths) - 1} files)"
        raise SourceError(f"{where}: cannot read data ({exc.__class__.__name__}: {exc})") from None
    finally:
        hasher.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(OSError):
            store.remove(staging)

    value_count = int(sum(math.prod(v.shape) for v in ds.data_vars.values()))
    uncompressed = int(sum(math.prod(v.shape) * v.dtype.itemsize for v in ds.data_vars.values()))
    stored = sum(copy["stored_bytes"] for copy in copies.values())
    store_path = f"products/{spec.id}/{version_id}"
    bytes_read = sum(p.stat().st_size for p in paths)
    meta: dict[str, Any] = {
        "store_path": store_path,
        "dims": {str(k): int(v) for k, v in ds.sizes.items()},
        "extent": _extent(ds),
        "chunks": copies,
        "stored_bytes": stored,
        "value_count": value_count,
        "sources": [
            {"name": p.name, "sha256": h.result(), "bytes": p.stat().st_size}
            for p, h in zip(paths, hashes, strict=True)
        ],
        "report": report.as_dict(),
    }
    from oceanmart.db import transaction

    with transaction(sessions) as session:
        created = _record(session, spec, version_id, ds, meta)
    seconds = time.perf_counter() - started
    log.info(
        "ingest.published",
        product=spec.id,
        version=version_id,
        created=created,
        stored_bytes=stored,
        values=value_count,
        seconds=round(seconds, 3),
    )
    return IngestResult(
        product_id=spec.id,
        version_id=version_id,
        created=created,
        store_path=store_path,
        bytes_read=bytes_read,
        stored_bytes=stored,
        value_count=value_count,
        uncompressed_bytes=uncompressed,
        seconds=seconds,
        report=report.as_dict(),
    )
