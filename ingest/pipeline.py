"""The ingest pipeline: sources -> CF-normalised dataset -> content-hashed Zarr v3 version.

Publishing is atomic: the store is written under ``<data>/.staging``, validated against
the normalised source, renamed into ``<data>/products/<id>/<version>/`` (same filesystem,
so the rename is all or nothing), and only then recorded in the catalog in one
transaction. A version that is on disk but not in the catalog is invisible, and running
the same ingest again records it without rewriting; unchanged sources give the same
version id.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog
import xarray as xr
from sqlalchemy.orm import Session, sessionmaker
from zarr.codecs import ZstdCodec

from catalog.models import Product, ProductVersion, Variable
from catalog.store import DataStore
from ingest.corpus import corpus_path, sha256_file
from ingest.normalise import LAT, LON, normalise
from ingest.readers import open_source
from ingest.spec import ProductSpec
from oceanmart.db import transaction, utcnow
from oceanmart.errors import IngestError, OceanMartError, SourceError

log = structlog.get_logger(__name__)

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class IngestResult:
    product_id: str
    version_id: str
    created: bool  # False when this exact version was already published
    store_path: str
    bytes_read: int
    stored_bytes: int
    value_count: int
    seconds: float
    report: dict[str, Any]


def resolve_sources(spec: ProductSpec, corpus_dir: Path) -> list[Path]:
    out = []
    for src in spec.sources:
        if src.corpus is not None:
            out.append(corpus_path(src.corpus, corpus_dir))
        else:
            assert src.path is not None
            p = Path(src.path)
            out.append(p if p.is_absolute() else spec.base_dir / p)
    return out


def plan_map_chunks(ds: xr.Dataset, target_bytes: int) -> dict[str, dict[str, int]]:
    """Map chunking: whole horizontal fields, leading dimensions grown to ~target bytes."""
    out: dict[str, dict[str, int]] = {}
    for name, var in ds.data_vars.items():
        itemsize = var.dtype.itemsize
        chunks: dict[str, int] = {}
        inner = itemsize
        for dim in reversed(var.dims):
            size = var.sizes[dim]
            if dim in (LAT, LON):
                # Tile a horizontal field only when one field alone exceeds twice the target.
                n = size if inner * size <= 2 * target_bytes else max(1, target_bytes // inner)
            else:
                n = int(min(size, max(1, target_bytes // inner)))
            chunks[str(dim)] = int(n)
            inner *= n
        out[str(name)] = {str(d): chunks[str(d)] for d in var.dims}
    return out


def _slices(var: xr.DataArray, max_bytes: int = 64 << 20) -> Iterator[xr.DataArray]:
    """The variable in pieces along its first dimension, each at most ~max_bytes."""
    if var.ndim == 0:
        yield var
        return
    dim = var.dims[0]
    row = max(1, var.nbytes // max(1, var.sizes[dim]))
    step = max(1, max_bytes // row)
    for i in range(0, var.sizes[dim], step):
        yield var.isel({dim: slice(i, i + step)})


def content_hash(ds: xr.Dataset) -> str:
    """SHA-256 over every variable's name, dims, dtype, attributes and values.

    Independent of the Zarr writer and its compressor, so the same data always gets the
    same version id.
    """
    h = hashlib.sha256()
    h.update(json.dumps(ds.attrs, sort_keys=True, default=str).encode())
    for name in sorted(map(str, ds.variables)):
        var = ds[name].variable
        header = {
            "name": name,
            "dims": list(var.dims),
            "dtype": str(var.dtype),
            "shape": list(var.shape),
            "attrs": var.attrs,
        }
        h.update(json.dumps(header, sort_keys=True, default=str).encode())
        for piece in _slices(ds[name]):
            h.update(np.ascontiguousarray(piece.values).tobytes())
    return h.hexdigest()[:20]


def _encoding(ds: xr.Dataset, chunks: dict[str, dict[str, int]]) -> dict[str, dict[str, Any]]:
    enc: dict[str, dict[str, Any]] = {}
    for name, var in ds.variables.items():
        var.encoding = {}
        e: dict[str, Any] = {"compressors": [ZstdCodec(level=3)]}
        if str(name) in chunks:
            e["chunks"] = tuple(chunks[str(name)][str(d)] for d in var.dims)
        if np.issubdtype(var.dtype, np.floating):
            e["_FillValue"] = np.nan
        enc[str(name)] = e
    return enc


def _equal(a: xr.DataArray, b: xr.DataArray) -> bool:
    for pa, pb in zip(_slices(a), _slices(b), strict=True):
        if not np.array_equal(pa.values, pb.values, equal_nan=pa.dtype.kind in "fc"):
            return False
    return True


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _write_version(
    ds: xr.Dataset, chunks: dict[str, dict[str, int]], store: DataStore, final: Path
) -> None:
    staging = store.staging_dir() / uuid.uuid4().hex
    try:
        map_path = staging / "map.zarr"
        ds.to_zarr(
            map_path, mode="w-", zarr_format=3, consolidated=True, encoding=_encoding(ds, chunks)
        )
        written = xr.open_zarr(map_path, zarr_format=3, consolidated=True)
        for name in ds.variables:
            if not _equal(ds[name], written[name]):
                raise IngestError(f"validation failed: {name} differs after writing")
        final.parent.mkdir(parents=True, exist_ok=True)
        try:
            staging.rename(final)
        except OSError:
            if not final.exists():
                raise
            # A concurrent ingest of the same content published it first.
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _record(
    session: Session,
    spec: ProductSpec,
    version_id: str,
    ds: xr.Dataset,
    meta: dict[str, Any],
) -> bool:
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
            out[str(dim)] = [values.min().item(), values.max().item()]
    normalised: dict[str, Any] = json.loads(json.dumps(out, default=str))
    return normalised


def ingest(
    spec: ProductSpec,
    *,
    sessions: sessionmaker[Session],
    store: DataStore,
    corpus_dir: Path,
    progress: Progress | None = None,
) -> IngestResult:
    """Ingest ``spec`` and publish its version; nothing is visible unless all succeeds."""
    say = progress or (lambda _msg: None)
    started = time.perf_counter()
    paths = resolve_sources(spec, corpus_dir)
    if len(paths) != 1:
        raise IngestError("multi-file products arrive with the ingest issue; give one source")
    path = paths[0]
    say(f"reading {path}")
    raw = open_source(path)
    try:
        ds, report = normalise(raw, spec)
        say("hashing content")
        version_id = content_hash(ds)
        final = store.version_dir(spec.id, version_id)
        if final.exists():
            say(f"version {version_id} already on disk; recording it")
        else:
            say(f"writing version {version_id}")
            chunks = plan_map_chunks(ds, int(spec.chunk_target_mb * 1024 * 1024))
            _write_version(ds, chunks, store, final)
        published = xr.open_zarr(final / "map.zarr", zarr_format=3, consolidated=True)
        chunks_meta = {
            str(n): dict(zip(map(str, v.dims), v.encoding["chunks"], strict=True))
            for n, v in published.data_vars.items()
        }
    except OceanMartError:
        raise
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        # netCDF4 reports truncated or corrupt data only when it is read.
        raise SourceError(f"{path}: cannot read data ({exc.__class__.__name__}: {exc})") from None
    finally:
        raw.close()

    value_count = int(sum(math.prod(v.shape) for v in ds.data_vars.values()))
    stored = _dir_size(final)
    store_path = str(final.relative_to(store.root))
    meta: dict[str, Any] = {
        "store_path": store_path,
        "dims": {str(k): int(v) for k, v in ds.sizes.items()},
        "extent": _extent(ds),
        "chunks": {"map": chunks_meta},
        "stored_bytes": stored,
        "value_count": value_count,
        "sources": [{"name": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size}],
        "report": report.as_dict(),
    }
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
        bytes_read=path.stat().st_size,
        stored_bytes=stored,
        value_count=value_count,
        seconds=seconds,
        report=report.as_dict(),
    )
