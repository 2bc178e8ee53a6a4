"""A request budget per client: a token bucket per caller, refilled at a steady rate.

A client may send ``burst`` requests at once, then ``per_second`` on average; beyond that a
request is answered 429 with the seconds to wait. Buckets live in the process, so with
several workers each worker grants the budget (set the rate per worker accordingly).
"""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLimiter:
    """Token buckets keyed by client (the caller's actor name)."""

    def __init__(
        self, per_second: float, burst: int, clock: Callable[[], float] = time.monotonic,
        max_clients: int = 100_000,
    ) -> None:  # fmt: skip
        self.per_second = per_second
        self.burst = burst
        self._clock = clock
        self._max = max_clients
        self._buckets: dict[str, tuple[float, float]] = {}  # client -> (tokens, when)

    def retry_after(self, client: str) -> float | None:
        """Take one request from ``client``'s budget: None if allowed, else seconds to wait."""
        if self.per_second <= 0:
            return None
        now = self._clock()
        tokens, then = self._buckets.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.per_second)
        if len(self._buckets) >= self._max and client not in self._buckets:
            self._buckets.clear()  # a flood of clients: forget the (full) buckets
        if tokens >= 1:
            self._buckets[client] = (tokens - 1, now)
            return None
        self._buckets[client] = (tokens, now)
        return (1 - tokens) / self.per_second
