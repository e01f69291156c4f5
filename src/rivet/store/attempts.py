"""Attempts of a job: one row per claim, and the moves between queued and running.

An attempt starts when a runner claims the job (:func:`start_attempt`, in the claim's
transaction) and ends exactly once (:func:`end_attempt` only touches an open one):
with the runner's completion, or when the server decides for it (lease expired,
past its deadline, its runner reported it dead). :func:`requeue` puts the job back
for the next attempt (retry policy, backoff, ``rivet job retry``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.engine import Connection

from rivet.domain import JobStatus, StageStatus
from rivet.domain.reliability import AttemptEnd, RetryPolicy
from rivet.protocol import AttemptView
from rivet.store.tables import job_attempts, job_stages, jobs, pipeline_versions, runners

__all__ = [
    "attempt_row",
    "attempts_of",
    "end_attempt",
    "renew_lease",
    "requeue",
    "retry_policy_of",
    "start_attempt",
]


def start_attempt(
    conn: Connection,
    job_id: str,
    number: int,
    runner_id: str,
    now: datetime,
    lease_seconds: float,
    timeout_seconds: float,
) -> None:
    """Record attempt ``number`` and give the job its lease and deadline."""
    conn.execute(
        job_attempts.insert().values(
            job_id=job_id, number=number, runner_id=runner_id, started_at=now
        )
    )
    conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(
            lease_seconds=lease_seconds,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            deadline_at=now + timedelta(seconds=timeout_seconds),
            not_before=None,
            stall_reason=None,
        )
    )


def renew_lease(
    conn: Connection,
    job_id: str,
    now: datetime,
    lease_seconds: float,
    stall_reason: str | None = None,
) -> datetime:
    """A heartbeat: the lease runs ``lease_seconds`` from ``now`` again; the runner's
    word on its log delivery replaces the stored one."""
    expires = now + timedelta(seconds=lease_seconds)
    conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(heartbeat_at=now, lease_expires_at=expires, stall_reason=stall_reason)
    )
    return expires


def end_attempt(
    conn: Connection,
    job_id: str,
    number: int,
    outcome: AttemptEnd,
    error: str | None,
    now: datetime,
    ended_by: str,
) -> bool:
    """Close attempt ``number`` if it is still open; False if it had already ended.
    ``ended_by``: ``"runner"`` (its completion) or ``"server"``."""
    result = conn.execute(
        update(job_attempts)
        .where(
            job_attempts.c.job_id == job_id,
            job_attempts.c.number == number,
            job_attempts.c.outcome.is_(None),
        )
        .values(outcome=outcome.value, error=error, finished_at=now, ended_by=ended_by)
    )
    return bool(result.rowcount)


def attempt_row(conn: Connection, job_id: str, number: int) -> Any:
    """One attempt's row (runner_id, started_at, finished_at, outcome, ended_by,
    error), or None when there is no such attempt."""
    return conn.execute(
        select(job_attempts).where(job_attempts.c.job_id == job_id, job_attempts.c.number == number)
    ).one_or_none()


def retry_policy_of(conn: Connection, version_id: str) -> RetryPolicy | None:
    definition = conn.execute(
        select(pipeline_versions.c.definition).where(pipeline_versions.c.id == version_id)
    ).scalar_one()
    return RetryPolicy.from_dict(definition.get("retry"))


def requeue(conn: Connection, job_id: str, not_before: datetime | None, error: str | None) -> None:
    """Back to ``queued`` for the next attempt: no runner, no lease, stages pending
    again. ``error`` says why it was requeued (shown until the next attempt ends)."""
    conn.execute(
        update(jobs)
        .where(jobs.c.id == job_id)
        .values(
            status=JobStatus.QUEUED.value,
            runner_id=None,
            cancel_requested=False,
            outputs={},
            error=error,
            finished_at=None,
            lease_expires_at=None,
            deadline_at=None,
            not_before=not_before,
            stall_reason=None,
        )
    )
    conn.execute(
        update(job_stages)
        .where(job_stages.c.job_id == job_id)
        .values(status=StageStatus.PENDING.value, started_at=None, finished_at=None, error=None)
    )


def attempts_of(conn: Connection, job_ids: Sequence[str]) -> dict[str, list[AttemptView]]:
    result: dict[str, list[AttemptView]] = {job_id: [] for job_id in job_ids}
    if not job_ids:
        return result
    query = (
        select(job_attempts, runners.c.name.label("runner_name"))
        .outerjoin(runners, runners.c.id == job_attempts.c.runner_id)
        .where(job_attempts.c.job_id.in_(job_ids))
        .order_by(job_attempts.c.job_id, job_attempts.c.number)
    )
    for row in conn.execute(query):
        result[row.job_id].append(
            AttemptView(
                number=row.number,
                runner=row.runner_name,
                runner_id=row.runner_id,
                started_at=row.started_at,
                finished_at=row.finished_at,
                outcome=row.outcome,
                error=row.error,
            )
        )
    return result
