"""Claiming jobs and waiting for work, on SQLite or PostgreSQL behind :class:`JobQueue`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rivet.jobqueue.base import JobQueue, JobTerms, Offer
from rivet.jobqueue.signals import JOBS_TOPIC, Signals, Watch, job_topic
from rivet.store import Database

if TYPE_CHECKING:
    from rivet.jobqueue.sql import SqlQueue

__all__ = [
    "JOBS_TOPIC",
    "JobQueue",
    "JobTerms",
    "Offer",
    "Signals",
    "Watch",
    "job_topic",
    "make_queue",
]


def make_queue(
    db: Database, signals: Signals, poll_interval: float = 1.0, terms: JobTerms | None = None
) -> JobQueue:
    """The queue implementation for ``db``'s dialect."""
    queue: SqlQueue
    if db.dialect == "postgresql":
        from rivet.jobqueue.postgres import PostgresQueue

        queue = PostgresQueue(db, signals, poll_interval)
    else:
        from rivet.jobqueue.sqlite import SqliteQueue

        queue = SqliteQueue(db, signals, poll_interval)
    if terms is not None:
        queue.terms = terms
    return queue
