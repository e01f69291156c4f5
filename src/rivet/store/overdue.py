"""The reaper's queries: jobs whose lease ran out, attempts past their deadline, and
jobs nobody claimed in time.

Each ``*_overdue`` selects at most ``limit`` rows and, inside a write transaction on
PostgreSQL, locks them ``FOR UPDATE SKIP LOCKED``: several orchestrators reaping at
once each take different rows, and a row a runner's heartbeat holds is passed over
(the heartbeat decides). SQLite ignores the clause; there the writer lock serialises
every write. The partial index ``ix_jobs_running_lease`` keeps the running scans flat
as history grows; the queued scan uses ``ix_jobs_queued``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from rivet.domain import JobStatus
from rivet.store.jobs import RECORD_COLUMNS, JobRecord, record_of
from rivet.store.tables import jobs, runners

__all__ = ["Overdue", "deadline_overdue", "lease_overdue", "queue_overdue"]

_COLUMNS = (
    *RECORD_COLUMNS,
    jobs.c.deadline_at,
    jobs.c.created_at,
    jobs.c.not_before,
    jobs.c.required_tags,
    jobs.c.required_plugins,
    runners.c.name.label("runner_name"),
)


class Overdue:
    """One overdue job: its record and what the reaper's message needs."""

    def __init__(self, row: Any) -> None:
        self.job: JobRecord = record_of(row)
        self.runner_name: str | None = row.runner_name
        self.deadline_at: datetime | None = row.deadline_at
        self.queued_since: datetime = row.not_before or row.created_at
        self.required_tags: dict[str, str] = dict(row.required_tags or {})
        self.required_plugins: list[str] = list(row.required_plugins or [])


def _select(conn: Connection, where: Any, order: Any, limit: int, lock: bool) -> list[Overdue]:
    query = (
        select(*_COLUMNS)
        .select_from(jobs.outerjoin(runners, runners.c.id == jobs.c.runner_id))
        .where(*where)
        .order_by(order)
        .limit(limit)
    )
    if lock:
        query = query.with_for_update(skip_locked=True, of=jobs)
    return [Overdue(row) for row in conn.execute(query)]


def lease_overdue(conn: Connection, now: datetime, limit: int, lock: bool) -> list[Overdue]:
    running = jobs.c.status == JobStatus.RUNNING.value
    where = (running, jobs.c.lease_expires_at < now)
    return _select(conn, where, jobs.c.lease_expires_at, limit, lock)


def deadline_overdue(
    conn: Connection, now: datetime, grace: float, limit: int, lock: bool
) -> list[Overdue]:
    running = jobs.c.status == JobStatus.RUNNING.value
    where = (running, jobs.c.deadline_at < now - timedelta(seconds=grace))
    return _select(conn, where, jobs.c.deadline_at, limit, lock)


def queue_overdue(
    conn: Connection, now: datetime, queue_timeout: float, limit: int, lock: bool
) -> list[Overdue]:
    since = func.coalesce(jobs.c.not_before, jobs.c.created_at)
    queued = jobs.c.status == JobStatus.QUEUED.value
    where = (queued, since < now - timedelta(seconds=queue_timeout))
    return _select(conn, where, jobs.c.created_at, limit, lock)
