"""Zarr v3 over HTTP: ``xr.open_zarr`` over the network reads what is stored, unchanged."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from sqlalchemy import func, select

from oceanmart.accounts import create_account, create_key
from oceanmart.db import transaction
from pricing.entitlements import grant
from pricing.metering import AccessRecord
from tests.conftest import Server, get_while_key_locked, unique

PRODUCT = "levitus-climatology"


def _buyer(server: Server) -> str:
    name = unique("zarr")
    with transaction(server.env.sessions) as s:
        create_account(s, name, "enterprise")
        grant(s, name, PRODUCT, granted_by="test")
        return create_key(s, name, "catalog:read,data:read")[1]


def _local(server: Server, copy: str) -> xr.Dataset:
    with server.env.sessions() as s:
        from catalog.products import get_product

        version = get_product(s, PRODUCT).version
    assert version is not None
    return xr.open_zarr(
        server.env.store.location(version.store_path, f"{copy}.zarr"), zarr_format=3
    )


def test_open_zarr_over_http_equals_the_stored_copies(server: Server, levitus: str) -> None:
    key = _buyer(server)
    opts = {"headers": {"Authorization": f"Bearer {key}"}}
    for path, copy in ((f"/zarr/products/{PRODUCT}", "map"),
                       (f"/zarr/products/{PRODUCT}/copies/series", "series")):  # fmt: skip
        remote = xr.open_zarr(server.url + path, storage_options=opts, zarr_format=3)
        local = _local(server, copy)
        assert remote["TEMP"].encoding["chunks"] == local["TEMP"].encoding["chunks"]
        cut = {"latitude": slice(20, 30), "longitude": slice(120, 130), "depth": slice(0, 100)}
        a = remote["TEMP"].sel(cut).compute()  # through dask, as researchers read it
        b = local["TEMP"].sel(cut).compute()
        assert a.size > 0
        np.testing.assert_array_equal(a.values, b.values)
        xr.testing.assert_identical(remote.coords.to_dataset(), local.coords.to_dataset())


def test_chunks_are_stored_bytes_with_etag_ranges_and_an_access_id(
    server: Server, levitus: str
) -> None:
    key = _buyer(server)
    local = _local(server, "map")
    with server.client(key) as c:
        meta = c.get(f"/zarr/products/{PRODUCT}/TEMP/zarr.json")
        assert meta.status_code == 200 and meta.json()["node_type"] == "array"
        r = c.get(f"/zarr/products/{PRODUCT}/TEMP/c/0/0/0")
        assert r.status_code == 200
        on_disk = _chunk_file(server, "map", "TEMP/c/0/0/0")
        assert r.content == on_disk
        access_id = r.headers["oceanmart-access-id"]
        etag = r.headers["etag"]
        assert r.headers["cache-control"].endswith("immutable")
        again = c.get(f"/zarr/products/{PRODUCT}/TEMP/c/0/0/0", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
        part = c.get(f"/zarr/products/{PRODUCT}/TEMP/c/0/0/0", headers={"Range": "bytes=10-99"})
        assert part.status_code == 206 and part.content == on_disk[10:100]
        head = c.head(f"/zarr/products/{PRODUCT}/TEMP/c/0/0/0")
        assert head.status_code == 200 and int(head.headers["content-length"]) == len(on_disk)
        for missing in ("TEMP/c/99/0/0", "TEMP/c/0/0", "NOPE/zarr.json", "../../x", "TEMP/c/a"):
            assert c.get(f"/zarr/products/{PRODUCT}/{missing}").status_code == 404, missing
    with server.env.sessions() as s:
        row = s.get(AccessRecord, access_id)
        assert row is not None
        assert row.channel == "zarr" and row.bytes == len(on_disk)
        assert row.cells == int(np.prod(local["TEMP"].encoding["chunks"]))


def test_metadata_and_axes_are_gated_but_only_data_chunks_are_metered(
    server: Server, levitus: str
) -> None:
    from sqlalchemy import func, select

    key = _buyer(server)

    def records() -> int:
        with server.env.sessions() as s:
            return int(s.scalar(select(func.count()).select_from(AccessRecord)) or 0)

    with server.client(key) as c:
        before = records()
        for free in ("zarr.json", "TEMP/zarr.json", "latitude/c/0", "depth/c/0"):
            r = c.get(f"/zarr/products/{PRODUCT}/{free}")
            assert r.status_code == 200, (free, r.text)
            assert "oceanmart-access-id" not in r.headers, free
        assert records() == before
        data = c.get(f"/zarr/products/{PRODUCT}/TEMP/c/0/0/0")
        assert data.status_code == 200 and "oceanmart-access-id" in data.headers
        assert records() == before + 1
    with server.client(None) as anonymous:
        assert anonymous.get(f"/zarr/products/{PRODUCT}/latitude/c/0").status_code == 401


def _version_path(server: Server) -> str:
    from catalog.products import get_product

    with server.env.sessions() as s:
        version = get_product(s, PRODUCT).version
    assert version is not None
    return version.store_path


def _chunk_file(server: Server, copy: str, key: str) -> bytes:
    data: bytes = server.env.store.fs.cat_file(
        server.env.store.location(_version_path(server), f"{copy}.zarr", key)
    )
    return data


def test_a_box_read_over_http_equals_ncks(server: Server, levitus: str, tmp_path: Path) -> None:
    import subprocess

    from tests.catalog.test_subset_reference import _as_ours
    from tests.conftest import require_tool

    ncks = require_tool("ncks")
    src = server.env.settings.corpus_dir / "ferret-datasets" / "levitus_climatology.cdf"
    ref = tmp_path / "ref.nc"
    subprocess.run(
        [ncks, "-O", "-v", "TEMP", "-d", "XAXLEVITR,110.,150.", "-d", "YAXLEVITR,-40.,-10.",
         "-d", "ZAXLEVITR,0.,300.", str(src), str(ref)],
        check=True,
    )  # fmt: skip
    want = _as_ours(xr.open_dataset(ref).load())["TEMP"]
    remote = xr.open_zarr(
        f"{server.url}/zarr/products/{PRODUCT}",
        storage_options={"headers": {"Authorization": f"Bearer {_buyer(server)}"}},
        zarr_format=3,
    )
    got = remote["TEMP"].sel(longitude=slice(110, 150), latitude=slice(-40, -10),
                             depth=slice(0, 300)).load()  # fmt: skip
    assert got.shape == want.transpose(*got.dims).shape and got.size > 1000
    np.testing.assert_array_equal(got.values, want.transpose(*got.dims).values)


def test_zarr_requests_decide_their_gate_where_they_read(
    server: Server, levitus: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Zarr routes take the gate undecided and decide it where the object is read (on
    the event loop, or in the one worker thread of a bigger read): no hand-over of its
    own (an open_zarr and a point series make eight requests)."""
    import api.deps

    def no_hop(*_: object, **__: object) -> None:
        raise AssertionError("the gate took a thread of its own")

    monkeypatch.setattr(api.deps, "run_in_threadpool", no_hop)
    with server.client(_buyer(server)) as c:
        for path in ("zarr.json", "copies/series/TEMP/zarr.json", "TEMP/c/0/0/0"):
            r = c.get(f"/zarr/products/{PRODUCT}/{path}")
            assert r.status_code == 200, (path, r.text)
        assert r.headers["oceanmart-access-id"].startswith("acc_")
    with server.client() as c:  # and still no data without a key
        assert c.get(f"/zarr/products/{PRODUCT}/TEMP/c/0/0/0").status_code == 401


def _zarr_key(server: Server) -> tuple[str, str]:
    name = unique("zarrloop")
    with transaction(server.env.sessions) as s:
        create_account(s, name, "enterprise")
        grant(s, name, PRODUCT, granted_by="test")
        info, key = create_key(s, name, "data:read")
    return info.id, key


def test_small_reads_are_served_on_the_event_loop_and_bigger_ones_in_a_thread(
    server: Server, levitus: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Metadata and chunks up to ``LOOP_BYTES`` are served on the event loop (no worker
    thread); past it the same request runs in a worker thread: the same bytes, one
    access record each."""
    import api.routers.zarr as router

    threads: list[str] = []
    real = router.run_in_threadpool

    async def counted(fn: Any, *args: Any) -> Any:
        threads.append(str(args[-1]))
        return await real(fn, *args)

    monkeypatch.setattr(router, "run_in_threadpool", counted)
    key_id, key = _zarr_key(server)
    chunk = f"/zarr/products/{PRODUCT}/TEMP/c/0/0/0"
    with server.client(key) as c:
        size = int(c.head(chunk).headers["content-length"])  # (a HEAD reads nothing)
        monkeypatch.setattr(router, "LOOP_BYTES", size)
        meta = c.get(f"/zarr/products/{PRODUCT}/zarr.json")
        on_loop = c.get(chunk)
        ranged = c.get(chunk, headers={"Range": "bytes=0-99"})
        assert [r.status_code for r in (meta, on_loop, ranged)] == [200, 200, 206]
        assert threads == []
        monkeypatch.setattr(router, "LOOP_BYTES", 99)
        in_thread = c.get(chunk)
        small_range = c.get(chunk, headers={"Range": "bytes=0-98"})  # 99 bytes: on the loop
        assert (in_thread.status_code, small_range.status_code) == (200, 206)
        assert threads == ["TEMP/c/0/0/0"]
    assert in_thread.content == on_loop.content
    assert small_range.content == ranged.content[:99]
    ids = [r.headers["oceanmart-access-id"] for r in (on_loop, ranged, in_thread, small_range)]
    assert len(set(ids)) == 4
    with server.env.sessions() as s:
        rows = [s.get(AccessRecord, i) for i in ids]
        assert all(row is not None and row.key_id == key_id for row in rows)
        assert (
            s.scalar(
                select(func.count()).select_from(AccessRecord).where(AccessRecord.key_id == key_id)
            )
            == 4
        )


def test_a_read_on_the_event_loop_waits_for_a_lock_in_a_worker_thread(
    server: Server, levitus: str
) -> None:
    """A chunk served on the event loop meets a lock (the key's row, which its first use
    writes): the request runs again in a worker thread and waits there, answered once
    the lock is released, metered once and counted once against its key's rate (a
    burst of one: a second count would be a 429)."""
    key_id, key = _zarr_key(server)
    r = get_while_key_locked(server, key_id, key, f"/zarr/products/{PRODUCT}/TEMP/c/0/0/0")
    assert r.status_code == 200, r.text
    with server.env.sessions() as s:
        assert (
            s.scalar(
                select(func.count()).select_from(AccessRecord).where(AccessRecord.key_id == key_id)
            )
            == 1
        )
        assert s.get(AccessRecord, r.headers["oceanmart-access-id"]) is not None
