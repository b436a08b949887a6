"""The quote engine: a pure function from (what is asked, price book, customer, time) to
priced line items. No database, no clock, no randomness: the same inputs always give
the same lines and total.

How the numbers are made (the "explicit rounding" of the README):

1. Charges are computed exactly (``Fraction``): base fee, data by cells and by bytes,
   per-variable multipliers, time span, component run, or a subscription fee.
2. Adjustments apply in a fixed order to the exact running amount: the monthly free
   quota, graduated volume tiers, stride and resolution discounts (on the data charge),
   then the license multiplier and the customer-tier discount (on the whole order).
3. Each line's amount is the difference of the *rounded* running totals before and
   after it (half up, to the minor unit), so the lines always add up to the total
   exactly, and each step is monotone: a bigger selection never costs less.
4. A positive total below the minimum charge is raised to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from fractions import Fraction

from pricing.books import PriceRules
from pricing.money import Currency, Money, round_half_up

MILLION = 1_000_000


class Offer(StrEnum):
    SUBSET = "subset"  # the selection, downloadable for the book's download_days
    SUBSCRIPTION = "subscription"  # the whole product, a monthly cell quota
    RESEARCH = "research"  # research accounts: the free tier of the whole product


class License(StrEnum):
    COMMERCIAL = "commercial"
    RESEARCH = "research"
    GOVERNMENT = "government"

    @classmethod
    def for_account_kind(cls, kind: str) -> License:
        return {"research": cls.RESEARCH, "government": cls.GOVERNMENT}.get(kind, cls.COMMERCIAL)


@dataclass(frozen=True, slots=True)
class ComponentUse:
    """A component run priced with the registry's hook: ``units`` counted by its basis."""

    id: str
    basis: str  # cells | points | fixed
    factor: Decimal
    units: int


@dataclass(frozen=True, slots=True)
class Ask:
    """What is being priced: a planned selection (facts from the planner) and an offer."""

    offer: Offer
    cells: int
    bytes: int
    cells_by_variable: tuple[tuple[str, int, int], ...] = ()  # (name, cells, bytes)
    space_stride: int = 1
    time_stride: int = 1
    grid_step_deg: Decimal | None = None  # native horizontal step; None without a grid
    time_span_days: Fraction | None = None  # None without a time axis
    component: ComponentUse | None = None


@dataclass(frozen=True, slots=True)
class Customer:
    account: str
    license: License
    tier: str | None = None
    free_cells_used: int = 0  # of this product's monthly free quota, this month


@dataclass(frozen=True, slots=True)
class Line:
    code: str
    amount: int  # minor units; negative for discounts
    en: str
    zh: str

    def as_dict(self) -> dict[str, object]:
        return {"code": self.code, "amount": self.amount, "en": self.en, "zh": self.zh}


@dataclass(frozen=True, slots=True)
class Priced:
    currency: Currency
    lines: tuple[Line, ...]
    subtotal: int
    discount: int  # >= 0: what the adjustments took off
    total: int
    free_cells: int  # of the monthly free quota this quote uses
    issued_at: datetime
    expires_at: datetime

    def money(self, amount: int) -> Money:
        return Money(amount, self.currency)


@dataclass
class _Running:
    """The exact running amount and the lines made from its rounded steps."""

    currency: Currency
    value: Fraction = Fraction(0)
    rounded: int = 0
    lines: list[Line] = field(default_factory=list)

    def step(self, code: str, new_value: Fraction, en: str, zh: str) -> None:
        new_value = max(new_value, Fraction(0))
        new_rounded = round_half_up(new_value)
        amount = new_rounded - self.rounded
        self.value, self.rounded = new_value, new_rounded
        if amount or code in ("data-cells", "subscription", "research-free-tier"):
            self.lines.append(Line(code, amount, en, zh))

    def fmt(self, amount: int | Fraction) -> str:
        return Money(round_half_up(Fraction(amount)), self.currency).display()


def _pct(value: Decimal) -> Fraction:
    return Fraction(value) / 100


def _num(n: int) -> str:
    return f"{n:,}"


def _millions(n: int) -> str:
    return f"{n / MILLION:.6g} M"


def _data_value(ask: Ask, rules: PriceRules) -> tuple[Fraction, Fraction, Fraction]:
    """Exact data charge: (by cells, by bytes, extra from per-variable multipliers)."""
    by_cells = Fraction(ask.cells * rules.rate_per_million_cells, MILLION)
    by_bytes = Fraction(ask.bytes * rules.rate_per_mb, MILLION)
    extra = Fraction(0)
    for name, cells, nbytes in ask.cells_by_variable:
        m = rules.variable_multipliers.get(name)
        if m is not None and m != 1:
            per = Fraction(cells * rules.rate_per_million_cells + nbytes * rules.rate_per_mb)
            extra += (Fraction(m) - 1) * per / MILLION
    return by_cells, by_bytes, extra


def _volume_off(rules: PriceRules, billable: int, per_cell: Fraction) -> Fraction:
    """Graduated: each tier's discount applies to the billable cells inside its band."""
    off = Fraction(0)
    tiers = rules.volume_tiers
    for i, tier in enumerate(tiers):
        upper = tiers[i + 1].from_cells if i + 1 < len(tiers) else billable
        inside = max(0, min(billable, upper) - tier.from_cells)
        off += inside * per_cell * _pct(tier.discount_pct)
    return off


def _best(tiers: list[tuple[bool, Decimal]]) -> Decimal:
    """The largest discount among the tiers that apply (such discounts do not stack)."""
    return max((pct for ok, pct in tiers if ok), default=Decimal(0))


CHARGES = frozenset(
    {
        "base-fee",
        "data-cells",
        "data-bytes",
        "variable-multipliers",
        "time-span",
        "component",
        "subscription",
        "research-free-tier",
    }
)


def _charges(ask: Ask, rules: PriceRules, r: _Running) -> Fraction:
    """Step through the charge lines of a subset; returns the exact data charge."""
    r.step(
        "base-fee",
        Fraction(rules.base_fee),
        f"Base fee per order: {r.fmt(rules.base_fee)}",
        f"每单基础费:{r.fmt(rules.base_fee)}",
    )
    by_cells, by_bytes, extra = _data_value(ask, rules)
    r.step(
        "data-cells",
        r.value + by_cells,
        f"Data: {_millions(ask.cells)} cells x {r.fmt(rules.rate_per_million_cells)} "
        "per million cells",
        f"数据:{_millions(ask.cells)} 个数据单元 x 每百万单元 "
        f"{r.fmt(rules.rate_per_million_cells)}",
    )
    if rules.rate_per_mb:
        mb = f"{ask.bytes / MILLION:.6g}"
        r.step(
            "data-bytes",
            r.value + by_bytes,
            f"Data volume: {mb} MB x {r.fmt(rules.rate_per_mb)} per MB",
            f"数据量:{mb} MB x 每 MB {r.fmt(rules.rate_per_mb)}",
        )
    if extra:
        names = ", ".join(
            f"{n} x{rules.variable_multipliers[n]}"
            for n, _, _ in ask.cells_by_variable
            if n in rules.variable_multipliers
        )
        r.step(
            "variable-multipliers",
            r.value + extra,
            f"Variable multipliers: {names}",
            f"变量系数:{names}",
        )
    if rules.time_span_per_year and ask.time_span_days:
        days = f"{float(ask.time_span_days):.6g}"
        r.step(
            "time-span",
            r.value + ask.time_span_days * rules.time_span_per_year / 365,
            f"Time span: {days} days x {r.fmt(rules.time_span_per_year)} per year",
            f"时间跨度:{days} 天 x 每年 {r.fmt(rules.time_span_per_year)}",
        )
    c = ask.component
    terms = None if c is None else rules.components.get(c.id) or rules.components.get("*")
    if c is not None and terms is not None:
        units = Fraction(c.units * terms.per_million_units, MILLION) * Fraction(c.factor)
        r.step(
            "component",
            r.value + terms.per_run + units,
            f"Component {c.id}: {r.fmt(terms.per_run)} per run + {_millions(c.units)} "
            f"{c.basis} x {r.fmt(terms.per_million_units)} per million x factor {c.factor}",
            f"组件 {c.id}:每次运行 {r.fmt(terms.per_run)} + {_millions(c.units)} {c.basis}"
            f" x 每百万 {r.fmt(terms.per_million_units)} x 系数 {c.factor}",
        )
    return by_cells + by_bytes + extra


def _data_adjustments(
    ask: Ask, rules: PriceRules, customer: Customer, r: _Running, data: Fraction
) -> int:
    """Free quota, volume, stride and resolution on the data charge; returns free cells."""
    if data <= 0 or ask.cells <= 0:
        return 0
    others = r.value - data
    per_cell = data / ask.cells
    billable, free_cells = ask.cells, 0
    left = max(0, rules.monthly_free_cells - customer.free_cells_used)
    if left:
        free_cells = min(left, ask.cells)
        billable = ask.cells - free_cells
        data = billable * per_cell
        r.step(
            "free-quota",
            others + data,
            f"Monthly free quota: {_num(free_cells)} cells free "
            f"({_num(left - free_cells)} left this month)",
            f"每月免费额度:{_num(free_cells)} 个数据单元免费(本月剩余 {_num(left - free_cells)})",
        )
    if rules.volume_tiers and billable:
        data -= _volume_off(rules, billable, per_cell)
        r.step(
            "volume",
            others + data,
            "Volume discount: "
            + ", ".join(
                f"{t.discount_pct}% off cells beyond {_num(t.from_cells)}"
                for t in rules.volume_tiers
            ),
            "批量折扣:"
            + ",".join(
                f"超过 {_num(t.from_cells)} 个单元的部分减 {t.discount_pct}%"
                for t in rules.volume_tiers
            ),
        )
    stride = _best(
        [
            (
                (ask.space_stride if t.axis == "space" else ask.time_stride) >= t.min_stride,
                t.discount_pct,
            )
            for t in rules.stride_discounts
        ]
    )
    if stride:
        data *= 1 - _pct(stride)
        r.step(
            "stride",
            others + data,
            f"Stride discount: {stride}% off data (stride: space {ask.space_stride}, "
            f"time {ask.time_stride})",
            f"抽样折扣:数据费减 {stride}%(空间步长 {ask.space_stride},时间步长 {ask.time_stride})",
        )
    if ask.grid_step_deg is not None and rules.resolution_discounts:
        step = ask.grid_step_deg * ask.space_stride
        res = _best([(step >= t.min_step_deg, t.discount_pct) for t in rules.resolution_discounts])
        if res:
            data *= 1 - _pct(res)
            r.step(
                "resolution",
                others + data,
                f"Resolution discount: {res}% off data on a {step:g} degree grid",
                f"分辨率折扣:{step:g} 度网格,数据费减 {res}%",
            )
    return free_cells


def price(ask: Ask, rules: PriceRules, customer: Customer, now: datetime) -> Priced:
    """Price ``ask`` under ``rules`` for ``customer`` at ``now`` (pure)."""
    r = _Running(rules.currency)
    free_cells = 0
    if ask.offer is Offer.SUBSCRIPTION:
        sub = rules.subscription
        assert sub is not None  # the service refuses the offer when the book has none
        r.step(
            "subscription",
            Fraction(sub.monthly_fee * sub.months),
            f"Subscription: whole product for {sub.months} month(s), "
            f"{_num(sub.cells_per_month)} cells per month, {r.fmt(sub.monthly_fee)} per month",
            f"订阅:整个产品 {sub.months} 个月,每月 {_num(sub.cells_per_month)} 个数据单元,"
            f"每月 {r.fmt(sub.monthly_fee)}",
        )
    elif ask.offer is Offer.RESEARCH:
        terms = rules.licenses.research
        r.step(
            "research-free-tier",
            Fraction(0),
            f"Research free tier: whole product for {terms.free_tier_days} days, "
            f"{_num(terms.free_tier_cells_per_month)} cells per month, free of charge",
            f"科研免费额度:整个产品 {terms.free_tier_days} 天,"
            f"每月 {_num(terms.free_tier_cells_per_month)} 个数据单元,免费",
        )
    else:
        data = _charges(ask, rules, r)
        free_cells = _data_adjustments(ask, rules, customer, r, data)
    if ask.offer is not Offer.RESEARCH:
        license_terms = getattr(rules.licenses, customer.license.value)
        if license_terms.multiplier != 1 and r.value > 0:
            r.step(
                "license",
                r.value * Fraction(license_terms.multiplier),
                f"{customer.license.value.capitalize()} license: price x "
                f"{license_terms.multiplier}",
                f"{_LICENSE_ZH[customer.license]}许可:价格 x {license_terms.multiplier}",
            )
        tier_pct = rules.customer_tiers.get(customer.tier) if customer.tier else None
        if tier_pct and r.value > 0:
            r.step(
                "customer-tier",
                r.value * (1 - _pct(tier_pct)),
                f"Customer tier {customer.tier}: {tier_pct}% off",
                f"客户等级 {customer.tier}:减 {tier_pct}%",
            )
        if 0 < r.rounded < rules.minimum_charge:
            r.step(
                "minimum-charge",
                Fraction(rules.minimum_charge),
                f"Minimum charge: {r.fmt(rules.minimum_charge)}",
                f"最低收费:{r.fmt(rules.minimum_charge)}",
            )
    subtotal = sum(ln.amount for ln in r.lines if ln.code in CHARGES)
    discount = -sum(ln.amount for ln in r.lines if ln.code not in CHARGES and ln.amount < 0)
    return Priced(
        currency=rules.currency,
        lines=tuple(r.lines),
        subtotal=subtotal,
        discount=discount,
        total=r.rounded,
        free_cells=free_cells,
        issued_at=now,
        expires_at=now + timedelta(minutes=rules.quote_ttl_minutes),
    )


_LICENSE_ZH = {License.COMMERCIAL: "商业", License.RESEARCH: "科研", License.GOVERNMENT: "政府"}
