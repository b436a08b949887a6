"""Accounts and API keys.

A key is ``om_<public id>_<secret>``. The public id is the row's primary key and may
appear in logs; the secret is shown once and stored only as SHA-256. A fast hash is
the right tool here (as for GitHub or Stripe tokens): the secret carries 160 random
bits, so there is nothing for a slow password hash to protect against, and every
request verifies a key. Comparison is constant-time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, cast

from sqlalchemy import ForeignKey, Select, String, Table, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from oceanmart.db import Base, UTCDateTime, utcnow
from oceanmart.errors import (
    AlreadyExists,
    ExpiredKey,
    InvalidInput,
    InvalidKey,
    MissingScope,
    NotFound,
)


class AccountKind(StrEnum):
    ENTERPRISE = "enterprise"
    RESEARCH = "research"
    GOVERNMENT = "government"
    PROVIDER = "provider"


class Scope(StrEnum):
    CATALOG_READ = "catalog:read"
    DATA_READ = "data:read"
    ORDERS_WRITE = "orders:write"
    ADMIN = "admin"


KEY_PREFIX = "om"
_KEY_RE = re.compile(r"^om_([0-9a-f]{16})_([a-z2-7]{32})$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # the public id
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[str] = mapped_column(String(200))  # space-separated, sorted
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the authenticated key and its account."""

    account_id: int
    account_name: str
    account_kind: AccountKind
    key_id: str
    scopes: frozenset[Scope]

    def has(self, scope: Scope) -> bool:
        # `admin` is the operator's key: it may do everything a narrower key may.
        return scope in self.scopes or Scope.ADMIN in self.scopes

    def require(self, scope: Scope) -> None:
        if not self.has(scope):
            raise MissingScope(
                f"this key lacks the {scope.value!r} scope",
                extensions={"required_scope": scope.value},
            )


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A key as listed: everything but the secret."""

    id: str
    account: str
    scopes: tuple[str, ...]
    label: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True, slots=True)
class AccountInfo:
    id: int
    name: str
    kind: AccountKind
    created_at: datetime


def parse_scopes(values: str | Iterable[str]) -> frozenset[Scope]:
    """Parse ``catalog:read,data:read`` (or an iterable); unknown scopes are an error."""
    items = values.replace(" ", ",").split(",") if isinstance(values, str) else list(values)
    out: set[Scope] = set()
    for raw in items:
        item = raw.strip()
        if not item:
            continue
        try:
            out.add(Scope(item))
        except ValueError:
            known = ", ".join(s.value for s in Scope)
            raise InvalidInput(f"unknown scope {item!r} (known: {known})") from None
    if not out:
        raise InvalidInput("a key needs at least one scope")
    return frozenset(out)


def _hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _account_info(acc: Account) -> AccountInfo:
    return AccountInfo(acc.id, acc.name, AccountKind(acc.kind), acc.created_at)


def create_account(session: Session, name: str, kind: str | AccountKind) -> AccountInfo:
    if not _NAME_RE.match(name):
        raise InvalidInput(
            f"account name {name!r} must be 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    try:
        account_kind = AccountKind(kind)
    except ValueError:
        known = ", ".join(k.value for k in AccountKind)
        raise InvalidInput(f"unknown account kind {kind!r} (known: {known})") from None
    acc = Account(name=name, kind=account_kind.value, created_at=utcnow())
    # A plain flush, not a SAVEPOINT: the error ends the caller's transaction anyway, and
    # pysqlite opens no transaction before a SAVEPOINT, so its RELEASE would commit the
    # row on its own, out of the caller's transaction (kept even if the caller rolls back).
    session.add(acc)
    try:
        session.flush()
    except IntegrityError:
        raise AlreadyExists(f"account {name!r} already exists") from None
    return _account_info(acc)


def get_account(session: Session, name: str) -> Account:
    acc = session.scalar(select(Account).where(Account.name == name))
    if acc is None:
        raise NotFound(f"no account named {name!r}")
    return acc


def list_accounts(session: Session) -> list[AccountInfo]:
    return [_account_info(a) for a in session.scalars(select(Account).order_by(Account.id))]


def create_key(
    session: Session,
    account_name: str,
    scopes: str | Iterable[str],
    *,
    label: str = "",
    expires_at: datetime | None = None,
) -> tuple[KeyInfo, str]:
    """Create a key; returns its info and the plaintext key, which is never stored."""
    acc = get_account(session, account_name)
    parsed = parse_scopes(scopes)
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidInput("expires_at must carry a timezone")
    public_id = secrets.token_hex(8)
    secret = base64.b32encode(secrets.token_bytes(20)).decode("ascii").lower()
    row = ApiKey(
        id=public_id,
        account_id=acc.id,
        secret_sha256=_hash_secret(secret),
        scopes=" ".join(sorted(s.value for s in parsed)),
        label=label,
        created_at=utcnow(),
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    return _key_info(row, acc.name), f"{KEY_PREFIX}_{public_id}_{secret}"


def _key_info(row: ApiKey, account_name: str) -> KeyInfo:
    return KeyInfo(
        id=row.id,
        account=account_name,
        scopes=tuple(row.scopes.split()),
        label=row.label,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
        revoked_at=row.revoked_at,
    )


def list_keys(session: Session, account_name: str | None = None) -> list[KeyInfo]:
    stmt = select(ApiKey, Account.name).join(Account, ApiKey.account_id == Account.id)
    if account_name is not None:
        stmt = stmt.where(Account.name == get_account(session, account_name).name)
    return [_key_info(k, name) for k, name in session.execute(stmt.order_by(ApiKey.created_at))]


def revoke_key(session: Session, key_id: str) -> KeyInfo:
    """Revoke a key; it fails authentication from the very next request."""
    row = session.get(ApiKey, key_id)
    if row is None:
        raise NotFound(f"no key with id {key_id!r}")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.flush()
    acc = session.get(Account, row.account_id)
    assert acc is not None
    return _key_info(row, acc.name)


def split_key(raw: str) -> tuple[str, str]:
    """Return (public id, secret) of a well-formed key or raise InvalidKey."""
    m = _KEY_RE.match(raw.strip())
    if m is None:
        raise InvalidKey("the API key is malformed (expected om_<id>_<secret>)")
    return m.group(1), m.group(2)


# The key and its account in one round trip, as a Core statement built once: this runs
# on every authenticated request, where an ORM ``session.get`` per row costs more than
# the database work itself.
_KEYS, _ACCOUNTS = cast(Table, ApiKey.__table__), cast(Table, Account.__table__)
KEY_COLUMNS = (
    _KEYS.c.secret_sha256,
    _KEYS.c.scopes,
    _KEYS.c.expires_at,
    _KEYS.c.last_used_at,
    _KEYS.c.revoked_at,
    _ACCOUNTS.c.id.label("account_id"),
    _ACCOUNTS.c.name.label("account_name"),
    _ACCOUNTS.c.kind.label("account_kind"),
)
"""What ``check_key_row`` reads; ``key_lookup`` adds columns for callers that need more
facts about the caller in the same round trip (``account_id`` is the account's column)."""
ACCOUNT_ID = _ACCOUNTS.c.id


def key_lookup(*extra: Any) -> Select[Any]:
    """The key ``:key_id`` and its account (and ``extra`` columns): ``check_key_row``."""
    return (
        select(*KEY_COLUMNS, *extra)
        .join_from(_KEYS, _ACCOUNTS, _KEYS.c.account_id == _ACCOUNTS.c.id)
        .where(_KEYS.c.id == bindparam("key_id"))
    )


_KEY_LOOKUP = key_lookup()
TOUCH_KEY = (
    update(_KEYS).where(_KEYS.c.id == bindparam("key_id")).values(last_used_at=bindparam("now"))
)
"""Parameters ``key_id`` and ``now``: the key's last use (when ``check_key_row`` says so)."""


def check_key_row(
    row: Any, public_id: str, secret: str, now: datetime, touch_resolution: timedelta
) -> tuple[Principal, bool]:
    """The caller from its ``key_lookup`` row (None: unknown id), and whether its
    ``last_used_at`` is to be written (at most once per ``touch_resolution``, so a busy
    key does not turn every read into a write). Invalid, revoked or expired: an error."""
    # Compare against a dummy hash when the id is unknown so both paths cost the same.
    expected = row.secret_sha256 if row is not None else "0" * 64
    if not hmac.compare_digest(expected, _hash_secret(secret)) or row is None:
        raise InvalidKey("the API key is not valid")
    if row.revoked_at is not None:
        raise InvalidKey("the API key is not valid")
    if row.expires_at is not None and row.expires_at <= now:
        raise ExpiredKey(f"the API key expired at {row.expires_at.isoformat()}")
    touch = row.last_used_at is None or now - row.last_used_at >= touch_resolution
    principal = Principal(
        account_id=row.account_id,
        account_name=row.account_name,
        account_kind=AccountKind(row.account_kind),
        key_id=public_id,
        scopes=frozenset(Scope(s) for s in row.scopes.split()),
    )
    return principal, touch


def authenticate(
    session: Session,
    raw_key: str,
    *,
    now: datetime | None = None,
    touch_resolution: timedelta = timedelta(seconds=60),
) -> Principal:
    """Check a presented key against the database; no caching, so revocation is immediate.

    ``last_used_at`` is written at most once per ``touch_resolution`` per key, so a busy
    key does not turn every read into a write.
    """
    now = now or utcnow()
    public_id, secret = split_key(raw_key)
    row = session.execute(_KEY_LOOKUP, {"key_id": public_id}).first()
    principal, touch = check_key_row(row, public_id, secret, now, touch_resolution)
    if touch:
        session.execute(TOUCH_KEY, {"key_id": public_id, "now": now})
    return principal


def scopes_text(scopes: Sequence[str]) -> str:
    return ",".join(scopes)
