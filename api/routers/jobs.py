"""Asynchronous jobs: submit a selection too big to wait for, follow it, read its result."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
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
)
from catalog import jobs
from catalog.planner import plan
from catalog.products import get_product, record_subset
from catalog.sea_areas import resolve_area
from catalog.selection import canonical, selection_from_json
from catalog.subset import check_limit
from oceanmart.db import transaction
from oceanmart.errors import NotFound
from oceanmart.settings import Settings
from pricing.metering import Channel, Delivery

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])


class JobIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product: str = Field(max_length=64, examples=["levitus-climatology"])
    selection: dict[str, Any] = Field(
        default_factory=dict, examples=[{"bbox": [100, -40, 180, 40], "variables": ["TEMP"]}]
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
    """Plan and queue a selection; 202 with the job (follow `Location`). The entitlement
    is checked now and again when the result is read."""
    settings: Settings = request.app.state.settings
    selection = selection_from_json(body.selection)
    with sessions() as session:
        product = get_product(session, body.product, viewer)
        entitle(session, principal, product)
        area = resolve_area(session, selection.sea_area) if selection.sea_area else None
    assert product.version is not None
    planned = plan(
        product, store.open_version(product.version.store_path, dask=False), selection, area
    )
    check_limit(planned, settings.max_job_bytes)
    with transaction(sessions) as session:
        record_subset(session, planned)
        job = jobs.submit(
            session,
            account_id=principal.account_id,
            key_id=principal.key_id,
            plan=planned,
            request={"selection": canonical(selection), "format": body.format},
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
    access = gate.record(
        Delivery(
            product_id=job.product_id,
            version_id=job.version_id,
            channel=Channel.JOB,
            selection_hash=job.subset_id,
            cells=int(job.plan["cells"]),
            bytes=int(job.result_bytes or 0),
            subset_id=job.subset_id,
        )
    )
    headers = {"OceanMart-Access-Id": access.id, "OceanMart-Product-Version": job.version_id}
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
