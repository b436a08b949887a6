"""Pricing fixtures: a price book on the Levitus product, buyers with keys and credits."""

from __future__ import annotations

from typing import Any

import pytest

from oceanmart.accounts import create_account, create_key
from oceanmart.db import transaction
from pricing.books import BookInfo, parse_rules, save_book
from pricing.credits import grant_credits
from pricing.money import from_major
from tests.conftest import Env, unique

PRODUCT = "levitus-climatology"

# A simple book: 2.00 CNY base fee, 1.00 CNY per million cells, 30 days of downloads.
BASIC: dict[str, Any] = {
    "currency": "CNY",
    "base_fee": 200,
    "rate_per_million_cells": 100,
    "download_days": 30,
    "provider_share_pct": "70",
    "subscription": {"monthly_fee": 5000, "cells_per_month": 2_000_000},
    "licenses": {"research": {"multiplier": "0.5", "free_tier_cells_per_month": 1_000_000}},
}

# A small selection of Levitus: 20 x 20 cells, 7 depths, TEMP only.
SMALL = {"bbox": [-10, -10, 10, 10], "depth": [0, 100], "variables": ["TEMP"]}


def use_book(env: Env, rules: dict[str, Any], product: str = PRODUCT) -> BookInfo:
    """Make ``rules`` the product's current price book (a new version if they differ)."""
    with transaction(env.sessions) as s:
        return save_book(s, product, parse_rules(rules), created_by="test", ledger=env.ledger)


def buyer(
    env: Env,
    *,
    kind: str = "enterprise",
    credits: str | None = None,
    currency: str = "CNY",
    scopes: str = "catalog:read,data:read,orders:write",
) -> tuple[str, str]:
    """A new account with a key (and credits in major units); returns (name, key)."""
    name = unique("buyer")
    with transaction(env.sessions) as s:
        create_account(s, name, kind)
        key = create_key(s, name, scopes)[1]
        if credits is not None:
            grant_credits(s, name, from_major(credits, currency), created_by="test")
    return name, key


@pytest.fixture
def priced(env: Env, levitus: str) -> str:
    """Levitus with the BASIC price book current; returns the product id."""
    use_book(env, BASIC)
    return levitus
