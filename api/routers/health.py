from __future__ import annotations

from sqlalchemy import text

import oceanmart
from api.deps import SessionsDep
from api.routers import Router
from api.schemas import Health
from oceanmart.errors import all_error_types

router = Router(tags=["meta"])


@router.get("/healthz", response_model=Health)
def healthz(sessions: SessionsDep) -> Health:
    """Liveness and database reachability."""
    with sessions() as session:
        session.execute(text("SELECT 1"))
        dialect = session.get_bind().dialect.name
    return Health(status="ok", version=oceanmart.__version__, database=dialect)


@router.get("/problems/{code}")
def problem_doc(code: str) -> dict[str, str]:
    """What a problem ``type`` means (the ``type`` URIs of error responses point here)."""
    from api.errors import HTTP_CODES, status_for
    from oceanmart.errors import NotFound

    for cls in all_error_types():
        if cls.code == code:
            return {
                "type": f"/problems/{code}",
                "title": cls.title,
                "status": str(status_for(cls)),
                "description": " ".join((cls.__doc__ or cls.title).split()),
            }
    for status, (c, title) in HTTP_CODES.items():
        if c == code:
            return {"type": f"/problems/{code}", "title": title, "status": str(status)}
    if code in ("invalid-parameter", "internal-error"):
        return {"type": f"/problems/{code}", "title": code.replace("-", " ").capitalize()}
    raise NotFound(f"no problem type {code!r}")
