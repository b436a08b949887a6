"""The quote engine (pure): every rule on exact numbers, and its properties under Hypothesis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oceanmart.errors import InvalidInput, InvalidParameter
from pricing.books import PriceRules, parse_rules
from pricing.engine import Ask, ComponentUse, Customer, License, Offer, Priced, price
from pricing.money import Currency, Money, from_major, round_half_up

NOW = datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
ACME = Customer("acme", License.COMMERCIAL)


def ask(cells: int, **kw: Any) -> Ask:
    """``cells`` of one float32 variable TEMP (4 bytes a cell)."""
    kw.setdefault("cells_by_variable", (("TEMP", cells, 4 * cells),))
    return Ask(Offer.SUBSET, cells, 4 * cells, **kw)


def codes(p: Priced) -> dict[str, int]:
    return {ln.code: ln.amount for ln in p.lines}


# -- each rule on numbers worked out by hand -------------------------------------------


def test_base_fee_and_rate_per_million_cells() -> None:
    rules = parse_rules({"base_fee": 200, "rate_per_million_cells": 150})
    p = price(ask(2_500_000), rules, ACME, NOW)
    # 2.5 M cells x 1.50 = 3.75; + 2.00 base
    assert codes(p) == {"base-fee": 200, "data-cells": 375}
    assert (p.subtotal, p.discount, p.total) == (575, 0, 575)
    assert p.expires_at == NOW + timedelta(minutes=60)
    assert p.currency is Currency.CNY


def test_rate_per_mb_and_variable_multipliers() -> None:
    rules = parse_rules(
        {"rate_per_mb": 50, "variable_multipliers": {"SALT": "2"}, "rate_per_million_cells": 0}
    )
    a = Ask(
        Offer.SUBSET,
        2_000_000,
        8_000_000,
        (("SALT", 1_000_000, 4_000_000), ("TEMP", 1_000_000, 4_000_000)),
    )
    p = price(a, rules, ACME, NOW)
    # 8 MB x 0.50 = 4.00; SALT's half again (x2): +2.00
    assert codes(p) == {"data-cells": 0, "data-bytes": 400, "variable-multipliers": 200}
    assert p.total == 600 and p.subtotal == 600


def test_rounding_is_half_up_once_and_lines_add_up() -> None:
    rules = parse_rules({"rate_per_million_cells": 1, "customer_tiers": {"gold": "33.3333"}})
    p = price(ask(2_500_000), rules, Customer("a", License.COMMERCIAL, "gold"), NOW)
    # data: 2.5 fen -> 3 (half up); tier: 2.5 x (1 - 0.333333) = 1.6666675 -> 2
    assert codes(p) == {"data-cells": 3, "customer-tier": -1}
    assert p.total == 2 == sum(ln.amount for ln in p.lines)


def test_time_span_is_prorated_by_day() -> None:
    rules = parse_rules({"time_span_per_year": 36500})
    p = price(ask(10, time_span_days=Fraction(73, 2)), rules, ACME, NOW)
    assert codes(p)["time-span"] == 3650  # 36.5 days of 365.00 a year


def test_monthly_free_quota_then_volume_tiers() -> None:
    rules = parse_rules(
        {
            "rate_per_million_cells": 1000,
            "monthly_free_cells": 1_000_000,
            "volume_tiers": [
                {"from_cells": 2_000_000, "discount_pct": 10},
                {"from_cells": 4_000_000, "discount_pct": 50},
            ],
        }
    )
    used = Customer("a", License.COMMERCIAL, free_cells_used=400_000)
    p = price(ask(6_600_000), rules, used, NOW)
    # 6.6 M x 10.00 = 66.00; 0.6 M free -> 60.00 for 6 M billable cells;
    # volume: 2..4 M at 10% (2.00) + 4..6 M at 50% (10.00) -> 48.00
    assert codes(p) == {"data-cells": 6600, "free-quota": -600, "volume": -1200}
    assert p.free_cells == 600_000 and p.total == 4800 and p.discount == 1800


def test_stride_and_resolution_discounts_take_the_best_tier_each() -> None:
    rules = parse_rules(
        {
            "rate_per_million_cells": 10_000,
            "stride_discounts": [
                {"axis": "space", "min_stride": 2, "discount_pct": 10},
                {"axis": "space", "min_stride": 4, "discount_pct": 20},
                {"axis": "time", "min_stride": 12, "discount_pct": 5},
            ],
            "resolution_discounts": [{"min_step_deg": "2", "discount_pct": 50}],
        }
    )
    p = price(ask(1_000_000, space_stride=4, grid_step_deg=Decimal(1)), rules, ACME, NOW)
    # 100.00 -> stride 4: 20% -> 80.00 -> effective 4-degree grid: 50% -> 40.00
    assert codes(p) == {"data-cells": 10_000, "stride": -2000, "resolution": -4000}
    p = price(ask(1_000_000, space_stride=1, grid_step_deg=Decimal(1)), rules, ACME, NOW)
    assert p.total == 10_000


def test_licenses_customer_tier_and_minimum_charge() -> None:
    rules = parse_rules(
        {
            "base_fee": 100,
            "rate_per_million_cells": 1000,
            "licenses": {"research": {"multiplier": "0.5"}, "government": {"multiplier": "0.8"}},
            "customer_tiers": {"gold": 10},
            "minimum_charge": 500,
        }
    )
    research = price(ask(1_000_000), rules, Customer("r", License.RESEARCH), NOW)
    assert codes(research) == {"base-fee": 100, "data-cells": 1000, "license": -550}
    gov_gold = price(ask(1_000_000), rules, Customer("g", License.GOVERNMENT, "gold"), NOW)
    assert codes(gov_gold)["license"] == -220 and codes(gov_gold)["customer-tier"] == -88
    assert gov_gold.total == 792
    tiny = price(ask(1000), rules, ACME, NOW)
    assert codes(tiny) == {"base-fee": 100, "data-cells": 1, "minimum-charge": 399}
    assert tiny.total == 500 and tiny.subtotal == 101 and tiny.discount == 0


def test_component_run_price_uses_the_hook() -> None:
    rules = parse_rules(
        {"components": {"area-statistics": {"per_run": 300, "per_million_units": 200}}}
    )
    comp = ComponentUse("area-statistics", "cells", Decimal("1.5"), 2_000_000)
    p = price(ask(2_000_000, component=comp), rules, ACME, NOW)
    assert codes(p)["component"] == 300 + 600  # 3.00 + 2 M x 2.00 x 1.5
    other = ComponentUse("regrid", "cells", Decimal(3), 1)
    assert "component" not in codes(price(ask(1, component=other), rules, ACME, NOW))


def test_subscription_and_research_offers() -> None:
    rules = parse_rules(
        {
            "rate_per_million_cells": 1000,
            "subscription": {"monthly_fee": 9900, "cells_per_month": 10**7, "months": 3},
            "licenses": {"research": {"multiplier": "0.5", "free_tier_cells_per_month": 10**6}},
        }
    )
    sub = price(Ask(Offer.SUBSCRIPTION, 1, 4), rules, ACME, NOW)
    assert codes(sub) == {"subscription": 29700} and sub.total == 29700
    assert "subscription" in sub.lines[0].en.lower() and "订阅" in sub.lines[0].zh
    sub_r = price(Ask(Offer.SUBSCRIPTION, 1, 4), rules, Customer("r", License.RESEARCH), NOW)
    assert sub_r.total == 14850
    free = price(Ask(Offer.RESEARCH, 1, 4), rules, Customer("r", License.RESEARCH), NOW)
    assert free.total == 0 and codes(free) == {"research-free-tier": 0}


def test_every_line_explains_itself_in_both_languages() -> None:
    rules = parse_rules(
        {
            "base_fee": 1,
            "rate_per_million_cells": 1000,
            "monthly_free_cells": 100_000,
            "volume_tiers": [{"from_cells": 0, "discount_pct": 1}],
            "customer_tiers": {"gold": 1},
            "minimum_charge": 10**9,
        }
    )
    p = price(ask(10**6), rules, Customer("a", License.COMMERCIAL, "gold"), NOW)
    assert len(p.lines) == 6
    for ln in p.lines:
        assert ln.en and ln.zh and ln.en != ln.zh
        assert any("\u4e00" <= ch <= "\u9fff" for ch in ln.zh)


def test_bad_rules_are_refused_naming_the_field() -> None:
    for doc, field in (
        ({"base_fee": -1}, "rules.base_fee"),
        ({"currency": "EUR"}, "rules.currency"),
        (
            {
                "volume_tiers": [
                    {"from_cells": 5, "discount_pct": 1},
                    {"from_cells": 1, "discount_pct": 2},
                ]
            },
            "rules.volume_tiers",
        ),
        ({"customer_tiers": {"gold": 101}}, "rules.customer_tiers.gold"),
        ({"surprise": 1}, "rules.surprise"),
    ):
        with pytest.raises(InvalidParameter) as err:
            parse_rules(doc)
        assert err.value.parameter == field


# -- money ------------------------------------------------------------------------------


@given(st.integers(-(10**15), 10**15), st.sampled_from(list(Currency)))
def test_major_units_round_trip_exactly(minor: int, cur: Currency) -> None:
    m = Money(minor, cur)
    assert from_major(m.major, cur) == m


@given(st.fractions(min_value=-(10**9), max_value=10**9, max_denominator=10**6))
def test_round_half_up_matches_decimal(x: Fraction) -> None:
    expected = (Decimal(x.numerator) / Decimal(x.denominator)).quantize(
        Decimal(1), rounding=ROUND_HALF_UP
    )
    # Decimal division is exact here: 28 digits cover these numerators and denominators.
    assert round_half_up(x) == int(expected)


def test_money_refuses_what_it_cannot_hold() -> None:
    with pytest.raises(InvalidInput):
        from_major("1.234", "CNY")
    with pytest.raises(InvalidInput):
        from_major("ten", "USD")
    with pytest.raises(InvalidInput):
        from_major("1", "EUR")
    with pytest.raises(InvalidInput):
        Money(1, Currency.CNY) + Money(1, Currency.USD)
    assert from_major("1000", "cny") == Money(100_000, Currency.CNY)
    assert Money(-5, Currency.USD).major == "-0.05"


# -- properties -------------------------------------------------------------------------

pct = st.decimals(min_value=0, max_value=100, places=2)
factor = st.decimals(min_value=0, max_value=5, places=2)
minor = st.integers(0, 100_000)


@st.composite
def rules_docs(draw: st.DrawFn) -> dict[str, Any]:
    starts = sorted(draw(st.sets(st.integers(0, 5_000_000), max_size=3)))
    return {
        "currency": draw(st.sampled_from(["CNY", "USD"])),
        "base_fee": draw(minor),
        "rate_per_million_cells": draw(minor),
        "rate_per_mb": draw(minor),
        "variable_multipliers": draw(st.dictionaries(st.sampled_from(["TEMP", "SALT"]), factor)),
        "time_span_per_year": draw(minor),
        "stride_discounts": [
            {
                "axis": draw(st.sampled_from(["space", "time"])),
                "min_stride": s,
                "discount_pct": str(draw(pct)),
            }
            for s in draw(st.sets(st.integers(2, 8), max_size=2))
        ],
        "resolution_discounts": [
            {"min_step_deg": str(d), "discount_pct": str(draw(pct))}
            for d in draw(st.sets(st.sampled_from(["0.5", "1", "2", "5"]), max_size=2))
        ],
        "volume_tiers": [{"from_cells": s, "discount_pct": str(draw(pct))} for s in starts],
        "licenses": {
            "commercial": {"multiplier": str(draw(factor))},
            "research": {"multiplier": str(draw(factor))},
            "government": {"multiplier": str(draw(factor))},
        },
        "customer_tiers": {"gold": str(draw(pct))},
        "monthly_free_cells": draw(st.integers(0, 3_000_000)),
        "minimum_charge": draw(minor),
        "components": {"*": {"per_run": draw(minor), "per_million_units": draw(minor)}},
    }


customers = st.builds(
    Customer,
    account=st.just("c"),
    license=st.sampled_from(list(License)),
    tier=st.sampled_from([None, "gold", "silver"]),
    free_cells_used=st.integers(0, 4_000_000),
)


@st.composite
def asks(draw: st.DrawFn, cells: int | None = None) -> Ask:
    n = draw(st.integers(0, 50_000_000)) if cells is None else cells
    share = draw(st.fractions(0, 1, max_denominator=100))
    temp = int(n * share)
    comp = draw(
        st.none()
        | st.builds(
            ComponentUse,
            id=st.just("area-statistics"),
            basis=st.just("cells"),
            factor=st.decimals(0, 3, places=1),
            units=st.just(n),
        )
    )
    return Ask(
        Offer.SUBSET,
        n,
        4 * n,
        (("SALT", n - temp, 4 * (n - temp)), ("TEMP", temp, 4 * temp)),
        space_stride=draw(st.integers(1, 8)),
        time_stride=draw(st.integers(1, 12)),
        grid_step_deg=draw(st.sampled_from([None, Decimal("0.25"), Decimal(1)])),
        time_span_days=draw(st.none() | st.fractions(0, 36500, max_denominator=24)),
        component=comp,
    )


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(rules_docs(), asks(), customers)
def test_totals_are_never_negative_and_lines_add_up(
    doc: dict[str, Any], a: Ask, customer: Customer
) -> None:
    rules = parse_rules(doc)
    p = price(a, rules, customer, NOW)
    assert p.total >= 0 and p.subtotal >= 0 and p.discount >= 0
    assert all(isinstance(ln.amount, int) for ln in p.lines)
    assert sum(ln.amount for ln in p.lines) == p.total
    surcharges = sum(
        ln.amount for ln in p.lines if ln.code in ("license", "minimum-charge") and ln.amount > 0
    )
    assert p.subtotal - p.discount + surcharges == p.total
    assert price(a, rules, customer, NOW) == p  # pure: same inputs, same quote


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(rules_docs(), customers, st.data())
def test_a_bigger_selection_never_costs_less(
    doc: dict[str, Any], customer: Customer, data: st.DataObject
) -> None:
    """Per-cell rules are monotone: the same selection grown (same variables in the same
    proportions, same stride, grid and time span) never gets cheaper."""
    rules = parse_rules(doc)
    small, extra = data.draw(st.integers(0, 20_000_000)), data.draw(st.integers(0, 20_000_000))
    stride = data.draw(st.integers(1, 8))
    span = data.draw(st.none() | st.fractions(0, 3650, max_denominator=24))

    def sized(n: int) -> Ask:
        half = n // 2
        return Ask(
            Offer.SUBSET,
            2 * half,
            8 * half,
            (("SALT", half, 4 * half), ("TEMP", half, 4 * half)),
            space_stride=stride,
            grid_step_deg=Decimal(1),
            time_span_days=span,
        )

    lo = price(sized(small), rules, customer, NOW)
    hi = price(sized(small + extra), rules, customer, NOW)
    assert lo.total <= hi.total


def test_rules_round_trip_through_their_canonical_json() -> None:
    rules = parse_rules({"customer_tiers": {"gold": "12.5"}, "base_fee": 3})
    again = PriceRules.model_validate_json(rules.canonical_json())
    assert again == rules and again.sha256() == rules.sha256()
