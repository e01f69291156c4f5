"""How an attempt ends and what becomes of its job: one rule for every path.

The runner's completion, the reaper (lease expired, past the deadline, nobody claimed
it in time), a cancel of a job whose runner is gone and a restarted runner's report
all come here, inside the transaction that holds the job's row lock (PostgreSQL) or
the writer lock (SQLite), so an attempt ends exactly once.

What then: a cancel that was requested wins (``cancelled``); otherwise the pipeline's
retry policy (:class:`rivet.domain.reliability.RetryPolicy`) may queue the job again
after a backoff; otherwise the job ends with the attempt's status and error.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta

from rivet.domain import InputValue, JobStatus
from rivet.domain.reliability import AttemptEnd
from rivet.errors import ConflictError
from rivet.jobqueue import JOBS_TOPIC, JobQueue, job_topic
from rivet.limits import MAX_ERROR, truncate
from rivet.store import Transaction
from rivet.store import attempts as attempt_store
from rivet.store import jobs as job_store
from rivet.store.jobs import JobRecord

__all__ = ["AttemptEnded", "end_attempt", "lost_message", "refuse", "shown_time"]

_JOB_STATUS = {
    AttemptEnd.SUCCEEDED: JobStatus.SUCCEEDED,
    AttemptEnd.FAILED: JobStatus.FAILED,
    AttemptEnd.CANCELLED: JobStatus.CANCELLED,
    AttemptEnd.LOST: JobStatus.FAILED,
    AttemptEnd.TIMED_OUT: JobStatus.TIMED_OUT,
}


class AttemptEnded(ConflictError):
    """A runner reported on an attempt the server already ended (its lease expired, it
    passed its deadline, it was reported dead): nothing of it is stored (HTTP 409)."""


def shown_time(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def end_attempt(
    tx: Transaction,
    queue: JobQueue,
    job: JobRecord,
    outcome: AttemptEnd,
    error: str | None,
    now: datetime,
    *,
    ended_by: str = "server",
    outputs: Mapping[str, InputValue] | None = None,
) -> JobStatus:
    """End ``job``'s current attempt as ``outcome`` and decide the job's fate; returns
    the job's new status (``queued`` when it will be retried)."""
    error = truncate(error, MAX_ERROR) if error is not None else None
    attempt_store.end_attempt(tx.conn, job.id, job.attempt, outcome, error, now, ended_by)
    queue.announce(tx, job_topic(job.id))
    if job.cancel_requested and outcome is not AttemptEnd.SUCCEEDED:
        # The runner's own words when it stopped the job; otherwise say it was cancelled.
        stopped = outcome in (AttemptEnd.CANCELLED, AttemptEnd.FAILED)
        why = error if stopped else f"cancelled; {error}"
        job_store.finish_job(tx.conn, job.id, JobStatus.CANCELLED, outputs, why)
        return JobStatus.CANCELLED
    policy = attempt_store.retry_policy_of(tx.conn, job.pipeline_version_id)
    if policy is not None and policy.applies(outcome, job.attempt):
        delay = policy.delay(job.attempt)
        note = (
            f"attempt {job.attempt} {outcome.value}: {error}; retry {job.attempt} of "
            f"{policy.max} in {delay:.1f} s"
        )
        attempt_store.requeue(
            tx.conn, job.id, now + timedelta(seconds=delay), truncate(note, MAX_ERROR)
        )
        queue.announce(tx, JOBS_TOPIC)
        return JobStatus.QUEUED
    status = _JOB_STATUS[outcome]
    job_store.finish_job(tx.conn, job.id, status, outputs, error)
    return status


def lost_message(runner: str | None, last: datetime | None, expires: datetime, lease: float) -> str:
    since = f"no heartbeat since {shown_time(last)}" if last is not None else "no heartbeat"
    return (
        f"runner {runner or '?'} was lost: {since}; its lease of {lease:g} s ran out at "
        f"{shown_time(expires)}"
    )


def refuse(job_id: str, number: int, row: object) -> AttemptEnded:
    """The 409 for a late report on attempt ``number``, saying how and when it ended."""
    outcome = getattr(row, "outcome", None)
    finished = getattr(row, "finished_at", None)
    error = getattr(row, "error", None)
    when = f" at {shown_time(finished)}" if finished is not None else ""
    why = f" ({error})" if error else ""
    return AttemptEnded(
        f"attempt {number} of job {job_id} has ended: {outcome}{when}{why}; the server "
        "refuses this runner's reports for it (stop the job's containers)"
    )
