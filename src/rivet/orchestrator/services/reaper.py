"""The reaper: every orchestrator runs one; together they make every job end.

Each sweep (every ``server.poll_interval`` seconds) ends, with a message saying why:

- **lost** attempts: running, lease run out (no heartbeat for ``lease_seconds``): the
  runner died, hung or lost the network. The retry policy may queue the job again;
- **timed out** attempts: running past their deadline plus ``jobs.timeout_grace_seconds``
  (the runner enforces the timeout itself; this covers a runner that cannot);
- jobs **nobody claimed** within ``jobs.queue_timeout_seconds``: failed, naming the
  tags and plugins no runner offered.

Safe with many orchestrators on one PostgreSQL (rows locked ``FOR UPDATE SKIP
LOCKED``, so each is ended by one of them) and on SQLite (one writer). A sweep first
looks without writing, so an idle system costs a read per interval. A failed sweep
(database down) is logged and retried at the next interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import anyio
import anyio.to_thread
from sqlalchemy.engine import Connection

from rivet.domain import JobStatus
from rivet.domain.reliability import AttemptEnd
from rivet.jobqueue import JobQueue, job_topic
from rivet.orchestrator.services.endings import end_attempt, lost_message, shown_time
from rivet.store import Database, Transaction, overdue
from rivet.store import jobs as job_store
from rivet.store.overdue import Overdue
from rivet.store.portable import utcnow

__all__ = ["Reaper", "ReaperTerms"]

log = logging.getLogger(__name__)

# Jobs ended per kind and transaction: bounds how long row locks are held.
_BATCH = 100


@dataclass(frozen=True)
class ReaperTerms:
    interval: float = 1.0
    timeout_grace_seconds: float = 60.0
    queue_timeout_seconds: float = 24 * 3600.0


class Reaper:
    def __init__(self, db: Database, queue: JobQueue, terms: ReaperTerms) -> None:
        self.db = db
        self.queue = queue
        self.terms = terms

    async def run(self, stop: asyncio.Event) -> None:
        """Sweep every interval until ``stop`` is set. Never cancelled mid-sweep: the
        shutdown waits for the sweep's thread to give its connection back before the
        pool closes."""
        while not stop.is_set():
            try:
                ended = await anyio.to_thread.run_sync(self.sweep)
                if ended:
                    log.info("reaper: ended %d job attempt(s)", ended)
            except Exception as exc:  # the database may be down: try again later
                log.warning("reaper: sweep failed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.terms.interval)

    def sweep(self) -> int:
        """One pass; returns how many jobs it acted on."""
        now = utcnow()
        t = self.terms
        finders: list[Callable[[Connection, bool], list[Overdue]]] = [
            lambda conn, lock: overdue.lease_overdue(conn, now, _BATCH, lock),
            lambda conn, lock: overdue.deadline_overdue(
                conn, now, t.timeout_grace_seconds, _BATCH, lock
            ),
            lambda conn, lock: overdue.queue_overdue(
                conn, now, t.queue_timeout_seconds, _BATCH, lock
            ),
        ]
        ended = 0
        for kind, find in zip(("lease", "deadline", "queue"), finders, strict=True):
            with self.db.read() as conn:
                if not find(conn, False):
                    continue
            with self.db.write() as tx:
                for item in find(tx.conn, True):
                    ended += self._end(tx, kind, item, now)
        return ended

    def _end(self, tx: Transaction, kind: str, item: Overdue, now: datetime) -> int:
        job = item.job
        if kind == "lease":
            assert job.lease_expires_at is not None
            error = lost_message(
                item.runner_name, job.heartbeat_at, job.lease_expires_at, job.lease_seconds or 30
            )
            status = end_attempt(tx, self.queue, job, AttemptEnd.LOST, error, now)
            log.warning("job %s attempt %d lost (%s): now %s", job.id, job.attempt, error, status)
            return 1
        if kind == "deadline":
            assert item.deadline_at is not None
            error = (
                f"timed out: attempt {job.attempt} passed its deadline at "
                f"{shown_time(item.deadline_at)} and runner {item.runner_name or '?'} did "
                f"not end it within {self.terms.timeout_grace_seconds:g} s"
            )
            status = end_attempt(tx, self.queue, job, AttemptEnd.TIMED_OUT, error, now)
            log.warning("job %s attempt %d: %s; now %s", job.id, job.attempt, error, status)
            return 1
        wanted = ", ".join(f"{k}={v}" for k, v in sorted(item.required_tags.items())) or "none"
        plugins = ", ".join(item.required_plugins)
        error = (
            f"no runner matched tags {wanted}{f' and plugins {plugins}' if plugins else ''} "
            f"within {self.terms.queue_timeout_seconds:g} s of queueing "
            "(jobs.queue_timeout_seconds); see `rivet runner list`"
        )
        job_store.finish_job(tx.conn, job.id, JobStatus.FAILED, error=error)
        self.queue.announce(tx, job_topic(job.id))
        log.warning("job %s: %s", job.id, error)
        return 1
