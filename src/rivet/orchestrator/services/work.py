"""Use cases seen by runners: claim work, report logs, stages, heartbeats, completion.

Every call is made on behalf of an authenticated runner, which may only touch the
jobs it claimed (``PermissionDeniedError`` otherwise), and only the attempt it was
handed (``?attempt=N``; a runner that sends none means the job's current one). An
attempt the server has ended — its lease ran out, it passed its deadline, its runner
was reported dead — takes nothing more: its late log lines, stage reports,
heartbeats and completion are refused with :class:`AttemptEnded` (409) naming the
attempt and why, and the runner stops the job. A request that arrives after the
lease ran out but before a reaper noticed ends the attempt as lost itself, so the
answer never depends on the reaper's timing.

Retries are harmless: logs are idempotent by sequence number, and updates to an
attempt the runner itself completed are acknowledged without changing anything, so
a runner that timed out on a response can simply resend.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

import anyio.to_thread
from pydantic import SecretStr

from rivet.domain import JobStatus, StageStatus
from rivet.domain.reliability import AttemptEnd
from rivet.errors import ConflictError, PermissionDeniedError
from rivet.jobqueue import JobQueue, Offer, job_topic
from rivet.observe import tracing
from rivet.orchestrator.metrics import ServerMetrics
from rivet.orchestrator.services.endings import end_attempt, lost_message, refuse, shown_time
from rivet.orchestrator.services.secret_service import SecretService
from rivet.protocol import (
    Ack,
    ClaimRequest,
    JobAssignment,
    JobCompletion,
    LogBatch,
    RestartAnswer,
    RestartReport,
    SourceInfo,
    StageUpdate,
)
from rivet.store import Database, Transaction
from rivet.store import artifacts as artifact_store
from rivet.store import attempts as attempt_store
from rivet.store import jobs as job_store
from rivet.store import logs as log_store
from rivet.store import runners as runner_store
from rivet.store.jobs import JobRecord
from rivet.store.portable import utcnow
from rivet.store.runners import RunnerRecord

__all__ = ["WorkService"]


# How stale `last seen` may get while a runner keeps claiming.
CHECK_IN_EVERY = timedelta(seconds=2)


@dataclass(frozen=True)
class _Standing:
    """A runner's attempt as the server sees it: current (reports are taken), done by
    the runner itself (acknowledged, changing nothing), or ended by the server."""

    job: JobRecord
    current: bool
    refusal: Exception | None = None


class WorkService:
    def __init__(
        self, db: Database, queue: JobQueue, secrets: SecretService, metrics: ServerMetrics
    ) -> None:
        self.db = db
        self.queue = queue
        self.secrets = secrets
        self.metrics = metrics

    async def claim(
        self,
        runner: RunnerRecord,
        request: ClaimRequest,
        gone: Callable[[], Awaitable[bool]] | None = None,
    ) -> JobAssignment | None:
        """Long poll for a job matching the runner's *stored* tags and plugins.

        Never the tags a claim asserts: any registered runner could otherwise claim
        with another runner's tags and receive its jobs and their secrets. Claimed
        plugins can only narrow the stored ones (a runner whose runtime lacks one
        should not be handed jobs that need it)."""
        offer = Offer(tags=runner.tags, plugins=_narrowed(runner.plugins, request.plugins))
        await anyio.to_thread.run_sync(self._check_in, runner)
        job = await self.queue.claim(runner.id, offer, request.wait_seconds, gone)
        if job is None:
            return None
        source = await anyio.to_thread.run_sync(self._source_of, job.job_id)
        if source is not None:
            job = job.model_copy(update={"source_archive": source})
        await anyio.to_thread.run_sync(self._claimed, job, runner)
        # Only the secrets whose grant covers this job's pinned version, decrypted for
        # this runner; the others are named with the reason.
        granted = await anyio.to_thread.run_sync(
            self.secrets.for_job, job.pipeline, job.pipeline_id, job.version
        )
        if not granted.values and not granted.withheld:
            return job
        secrets = {k: SecretStr(v) for k, v in granted.values.items()}
        return job.model_copy(update={"secrets": secrets, "withheld": granted.withheld})

    def _claimed(self, job: JobAssignment, runner: RunnerRecord) -> None:
        # On the writer: a read database may not have the claim yet.
        with self.db.read(primary=True) as conn:
            times = job_store.claim_times(conn, job.job_id)
        if times is None:
            return
        self.metrics.job_claimed(*times)
        parent = tracing.parent_from(job.trace_parent)
        if parent is not None:  # the job's wait in the queue, as a span of its trace
            queued = tracing.start_span(
                "job.queued",
                parent,
                {"rivet.job_id": job.job_id, "rivet.attempt": job.attempt},
                start=times[0],
            )
            tracing.end_span(queued, {"rivet.runner": runner.name}, end=times[1])

    def _source_of(self, job_id: str) -> SourceInfo | None:
        with self.db.read(primary=True) as conn:
            found = artifact_store.source_of(conn, job_id)
        if found is None:
            return None
        return SourceInfo(
            sha256=found.sha256,
            size=found.size,
            files=found.files,
            git_commit=found.git_commit,
            git_dirty=found.git_dirty,
        )

    def _check_in(self, runner: RunnerRecord) -> None:
        now = utcnow()
        if runner.last_seen is not None and now - runner.last_seen < CHECK_IN_EVERY:
            return  # a busy runner claims often: one write per few seconds is enough
        with self.db.write() as tx:
            runner_store.touch_runner(tx.conn, runner.id, now)

    def post_logs(
        self, runner: RunnerRecord, job_id: str, batch: LogBatch, attempt: int | None = None
    ) -> Ack:
        with self.db.write() as tx:
            standing = self._standing(tx, runner, job_id, attempt)
            stored = 0
            if standing.current:
                job = standing.job
                stored = log_store.append_lines(tx.conn, job.id, batch.lines, job.attempt)
                if stored:
                    self.queue.announce(tx, job_topic(job.id))
        _raise(standing)
        return Ack(stored=stored, cancel_requested=standing.job.cancel_requested)

    def update_stage(
        self, runner: RunnerRecord, job_id: str, update: StageUpdate, attempt: int | None = None
    ) -> Ack:
        with self.db.write() as tx:
            standing = self._standing(tx, runner, job_id, attempt)
            job = standing.job
            if standing.current:
                job_store.update_stage(
                    tx.conn,
                    job.id,
                    update.name,
                    StageStatus(update.status),
                    update.started_at,
                    update.finished_at,
                    update.error,
                )
                self.queue.announce(tx, job_topic(job.id))
        _raise(standing)
        return Ack(cancel_requested=job.cancel_requested)

    def heartbeat(
        self,
        runner: RunnerRecord,
        job_id: str,
        attempt: int | None = None,
        log_problem: str | None = None,
    ) -> Ack:
        """Renew the attempt's lease; ``log_problem``: why the runner cannot deliver
        the job's log right now (shown by ``rivet job show``), None once it can."""
        with self.db.write() as tx:
            standing = self._standing(tx, runner, job_id, attempt)
            job = standing.job
            if standing.current:
                now = utcnow()
                attempt_store.renew_lease(
                    tx.conn, job.id, now, job.lease_seconds or 30.0, log_problem
                )
                runner_store.touch_runner(tx.conn, runner.id, now)
        _raise(standing)
        return Ack(cancel_requested=job.cancel_requested)

    def complete(
        self,
        runner: RunnerRecord,
        job_id: str,
        completion: JobCompletion,
        attempt: int | None = None,
    ) -> Ack:
        """End the attempt once; later (retried) completions change nothing.

        A job whose cancel was requested and that then fails ends ``cancelled`` (the
        failure is the runner stopping it); one that succeeded anyway stays succeeded.
        A failure or timeout the pipeline's retry policy names queues it again.
        """
        with self.db.write() as tx:
            standing = self._standing(tx, runner, job_id, attempt)
            job = standing.job
            if standing.current:
                outcome = AttemptEnd(completion.status)
                end_attempt(
                    tx,
                    self.queue,
                    job,
                    outcome,
                    completion.error,
                    utcnow(),
                    ended_by="runner",
                    outputs=completion.outputs,
                )
                finished = job_store.get_job(tx.conn, job.id)
                if JobStatus(finished.status).finished:  # not when it is retried
                    tx.after_commit(lambda: self.metrics.job_finished(finished))
        _raise(standing)
        return Ack(cancel_requested=job.cancel_requested)

    def restarted(self, runner: RunnerRecord, report: RestartReport) -> RestartAnswer:
        """End every attempt still running on ``runner`` as lost: it has just started,
        so whatever ran them died (the jobs it names had leftovers it removed)."""
        now = utcnow()
        removed = set(report.jobs)
        ended: list[str] = []
        with self.db.write() as tx:
            for job in job_store.running_on(tx.conn, runner.id):
                cleaned = (
                    " (its containers and workspace were removed)" if job.id in removed else ""
                )
                error = (
                    f"runner {runner.name} restarted at {shown_time(now)} while running "
                    f"attempt {job.attempt}: the process that ran it died{cleaned}"
                )
                end_attempt(tx, self.queue, job, AttemptEnd.LOST, error, now)
                ended.append(job.id)
            runner_store.touch_runner(tx.conn, runner.id, now)
        return RestartAnswer(ended=ended)

    def current(self, runner: RunnerRecord, job_id: str, attempt: int | None) -> JobRecord:
        """The job, when ``runner`` holds its attempt ``attempt`` and it is still
        running (artifact and source routes); the refusal of the other job routes
        (403, 409 ``attempt_ended``) otherwise, or 409 once the runner completed it."""
        with self.db.write() as tx:
            standing = self._standing(tx, runner, job_id, attempt)
        _raise(standing)
        if not standing.current:
            raise ConflictError(
                f"job {standing.job.id}: attempt {attempt or standing.job.attempt} is "
                "already complete; it can no longer upload or download"
            )
        return standing.job

    def _standing(
        self, tx: Transaction, runner: RunnerRecord, job_id: str, attempt: int | None
    ) -> _Standing:
        """Where ``runner``'s attempt of ``job_id`` stands, the job's row locked.

        Raises ``PermissionDeniedError`` if this runner never ran that attempt. An
        attempt whose lease ran out is ended here as lost (committed with the
        transaction), and the caller raises the refusal after the commit."""
        resolved = job_store.resolve_job(tx.conn, job_id)
        job = job_store.job_record(tx.conn, resolved, for_update=True)
        number = attempt if attempt is not None else job.attempt
        if number == job.attempt and job.status == JobStatus.RUNNING:
            if job.runner_id != runner.id:
                raise _not_yours(job.id, runner)
            now = utcnow()
            expires = job.lease_expires_at
            if expires is None or expires > now:
                return _Standing(job, current=True)
            lease = job.lease_seconds or 30.0
            error = lost_message(runner.name, job.heartbeat_at, expires, lease)
            end_attempt(tx, self.queue, job, AttemptEnd.LOST, error, now)
        row = attempt_store.attempt_row(tx.conn, job.id, number)
        if row is None or row.runner_id != runner.id:
            raise _not_yours(job.id, runner)
        if row.ended_by == "runner":
            return _Standing(job, current=False)
        return _Standing(job, current=False, refusal=refuse(job.id, number, row))


def _raise(standing: _Standing) -> None:
    if standing.refusal is not None:
        raise standing.refusal


def _not_yours(job_id: str, runner: RunnerRecord) -> PermissionDeniedError:
    return PermissionDeniedError(f"job {job_id} is not claimed by runner {runner.name}")


def _narrowed(registered: list[str], claimed: list[str] | None) -> list[str]:
    if claimed is None:
        return registered
    offered = set(claimed)
    return [plugin for plugin in registered if plugin in offered]
