"""A token bucket: ``rate`` tokens per second refill a bucket of ``burst`` tokens.

Used per job by the ``http`` module (one token per request sent, redirect hops
included). The clock is injectable so tests can drive it without sleeping.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

__all__ = ["RateLimited", "TokenBucket"]


class RateLimited(Exception):
    """The next token is further away than the caller is willing to wait."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"the next token is {wait:.3g} s away")
        self.wait = wait


class TokenBucket:
    """Thread-safe. Starts full, so a job gets its burst at once."""

    def __init__(
        self, rate: float, burst: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = threading.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    @property
    def tokens(self) -> float:
        """Tokens available now (negative while earlier reservations are pending)."""
        with self._lock:
            self._refill()
            return self._tokens

    def reserve(self, max_wait: float) -> float:
        """Take one token and return how long the caller must wait before using it
        (0 when one was available). When that wait would exceed ``max_wait``, nothing
        is taken and :class:`RateLimited` is raised instead: failing at once beats
        waiting only to fail later.

        A reservation may drive the balance below zero; later callers then queue
        behind it, so a burst of callers is spread out at exactly ``rate``."""
        with self._lock:
            self._refill()
            if self._tokens >= 1:
                self._tokens -= 1
                return 0.0
            wait = (1 - self._tokens) / self.rate
            if wait > max_wait:
                raise RateLimited(wait)
            self._tokens -= 1
            return wait
