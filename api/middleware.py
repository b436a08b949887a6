"""Access log: one structured line per request, with the query string scrubbed."""

from __future__ import annotations

import time
from urllib.parse import parse_qsl, urlencode

import structlog
from asgi_correlation_id import correlation_id
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = structlog.get_logger("oceanmart.access")

_SECRET_PARAMS = {"api_key", "key", "token", "access_token"}


def redact_query(raw: bytes) -> str:
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    return urlencode([(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs])


class AccessLog:
    """Pure ASGI (no BaseHTTPMiddleware), so streamed responses are not buffered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        # Every log line of this request (ours, in any thread it spawns) carries its id.
        structlog.contextvars.bind_contextvars(request_id=correlation_id.get())

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
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
            structlog.contextvars.clear_contextvars()
