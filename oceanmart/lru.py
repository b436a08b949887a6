"""A small bounded LRU map for caches of immutable things (versions, price books, shard
indexes), shared by the quote path and the chunk readers.

``functools.lru_cache`` keys on every argument, but these caches' misses need a database
session, a data store or a stored object that must not be part of the key (nor kept
alive by it); this is the same policy with the key chosen by the caller.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

_MISSING: Any = object()


class LRU[K: Hashable, V]:
    """At most ``size`` entries; the least recently used goes first. Thread-safe. A
    stored None is a value like any other (``get`` cannot tell it from a miss;
    ``get_or_make`` can)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def _lookup(self, key: K) -> V:
        with self._lock:
            if key not in self._data:
                return _MISSING  # type: ignore[no-any-return]
            self._data.move_to_end(key)
            return self._data[key]

    def get(self, key: K) -> V | None:
        value = self._lookup(key)
        return None if value is _MISSING else value

    def put(self, key: K, value: V) -> V:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)
        return value

    def get_or_make(self, key: K, make: Callable[[], V]) -> V:
        """The cached value, else ``make()`` stored (two threads may both make it; an
        exception from ``make`` stores nothing)."""
        value = self._lookup(key)
        return self.put(key, make()) if value is _MISSING else value

    def __len__(self) -> int:
        return len(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
