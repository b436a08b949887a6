"""Downloads of saved subsets, and the guards of heavy work: size, rate, concurrency,
clients that go away."""

from __future__ import annotations

import io
import subprocess
import tempfile
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import xarray as xr
import zarr
from sqlalchemy import select

from oceanmart.accounts import create_account, create_key
from oceanmart.db import transaction
from pricing.entitlements import grant
from pricing.metering import AccessRecord
from tests.catalog.test_subset_reference import _as_ours, _assert_same
from tests.conftest import Server, require_tool, running, unique

PRODUCT = "levitus-climatology"
BOX = {"bbox": [-10, -20, 10, 20], "depth": [0, 100], "variables": ["TEMP"]}


def _buyer(server: Server) -> str:
    name = unique("dl")
    with transaction(server.env.sessions) as s:
        create_account(s, name, "enterprise")
        grant(s, name, PRODUCT, granted_by="test")
        return create_key(s, name, "catalog:read,data:read")[1]


def _plan(c: httpx.Client, selection: dict[str, Any]) -> str:
    r = c.post("/v1/plans", json={"product": PRODUCT, "selection": selection})
    assert r.status_code == 200, r.text
    subset_id: str = r.json()["subset_id"]
    return subset_id


def test_netcdf_download_equals_cdo_and_names_its_access(
    server: Server, levitus: str, levitus_file: Path, tmp_path: Path
) -> None:
    cdo = require_tool("cdo")
    ref_path = tmp_path / "cdo.nc"
    subprocess.run(
        [cdo, "-s", "-sellevel,0,10,20,30,50,75,100", "-sellonlatbox,-10,10,-20,20",
         str(levitus_file), str(ref_path)],
        check=True,
    )  # fmt: skip
    with server.client(_buyer(server)) as c:
        subset_id = _plan(c, BOX)
        r = c.get(f"/v1/subsets/{subset_id}/download", params={"format": "netcdf"})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/x-netcdf"
    (tmp_path / "ours.nc").write_bytes(r.content)
    ours = xr.open_dataset(tmp_path / "ours.nc").load()
    _assert_same(ours, _as_ours(xr.open_dataset(ref_path).load()), "TEMP")
    access_id = r.headers["oceanmart-access-id"]
    assert ours.attrs["oceanmart_access_id"] == access_id
    assert ours.attrs["oceanmart_subset"] == subset_id
    with server.env.sessions() as s:
        row = s.get(AccessRecord, access_id)
        assert row is not None and row.channel == "download" and row.subset_id == subset_id
        assert row.cells == ours.TEMP.size


def test_netcdf_is_uncompressed_unless_a_deflate_level_is_asked(
    server: Server, levitus: str, tmp_path: Path
) -> None:
    import netCDF4

    with server.client(_buyer(server)) as c:
        subset_id = _plan(c, BOX)
        url = f"/v1/subsets/{subset_id}/download"
        plain = c.get(url, params={"format": "netcdf"})
        packed = c.get(url, params={"format": "netcdf", "compression": 5})
        bad = c.get(url, params={"format": "netcdf", "compression": 10})
    assert plain.status_code == packed.status_code == 200, (plain.text, packed.text)
    filters = {}
    for name, r in (("plain", plain), ("packed", packed)):
        (tmp_path / f"{name}.nc").write_bytes(r.content)
        with netCDF4.Dataset(tmp_path / f"{name}.nc") as nc:
            filters[name] = nc["TEMP"].filters()
    assert not filters["plain"]["zlib"]
    assert filters["packed"]["zlib"] and filters["packed"]["complevel"] == 5
    assert filters["packed"]["shuffle"]
    values = [xr.open_dataset(tmp_path / f"{n}.nc")["TEMP"].values for n in ("plain", "packed")]
    np.testing.assert_array_equal(*values)
    assert bad.status_code == 400, bad.text
    assert bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["parameter"] == "compression"


def test_zipped_zarr_and_zarr_over_http_hold_the_netcdf_values(
    server: Server, levitus: str, tmp_path: Path
) -> None:
    key = _buyer(server)
    selection = {"bbox": [170, -10, -170, 10], "depth": [0, 50], "variables": ["TEMP", "SALT"]}
    with server.client(key) as c:
        subset_id = _plan(c, selection)
        nc = c.get(f"/v1/subsets/{subset_id}/download")
        with c.stream("GET", f"/v1/subsets/{subset_id}/download", params={"format": "zarr"}) as r:
            assert r.status_code == 200
            assert r.headers["content-type"] == "application/zip"
            assert "oceanmart-access-id" in r.headers
            pieces = list(r.iter_raw())
    assert len(pieces) > 1  # streamed, not sent as one body
    (tmp_path / "ours.nc").write_bytes(nc.content)
    want = xr.open_dataset(tmp_path / "ours.nc").load()
    archive = zipfile.ZipFile(io.BytesIO(b"".join(pieces)))
    assert "zarr.json" in archive.namelist() and "TEMP/zarr.json" in archive.namelist()
    (tmp_path / "s.zip").write_bytes(b"".join(pieces))
    store = zarr.storage.ZipStore(tmp_path / "s.zip", mode="r")
    zipped = xr.open_zarr(store, zarr_format=3).load()
    remote = xr.open_zarr(
        f"{server.url}/zarr/subsets/{subset_id}",
        storage_options={"headers": {"Authorization": f"Bearer {key}"}},
        zarr_format=3,
    ).load()
    for got in (zipped, remote):
        assert got.attrs["oceanmart_subset"] == subset_id
        for name in ("TEMP", "SALT"):
            np.testing.assert_array_equal(got[name].values, want[name].values)
        np.testing.assert_array_equal(got.longitude.values, want.longitude.values)


def test_too_large_is_413_with_the_plan_and_where_to_go(server: Server, levitus: str) -> None:
    settings = server.env.settings.model_copy(update={"max_request_bytes": 10_000})
    key = _buyer(server)
    with running(settings) as url, httpx.Client(base_url=url, headers=_auth(key)) as c:
        subset_id = _plan(c, BOX)
        r = c.get(f"/v1/subsets/{subset_id}/download")
    assert r.status_code == 413
    body = r.json()
    assert body["type"] == "/problems/request-too-large"
    assert body["plan"]["subset_id"] == subset_id and body["bytes"] > 10_000
    assert {link["rel"] for link in body["links"]} == {"quote", "job"}


def test_rate_limit_is_429_with_retry_after(server: Server, levitus: str) -> None:
    settings = server.env.settings.model_copy(
        update={"rate_limit_per_s": 0.5, "rate_limit_burst": 3}
    )
    key = _buyer(server)
    with running(settings) as url, httpx.Client(base_url=url, headers=_auth(key)) as c:
        codes = [c.get("/v1/me").status_code for _ in range(4)]
        r = c.get("/v1/me")
    assert codes == [200, 200, 200, 429]
    assert r.status_code == 429 and r.json()["type"] == "/problems/rate-limited"
    assert int(r.headers["retry-after"]) >= 1
    # the limit is per key: another key is not slowed down
    with running(settings) as url, httpx.Client(base_url=url, headers=_auth(_buyer(server))) as c:
        assert c.get("/v1/me").status_code == 200


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_a_client_that_goes_away_stops_the_work(
    server: Server, levitus: str, slow_cuts: None
) -> None:
    from api import create_app

    key = _buyer(server)
    selection = {"bbox": [120, 0, 130, 39], "depth": [0, 0], "variables": ["TEMP"]}
    app = create_app(server.env.settings)
    limiter = app.state.limiter
    scratch = Path(tempfile.gettempdir())
    before = set(scratch.glob("oceanmart-*"))
    with running(server.env.settings, app) as url, httpx.Client(base_url=url) as c:
        c.headers.update(_auth(key))
        subset_id = _plan(c, selection)
        with pytest.raises(httpx.ReadTimeout):
            c.get(f"/v1/subsets/{subset_id}/download", timeout=1.0)
        assert limiter._heavy, "the work should still be running when the client leaves"
        deadline = time.monotonic() + 5  # the uncancelled work would take 10 s
        while limiter._heavy and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not limiter._heavy, "the heavy slot is still held: the work went on"
        # Nothing of the half-written file is left (other tests' downloads come and go).
        while (left := set(scratch.glob("oceanmart-*")) - before) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not left, f"the cancelled download left {left}"
    with server.env.sessions() as s:
        delivered = s.scalars(select(AccessRecord).where(AccessRecord.subset_id == subset_id))
        assert list(delivered) == []  # nothing was delivered, nothing is metered


def test_concurrent_heavy_requests_per_key_are_limited(
    server: Server, levitus: str, slow_cuts: None
) -> None:
    settings = server.env.settings.model_copy(update={"max_heavy_per_key": 1})
    key = _buyer(server)
    selection = {"bbox": [120, 0, 130, 19], "depth": [0, 0], "variables": ["TEMP"]}
    with running(settings) as url, httpx.Client(base_url=url, headers=_auth(key)) as c:
        subset_id = _plan(c, selection)
        first: list[int] = []
        t = threading.Thread(
            target=lambda: first.append(
                c.get(f"/v1/subsets/{subset_id}/download", timeout=30).status_code
            )
        )
        t.start()
        time.sleep(1.0)
        second = c.get(f"/v1/subsets/{subset_id}/download", timeout=30)
        t.join()
        other = httpx.get(f"{url}/v1/me", headers=_auth(_buyer(server)))
    assert first == [200]
    assert second.status_code == 429 and second.headers["retry-after"] == "1"
    assert "POST /v1/jobs" in second.json()["detail"]
    assert other.status_code == 200
