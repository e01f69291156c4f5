"""The claim statement and the long-poll loop common to both databases.

Claim = one ``UPDATE jobs SET status='running' … WHERE id = (SELECT id FROM jobs WHERE
status='queued' AND <backoff over> AND <offer matches> AND <pool allows> ORDER BY
created_at, id [FOR UPDATE SKIP LOCKED] LIMIT 1) RETURNING …``, and the attempt with its
lease (``job_attempts``) is started in the same transaction. The tag/plugin match is
evaluated in SQL (the dialect subclasses supply it), so a runner never has to skip over
jobs it cannot take in Python and a single statement decides.

Pools (:func:`pool_allows`, the same SQL on both databases) are read by the statement
itself, from the claiming runner's row, the job's pipeline's pool restriction and the
pool's ``exclusive`` flag: a change an admin commits applies to the next claim attempt,
even one made by a long poll that started before it, and no value the runner sends
takes part. On PostgreSQL ``SKIP LOCKED`` lets concurrent
claimers pass rows another transaction is taking; on SQLite the statement runs under
the process-wide writer lock, which makes it atomic by itself. The outer ``status =
'queued'`` re-check is belt and braces: a row can only leave ``queued`` once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio.to_thread
from sqlalchemy import ColumnElement, and_, bindparam, exists, not_, or_, select, update
from sqlalchemy.sql.selectable import NamedFromClause

from rivet.domain import JobStatus
from rivet.domain.definition import PipelineDefinition
from rivet.jobqueue.base import JobTerms, Offer
from rivet.jobqueue.signals import JOBS_TOPIC, Signals, job_topic
from rivet.limits import MAX_ERROR, text_problems, truncate, value_problems
from rivet.protocol import JobAssignment
from rivet.store import Database, Transaction
from rivet.store.attempts import start_attempt
from rivet.store.jobs import finish_job
from rivet.store.logs import last_seq
from rivet.store.portable import utcnow
from rivet.store.tables import (
    jobs,
    pipeline_pools,
    pipeline_versions,
    pipelines,
    runner_pools,
    runners,
)

__all__ = ["SqlQueue"]

log = logging.getLogger(__name__)

# Broken jobs failed within one claim attempt before giving the transaction back.
_MAX_BROKEN_PER_CLAIM = 50

# Made once: building an alias sets up proxies for every column, which cost more than
# the claim itself when done per call.
_CANDIDATE = jobs.alias("candidate")


class SqlQueue:
    """Shared implementation of :class:`rivet.jobqueue.JobQueue`; subclasses add the match."""

    def __init__(self, db: Database, signals: Signals, poll_interval: float = 1.0) -> None:
        self.db = db
        self.signals = signals
        self.poll_interval = poll_interval
        self._stopping = False
        self._statement: Any = None
        self.terms = JobTerms()

    # --- lifecycle (PostgreSQL adds its listener) ------------------------------------

    async def start(self) -> None:
        self._stopping = False

    async def stop(self) -> None:
        self.drain()

    def drain(self) -> None:
        """Make waiting claims return now (empty) and refuse to wait again; safe to call
        from a signal handler or another thread."""
        self._stopping = True
        self.signals.fire_all()

    @property
    def draining(self) -> bool:
        return self._stopping

    @property
    def ready(self) -> bool:
        return True

    # --- signalling ------------------------------------------------------------------

    def announce(self, tx: Transaction, topic: str) -> None:
        tx.after_commit(lambda: self.signals.fire(topic))

    # --- claiming --------------------------------------------------------------------

    def match(self, candidate: NamedFromClause, offer: Offer) -> ColumnElement[bool]:
        """SQL condition: ``candidate`` (an alias of ``jobs``) is satisfied by ``offer``,
        whose values are bound parameters named as in :meth:`match_params`."""
        raise NotImplementedError

    def match_params(self, offer: Offer) -> dict[str, Any]:
        """The bound values of :meth:`match` for ``offer``."""
        raise NotImplementedError

    def _claim_statement(self) -> Any:
        # Built once: the offer, runner and time are bound per call, so the statement
        # (and SQLAlchemy's compiled form of it) is the same for every claim.
        if self._statement is None:
            candidate = _CANDIDATE
            next_id = (
                select(candidate.c.id)
                .where(
                    candidate.c.status == JobStatus.QUEUED.value,
                    # A retry waits out its backoff.
                    or_(
                        candidate.c.not_before.is_(None),
                        candidate.c.not_before <= bindparam("claim_now"),
                    ),
                    self.match(candidate, Offer()),
                    pool_allows(candidate, bindparam("claim_runner")),
                )
                .order_by(candidate.c.created_at, candidate.c.id)
                .limit(1)
                .with_for_update(skip_locked=True)  # dropped by the SQLite compiler
                .scalar_subquery()
            )
            self._statement = (
                update(jobs)
                .where(jobs.c.id == next_id, jobs.c.status == JobStatus.QUEUED.value)
                .values(
                    status=JobStatus.RUNNING.value,
                    runner_id=bindparam("claim_runner"),
                    started_at=bindparam("claim_now"),
                    heartbeat_at=bindparam("claim_now"),
                    attempt=jobs.c.attempt + 1,
                )
                .returning(
                    jobs.c.id,
                    jobs.c.pipeline_version_id,
                    jobs.c.inputs,
                    jobs.c.attempt,
                    jobs.c.trace_parent,
                )
            )
        return self._statement

    def try_claim(self, runner_id: str, offer: Offer) -> JobAssignment | None:
        """One claim attempt. A claimed job whose stored data no pipeline could use (a
        row written by an older version, before the API refused such values) is
        failed with an error saying so, in the same transaction, and the next one
        is claimed: it never stays ``running`` with no runner working on it."""
        params = {"claim_runner": runner_id, "claim_now": utcnow(), **self.match_params(offer)}
        with self.db.write() as tx:
            for _ in range(_MAX_BROKEN_PER_CLAIM):
                row = tx.conn.execute(self._claim_statement(), params).one_or_none()
                if row is None:
                    return None
                self.announce(tx, job_topic(row.id))
                problem: str | None
                try:
                    assignment = _assignment(tx, row)
                except ValueError as exc:  # pydantic's ValidationError is one
                    problem = f"the job's stored data is not a valid assignment: {exc}"
                else:
                    problem = _unusable(assignment)
                    if problem is None:
                        return self._lease(tx, assignment, runner_id, params["claim_now"])
                log.error("job %s cannot run and is failed: %s", row.id, problem)
                finish_job(tx.conn, row.id, JobStatus.FAILED, error=truncate(problem, MAX_ERROR))
        return None

    def _lease(
        self, tx: Transaction, assignment: JobAssignment, runner_id: str, now: Any
    ) -> JobAssignment:
        """Start the attempt the claim made, with the pipeline's lease and timeout (or
        the server's), in the claim's transaction: a claimed job always has a lease."""
        definition = PipelineDefinition.from_dict(assignment.definition)
        lease = definition.lease or self.terms.lease_seconds
        timeout = definition.timeout or self.terms.timeout_seconds
        start_attempt(
            tx.conn, assignment.job_id, assignment.attempt, runner_id, now, lease, timeout
        )
        return assignment.model_copy(update={"lease_seconds": lease, "timeout_seconds": timeout})

    async def claim(
        self,
        runner_id: str,
        offer: Offer,
        wait_seconds: float,
        gone: Callable[[], Awaitable[bool]] | None = None,
    ) -> JobAssignment | None:
        deadline = time.monotonic() + wait_seconds
        # Watch before the first attempt: a launch committed after the attempt's
        # snapshot still sets our event, so it is not missed until the next poll.
        async with self.signals.watch(JOBS_TOPIC) as watch:
            while True:
                if gone is not None and await gone():
                    return None  # nobody would receive the job: leave it queued
                job = await anyio.to_thread.run_sync(self.try_claim, runner_id, offer)
                remaining = deadline - time.monotonic()
                if job is not None or remaining <= 0 or self._stopping:
                    return job
                await watch.wait(min(self.poll_interval, remaining))


def pool_allows(candidate: NamedFromClause, runner_id: Any) -> ColumnElement[bool]:
    """SQL: the runner ``runner_id`` may run ``candidate`` (an alias of ``jobs``) as far
    as pools go. Either the job's pipeline is restricted to pools and the runner's pool
    is one of them, or the pipeline is unrestricted and the runner's pool is not
    exclusive (an exclusive pool runs only pipelines assigned to it)."""
    runner_pool = select(runners.c.pool).where(runners.c.id == runner_id).scalar_subquery()
    restricted = exists().where(pipeline_pools.c.pipeline_id == candidate.c.pipeline_id)
    assigned = exists().where(
        pipeline_pools.c.pipeline_id == candidate.c.pipeline_id,
        pipeline_pools.c.pool == runner_pool,
    )
    exclusive = exists().where(
        runner_pools.c.name == runner_pool, runner_pools.c.exclusive.is_(True)
    )
    return or_(assigned, and_(not_(restricted), not_(exclusive)))


_VERSION_OF_JOB = (
    select(
        pipeline_versions.c.pipeline_id,
        pipeline_versions.c.version,
        pipeline_versions.c.filename,
        pipeline_versions.c.source,
        pipeline_versions.c.definition,
        pipelines.c.name,
    )
    .join(pipelines, pipelines.c.id == pipeline_versions.c.pipeline_id)
    .where(pipeline_versions.c.id == bindparam("version_id"))
)


def _unusable(assignment: JobAssignment) -> str | None:
    """Why a claimed job cannot be handed to a runner, or None."""
    found = list(value_problems(assignment.inputs, "inputs"))
    found += list(text_problems(assignment.definition, "definition"))
    if found:
        where, why = found[0]
        return (
            f"the job's stored {where} {why}; it was stored by an older Rivet that did "
            "not check this. Launch the pipeline again with valid inputs"
        )
    try:
        assignment.model_dump_json()
    except ValueError as exc:  # pydantic's serialisation error is a ValueError
        return f"the job's stored data cannot be sent to a runner ({exc})"
    return None


def _assignment(tx: Transaction, row: Any) -> JobAssignment:
    version = tx.conn.execute(_VERSION_OF_JOB, {"version_id": row.pipeline_version_id}).one()
    return JobAssignment(
        job_id=row.id,
        pipeline=version.name,
        pipeline_id=version.pipeline_id,
        version=version.version,
        filename=version.filename,
        source=version.source,
        definition=version.definition,
        inputs=row.inputs,
        # Continue after lines an earlier attempt may have stored.
        next_seq=last_seq(tx.conn, row.id) + 1,
        attempt=row.attempt,
        trace_parent=row.trace_parent,
    )
