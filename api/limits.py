"""Per-key limits: a request rate (token bucket) and concurrent heavy requests.

Held in process, which is what one `oceanmart serve` process needs; several server
processes behind a balancer would each apply the limits (a shared store such as Redis
would make them global: a later step, written down in the README).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from oceanmart.errors import TooManyRequests


class KeyLimiter:
    def __init__(self, rate_per_s: float, burst: int, max_heavy: int) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self.max_heavy = max_heavy
        self._buckets: dict[str, tuple[float, float]] = {}  # key id -> (tokens, at)
        self._heavy: dict[str, int] = {}
        self._lock = threading.Lock()

    def hit(self, key_id: str, *, now: float | None = None) -> None:
        """Take one token for ``key_id`` or raise TooManyRequests with a Retry-After."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, at = self._buckets.get(key_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.rate)
            if tokens < 1.0:
                self._buckets[key_id] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / self.rate)
                raise TooManyRequests(
                    f"more than {self.rate:g} requests per second with this key", retry_after=wait
                )
            self._buckets[key_id] = (tokens - 1.0, now)

    @contextmanager
    def heavy(self, key_id: str) -> Iterator[None]:
        """Hold one of the key's heavy-request slots for the block."""
        with self._lock:
            running = self._heavy.get(key_id, 0)
            if running >= self.max_heavy:
                raise TooManyRequests(
                    f"this key already runs {running} heavy requests; wait for one to finish "
                    "or submit the work as a job (POST /v1/jobs)",
                    retry_after=1,
                )
            self._heavy[key_id] = running + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._heavy[key_id] - 1
                if left:
                    self._heavy[key_id] = left
                else:
                    del self._heavy[key_id]
