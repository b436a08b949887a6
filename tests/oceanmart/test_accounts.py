from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from oceanmart.accounts import (
    ApiKey,
    KeyInfo,
    Scope,
    authenticate,
    create_account,
    create_key,
    list_keys,
    parse_scopes,
    revoke_key,
)
from oceanmart.db import transaction
from oceanmart.errors import AlreadyExists, ExpiredKey, InvalidInput, InvalidKey, MissingScope
from tests.conftest import Env, unique

KEY = re.compile(r"^om_[0-9a-f]{16}_[a-z2-7]{32}$")


def _account(env: Env, kind: str = "enterprise") -> str:
    name = unique("acct")
    with transaction(env.sessions) as s:
        create_account(s, name, kind)
    return name


def test_key_is_shown_once_and_stored_only_as_a_hash(env: Env) -> None:
    name = _account(env)
    with transaction(env.sessions) as s:
        info, raw = create_key(s, name, "catalog:read,data:read", label="ci")
    assert KEY.match(raw)
    public_id, secret = raw.split("_")[1:]
    assert info.id == public_id
    with env.sessions() as s:
        row = s.scalar(select(ApiKey).where(ApiKey.id == public_id))
        assert row is not None
        assert secret not in (row.secret_sha256, row.scopes, row.label)
        assert row.secret_sha256 == hashlib.sha256(secret.encode()).hexdigest()
    (listed,) = list_keys_for(env, name)
    assert listed.id == public_id and secret not in repr(listed)


def list_keys_for(env: Env, name: str) -> list[KeyInfo]:
    with env.sessions() as s:
        return list_keys(s, name)


def test_authenticate_returns_the_principal_and_touches_last_used(env: Env) -> None:
    name = _account(env, "research")
    with transaction(env.sessions) as s:
        _, raw = create_key(s, name, "catalog:read")
    with transaction(env.sessions) as s:
        p = authenticate(s, raw)
    assert p.account_name == name and p.scopes == frozenset({Scope.CATALOG_READ})
    assert p.has(Scope.CATALOG_READ) and not p.has(Scope.DATA_READ)
    with pytest.raises(MissingScope):
        p.require(Scope.DATA_READ)
    (k,) = list_keys_for(env, name)
    assert k.last_used_at is not None


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "om_",
        "not-a-key",
        "om_0123456789abcdef_tooshort",
        "om_0123456789ABCDEF_abcdefghijklmnopqrstuvwxyz234567",
        "sk_0123456789abcdef_abcdefghijklmnopqrstuvwxyz234567",
    ],
)
def test_malformed_keys_are_invalid(env: Env, raw: str) -> None:
    with pytest.raises(InvalidKey), env.sessions() as s:
        authenticate(s, raw)


def test_unknown_wrong_secret_revoked_and_expired_keys_fail(env: Env) -> None:
    name = _account(env)
    with transaction(env.sessions) as s:
        info, raw = create_key(s, name, "data:read")
        _, soon = create_key(
            s, name, "data:read", expires_at=datetime.now(UTC) + timedelta(hours=1)
        )
    public_id, secret = raw.split("_")[1:]
    wrong = f"om_{public_id}_{'a' * 32}"
    unknown = f"om_{'0' * 16}_{secret}"
    for bad in (wrong, unknown):
        with pytest.raises(InvalidKey), env.sessions() as s:
            authenticate(s, bad)
    later = datetime.now(UTC) + timedelta(hours=2)
    with pytest.raises(ExpiredKey), env.sessions() as s:
        authenticate(s, soon, now=later)
    with transaction(env.sessions) as s:
        authenticate(s, raw)
        revoke_key(s, info.id)
    with pytest.raises(InvalidKey), env.sessions() as s:
        authenticate(s, raw)


def test_admin_scope_implies_every_other(env: Env) -> None:
    name = _account(env, "provider")
    with transaction(env.sessions) as s:
        _, raw = create_key(s, name, ["admin"])
        p = authenticate(s, raw)
    assert all(p.has(scope) for scope in Scope)


def test_scopes_and_names_are_validated(env: Env) -> None:
    assert parse_scopes("catalog:read, data:read") == {Scope.CATALOG_READ, Scope.DATA_READ}
    for bad in ("", "catalog:write", "admin,root"):
        with pytest.raises(InvalidInput):
            parse_scopes(bad)
    name = _account(env)
    with pytest.raises(AlreadyExists), transaction(env.sessions) as s:
        create_account(s, name, "enterprise")
    for bad_name, kind in (("has space", "enterprise"), (unique("k"), "pirate")):
        with pytest.raises(InvalidInput), transaction(env.sessions) as s:
            create_account(s, bad_name, kind)


def test_an_account_created_in_a_transaction_that_fails_is_not_kept(env: Env) -> None:
    """No partial write: the account goes with the rest of the failed transaction (on
    SQLite a SAVEPOINT opened first would have committed it on its own)."""
    from oceanmart.accounts import Account

    name = unique("gone")
    with pytest.raises(RuntimeError), transaction(env.sessions) as s:
        create_account(s, name, "research")
        raise RuntimeError("the rest of the work failed")
    with env.sessions() as s:
        assert s.scalar(select(Account).where(Account.name == name)) is None
    with transaction(env.sessions) as s:  # and the name is free again
        create_account(s, name, "research")
    with pytest.raises(AlreadyExists), transaction(env.sessions) as s:
        create_account(s, name, "research")
