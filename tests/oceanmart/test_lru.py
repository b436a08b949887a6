"""The bounded LRU map the quote path and the chunk readers keep immutable things in."""

from __future__ import annotations

import pytest

from oceanmart.lru import LRU


def test_a_stored_none_is_kept_and_a_failed_make_stores_nothing() -> None:
    made: list[str] = []

    def make_none() -> None:
        made.append("none")
        return None

    cache: LRU[str, None] = LRU(4)
    assert cache.get_or_make("absent shard", make_none) is None
    assert cache.get_or_make("absent shard", make_none) is None
    assert made == ["none"]  # the second call found the stored None

    def fail() -> None:
        raise ValueError("bad index")

    with pytest.raises(ValueError, match="bad index"):
        cache.get_or_make("corrupt", fail)
    assert len(cache) == 1  # nothing stored for the failed key
