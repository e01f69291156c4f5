"""The job queue contract shared by the SQLite and PostgreSQL implementations."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from rivet.jobqueue.signals import Signals
from rivet.protocol import JobAssignment
from rivet.store import Transaction

__all__ = ["JobQueue", "JobTerms", "Offer"]


@dataclass(frozen=True)
class JobTerms:
    """The server's defaults for what a claim grants (the ``jobs.*`` settings); a
    pipeline's own ``lease`` and ``timeout`` take precedence."""

    lease_seconds: float = 30.0
    timeout_seconds: float = 6 * 3600.0


@dataclass(frozen=True)
class Offer:
    """What a runner offers: its tags and plugins.

    A job matches when every ``key=value`` its pipeline requires is among ``tags``
    and every plugin it lists is among ``plugins``.
    """

    tags: Mapping[str, str] = field(default_factory=dict)
    plugins: Sequence[str] = ()


class JobQueue(Protocol):
    """Hands each queued job to exactly one runner, and wakes waiting claimers.

    Lifecycle: :meth:`start` once on the event loop before serving, :meth:`stop` at
    shutdown (waiting claims then return ``None`` promptly).

    Guarantees:

    - **Exactly once.** :meth:`try_claim` moves one matching job from ``queued`` to
      ``running`` in a single atomic statement; concurrent claimers, in this process or
      in other orchestrators on the same database, never get the same job. Order is
      oldest first (``created_at, id``) among the jobs the offer matches.
    - **Hints, not truth.** :meth:`announce` sends a wake-up that becomes visible only
      after the transaction commits (in this process via :class:`Signals`, across
      PostgreSQL orchestrators via ``NOTIFY``). Waiters re-check the database and also
      poll every ``poll_interval`` seconds, so a lost wake-up costs latency only.

    Thread-safety: :meth:`try_claim` and :meth:`announce` are blocking and may be
    called from any worker thread; :meth:`claim`, :meth:`start` and :meth:`stop` are
    coroutines for the server's event loop.
    """

    signals: Signals

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def drain(self) -> None:
        """Shutting down: waiting claims return empty at once and new ones do not wait.
        Safe to call from a signal handler or any thread."""
        ...

    @property
    def draining(self) -> bool:
        """True once :meth:`drain` (or :meth:`stop`) was called."""
        ...

    @property
    def ready(self) -> bool:
        """False while a cross-process listener that should be running is not connected."""
        ...

    def announce(self, tx: Transaction, topic: str) -> None:
        """Wake waiters of ``topic`` once ``tx`` commits."""
        ...

    def try_claim(self, runner_id: str, offer: Offer) -> JobAssignment | None:
        """One claim attempt, in its own transaction; ``None`` if nothing matches now."""
        ...

    async def claim(
        self,
        runner_id: str,
        offer: Offer,
        wait_seconds: float,
        gone: Callable[[], Awaitable[bool]] | None = None,
    ) -> JobAssignment | None:
        """Long poll: a job as soon as one matches, or ``None`` after ``wait_seconds``.

        ``gone`` (e.g. "has the HTTP client disconnected?") is checked before every
        attempt, so a runner that gave up waiting is not handed a job it will never
        see. The window between the last check and the response remains: runners
        must use an HTTP timeout longer than ``wait_seconds``.
        """
        ...
