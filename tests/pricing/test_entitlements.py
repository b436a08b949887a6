"""Entitlement kinds, quota periods and the daily usage report, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from catalog.products import get_product
from oceanmart.accounts import Principal, get_account
from oceanmart.db import transaction
from oceanmart.errors import NotEntitled, QuotaExhausted
from pricing import reports
from pricing.entitlements import check_access, create_for_order, grant
from pricing.metering import Channel, Delivery, record_access
from tests.conftest import Env
from tests.pricing.conftest import PRODUCT, buyer

T0 = datetime(2031, 1, 31, 23, 0, tzinfo=UTC)


def _principal(env: Env, name: str) -> Principal:
    from oceanmart.accounts import AccountKind

    with env.sessions() as s:
        acc = get_account(s, name)
        return Principal(acc.id, acc.name, AccountKind(acc.kind), "k" * 16, frozenset())


def _delivery(env: Env, cells: int, subset: str | None = None) -> Delivery:
    with env.sessions() as s:
        version = get_product(s, PRODUCT).version
    assert version is not None
    return Delivery(PRODUCT, version.id, Channel.ZARR, "h" * 64, cells, 4 * cells, subset)


def test_a_purchased_subset_covers_its_subset_for_its_period(env: Env, levitus: str) -> None:
    name, _ = buyer(env)
    who = _principal(env, name)
    with transaction(env.sessions) as s:
        from catalog.models import Subset

        version = get_product(s, PRODUCT).version
        assert version is not None
        for sid in ("sub_a_" + name[-10:], "sub_b_" + name[-10:]):
            s.add(Subset(id=sid, product_id=PRODUCT, version_id=version.id, selection={},
                         copy="map", cells=1, bytes=4))  # fmt: skip
        s.flush()
        ent = create_for_order(
            s, account_id=who.account_id, product_id=PRODUCT, kind="subset", order_id="ord_t",
            now=T0, expires_at=T0 + timedelta(days=30), subset_id="sub_a_" + name[-10:],
        )  # fmt: skip
    with env.sessions() as s:
        assert check_access(s, who, PRODUCT, subset_id="sub_a_" + name[-10:], now=T0).id == ent
        for subset, when in (
            ("sub_b_" + name[-10:], T0),  # another subset
            (None, T0),  # the whole product
            ("sub_a_" + name[-10:], T0 + timedelta(days=30, seconds=1)),  # after the period
        ):
            with pytest.raises(NotEntitled) as err:
                check_access(s, who, PRODUCT, subset_id=subset, now=when)
            assert err.value.extensions["quote"]["href"] == "/v1/quotes"
    with transaction(env.sessions) as s:
        g = grant(s, name, PRODUCT, granted_by="test")
    with env.sessions() as s:  # an unmetered grant covers everything and is preferred
        assert check_access(s, who, PRODUCT, subset_id="sub_b_" + name[-10:], now=T0).id == g.id
        assert check_access(s, who, PRODUCT, now=T0).kind == "grant"


def test_quota_is_per_calendar_month_and_never_overdrawn(env: Env, priced: str) -> None:
    name, _ = buyer(env)
    who = _principal(env, name)
    with transaction(env.sessions) as s:
        ent = create_for_order(
            s, account_id=who.account_id, product_id=PRODUCT, kind="subscription",
            order_id="ord_q", now=T0, expires_at=T0 + timedelta(days=60), quota_cells=100,
        )  # fmt: skip
    for cells in (60, 40):
        with transaction(env.sessions) as s:
            record_access(s, env.ledger, account_id=who.account_id, key_id=who.key_id,
                          entitlement_id=ent,
                          delivery=_delivery(env, cells), now=T0)  # fmt: skip
    with pytest.raises(QuotaExhausted) as err, transaction(env.sessions) as s:
        record_access(s, env.ledger, account_id=who.account_id, key_id=who.key_id,
                          entitlement_id=ent,
                      delivery=_delivery(env, 1), now=T0)  # fmt: skip
    assert err.value.extensions["used_cells"] == 100 and err.value.extensions["period"] == "2031-01"
    assert err.value.extensions["quote"]["body"] == {"product": PRODUCT, "offer": "subscription"}
    february = T0 + timedelta(hours=2)
    with transaction(env.sessions) as s:  # a new month, a new quota
        record_access(s, env.ledger, account_id=who.account_id, key_id=who.key_id,
                          entitlement_id=ent,
                      delivery=_delivery(env, 100), now=february)  # fmt: skip
    with env.sessions() as s:
        info = check_access(s, who, PRODUCT, now=february)
        assert (info.quota_used, info.quota_period) == (100, "2031-02")
        rows = reports.usage(s, T0.date(), february.date(), account_id=who.account_id)
    assert [(r.day, r.requests, r.cells) for r in rows] == [
        ("2031-01-31", 2, 100),
        ("2031-02-01", 1, 100),
    ]
    text = reports.to_csv(rows, reports.UsageRow)
    assert text.splitlines() == [
        "day,account,product,requests,cells,bytes",
        f"2031-01-31,{name},{PRODUCT},2,100,400",
        f"2031-02-01,{name},{PRODUCT},1,100,400",
    ]


def test_holdings_answer_as_viewer_for_and_check_access(env: Env, levitus: str) -> None:
    """The data gate's one read (``holdings``) sees and chooses exactly as ``viewer_for``
    and ``check_access`` do: expired, revoked, metered and subset entitlements mixed."""
    from pricing.entitlements import holdings, revoke, viewer_for

    name, _ = buyer(env)
    who = _principal(env, name)
    now = datetime.now(UTC)
    with transaction(env.sessions) as s:
        for k, (days, quota) in enumerate([(-1, None), (30, 500), (30, 900), (None, None)]):
            create_for_order(
                s, account_id=who.account_id, product_id=PRODUCT, kind="subscription",
                order_id=f"ord_h{k}", now=now,
                expires_at=None if days is None else now + timedelta(days=days),
                quota_cells=quota,
            )  # fmt: skip
        revoked = grant(s, name, levitus, granted_by="test")
        revoke(s, revoked.id)
    with env.sessions() as s:
        held = holdings(s, who, now)
        assert held.viewer == viewer_for(s, who)
        assert held.access(s, PRODUCT) == check_access(s, who, PRODUCT, now=now)
        assert held.access(s, PRODUCT).expires_at is None  # the unmetered one first
        with pytest.raises(NotEntitled):
            held.access(s, "no-such-product", "sub_x")


def test_key_holdings_is_authenticate_then_holdings(env: Env, levitus: str) -> None:
    """The data gate's one statement (``key_holdings``) gives the caller ``authenticate``
    gives and the rows ``holdings`` reads, with no entitlement, with several (expired,
    revoked, metered), and fails as ``authenticate`` does for a revoked or expired key."""
    from oceanmart.accounts import authenticate, create_key, revoke_key
    from oceanmart.errors import ExpiredKey, InvalidKey
    from pricing.entitlements import holdings, key_holdings, revoke

    name, key = buyer(env)
    now = datetime.now(UTC)
    never = timedelta(days=1)  # no last-use write from the first call: both read the same

    def same() -> None:
        with env.sessions() as s:
            held = key_holdings(s, key, now, never)
            who = authenticate(s, key, now=now, touch_resolution=never)
            assert held.principal == who
            assert [tuple(r) for r in held.rows] == [tuple(r) for r in holdings(s, who, now).rows]
            assert held.viewer == holdings(s, who, now).viewer

    same()  # no entitlement at all: one row of NULLs, no holding
    with transaction(env.sessions) as s:
        for k, days in enumerate([-1, 30, None]):
            create_for_order(
                s, account_id=get_account(s, name).id, product_id=PRODUCT,
                kind="subscription", order_id=f"ord_kh{k}", now=now,
                expires_at=None if days is None else now + timedelta(days=days),
                quota_cells=100 * (k + 1),
            )  # fmt: skip
        revoke(s, grant(s, name, levitus, granted_by="test").id)
        grant(s, name, levitus, granted_by="test")
    same()
    with env.sessions() as s:
        assert len(key_holdings(s, key, now, never).rows) == 4  # the revoked one left out
    with transaction(env.sessions) as s:
        expired = create_key(s, name, "data:read", expires_at=now - timedelta(seconds=1))[1]
    with env.sessions() as s, pytest.raises(ExpiredKey):
        key_holdings(s, expired, now, never)
    with transaction(env.sessions) as s:
        revoke_key(s, key.split("_")[1])
    with env.sessions() as s, pytest.raises(InvalidKey):
        key_holdings(s, key, now, never)
    with env.sessions() as s, pytest.raises(InvalidKey):
        key_holdings(s, key[:-1] + ("a" if key[-1] != "a" else "b"), now, never)
