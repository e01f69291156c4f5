"""In-process wake-up signals: "something changed, look again" for waiting requests.

A signal is only a hint. Waiters always re-read the database after waking and also
wake up on a timeout, so a lost or duplicated signal costs latency, never correctness.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

__all__ = ["JOBS_TOPIC", "Signals", "Watch", "job_topic"]

log = logging.getLogger(__name__)

JOBS_TOPIC = "queued"
"""Fired when a job becomes claimable."""


def job_topic(job_id: str) -> str:
    """Fired when a job's log, stages or status change."""
    return f"job:{job_id}"


class Watch:
    """Interest in one topic, registered *before* the caller checks the database.

    Because the event is armed before the check, a change committed between the
    check and :meth:`wait` still wakes the waiter: no lost wake-ups in-process.
    """

    def __init__(self, event: asyncio.Event) -> None:
        self._event = event

    async def wait(self, timeout: float) -> bool:
        """Wait until the topic fires (True) or ``timeout`` seconds pass (False)."""
        try:
            async with asyncio.timeout(timeout):
                await self._event.wait()
        except TimeoutError:
            return False
        self._event.clear()
        return True


class Signals:
    """Topic → waiting events, bound to one event loop.

    Thread-safety: :meth:`fire` may be called from any thread (worker threads fire
    after their transaction commits); waiting and watching happen on the loop.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watchers: dict[str, set[asyncio.Event]] = {}

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def fire(self, topic: str) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._fire_now, topic)
        except RuntimeError:  # loop closed between the check and the call: nobody waits
            log.debug("signal %s dropped: event loop closed", topic)

    def fire_all(self) -> None:
        """Wake every waiter (after a reconnect or at shutdown)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._fire_all_now)

    def _fire_now(self, topic: str) -> None:
        for event in self._watchers.get(topic, ()):
            event.set()

    def _fire_all_now(self) -> None:
        for events in self._watchers.values():
            for event in events:
                event.set()

    @asynccontextmanager
    async def watch(self, topic: str) -> AsyncIterator[Watch]:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        event = asyncio.Event()
        watchers = self._watchers.setdefault(topic, set())
        watchers.add(event)
        try:
            yield Watch(event)
        finally:
            watchers.discard(event)
            if not watchers and self._watchers.get(topic) is watchers:
                del self._watchers[topic]
