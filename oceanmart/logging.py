"""Structured logging for the CLI and the server: JSON lines (or console), secrets scrubbed.

Every log record, ours or a library's (uvicorn, alembic), passes the same processors,
so the secret scrubber sees everything that is written.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

# API keys keep their public id (useful in logs); the secret part never appears.
_SECRETS = [
    (re.compile(r"\b(om_[0-9a-f]{16})_[a-z2-7]{8,}"), r"\1_***"),
    (re.compile(r"\b((?:sk|rk)_(?:live|test)_)[A-Za-z0-9]{4,}"), r"\1***"),
    (re.compile(r"\b(whsec_)[A-Za-z0-9+/=]{4,}"), r"\1***"),
    (re.compile(r"(?i)(api_key=)[^&\s\"']+"), r"\1***"),
    (re.compile(r"(?i)(authorization:\s*(?:bearer|basic)\s+)\S+"), r"\1***"),
    (re.compile(r"(://[^:/@\s]+:)[^@/\s]+@"), r"\1***@"),  # passwords in URLs
]


def scrub(text: str) -> str:
    """Replace every secret pattern in ``text``."""
    for pattern, repl in _SECRETS:
        text = pattern.sub(repl, text)
    return text


def _scrub_value(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrub_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_scrub_value(v) for v in value)
    return value


def _redact(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        event[key] = _scrub_value(event[key])
    return event


def configure_logging(level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Send all logging through structlog to ``stream`` (stderr by default)."""
    out = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if out.isatty() else "json"
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        _redact,
    ]
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if fmt == "console"
        else structlog.processors.JSONRenderer(ensure_ascii=False)
    )
    structlog.configure(
        # Drop a record below the level first: the access log's info line would otherwise
        # be time-stamped and scrubbed on every request before stdlib logging discards it.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "alembic"):
        lg = logging.getLogger(name)
        lg.handlers = []
        lg.propagate = True
    # Our access log replaces uvicorn's, which would print ?api_key= query strings.
    logging.getLogger("uvicorn.access").disabled = True
    logging.getLogger("alembic").setLevel(max(logging.WARNING, root.level))
