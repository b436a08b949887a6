"""Signing quotes with the operator key (EIP-712), fast enough for every quote request.

eth-account's ``encode_typed_data`` + ``sign_message`` cost ~1.8 ms per quote here (a
generic encoder that validates the whole document each time). Our one struct type is
fixed, so its EIP-712 digest is written out below (type hash and domain separator
computed once; each field one 32-byte word) and signed with coincurve (~0.1 ms). Keccak
comes from eth-hash's pysha3 backend (C, ~1 us a call; the pycryptodome backend that
``eth_hash.auto`` picks first takes ~6 us, and a quote hashes about 25 times). The
tests check this digest and signature against eth-account's encoder and recovery for
generated quotes, and ``pricing.verify`` (eth-account only) is what buyers use.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import coincurve
from eth_account import Account
from eth_hash.backends.pysha3 import keccak256 as keccak

from pricing.verify import DOMAIN, QUOTE_FIELDS, message

_TYPE = "Quote(" + ",".join(f"{t} {n}" for n, t in QUOTE_FIELDS) + ")"
_TYPE_HASH = keccak(_TYPE.encode())
_DOMAIN_SEPARATOR = keccak(
    keccak(b"EIP712Domain(string name,string version)")
    + keccak(DOMAIN["name"].encode())
    + keccak(DOMAIN["version"].encode())
)


def _word(kind: str, value: Any) -> bytes:
    if kind == "string":
        return keccak(str(value).encode())
    if kind == "uint256":
        if not 0 <= int(value) < 2**256:
            raise ValueError(f"uint256 out of range: {value}")
        return int(value).to_bytes(32, "big")
    if kind == "bytes32":
        raw = bytes(value)
        if len(raw) != 32:
            raise ValueError("bytes32 must be 32 bytes")
        return raw
    raise ValueError(f"unsupported EIP-712 field type {kind}")


def digest(quote: Mapping[str, Any]) -> bytes:
    """The EIP-712 digest (``keccak(0x1901 || domain || hashStruct)``) of a quote."""
    msg = message(quote)
    struct = keccak(_TYPE_HASH + b"".join(_word(t, msg[n]) for n, t in QUOTE_FIELDS))
    return keccak(b"\x19\x01" + _DOMAIN_SEPARATOR + struct)


class QuoteSigner:
    """The operator's key as a quote signer."""

    def __init__(self, key: bytes) -> None:
        self._private = coincurve.PrivateKey(key)
        self._public = self._private.public_key.format(compressed=False)
        self.address = str(Account.from_key(key).address)

    def sign(self, quote: Mapping[str, Any]) -> tuple[str, str]:
        """(digest, signature) as 0x-hex; the signature is r || s || v with v in {27, 28}."""
        d = digest(quote)
        sig = self._private.sign_recoverable(d, hasher=None)
        return "0x" + d.hex(), "0x" + (sig[:64] + bytes([27 + sig[64]])).hex()

    def check(self, quote: Mapping[str, Any], signature: str) -> bool:
        """Does ``signature`` over these fields recover to this signer? (fast path)"""
        try:
            raw = bytes.fromhex(signature.removeprefix("0x"))
            if len(raw) != 65 or raw[64] not in (27, 28):
                return False
            pub = coincurve.PublicKey.from_signature_and_message(
                raw[:64] + bytes([raw[64] - 27]), digest(quote), hasher=None
            )
        except (ValueError, KeyError, TypeError):
            return False
        return bool(pub.format(compressed=False) == self._public)
