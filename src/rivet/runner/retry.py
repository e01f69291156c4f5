"""Backoff with jitter, and one clear log line when the server goes away and comes back.

Every runner thread that talks to the server (the claim loop, each job's log shipper,
heartbeat and completion) retries on its own schedule; jitter keeps many runners that
lost the same server from hammering it in lock-step when it returns. The shared
:class:`Connectivity` turns their many failures into two messages per outage.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

__all__ = ["Backoff", "Connectivity"]

log = logging.getLogger("rivet.runner")


class Backoff:
    """Exponential delays ``initial * factor**n`` capped at ``cap``, each scaled by a
    random factor in ``[1 - jitter, 1]``. Not thread-safe: one per retrying loop."""

    def __init__(
        self,
        initial: float = 0.2,
        cap: float = 30.0,
        factor: float = 2.0,
        jitter: float = 0.5,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if initial <= 0 or cap < initial or factor < 1 or not 0 <= jitter <= 1:
            raise ValueError("backoff needs 0 < initial <= cap, factor >= 1, 0 <= jitter <= 1")
        self.initial = initial
        self.cap = cap
        self.factor = factor
        self.jitter = jitter
        self._rng = rng
        self.attempts = 0

    def next_delay(self) -> float:
        base = min(self.cap, self.initial * self.factor**self.attempts)
        self.attempts += 1
        return base * (1 - self.jitter * self._rng())

    def reset(self) -> None:
        self.attempts = 0


class Connectivity:
    """Tracks whether the server answers; thread-safe.

    The first failure of an outage logs a warning, later ones only at debug level;
    the first success afterwards logs how long the server was gone.
    """

    def __init__(self, server: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.server = server
        self._clock = clock
        self._lock = threading.Lock()
        self._down_since: float | None = None
        self._state = ""

    def failed(self, what: str, reason: str, *, answered: bool = False) -> None:
        """``answered``: the server replied with an error (5xx/429, its reason in
        ``reason``), which is trouble on the server, not a lost connection."""
        state = "answers with errors" if answered else "unreachable"
        with self._lock:
            first = self._down_since is None or self._state != state
            if self._down_since is None:
                self._down_since = self._clock()
            self._state = state
        if first:
            log.warning(
                "server %s %s (%s: %s); running jobs continue, "
                "logs are buffered and every call is retried with backoff",
                self.server,
                state,
                what,
                reason,
            )
        else:
            log.debug("server %s still %s (%s: %s)", self.server, state, what, reason)

    def succeeded(self) -> None:
        with self._lock:
            since = self._down_since
            self._down_since = None
        if since is not None:
            again = "answering normally" if self._state != "unreachable" else "reachable"
            log.warning(
                "server %s %s again after %.1f s", self.server, again, self._clock() - since
            )
