"""Asynchronous jobs: selections (and component runs) too big to serve while a client
waits. A job is planned and checked when it is submitted, run by the server's job
runner with dask, written to the data store (``<data>/jobs/<id>/``) and then read
through the same data gate as everything else.

States: ``queued -> running -> succeeded | failed | cancelled``. A job whose process
died while running is queued again at the next start (``recover``), and its partial
output is discarded: results are written to a staging name and moved in place.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, String, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from oceanmart.db import Base, UTCDateTime, utcnow
from oceanmart.errors import NotFound

STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINAL = ("succeeded", "failed", "cancelled")


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    key_id: Mapped[str] = mapped_column(String(32))
    product_id: Mapped[str] = mapped_column(ForeignKey("products.id"))
    version_id: Mapped[str] = mapped_column(String(64))
    subset_id: Mapped[str] = mapped_column(String(64))
    request: Mapped[dict[str, Any]] = mapped_column(JSON)  # selection, component, format
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    result_path: Mapped[str | None] = mapped_column(String(400), nullable=True)
    result_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


@dataclass(frozen=True, slots=True)
class JobInfo:
    id: str
    account_id: int
    key_id: str
    product_id: str
    version_id: str
    subset_id: str
    request: dict[str, Any]
    plan: dict[str, Any]
    status: str
    progress: float
    result_path: str | None
    result_bytes: int | None
    error: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @property
    def format(self) -> str:
        return str(self.request.get("format", "netcdf"))

    @property
    def reads(self) -> list[dict[str, Any]]:
        """What the job reads: one entry per product version (a component may read two)."""
        reads: list[dict[str, Any]] = self.plan.get("reads") or [self.plan]
        return reads


def _info(row: Job) -> JobInfo:
    return JobInfo(
        row.id, row.account_id, row.key_id, row.product_id, row.version_id, row.subset_id,
        dict(row.request), dict(row.plan), row.status, row.progress, row.result_path,
        row.result_bytes, row.error, row.created_at, row.started_at, row.finished_at,
    )  # fmt: skip


def submit(
    session: Session,
    *,
    account_id: int,
    key_id: str,
    product_id: str,
    version_id: str,
    subset_id: str,
    plan: dict[str, Any],
    request: dict[str, Any],
) -> JobInfo:
    """Queue a planned job: a selection (``request["selection"]``) or a component run
    (``request["component"]``) of one product version; ``plan`` is its plan as JSON."""
    row = Job(
        id="job_" + secrets.token_hex(12),
        account_id=account_id,
        key_id=key_id,
        product_id=product_id,
        version_id=version_id,
        subset_id=subset_id,
        request=request,
        plan=plan,
        status="queued",
        progress=0.0,
        created_at=utcnow(),
    )
    session.add(row)
    session.flush()
    return _info(row)


def get_job(session: Session, job_id: str, account_id: int | None = None) -> JobInfo:
    """A job; with ``account_id``, only that account's (others' are as missing)."""
    row = session.get(Job, job_id)
    if row is None or (account_id is not None and row.account_id != account_id):
        raise NotFound(f"no job {job_id!r}", extensions={"job": job_id})
    return _info(row)


def list_jobs(session: Session, account_id: int, limit: int = 100) -> list[JobInfo]:
    rows = session.scalars(
        select(Job)
        .where(Job.account_id == account_id)
        .order_by(Job.created_at.desc(), Job.id)
        .limit(limit)
    )
    return [_info(r) for r in rows]


def claim(session: Session, job_id: str) -> bool:
    """Move a queued job to running; False if another runner got it first."""
    done = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "queued")
        .values(status="running", started_at=utcnow(), progress=0.0)
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]


def queued(session: Session) -> list[str]:
    return list(
        session.scalars(select(Job.id).where(Job.status == "queued").order_by(Job.created_at))
    )


def set_progress(session: Session, job_id: str, progress: float) -> None:
    session.execute(
        update(Job).where(Job.id == job_id, Job.status == "running").values(progress=progress)
    )


def finish(session: Session, job_id: str, result_path: str, result_bytes: int) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "running")
        .values(
            status="succeeded",
            progress=1.0,
            result_path=result_path,
            result_bytes=result_bytes,
            finished_at=utcnow(),
        )
    )


def fail(session: Session, job_id: str, code: str, detail: str) -> None:
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(("queued", "running")))
        .values(status="failed", error={"code": code, "detail": detail}, finished_at=utcnow())
    )


def cancel(session: Session, job_id: str, account_id: int) -> JobInfo:
    """Cancel a job that has not finished (a finished one is left as it is)."""
    get_job(session, job_id, account_id)
    session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(("queued", "running")))
        .values(status="cancelled", finished_at=utcnow())
    )
    return get_job(session, job_id, account_id)


def is_cancelled(session: Session, job_id: str) -> bool:
    return session.scalar(select(Job.status).where(Job.id == job_id)) == "cancelled"


def recover(session: Session) -> int:
    """Queue again the jobs a dead process left running; returns how many."""
    done = session.execute(
        update(Job).where(Job.status == "running").values(status="queued", progress=0.0)
    )
    return int(done.rowcount)  # type: ignore[attr-defined]
