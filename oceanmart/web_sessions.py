"""Browser sessions of the admin console, bound to the admin API key that signed in.

Signing in with an admin key creates a session: a random token (the HttpOnly cookie;
only its SHA-256 is stored) and a CSRF token that every form of the session must carry.
Each request checks the session *and* its key again, so revoking the key, or taking
its `admin` scope away, ends the session at once. Sessions expire after a fixed time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ForeignKey, String, delete
from sqlalchemy.orm import Mapped, Session, mapped_column

from oceanmart.accounts import Account, ApiKey, Scope
from oceanmart.db import Base, UTCDateTime, utcnow
from oceanmart.errors import CsrfFailed, InvalidKey

LIFETIME = timedelta(hours=8)


class WebSession(Base):
    __tablename__ = "web_sessions"

    token_sha256: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_id: Mapped[str] = mapped_column(ForeignKey("api_keys.id"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


@dataclass(frozen=True, slots=True)
class WebUser:
    key_id: str
    account_id: int
    account_name: str
    csrf: str


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def open_session(session: Session, key_id: str, *, now: datetime | None = None) -> tuple[str, str]:
    """A new session for an (already authenticated admin) key: (cookie token, CSRF token)."""
    now = now or utcnow()
    session.execute(delete(WebSession).where(WebSession.expires_at <= now))
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session.add(
        WebSession(
            token_sha256=_sha(token), key_id=key_id, csrf=csrf, created_at=now,
            expires_at=now + LIFETIME,
        )
    )  # fmt: skip
    session.flush()
    return token, csrf


def check_session(session: Session, token: str | None, *, now: datetime | None = None) -> WebUser:
    """The signed-in admin of a session cookie, or InvalidKey."""
    now = now or utcnow()
    if not token:
        raise InvalidKey("not signed in")
    row = session.get(WebSession, _sha(token))
    if row is None or row.expires_at <= now:
        raise InvalidKey("the console session is unknown or expired")
    key = session.get(ApiKey, row.key_id)
    if (
        key is None
        or key.revoked_at is not None
        or (key.expires_at is not None and key.expires_at <= now)
        or Scope.ADMIN.value not in key.scopes.split()
    ):
        raise InvalidKey("the key of this console session is no longer an admin key")
    acc = session.get(Account, key.account_id)
    assert acc is not None
    return WebUser(key.id, acc.id, acc.name, row.csrf)


def check_csrf(user: WebUser, presented: str | None) -> None:
    if not presented or not hmac.compare_digest(user.csrf, presented):
        raise CsrfFailed("the form's CSRF token is missing or does not match this session")


def close_session(session: Session, token: str | None) -> None:
    if token:
        session.execute(delete(WebSession).where(WebSession.token_sha256 == _sha(token)))
