"""Request ids and the access log: one pure-ASGI middleware, one structured line per request."""

from __future__ import annotations

import logging
import time
from urllib.parse import parse_qsl, urlencode
from uuid import uuid4

import structlog
from asgi_correlation_id import correlation_id
from asgi_correlation_id.middleware import is_valid_uuid4
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("oceanmart.access")
_access = logging.getLogger("oceanmart.access")  # the stdlib logger under ``log``

_SECRET_PARAMS = {"api_key", "key", "token", "access_token"}
REQUEST_ID_HEADER = b"x-request-id"


def redact_query(raw: bytes) -> str:
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    return urlencode([(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs])


def _request_id(scope: Scope) -> str:
    """The caller's ``X-Request-ID`` if it is a UUID (32 hex digits, dashes or not),
    else a new one: the rule of asgi-correlation-id's middleware, whose context variable
    (``correlation_id``) problem bodies read."""
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            sent: str = value.decode("latin-1")
            if is_valid_uuid4(sent):
                return sent
            rid = uuid4().hex
            log.warning("request.id_replaced", sent=sent[:80], request_id=rid)
            return rid
    return uuid4().hex


class AccessLog:
    """Pure ASGI (no BaseHTTPMiddleware), so streamed responses are not buffered.

    It also gives each request its id (``X-Request-ID`` on the response, ``request_id``
    in log lines and problem bodies). One middleware instead of asgi-correlation-id's
    plus this one: each layer is a coroutine and a ``send`` wrapper on every request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        rid = _request_id(scope)
        # Not reset afterwards: the 500 handler, outside this middleware, reads it too.
        correlation_id.set(rid)
        # Every log line of this request (ours, in any thread it spawns) carries its id.
        structlog.contextvars.bind_contextvars(request_id=rid)
        header = (REQUEST_ID_HEADER, rid.encode("latin-1"))

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            if _access.isEnabledFor(logging.INFO):  # (structlog's proxy costs ~30 us a call)
                _log_request(scope, status, start)
            structlog.contextvars.clear_contextvars()


def _log_request(scope: Scope, status: int, start: float) -> None:
    state = scope.get("state", {})
    log.info(
        "http.request",
        method=scope["method"],
        path=scope["path"],
        query=redact_query(scope.get("query_string", b"")),
        status=status,
        ms=round((time.perf_counter() - start) * 1000, 2),
        key_id=state.get("key_id"),
        account=state.get("account"),
    )
