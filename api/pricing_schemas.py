"""Request and response models of quotes, orders, credits, price books and reports."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import ComponentCall


class MoneyOut(BaseModel):
    amount: int = Field(description="integer minor units (fen, cents)")
    currency: Literal["CNY", "USD"]
    major: str = Field(description="the same amount in major units, exact decimal text")


class QuoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    product: str = Field(max_length=64, examples=["levitus-climatology"])
    selection: dict[str, Any] = Field(
        default_factory=dict,
        description="as for /v1/plans: bbox | polygon | sea_area | point(s) | route; "
        "datetime | times; depth; variables; method; stride",
        examples=[{"bbox": [-10, -20, 10, 20], "depth": [0, 100], "variables": ["TEMP"]}],
    )
    component: ComponentCall | None = None
    offer: Literal["subset", "subscription", "research"] = Field(
        default="subset",
        description="subset: the selection; subscription: the whole product with a monthly "
        "cell quota; research: the research free tier (research accounts)",
    )


class LineOut(BaseModel):
    code: str
    amount: int = Field(description="minor units; negative for discounts")
    en: str
    zh: str


class PlanSummary(BaseModel):
    cells: int
    bytes: int
    chunks: int
    copy_: str = Field(alias="copy")


class PriceBookRef(BaseModel):
    version: int
    sha256: str


class QuoteOut(BaseModel):
    """A signed quote. Every field but ``signer``, ``digest`` and ``signature`` is covered
    by the EIP-712 signature (see ``GET /v1/quotes/signer`` and the README)."""

    id: str
    account: str
    product: str
    version: str
    subset_id: str
    offer: str
    selection: dict[str, Any]
    component: dict[str, Any] | None
    price_book: PriceBookRef
    plan: PlanSummary
    lines: list[LineOut]
    subtotal: MoneyOut
    discount: MoneyOut
    total: MoneyOut
    issued_at: datetime
    expires_at: datetime
    signer: str
    digest: str
    signature: str


class SignerOut(BaseModel):
    address: str = Field(description="the operator's Ethereum address that signs quotes")
    domain: dict[str, Any]
    types: dict[str, Any]


class OrderIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    quote_id: str = Field(max_length=40)
    payment: Literal["credits", "stripe"] = "credits"


class OrderOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    status: str
    subset_id: str | None
    checkout_url: str | None = None
    quote_id: str
    account: str
    product_id: str
    offer: str
    payment: str
    amount: MoneyOut
    provider_share: int | None
    failure: str
    entitlement_ids: list[int]
    created_at: datetime
    updated_at: datetime
    expires_at: datetime
    paid_at: datetime | None
    fulfilled_at: datetime | None
    refunded_at: datetime | None


class CreditGrantIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account: str
    amount: Decimal = Field(gt=0, description="major units, e.g. 1000 or 12.34")
    currency: Literal["CNY", "USD"] = "CNY"
    memo: str = Field(default="", max_length=200)


class CreditEntryOut(BaseModel):
    id: int
    kind: str
    account: str
    amount: MoneyOut
    balance: MoneyOut
    created_at: datetime


class BalancesOut(BaseModel):
    account: str
    balances: list[MoneyOut]


class PriceBookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: dict[str, Any]
    expect_version: int | None = Field(
        default=None, description="the version you edited; refused if another was saved since"
    )
    note: str = Field(default="", max_length=200)


class PriceBookOut(BaseModel):
    product: str
    version: int
    sha256: str
    rules: dict[str, Any]
    created_at: datetime
    created_by: str
    note: str


class PreviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rules: dict[str, Any] | None = Field(
        default=None, description="draft rules; the current book when absent"
    )
    selection: dict[str, Any] = Field(default_factory=dict)
    component: ComponentCall | None = None
    offer: Literal["subset", "subscription", "research"] = "subset"
    license: Literal["commercial", "research", "government"] = "commercial"
    tier: str | None = None


class PreviewOut(BaseModel):
    lines: list[LineOut]
    subtotal: MoneyOut
    discount: MoneyOut
    total: MoneyOut
    cells: int
    bytes: int


class TierIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tier: str | None = Field(default=None, max_length=32)


class UsageOut(BaseModel):
    day: str
    account: str
    product: str
    requests: int
    cells: int
    bytes: int


class RevenueOut(BaseModel):
    day: str
    account: str
    product: str
    theme: str
    provider: str
    currency: str
    orders: int
    gross: int
    refunded: int
    net: int
    provider_share: int
    operator_share: int


class ReportRange(BaseModel):
    start: date
    end: date
