"""The Vyper anchor contract, unit-tested with titanoboa (compiled here, offline)."""

from __future__ import annotations

from importlib import resources

import boa
import pytest

SOURCE = resources.files("ledger").joinpath("Anchors.vy").read_text()
NOTE_KEY = b"\x42" * 32


@pytest.fixture
def contract():  # type: ignore[no-untyped-def]
    owner = boa.env.generate_address("owner")
    with boa.env.prank(owner):
        c = boa.loads(SOURCE, NOTE_KEY)
    return c, owner


def test_owner_anchors_once_per_size_and_sizes_only_grow(contract) -> None:  # type: ignore[no-untyped-def]
    c, owner = contract
    assert c.owner() == owner and c.writers(owner) and c.note_key() == NOTE_KEY
    with boa.env.prank(owner):
        c.anchor(10, b"\x01" * 32)
        logs = c.get_logs()
        assert len(logs) == 1 and logs[0].size == 10 and logs[0].root == b"\x01" * 32
        c.anchor(20, b"\x02" * 32)
        with boa.reverts("size already anchored or smaller than the latest"):
            c.anchor(20, b"\x03" * 32)
        with boa.reverts("size already anchored or smaller than the latest"):
            c.anchor(15, b"\x03" * 32)
        with boa.reverts("empty root"):
            c.anchor(30, b"\x00" * 32)
        with boa.reverts("empty tree"):
            c.anchor(0, b"\x04" * 32)
    assert c.roots(10) == b"\x01" * 32 and c.roots(20) == b"\x02" * 32
    assert c.roots(15) == b"\x00" * 32
    assert c.latest_size() == 20 and c.anchor_count() == 2


def test_only_writers_named_by_the_owner_may_anchor(contract) -> None:  # type: ignore[no-untyped-def]
    c, owner = contract
    stranger = boa.env.generate_address("stranger")
    with boa.env.prank(stranger):
        with boa.reverts("not a writer"):
            c.anchor(1, b"\x01" * 32)
        with boa.reverts("only the owner names writers"):
            c.set_writer(stranger, True)
    with boa.env.prank(owner):
        c.set_writer(stranger, True)
    with boa.env.prank(stranger):
        c.anchor(1, b"\x01" * 32)
    with boa.env.prank(owner):
        c.set_writer(stranger, False)
    with boa.env.prank(stranger), boa.reverts("not a writer"):
        c.anchor(2, b"\x02" * 32)
    assert c.latest_size() == 1
