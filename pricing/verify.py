"""Check an OceanMart quote offline: standalone, needs only ``eth-account``.

A quote (the JSON of ``POST /v1/quotes``) is signed by the operator key as EIP-712 typed
data. Anyone holding the quote and the operator's address (``GET /v1/quotes/signer``,
also printed in the README of a deployment) can check it without OceanMart::

    from pricing.verify import verify_quote
    verify_quote(quote_json, "0xOperatorAddress")   # True only if nothing was changed

The typed data is rebuilt from the quote's own fields (not from its ``eip712`` copy), so
changing any field (a total, a line's text, the expiry, the plan) breaks the signature.
This file imports nothing from OceanMart on purpose: copy it next to your own code.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_hash.auto import keccak
from eth_keys.exceptions import BadSignature
from eth_utils.exceptions import ValidationError

DOMAIN: dict[str, Any] = {"name": "OceanMart Quote", "version": "1"}

# (name, type) in signing order; "outputBytes" because "bytes" is a type name.
QUOTE_FIELDS: tuple[tuple[str, str], ...] = (
    ("id", "string"),
    ("account", "string"),
    ("product", "string"),
    ("productVersion", "string"),
    ("subsetId", "string"),
    ("offer", "string"),
    ("selection", "string"),
    ("component", "string"),
    ("priceBookVersion", "uint256"),
    ("priceBookHash", "bytes32"),
    ("cells", "uint256"),
    ("outputBytes", "uint256"),
    ("chunks", "uint256"),
    ("copy", "string"),
    ("currency", "string"),
    ("subtotal", "uint256"),
    ("discount", "uint256"),
    ("total", "uint256"),
    ("linesHash", "bytes32"),
    ("issuedAt", "uint256"),
    ("expiresAt", "uint256"),
)


def canonical_json(value: object) -> bytes:
    """Sorted keys, no spaces, UTF-8: the byte form that is hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _seconds(text: str) -> int:
    t = datetime.fromisoformat(text)
    if t.tzinfo is None:
        raise ValueError(f"time {text!r} has no timezone")
    return int(t.timestamp())


def message(quote: Mapping[str, Any]) -> dict[str, Any]:
    """The EIP-712 ``Quote`` message for a quote's JSON fields."""
    total, subtotal, discount = quote["total"], quote["subtotal"], quote["discount"]
    currencies = {total["currency"], subtotal["currency"], discount["currency"]}
    if len(currencies) != 1:
        raise ValueError("a quote's amounts are in one currency")
    component = quote.get("component")
    plan = quote["plan"]
    return {
        "id": quote["id"],
        "account": quote["account"],
        "product": quote["product"],
        "productVersion": quote["version"],
        "subsetId": quote.get("subset_id") or "",
        "offer": quote["offer"],
        "selection": canonical_json(quote.get("selection") or {}).decode(),
        "component": canonical_json(component).decode() if component else "",
        "priceBookVersion": int(quote["price_book"]["version"]),
        "priceBookHash": bytes.fromhex(quote["price_book"]["sha256"]),
        "cells": int(plan["cells"]),
        "outputBytes": int(plan["bytes"]),
        "chunks": int(plan["chunks"]),
        "copy": plan["copy"],
        "currency": total["currency"],
        "subtotal": int(subtotal["amount"]),
        "discount": int(discount["amount"]),
        "total": int(total["amount"]),
        "linesHash": keccak(canonical_json(quote["lines"])),
        "issuedAt": _seconds(quote["issued_at"]),
        "expiresAt": _seconds(quote["expires_at"]),
    }


def typed_data(quote: Mapping[str, Any]) -> dict[str, Any]:
    """The full EIP-712 document (what a wallet or any EIP-712 library signs)."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
            ],
            "Quote": [{"name": n, "type": t} for n, t in QUOTE_FIELDS],
        },
        "primaryType": "Quote",
        "domain": dict(DOMAIN),
        "message": message(quote),
    }


def recover_signer(quote: Mapping[str, Any]) -> str:
    """The address whose key signed this quote's fields (checksummed)."""
    signable = encode_typed_data(full_message=typed_data(quote))
    return str(Account.recover_message(signable, signature=quote["signature"]))


def verify_quote(quote: Mapping[str, Any], signer: str) -> bool:
    """True when ``signer`` signed exactly these fields; False on any change or garbage."""
    try:
        return recover_signer(quote).lower() == signer.lower()
    except (KeyError, TypeError, ValueError, AttributeError, ValidationError, BadSignature):
        return False
