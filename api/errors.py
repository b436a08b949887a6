"""The one place where errors become HTTP: RFC 9457 problem+json for every failure.

``type`` is ``/problems/<code>``, stable per error kind and served by the app with a
description, so a client can both compare it and read it.
"""

from __future__ import annotations

import structlog
from asgi_correlation_id import correlation_id
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from oceanmart.errors import (
    AlreadyExists,
    AuthenticationRequired,
    Cancelled,
    ChainUnavailable,
    ConfigurationError,
    Conflict,
    CorpusUnavailable,
    EmptySelection,
    IngestError,
    InvalidInput,
    LedgerCorrupted,
    LedgerError,
    NotFound,
    OceanMartError,
    PaymentProviderError,
    PaymentRequired,
    PermissionDenied,
    ReceiptPending,
    RequestTooLarge,
    TooManyRequests,
    VerificationFailed,
)

log = structlog.get_logger(__name__)

PROBLEM_JSON = "application/problem+json"

STATUS: dict[type[OceanMartError], int] = {
    InvalidInput: 400,
    EmptySelection: 400,
    AuthenticationRequired: 401,
    PaymentRequired: 402,
    PermissionDenied: 403,
    NotFound: 404,
    AlreadyExists: 409,
    Conflict: 409,
    RequestTooLarge: 413,
    TooManyRequests: 429,
    Cancelled: 499,  # nginx's "client closed request": nobody reads it
    IngestError: 422,
    ConfigurationError: 500,
    PaymentProviderError: 502,
    CorpusUnavailable: 503,
    LedgerError: 500,
    LedgerCorrupted: 500,
    ChainUnavailable: 503,
    ReceiptPending: 503,
    VerificationFailed: 422,
    OceanMartError: 500,
}

# Problems raised by the framework rather than by our error tree.
HTTP_CODES = {
    404: ("not-found", "Not found"),
    405: ("method-not-allowed", "Method not allowed"),
    406: ("not-acceptable", "Not acceptable"),
    415: ("unsupported-media-type", "Unsupported media type"),
    416: ("range-not-satisfiable", "Range not satisfiable"),
}


def status_for(exc_type: type[OceanMartError]) -> int:
    for cls in exc_type.__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def problem_type(code: str) -> str:
    return f"/problems/{code}"


def problem(
    request: Request,
    status: int,
    code: str,
    title: str,
    detail: str,
    extensions: dict[str, object] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, object] = {
        "type": problem_type(code),
        "title": title,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    if rid := correlation_id.get():
        body["request_id"] = rid
    body.update(extensions or {})
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, OceanMartError)
    status = status_for(type(exc))
    headers = None
    extensions = dict(exc.extensions)
    if isinstance(exc, AuthenticationRequired):
        headers = {"WWW-Authenticate": 'Bearer realm="oceanmart"'}
    elif isinstance(exc, TooManyRequests):
        headers = {"Retry-After": str(exc.retry_after)}
    elif isinstance(exc, RequestTooLarge):
        # Too big to serve now: the same selection can be quoted and run as a job.
        extensions["links"] = [
            {"rel": "quote", "href": "/v1/quotes", "method": "POST"},
            {"rel": "job", "href": "/v1/jobs", "method": "POST"},
        ]
    elif isinstance(exc, ReceiptPending | ChainUnavailable):
        headers = {"Retry-After": str(exc.extensions.get("retry_after", 2))}
    if status >= 500:
        log.error("request.failed", code=exc.code, detail=exc.detail)
    return problem(request, status, exc.code, exc.title, exc.detail, extensions, headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ())]
        where, name = (loc[0], ".".join(loc[1:])) if len(loc) > 1 else ("body", ".".join(loc))
        errors.append({"parameter": name or where, "in": where, "reason": err.get("msg", "")})
    first = errors[0] if errors else {"parameter": "request", "reason": "invalid"}
    return problem(
        request,
        400,
        "invalid-parameter",
        "Invalid parameter",
        f"{first['parameter']}: {first['reason']}",
        {"parameter": first["parameter"], "errors": errors},
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code, title = HTTP_CODES.get(exc.status_code, ("http-error", "HTTP error"))
    headers = dict(exc.headers) if exc.headers else None
    return problem(request, exc.status_code, code, title, str(exc.detail), headers=headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("request.crashed", error=exc.__class__.__name__)
    return problem(
        request,
        500,
        "internal-error",
        "Internal error",
        "the server failed to handle this request; quote the request_id when reporting it",
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(OceanMartError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
