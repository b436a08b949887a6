"""The job runner: a few worker threads that run queued jobs with dask.

Started by the API app (its lifespan) and stopped with it. Progress is the share of
dask tasks done, written at most every PROGRESS_S; a job cancelled through the API
stops at its next task. Results go to ``<data>/jobs/<id>/result.{nc,zarr}``, written
to a staging name first, so a result is there whole or not at all.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import structlog
import xarray as xr
from sqlalchemy.orm import Session, sessionmaker

from catalog import jobs
from catalog import subset as engine
from catalog.compute import Source, execute, plan_run
from catalog.encode import write_result_netcdf
from catalog.products import ProductInfo, get_product
from catalog.sea_areas import SeaAreaInfo, resolve_area
from catalog.selection import selection_from_json
from catalog.store import DataStore
from catalog.work import discard, scratch_path, watched
from oceanmart.db import transaction
from oceanmart.errors import Cancelled, OceanMartError

log = structlog.get_logger(__name__)
PROGRESS_S = 0.5
RESULT = {"netcdf": "result.nc", "zarr": "result.zarr"}


class JobRunner:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        store: DataStore,
        *,
        workers: int,
        max_job_bytes: int,
    ) -> None:
        self.sessions = sessions
        self.store = store
        self.max_job_bytes = max_job_bytes
        self._pool: ThreadPoolExecutor | None = None
        self._workers = workers
        self._cancel: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        """Re-queue what a dead process left running, then start on the queue."""
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="oceanmart-job")
        with transaction(self.sessions) as session:
            again = jobs.recover(session)
            waiting = jobs.queued(session)
        if again:
            log.warning("jobs.recovered", count=again)
        for job_id in waiting:
            self.enqueue(job_id)

    def stop(self) -> None:
        with self._lock:
            for event in self._cancel.values():
                event.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def enqueue(self, job_id: str) -> None:
        if self._pool is None:
            raise RuntimeError("the job runner is not started")
        self._pool.submit(self._run, job_id)

    def cancel(self, job_id: str) -> None:
        with self._lock:
            event = self._cancel.get(job_id)
        if event is not None:
            event.set()

    def result_location(self, job: jobs.JobInfo) -> str:
        return f"{self.store.location('jobs', job.id)}/{RESULT[job.format]}"

    def _run(self, job_id: str) -> None:
        with transaction(self.sessions) as session:
            if not jobs.claim(session, job_id):
                return  # cancelled meanwhile, or another runner has it
        event = threading.Event()
        with self._lock:
            self._cancel[job_id] = event
        started = time.monotonic()
        try:
            size = self._execute(job_id, event)
        except Cancelled:
            with transaction(self.sessions) as session:
                jobs.fail(session, job_id, "cancelled", "the job was cancelled")
            log.info("job.cancelled", job=job_id)
        except OceanMartError as exc:
            with transaction(self.sessions) as session:
                jobs.fail(session, job_id, exc.code, exc.detail)
            log.info("job.failed", job=job_id, code=exc.code)
        except Exception as exc:
            with transaction(self.sessions) as session:
                jobs.fail(session, job_id, "internal-error", "the job failed; quote its id")
            log.exception("job.crashed", job=job_id, error=exc.__class__.__name__)
        else:
            took = round(time.monotonic() - started, 3)
            log.info("job.done", job=job_id, bytes=size, seconds=took)
        finally:
            with self._lock:
                self._cancel.pop(job_id, None)

    def _source(self, job: jobs.JobInfo) -> Source:
        """Where a component job reads: its own product at the version it was planned
        on, any other product (a climatology) at its current version."""

        def product(product_id: str) -> ProductInfo:
            with self.sessions() as session:
                pinned = job.version_id if product_id == job.product_id else None
                return get_product(session, product_id, version_id=pinned)

        def area(area_id: str) -> SeaAreaInfo:
            with self.sessions() as session:
                return resolve_area(session, area_id)

        return Source(self.store, product, area)

    def _execute(self, job_id: str, event: threading.Event) -> int:
        with self.sessions() as session:
            job = jobs.get_job(session, job_id)
            product = get_product(session, job.product_id, version_id=job.version_id)
        last = [0.0]

        def progress(done: int, total: int) -> None:
            now = time.monotonic()
            if now - last[0] < PROGRESS_S:
                return
            last[0] = now
            with transaction(self.sessions) as session:
                if jobs.is_cancelled(session, job_id):
                    event.set()
                    return
                jobs.set_progress(session, job_id, done / total)

        with watched(event, progress):
            call = job.request.get("component")
            if call is not None:
                source = self._source(job)
                rp = plan_run(call["id"], call["parameters"], job.product_id, source)
                result = execute(rp, source)
                size = self._write(
                    job, result.dataset, lambda path: write_result_netcdf(result, path)
                )
            else:
                selection = selection_from_json(job.request["selection"])
                with self.sessions() as session:
                    area = resolve_area(session, selection.sea_area) if selection.sea_area else None
                selected, _ = engine.cut(self.store, product, selection, self.max_job_bytes, area)

                def netcdf(path: Path) -> None:
                    engine.write_netcdf(
                        selected,
                        path,
                        product_id=product.id,
                        version_id=job.version_id,
                        selection=selection,
                        extra={"oceanmart_job": job.id, "oceanmart_subset": job.subset_id},
                    )

                size = self._write(job, selected, netcdf)
        with transaction(self.sessions) as session:
            if jobs.is_cancelled(session, job_id):
                raise Cancelled("the job was cancelled")
            jobs.finish(session, job_id, self.result_location(job), size)
        return size

    def _write(self, job: jobs.JobInfo, data: xr.Dataset, netcdf: Callable[[Path], None]) -> int:
        """Write the result as the job asked (``netcdf`` writes the NetCDF file) under a
        staging name, then publish its folder."""
        folder = self.store.location("jobs", job.id)
        staging = self.store.staging(f"job-{job.id}-{uuid.uuid4().hex[:8]}")
        if job.format == "zarr":
            out = data.copy()
            for var in out.variables.values():
                var.encoding = {}
            out.attrs.update({"oceanmart_product": job.product_id, "oceanmart_job": job.id})
            out.to_zarr(
                f"{staging}/{RESULT['zarr']}",
                zarr_format=3,
                consolidated=True,
                mode="w",
                **self.store.zarr_options,
            )
        else:
            tmp = scratch_path(RESULT["netcdf"])
            try:
                netcdf(tmp)
                self.store.fs.put_file(str(tmp), f"{staging}/{RESULT['netcdf']}")
            finally:
                discard(tmp)
        self.store.publish(staging, folder)  # the folder appears whole, or not at all
        self.store.remove(staging)  # left over only when an earlier run had published
        return self.store.size(self.result_location(job))
