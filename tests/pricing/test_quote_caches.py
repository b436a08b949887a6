"""The quote path's caches (plans, sea areas, priced asks) never serve a stale answer."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from shapely.geometry import box

from catalog.sea_areas import AreaFeature, save_areas
from oceanmart.accounts import Principal, authenticate, get_account
from oceanmart.db import transaction
from oceanmart.lru import LRU
from oceanmart.secrets import operator_key
from pricing.quotes import QuoteRequest, create_quote, set_tier
from pricing.signing import QuoteSigner
from pricing.verify import verify_quote
from tests.conftest import Env, unique
from tests.pricing.conftest import BASIC, SMALL, buyer, use_book


def _quote(env: Env, key: str, req: QuoteRequest, now: datetime | None = None) -> dict[str, Any]:
    signer = QuoteSigner(operator_key(env.settings))
    with transaction(env.sessions) as s:
        principal: Principal = authenticate(s, key)
        return create_quote(s, env.store, signer, principal, principal, req, now=now)


def _area(env: Env, area_id: str, w: float, s: float, e: float, n: float) -> None:
    feature = AreaFeature(area_id, area_id, "", "sea-area", box(w, s, e, n), "test")
    with transaction(env.sessions) as session:
        save_areas(session, [feature])


def test_a_redrawn_sea_area_is_planned_anew(env: Env, priced: str) -> None:
    _, key = buyer(env)
    area = unique("area")
    req = QuoteRequest(product=priced, selection={"sea_area": area, "depth": [0, 0]})
    _area(env, area, 0, 0, 10, 10)
    small = _quote(env, key, req)
    assert _quote(env, key, req)["plan"] == small["plan"]  # planned from the cache
    _area(env, area, 0, 0, 20, 20)  # the same id, re-drawn four times as large
    large = _quote(env, key, req)
    assert large["plan"]["cells"] > 3 * small["plan"]["cells"]
    assert large["subset_id"] == small["subset_id"]  # the selection names the area by id


def test_cached_prices_are_re_timed_and_signed_anew(env: Env, priced: str) -> None:
    _, key = buyer(env)
    req = QuoteRequest(product=priced, selection=SMALL)
    t1 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    t2 = t1 + timedelta(hours=5)
    a, b = _quote(env, key, req, t1), _quote(env, key, req, t2)
    assert a["lines"] == b["lines"] and a["total"] == b["total"]
    assert (a["issued_at"], a["expires_at"]) == ("2026-12-02T10:00:00Z", "2026-12-02T11:00:00Z")
    assert (b["issued_at"], b["expires_at"]) == ("2026-12-02T15:00:00Z", "2026-12-02T16:00:00Z")
    assert a["signature"] != b["signature"]
    assert verify_quote(a, a["signer"]) and verify_quote(b, b["signer"])


def test_a_new_customer_tier_and_a_new_book_reprice_at_once(env: Env, priced: str) -> None:
    name, key = buyer(env)
    use_book(env, {**BASIC, "customer_tiers": {"gold": 50}})
    req = QuoteRequest(product=priced, selection=SMALL)
    before = _quote(env, key, req)
    assert before["total"]["amount"] == 200
    with transaction(env.sessions) as s:
        set_tier(s, get_account(s, name), "gold")
    gold = _quote(env, key, req)
    assert gold["total"]["amount"] == 100 and gold["lines"][-1]["code"] == "customer-tier"
    use_book(env, {**BASIC, "base_fee": 1000, "customer_tiers": {"gold": 50}})
    again = _quote(env, key, req)
    assert again["price_book"]["version"] == gold["price_book"]["version"] + 1
    assert again["total"]["amount"] == 500
    use_book(env, BASIC)


def test_the_lru_is_bounded_and_keeps_the_recently_used() -> None:
    cache: LRU[int, str] = LRU(2)
    cache.put(1, "a")
    cache.put(2, "b")
    assert cache.get(1) == "a"  # 1 is now the most recent
    cache.put(3, "c")
    assert len(cache) == 2 and cache.get(2) is None
    assert cache.get_or_make(1, lambda: "x") == "a"
    assert cache.get_or_make(4, lambda: "d") == "d" and cache.get(3) is None


def test_a_subset_found_stored_is_not_inserted_again(env: Env, priced: str) -> None:
    """On both backends a quote learns that its subset row was already there (on
    PostgreSQL the INSERT's rowcount says nothing: the statement tells it)."""
    import pricing.quotes as quotes

    _, key = buyer(env)
    north = 10 + secrets.randbelow(10**6) / 10**7  # a selection no other test quoted
    req = QuoteRequest(product=priced, selection={**SMALL, "bbox": [-10, -10, 10, north]})
    first = _quote(env, key, req)  # inserts the subset row
    assert not any(sid == first["subset_id"] for _, sid in quotes._STORED_SUBSETS)
    _quote(env, key, req)  # finds it there
    assert any(sid == first["subset_id"] for _, sid in quotes._STORED_SUBSETS)
