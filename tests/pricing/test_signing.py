"""Quote signatures: the fast EIP-712 digest equals eth-account's, quotes verify offline
with eth-account alone, and changing any field breaks the signature."""

from __future__ import annotations

import copy
import os
from datetime import UTC, datetime
from typing import Any

from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from pricing.signing import QuoteSigner, digest
from pricing.verify import recover_signer, typed_data, verify_quote

SIGNER_KEY = "0x4c0883a69102937d6231471b5dbb6204fe5129617082792ae468d01a3f362318"
SIGNER = QuoteSigner(bytes.fromhex(SIGNER_KEY[2:]))
text = st.text(min_size=0, max_size=30)
amount = st.integers(0, 10**15)


@st.composite
def quotes(draw: st.DrawFn) -> dict[str, Any]:
    cur = draw(st.sampled_from(["CNY", "USD"]))
    money = {"currency": cur, "major": "x"}
    issued = draw(st.integers(1_600_000_000, 2_000_000_000))
    return {
        "id": "q_" + draw(st.text("0123456789abcdef", min_size=32, max_size=32)),
        "account": draw(text),
        "product": draw(text),
        "version": draw(text),
        "subset_id": draw(text),
        "offer": draw(st.sampled_from(["subset", "subscription", "research"])),
        "selection": draw(
            st.dictionaries(
                st.sampled_from(["bbox", "variables", "depth"]),
                st.lists(st.integers(-180, 180), max_size=4),
            )
        ),
        "component": draw(
            st.none() | st.fixed_dictionaries({"id": text, "parameters": st.just({})})
        ),
        "price_book": {"version": draw(st.integers(1, 10**6)), "sha256": os.urandom(32).hex()},
        "plan": {
            "cells": draw(amount),
            "bytes": draw(amount),
            "chunks": draw(st.integers(0, 10**6)),
            "copy": draw(st.sampled_from(["map", "series"])),
        },
        "lines": draw(
            st.lists(
                st.fixed_dictionaries(
                    {"code": text, "amount": st.integers(-(10**9), 10**9), "en": text, "zh": text}
                ),
                max_size=5,
            )
        ),
        "subtotal": {"amount": draw(amount), **money},
        "discount": {"amount": draw(amount), **money},
        "total": {"amount": draw(amount), **money},
        "issued_at": datetime.fromtimestamp(issued, UTC).isoformat(),
        "expires_at": "2033-05-18T03:33:20Z",
    }


def signed(q: dict[str, Any]) -> dict[str, Any]:
    q = copy.deepcopy(q)
    q["digest"], q["signature"] = SIGNER.sign(q)
    return q


@settings(max_examples=60)
@given(quotes())
def test_fast_digest_equals_eth_accounts_and_quotes_verify_offline(q: dict[str, Any]) -> None:
    reference = _hash_eip191_message(encode_typed_data(full_message=typed_data(q)))
    assert digest(q) == reference
    s = signed(q)
    assert s["digest"] == "0x" + reference.hex()
    assert recover_signer(s) == SIGNER.address
    assert verify_quote(s, SIGNER.address)
    # eth-account's own signature of the same typed data recovers the same way
    theirs = Account.sign_typed_data(SIGNER_KEY, full_message=typed_data(q))
    assert theirs.message_hash == reference
    assert SIGNER.check(q, "0x" + theirs.signature.hex())


# Every way of changing a signed quote: (path, new value function)
MUTATIONS: list[tuple[tuple[Any, ...], Any]] = [
    (("id",), lambda v: v + "0"),
    (("account",), lambda v: v + "x"),
    (("product",), lambda v: v + "x"),
    (("version",), lambda v: v + "x"),
    (("subset_id",), lambda v: v + "x"),
    (("offer",), lambda v: "subscription" if v != "subscription" else "subset"),
    (("selection",), lambda v: {**v, "stride": 2}),
    (("component",), lambda v: {"id": "regrid", "parameters": {}} if v is None else None),
    (("price_book", "version"), lambda v: v + 1),
    (("price_book", "sha256"), lambda v: ("0" if v[0] != "0" else "1") + v[1:]),
    (("plan", "cells"), lambda v: v + 1),
    (("plan", "bytes"), lambda v: v + 1),
    (("plan", "chunks"), lambda v: v + 1),
    (("plan", "copy"), lambda v: "series" if v == "map" else "map"),
    (("lines",), lambda v: [*v, {"code": "x", "amount": 0, "en": "", "zh": ""}]),
    (("subtotal", "amount"), lambda v: v + 1),
    (("discount", "amount"), lambda v: v + 1),
    (("total", "amount"), lambda v: v + 1),
    (("total", "currency"), lambda v: "USD" if v == "CNY" else "CNY"),
    (("issued_at",), lambda v: "2001-01-01T00:00:00Z"),
    (("expires_at",), lambda v: "2033-05-18T03:33:21Z"),
]


@settings(max_examples=40)
@given(quotes(), st.sampled_from(MUTATIONS))
def test_any_changed_field_fails_verification(q: dict[str, Any], mutation: Any) -> None:
    s = signed(q)
    path, change = mutation
    tampered = copy.deepcopy(s)
    node = tampered
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = change(node[path[-1]])
    assert verify_quote(s, SIGNER.address)
    assert not verify_quote(tampered, SIGNER.address)
    assert not SIGNER.check(tampered, s["signature"])


def test_a_line_text_change_and_a_foreign_signer_fail() -> None:
    q = signed(
        {
            "id": "q_1",
            "account": "acme",
            "product": "p",
            "version": "v",
            "subset_id": "sub_1",
            "offer": "subset",
            "selection": {},
            "component": None,
            "price_book": {"version": 1, "sha256": "ab" * 32},
            "plan": {"cells": 1, "bytes": 4, "chunks": 1, "copy": "map"},
            "lines": [{"code": "data-cells", "amount": 1, "en": "Data", "zh": "数据"}],
            "subtotal": {"amount": 1, "currency": "CNY"},
            "discount": {"amount": 0, "currency": "CNY"},
            "total": {"amount": 1, "currency": "CNY"},
            "issued_at": "2026-11-25T08:00:00Z",
            "expires_at": "2026-11-25T09:00:00Z",
        }
    )
    assert verify_quote(q, SIGNER.address)
    q2 = copy.deepcopy(q)
    q2["lines"][0]["zh"] = "数据!"
    assert not verify_quote(q2, SIGNER.address)
    other = QuoteSigner(os.urandom(32))
    assert not verify_quote(q, other.address)
    assert not verify_quote({**q, "signature": "0x1234"}, SIGNER.address)
    assert not verify_quote({k: v for k, v in q.items() if k != "plan"}, SIGNER.address)
