"""Leaf encoding (RFC 8785, checked against the rfc8785 package), pseudonyms, notes."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger import LedgerRecord
from ledger._notes import Checkpoint, NoteError, NoteSigner, VerifierKey, open_checkpoint
from ledger._records import decode, encode, pseudonym
from oceanmart.errors import InvalidInput

SECRET = b"s" * 32
text = st.one_of(st.none(), st.text(max_size=40))
ints = st.one_of(st.none(), st.integers(-(2**53) + 1, 2**53 - 1))
records = st.builds(
    LedgerRecord,
    kind=st.sampled_from(["purchase", "access", "refund", "price-book-change"]),
    time=st.datetimes(
        min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ),
    account_id=st.one_of(st.none(), st.integers(0, 2**31)),
    product_version=text,
    selection_hash=text,
    cells=ints,
    bytes=ints,
    amount=ints,
    currency=text,
    order_id=text,
    access_id=text,
)


@settings(max_examples=300)
@given(records)
def test_leaves_are_rfc8785_canonical(record: LedgerRecord) -> None:
    leaf = encode(record, SECRET)
    fields = decode(leaf)
    assert rfc8785.dumps(fields) == leaf
    assert fields["kind"] == record.kind and fields["access_id"] == record.access_id
    assert fields["amount"] == record.amount


def test_accounts_are_pseudonymous_and_stable() -> None:
    t = datetime(2026, 11, 25, 8, 0, 1, 5, tzinfo=timezone(timedelta(hours=8)))
    leaf = encode(LedgerRecord(kind="purchase", time=t, account_id=42, amount=1999), SECRET)
    fields = decode(leaf)
    assert fields["account"] == pseudonym(SECRET, 42) != pseudonym(b"t" * 32, 42)
    assert fields["account"] != pseudonym(SECRET, 43) and len(str(fields["account"])) == 32
    assert b"42" not in leaf.replace(b"1999", b"")  # the raw id appears nowhere
    assert fields["time"] == "2026-11-25T00:00:01.000005Z"


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "gift"},
        {"time": datetime(2026, 1, 1)},
        {"cells": 2**53},
        {"amount": 1.5},
        {"amount": True},
        {"order_id": "x" * 201},
        {"access_id": "\ud800"},
    ],
)
def test_bad_records_are_refused(bad: dict[str, object]) -> None:
    fields: dict[str, object] = {"kind": "access", "time": datetime.now(UTC), **bad}
    with pytest.raises(InvalidInput):
        LedgerRecord(**fields)  # type: ignore[arg-type]


def test_decode_refuses_non_canonical_or_foreign_leaves() -> None:
    leaf = encode(LedgerRecord(kind="access", time=datetime.now(UTC)), SECRET)
    with pytest.raises(ValueError, match="canonical"):
        decode(leaf.replace(b":", b": ", 1))
    with pytest.raises(ValueError, match="version-1"):
        decode(b'{"v":2}')
    with pytest.raises(ValueError, match="not JSON"):
        decode(b"\xff")


def test_signed_checkpoints_round_trip_and_refuse_changes() -> None:
    signer = NoteSigner("example.org/log", b"\x01" * 32)
    vkey = VerifierKey.parse(signer.verifier_key)
    cp = Checkpoint("example.org/log", 12345, bytes(range(32)))
    note = signer.sign(cp)
    assert note.startswith("example.org/log\n12345\n" + base64.b64encode(cp.root).decode())
    assert "\n\n\u2014 example.org/log " in note
    assert open_checkpoint(note, vkey) == cp
    for changed in (note.replace("12345", "12346"), note.replace("\n\n", "\nx\n\n")):
        with pytest.raises(NoteError):
            open_checkpoint(changed, vkey)
    other = VerifierKey.parse(NoteSigner("example.org/log", b"\x02" * 32).verifier_key)
    with pytest.raises(NoteError, match="no signature"):
        open_checkpoint(note, other)
    with pytest.raises(NoteError):
        VerifierKey.parse(signer.verifier_key.replace("+", "-", 1))


@settings(max_examples=50)
@given(st.data())
def test_any_bit_flip_in_a_signed_note_fails(data: st.DataObject) -> None:
    signer = NoteSigner("o", b"\x03" * 32)
    vkey = VerifierKey.parse(signer.verifier_key)
    note = signer.sign(Checkpoint("o", 7, b"\x11" * 32)).encode()
    i = data.draw(st.integers(0, len(note) * 8 - 1))
    changed = bytearray(note)
    changed[i // 8] ^= 1 << (i % 8)
    with pytest.raises((NoteError, UnicodeDecodeError)):
        open_checkpoint(bytes(changed).decode(), vkey)
