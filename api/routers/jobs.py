"""Asynchronous jobs: submit a selection too big to wait for, follow it, read its result."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated, Any, Literal

from fastapi import Query, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import (
    DataReader,
    EntitledDep,
    JobsDep,
    SessionsDep,
    StoreDep,
    ViewerDep,
    ZarrDep,
    entitle,
    run_source,
)
from api.routers import Router
from api.schemas import ComponentCall
from catalog import jobs
from catalog.compute import plan_run
from catalog.planner import plan
from catalog.products import get_product, record_subset
from catalog.sea_areas import resolve_area
from catalog.selection import canonical, selection_from_json
from catalog.subset import check_limit
from oceanmart.db import transaction
from oceanmart.errors import InvalidParameter, NotFound
from oceanmart.settings import Settings
from pricing.metering import Channel, Delivery

router = Router(prefix="/v1/jobs", tags=["jobs"])


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product: str = Field(max_length=64, examples=["levitus-climatology"])
    selection: dict[str, Any] = Field(
        default_factory=dict, examples=[{"bbox": [100, -40, 180, 40], "variables": ["TEMP"]}]
    )
    component: ComponentCall | None = Field(
        default=None, description="a processing component to run instead of a plain cut"
    )
    format: Literal["netcdf", "zarr"] = "netcdf"


def _out(job: jobs.JobInfo) -> dict[str, Any]:
    links = [{"rel": "self", "href": f"/v1/jobs/{job.id}"}]
    if job.status == "succeeded":
        links.append({"rel": "results", "href": f"/v1/jobs/{job.id}/results"})
    return {
        "id": job.id,
        "status": job.status,
        "progress": round(job.progress, 4),
        "product": job.product_id,
        "version": job.version_id,
        "subset_id": job.subset_id,
        "format": job.format,
        "selection": job.request.get("selection"),
        "component": job.request.get("component"),
        "plan": job.plan,
        "result_bytes": job.result_bytes,
        "error": job.error,
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "links": links,
    }


@router.post("", status_code=202)
def submit(
    body: JobIn,
    request: Request,
    response: Response,
    principal: DataReader,
    sessions: SessionsDep,
    store: StoreDep,
    viewer: ViewerDep,
    runner: JobsDep,
) -> dict[str, Any]:
    """Plan and queue a selection or a component run; 202 with the job (follow
    `Location`). Entitlements are checked now and again when the result is read."""
    settings: Settings = request.app.state.settings
    if body.component is not None:
        if body.selection:
            raise InvalidParameter(
                "selection", "a component job takes its area from its parameters"
            )
        source = run_source(principal, sessions, store)
        rp = plan_run(body.component.id, body.component.parameters, body.product, source)
        check_limit(
            replace(rp.reads[0].plan, cells=rp.cells, bytes=rp.bytes), settings.max_job_bytes
        )
        first = rp.reads[0].plan
        planned_json = rp.as_dict()
        job_request: dict[str, Any] = {
            "component": {
                "id": body.component.id,
                "parameters": rp.parameters.model_dump(mode="json"),
            },
            "format": body.format,
        }
        plans = [r.plan for r in rp.reads]
    else:
        selection = selection_from_json(body.selection)
        with sessions() as session:
            product = get_product(session, body.product, viewer)
            entitle(session, principal, product)
            area = resolve_area(session, selection.sea_area) if selection.sea_area else None
        assert product.version is not None
        ds = store.open_version(product.version.store_path, dask=False)
        first = plan(product, ds, selection, area)
        check_limit(first, settings.max_job_bytes)
        planned_json = {k: v for k, v in first.as_dict().items() if k != "selection"}
        job_request = {"selection": canonical(selection), "format": body.format}
        plans = [first]
    with transaction(sessions) as session:
        for p in plans:
            record_subset(session, p)
        job = jobs.submit(
            session,
            account_id=principal.account_id,
            key_id=principal.key_id,
            product_id=first.product_id,
            version_id=first.version_id,
            subset_id=first.subset_id,
            plan=planned_json,
            request=job_request,
        )
    runner.enqueue(job.id)
    response.headers["Location"] = f"/v1/jobs/{job.id}"
    return _out(job)


@router.get("")
def list_jobs(
    principal: DataReader,
    sessions: SessionsDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """The caller's account's jobs, newest first."""
    with sessions() as session:
        return {"jobs": [_out(j) for j in jobs.list_jobs(session, principal.account_id, limit)]}


@router.get("/{job_id}")
def job(job_id: str, principal: DataReader, sessions: SessionsDep) -> dict[str, Any]:
    with sessions() as session:
        return _out(jobs.get_job(session, job_id, principal.account_id))


@router.delete("/{job_id}")
def cancel(
    job_id: str, principal: DataReader, sessions: SessionsDep, runner: JobsDep
) -> dict[str, Any]:
    """Cancel a queued or running job (it stops at its next task)."""
    with transaction(sessions) as session:
        info = jobs.cancel(session, job_id, principal.account_id)
    runner.cancel(job_id)
    return _out(info)


@router.get("/{job_id}/results", openapi_extra={"x-oceanmart-data": True})
def results(job_id: str, gate: EntitledDep, runner: JobsDep, stores: ZarrDep) -> Response:
    """The result of a finished job: NetCDF4, or a zipped Zarr store."""
    job = gate.job
    assert job is not None
    if job.status != "succeeded":
        raise NotFound(
            f"job {job.id} has no result: it is {job.status}",
            extensions={"job": job.id, "status": job.status},
        )
    location = runner.result_location(job)
    accesses = [
        gate.record(
            Delivery(
                product_id=read["product"],
                version_id=read["version"],
                channel=Channel.JOB,
                selection_hash=read["subset_id"],
                cells=int(read["cells"]),
                bytes=int(read["bytes"]),
                subset_id=read["subset_id"],
            )
        )
        for read in job.reads
    ]
    headers = {
        "OceanMart-Access-Id": ", ".join(a.id for a in accesses),
        "OceanMart-Product-Version": job.version_id,
    }
    name = f"{job.product_id}_{job.version_id}_{job.id}"
    if job.format == "zarr":
        headers["Content-Disposition"] = f'attachment; filename="{name}.zarr.zip"'
        return StreamingResponse(
            stores.iter_zip(location), media_type="application/zip", headers=headers
        )
    if stores.store.local:
        return FileResponse(
            location, media_type="application/x-netcdf", filename=f"{name}.nc", headers=headers
        )
    headers["Content-Disposition"] = f'attachment; filename="{name}.nc"'
    return StreamingResponse(
        stores.store.iter_bytes(location), media_type="application/x-netcdf", headers=headers
    )
