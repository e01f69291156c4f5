"""How long a job may hold a runner, and what happens when an attempt ends badly.

A *lease* is how long a claimed job may go without a heartbeat before it counts as
**lost** (its runner died, hung, or lost the network). A *retry policy* says which
endings of an attempt put the job back in the queue, how many times, and after how
long (exponential backoff with jitter, so that many jobs lost together do not all
come back at the same instant). Timeouts bound a whole attempt and single stages.

Values are seconds (floats: a test uses a lease of 2 s). Every bound is checked by
the definition validator (:mod:`rivet.lua.run_rules`) with the file and line.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

__all__ = [
    "MAX_LEASE",
    "MAX_RETRIES",
    "MAX_TIMEOUT",
    "MIN_LEASE",
    "RETRY_CAUSES",
    "AttemptEnd",
    "RetryPolicy",
]

MIN_LEASE = 1.0
MAX_LEASE = 3600.0
MAX_TIMEOUT = 7 * 24 * 3600.0
MAX_RETRIES = 20
MAX_BACKOFF = 3600.0
# Spread of each delay: the n-th retry waits backoff * 2^(n-1) * U(1 - J, 1 + J).
JITTER = 0.25


class AttemptEnd(StrEnum):
    """Why one attempt of a job ended (``job_attempts.outcome``)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"  # its lease expired, or its runner said it died with the job
    TIMED_OUT = "timed_out"


# What a retry policy may name in ``on``.
RETRY_CAUSES: tuple[str, ...] = ("lost", "failed", "timed_out")


@dataclass(frozen=True)
class RetryPolicy:
    """``retry = { max = 2, on = { "lost", "failed" }, backoff = 5 }``.

    ``max``: retries after the first attempt (so at most ``max + 1`` attempts);
    ``on``: the endings that are retried (default: ``lost`` only; a cancelled job is
    never retried); ``backoff``: the first delay in seconds, doubled each time."""

    max: int
    on: tuple[str, ...] = ("lost",)
    backoff: float = 5.0

    def applies(self, end: AttemptEnd, attempt: int) -> bool:
        """Whether an attempt numbered ``attempt`` (from 1) that ended ``end`` is retried."""
        return end.value in self.on and attempt <= self.max

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """Seconds before attempt ``attempt + 1`` may be claimed."""
        base: float = min(self.backoff * 2.0 ** max(attempt - 1, 0), MAX_BACKOFF)
        spread: float = (rng or random).uniform(1 - JITTER, 1 + JITTER)
        return base * spread

    def to_dict(self) -> dict[str, Any]:
        return {"max": self.max, "on": list(self.on), "backoff": self.backoff}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> RetryPolicy | None:
        if not data:
            return None
        return cls(
            max=int(data.get("max", 0)),
            on=tuple(data.get("on", ("lost",))),
            backoff=float(data.get("backoff", 5.0)),
        )
