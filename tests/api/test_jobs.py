"""Asynchronous jobs: submitted, followed, cancelled, recovered, read through the gate."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import xarray as xr

from api import create_app
from catalog import jobs
from catalog.planner import plan
from catalog.products import get_product
from catalog.selection import canonical, selection_from_json
from oceanmart.accounts import create_account, create_key, get_account
from oceanmart.db import transaction
from pricing.entitlements import grant
from pricing.metering import AccessRecord
from tests.conftest import Server, running, unique

PRODUCT = "levitus-climatology"
SELECTION = {"bbox": [100, -40, 180, 40], "depth": [0, 500], "variables": ["TEMP", "SALT"]}


def _buyer(server: Server, *, entitled: bool = True) -> tuple[str, str]:
    name = unique("jobs")
    with transaction(server.env.sessions) as s:
        create_account(s, name, "enterprise")
        if entitled:
            grant(s, name, PRODUCT, granted_by="test")
        return name, create_key(s, name, "catalog:read,data:read")[1]


def _wait(c: httpx.Client, job_id: str, until: tuple[str, ...], seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        body = c.get(f"/v1/jobs/{job_id}").json()
        if body["status"] in until or time.monotonic() > deadline:
            return body
        time.sleep(0.1)


def test_a_job_runs_and_its_netcdf_equals_the_direct_download(
    server: Server, levitus: str, tmp_path: Path
) -> None:
    _, key = _buyer(server)
    with server.client(key) as c:
        r = c.post("/v1/jobs", json={"product": PRODUCT, "selection": SELECTION})
        assert r.status_code == 202, r.text
        job = r.json()
        assert r.headers["location"] == f"/v1/jobs/{job['id']}"
        assert job["status"] in ("queued", "running") and job["plan"]["cells"] > 0
        done = _wait(c, job["id"], ("succeeded", "failed"))
        assert done["status"] == "succeeded", done
        assert done["progress"] == 1.0
        assert {"rel": "results", "href": f"/v1/jobs/{job['id']}/results"} in done["links"]
        result = c.get(f"/v1/jobs/{job['id']}/results")
        direct = c.get(f"/v1/subsets/{job['subset_id']}/download")
    assert result.status_code == 200 and direct.status_code == 200
    (tmp_path / "job.nc").write_bytes(result.content)
    (tmp_path / "direct.nc").write_bytes(direct.content)
    a, b = xr.open_dataset(tmp_path / "job.nc"), xr.open_dataset(tmp_path / "direct.nc")
    assert a.attrs["oceanmart_job"] == job["id"]
    for name in ("TEMP", "SALT"):
        np.testing.assert_array_equal(a[name].values, b[name].values)
    assert done["result_bytes"] == len(result.content)
    with server.env.sessions() as s:
        row = s.get(AccessRecord, result.headers["oceanmart-access-id"])
        assert row is not None and row.channel == "job" and row.cells == job["plan"]["cells"]


def test_a_zarr_job_gives_a_zipped_store(server: Server, levitus: str, tmp_path: Path) -> None:
    import zarr

    _, key = _buyer(server)
    with server.client(key) as c:
        job = c.post(
            "/v1/jobs", json={"product": PRODUCT, "selection": SELECTION, "format": "zarr"}
        ).json()
        assert _wait(c, job["id"], ("succeeded", "failed"))["status"] == "succeeded"
        r = c.get(f"/v1/jobs/{job['id']}/results")
    assert r.headers["content-type"] == "application/zip"
    (tmp_path / "r.zip").write_bytes(r.content)
    ds = xr.open_zarr(zarr.storage.ZipStore(tmp_path / "r.zip", mode="r"), zarr_format=3)
    shape = job["plan"]["shape"]
    assert ds.attrs["oceanmart_job"] == job["id"]
    assert ds.TEMP.shape == (shape["depth"], shape["latitude"], shape["longitude"]) == (11, 80, 80)


def test_jobs_are_private_to_their_account_and_need_an_entitlement(
    server: Server, levitus: str
) -> None:
    _, key = _buyer(server)
    _, other = _buyer(server)
    _, stranger = _buyer(server, entitled=False)
    with server.client(key) as c:
        job = c.post("/v1/jobs", json={"product": PRODUCT, "selection": SELECTION}).json()
        _wait(c, job["id"], ("succeeded", "failed"))
    with server.client(other) as c:
        assert c.get(f"/v1/jobs/{job['id']}").status_code == 404
        assert c.get(f"/v1/jobs/{job['id']}/results").status_code == 404
        assert c.delete(f"/v1/jobs/{job['id']}").status_code == 404
        assert job["id"] not in [j["id"] for j in c.get("/v1/jobs").json()["jobs"]]
    with server.client(stranger) as c:
        r = c.post("/v1/jobs", json={"product": PRODUCT, "selection": SELECTION})
        assert r.status_code == 403 and r.json()["type"] == "/problems/not-entitled"
    with server.client(key) as c:
        bad = c.post("/v1/jobs", json={"product": PRODUCT, "selection": {"depth": [10, 0]}})
        assert bad.status_code == 400 and bad.json()["parameter"] == "depth"


def test_a_cancelled_job_stops_and_has_no_result(
    server: Server, levitus: str, slow_cuts: None
) -> None:
    _, key = _buyer(server)
    with server.client(key) as c:
        job = c.post("/v1/jobs", json={"product": PRODUCT, "selection": SELECTION}).json()
        running_ = _wait(c, job["id"], ("running",))
        assert running_["status"] == "running"
        time.sleep(1.0)
        assert 0 < _wait(c, job["id"], ("x",), seconds=0)["progress"] < 1
        busy = server.app.state.jobs._cancel  # jobs the runner is working on
        assert job["id"] in busy
        assert c.delete(f"/v1/jobs/{job['id']}").json()["status"] == "cancelled"
        started = time.monotonic()
        # the runner lets go of it within a task or two (the whole job takes 20 s)
        while job["id"] in busy and time.monotonic() - started < 5:
            time.sleep(0.05)
        assert job["id"] not in busy
        final = c.get(f"/v1/jobs/{job['id']}").json()
        assert final["status"] == "cancelled" and final["result_bytes"] is None
        assert c.get(f"/v1/jobs/{job['id']}/results").status_code == 404


def test_a_job_left_running_by_a_dead_process_runs_again(server: Server, levitus: str) -> None:
    name, key = _buyer(server)
    selection = selection_from_json(SELECTION)
    with transaction(server.env.sessions) as s:
        product = get_product(s, PRODUCT)
        assert product.version is not None
        ds = server.env.store.open_version(product.version.store_path, dask=False)
        acc = get_account(s, name)
        planned = plan(product, ds, selection)
        job = jobs.submit(
            s,
            account_id=acc.id,
            key_id="deadbeef",
            product_id=planned.product_id,
            version_id=planned.version_id,
            subset_id=planned.subset_id,
            plan=planned.as_dict(),
            request={"selection": canonical(selection), "format": "netcdf"},
        )
        assert jobs.claim(s, job.id)  # a process took it, then died
    app = create_app(server.env.settings)
    with running(server.env.settings, app) as url, httpx.Client(base_url=url) as c:
        c.headers["Authorization"] = f"Bearer {key}"
        assert _wait(c, job.id, ("succeeded", "failed"))["status"] == "succeeded"


def test_a_component_job_equals_the_direct_run(
    server: Server, navy_winds: str, tmp_path: Path
) -> None:
    name = unique("cjob")
    with transaction(server.env.sessions) as s:
        create_account(s, name, "enterprise")
        grant(s, name, "navy-winds-monthly", granted_by="test")
        key = create_key(s, name, "catalog:read,data:read")[1]
    call = {
        "id": "temporal-aggregation",
        "parameters": {"variables": ["UWND"], "area": {"bbox": [100, -20, 180, 20]},
                       "period": "year", "statistic": "mean"},
    }  # fmt: skip
    with server.client(key) as c:
        r = c.post("/v1/jobs", json={"product": "navy-winds-monthly", "component": call})
        assert r.status_code == 202, r.text
        job = r.json()
        assert job["component"]["id"] == "temporal-aggregation"
        assert _wait(c, job["id"], ("succeeded", "failed"))["status"] == "succeeded"
        result = c.get(f"/v1/jobs/{job['id']}/results")
        direct = c.post(
            "/v1/components/temporal-aggregation/runs",
            json={"product": "navy-winds-monthly", "parameters": call["parameters"],
                  "format": "netcdf"},
        )  # fmt: skip
        both = c.post(
            "/v1/jobs",
            json={
                "product": "navy-winds-monthly",
                "component": call,
                "selection": {"bbox": [0, 0, 1, 1]},
            },
        )
    assert both.status_code == 400 and both.json()["parameter"] == "selection"
    assert result.status_code == 200 and direct.status_code == 200, direct.text
    (tmp_path / "j.nc").write_bytes(result.content)
    (tmp_path / "d.nc").write_bytes(direct.content)
    a, b = xr.open_dataset(tmp_path / "j.nc"), xr.open_dataset(tmp_path / "d.nc")
    assert a.UWND.sizes["time"] == 11  # 1982-1992
    np.testing.assert_array_equal(a.UWND.values, b.UWND.values)
