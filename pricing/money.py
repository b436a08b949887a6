"""Money: integer minor units of one currency, and the one rounding rule.

Amounts are stored and moved as integers of the currency's minor unit (fen for CNY,
cents for USD); prices are computed exactly with ``Fraction`` and rounded once, half up
(away from zero for the non-negative amounts prices are), to the minor unit. Major
units (``"12.34"``) appear only at the edges: the CLI, forms and display.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from fractions import Fraction

from oceanmart.errors import InvalidInput


class Currency(StrEnum):
    CNY = "CNY"  # default
    USD = "USD"


# Both currencies have two decimal places; kept as a table so a third need not guess.
MINOR_DIGITS: dict[Currency, int] = {Currency.CNY: 2, Currency.USD: 2}
SYMBOL: dict[Currency, str] = {Currency.CNY: "¥", Currency.USD: "$"}


def currency(code: str) -> Currency:
    try:
        return Currency(code.upper())
    except ValueError:
        known = ", ".join(c.value for c in Currency)
        raise InvalidInput(f"unknown currency {code!r} (known: {known})") from None


def round_half_up(value: Fraction) -> int:
    """Round an exact non-negative amount of minor units to an integer, halves up.

    Negative inputs round half away from zero, so ``-round_half_up(x) ==
    round_half_up(-x)``.
    """
    if value < 0:
        return -round_half_up(-value)
    return int((value * 2 + 1) // 2)


@dataclass(frozen=True, slots=True, order=True)
class Money:
    amount: int  # minor units
    currency: Currency

    def __post_init__(self) -> None:
        if not isinstance(self.amount, int) or isinstance(self.amount, bool):
            raise TypeError("Money.amount is an integer of minor units")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise InvalidInput(f"cannot combine {self.currency} and {other.currency}")

    @property
    def major(self) -> str:
        """The amount in major units as exact decimal text: ``12345 CNY`` -> ``"123.45"``."""
        digits = MINOR_DIGITS[self.currency]
        sign = "-" if self.amount < 0 else ""
        whole, frac = divmod(abs(self.amount), 10**digits)
        return f"{sign}{whole}.{frac:0{digits}d}" if digits else f"{sign}{whole}"

    def display(self) -> str:
        return f"{SYMBOL[self.currency]}{self.major}"

    def as_dict(self) -> dict[str, object]:
        return {"amount": self.amount, "currency": self.currency.value, "major": self.major}


def from_major(text: str | int | Decimal, code: str | Currency) -> Money:
    """Parse a major-unit amount (``"1000"``, ``"12.34"``); more decimals than the
    currency has are refused rather than rounded (money typed by a person is exact)."""
    cur = code if isinstance(code, Currency) else currency(code)
    try:
        value = Decimal(str(text).strip())
    except InvalidOperation:
        raise InvalidInput(f"amount {text!r} is not a number") from None
    if not value.is_finite():
        raise InvalidInput(f"amount {text!r} is not a finite number")
    scaled = value.scaleb(MINOR_DIGITS[cur])
    if scaled != scaled.to_integral_value():
        raise InvalidInput(
            f"amount {text!r} has more than {MINOR_DIGITS[cur]} decimal places for {cur.value}"
        )
    return Money(int(scaled), cur)
