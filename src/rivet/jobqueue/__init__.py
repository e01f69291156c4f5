"""Claiming jobs and waiting for work, on SQLite or PostgreSQL behind :class:`JobQueue`."""

from __future__ import annotations

from rivet.jobqueue.base import JobQueue, Offer
from rivet.jobqueue.signals import JOBS_TOPIC, Signals, Watch, job_topic
from rivet.store import Database

__all__ = ["JOBS_TOPIC", "JobQueue", "Offer", "Signals", "Watch", "job_topic", "make_queue"]


def make_queue(db: Database, signals: Signals, poll_interval: float = 1.0) -> JobQueue:
    """The queue implementation for ``db``'s dialect."""
    if db.dialect == "postgresql":
        from rivet.jobqueue.postgres import PostgresQueue

        return PostgresQueue(db, signals, poll_interval)
    from rivet.jobqueue.sqlite import SqliteQueue

    return SqliteQueue(db, signals, poll_interval)
