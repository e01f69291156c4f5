"""Threads that outlive a command: a pool that runs each blocking job on a thread of
its own at once, and one timer thread for every command's timeout.

Starting a thread blocks the starter until the new thread runs, and on a busy host
that wait is the largest part of a fast command (three thread starts took more
than the command itself through the exec agent). So the stream readers and the
timeout of each command use these instead: a reader gets an idle thread (or a new
one when none is idle: a job never waits for another to finish, since a reader
blocks for as long as its command writes), and a timeout is an entry in a heap.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

__all__ = ["TimerHandle", "call_later", "run_in_thread"]

log = logging.getLogger("rivet.engine")

# An idle pooled thread ends after this long without a job.
_IDLE_SECONDS = 60.0


class _Workers:
    """Invariant (under the lock): ``_free`` is the number of waiting threads minus
    the jobs queued for them, so every queued job has a thread of its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._jobs: deque[Callable[[], None]] = deque()
        self._free = 0

    def run(self, job: Callable[[], None]) -> None:
        with self._lock:
            if self._free > 0:
                self._free -= 1
                self._jobs.append(job)
                self._wake.notify()
                return
        threading.Thread(target=self._work, args=(job,), name="rivet-io", daemon=True).start()

    def _work(self, job: Callable[[], None]) -> None:
        while True:
            try:
                job()
            except Exception:
                # What a plain thread's excepthook would print; the pool goes on.
                log.exception("a background job failed")
            del job  # nothing of a finished job is kept alive while idle
            with self._lock:
                self._free += 1
                deadline = time.monotonic() + _IDLE_SECONDS
                while not self._jobs:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        self._free -= 1
                        return
                    self._wake.wait(left)
                job = self._jobs.popleft()


class TimerHandle:
    __slots__ = ("_timers", "cancelled")

    def __init__(self, timers: _Timers) -> None:
        self._timers = timers
        self.cancelled = False

    def cancel(self) -> None:
        if not self.cancelled:
            self.cancelled = True
            self._timers.cancelled()


class _Timers:
    """One thread sleeping until the earliest deadline; what is due runs on the pool
    (a timeout's action may wait for a kill to take effect)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, TimerHandle, Callable[[], None]]] = []
        self._order = itertools.count()
        self._dead = 0
        self._thread: threading.Thread | None = None

    def call_later(self, delay: float, action: Callable[[], None]) -> TimerHandle:
        handle = TimerHandle(self)
        with self._lock:
            entry = (time.monotonic() + delay, next(self._order), handle, action)
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="rivet-timers", daemon=True)
                self._thread.start()
            self._wake.notify()
        return handle

    def cancelled(self) -> None:
        # Cancelled entries (a command's timeout is usually an hour away) are dropped
        # once they are half the heap, so it stays as large as what is pending.
        with self._lock:
            self._dead += 1
            if self._dead * 2 > len(self._heap):
                self._heap = [entry for entry in self._heap if not entry[2].cancelled]
                heapq.heapify(self._heap)
                self._dead = 0

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._heap or self._heap[0][0] > time.monotonic():
                    self._wake.wait(self._heap[0][0] - time.monotonic() if self._heap else None)
                _, _, handle, action = heapq.heappop(self._heap)
                if handle.cancelled:
                    self._dead = max(0, self._dead - 1)
                    continue
            _workers.run(action)


_workers = _Workers()
_timers = _Timers()


def run_in_thread(job: Callable[[], None]) -> None:
    """Run ``job`` now on a thread of its own (pooled), without waiting for it."""
    _workers.run(job)


def call_later(delay: float, action: Callable[[], None]) -> TimerHandle:
    """Run ``action`` (on a pooled thread) after ``delay`` seconds unless cancelled."""
    return _timers.call_later(delay, action)
