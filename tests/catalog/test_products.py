"""Catalog reads of products."""

from __future__ import annotations

from catalog.models import Product
from catalog.products import get_product
from tests.conftest import Env


def test_get_product_reads_the_row_and_sees_a_session_s_own_changes(env: Env, levitus: str) -> None:
    """``get_product`` reads the row through Core (data requests), but a session that
    changed the product and not yet flushed it gets its own version of it."""
    with env.sessions() as s:
        stored = get_product(s, levitus)
        row = s.get(Product, levitus)
        assert row is not None
        row.title = "changed in this session"
        assert get_product(s, levitus).title == "changed in this session"
        s.rollback()
        assert get_product(s, levitus).title == stored.title
        assert get_product(s, levitus) == stored
