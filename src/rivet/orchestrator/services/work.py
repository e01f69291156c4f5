"""Use cases seen by runners: claim work, report logs, stages, heartbeats, completion.

Every call is made on behalf of an authenticated runner, which may only touch the
jobs it claimed (``PermissionDeniedError`` otherwise). Retries are harmless: logs
are idempotent by sequence number, and updates to a finished job are acknowledged
without changing it, so a runner that timed out on a response can simply resend.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta

import anyio.to_thread
from pydantic import SecretStr

from rivet.domain import JobStatus, StageStatus
from rivet.errors import PermissionDeniedError
from rivet.jobqueue import JobQueue, Offer, job_topic
from rivet.orchestrator.metrics import ServerMetrics
from rivet.orchestrator.services.secret_service import SecretService
from rivet.protocol import (
    Ack,
    ClaimRequest,
    JobAssignment,
    JobCompletion,
    LogBatch,
    StageUpdate,
)
from rivet.store import Database, Transaction
from rivet.store import jobs as job_store
from rivet.store import logs as log_store
from rivet.store import runners as runner_store
from rivet.store.jobs import JobRecord
from rivet.store.portable import utcnow
from rivet.store.runners import RunnerRecord

__all__ = ["WorkService"]


# How stale `last seen` may get while a runner keeps claiming.
CHECK_IN_EVERY = timedelta(seconds=2)


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
        await anyio.to_thread.run_sync(self._claimed, job.job_id)
        # Only the secrets whose grant covers this job's pinned version, decrypted for
        # this runner; the others are named with the reason.
        granted = await anyio.to_thread.run_sync(
            self.secrets.for_job, job.pipeline, job.pipeline_id, job.version
        )
        if not granted.values and not granted.withheld:
            return job
        secrets = {k: SecretStr(v) for k, v in granted.values.items()}
        return job.model_copy(update={"secrets": secrets, "withheld": granted.withheld})

    def _claimed(self, job_id: str) -> None:
        # On the writer: a read database may not have the claim yet.
        with self.db.read(primary=True) as conn:
            times = job_store.claim_times(conn, job_id)
        if times is not None:
            self.metrics.job_claimed(*times)

    def _check_in(self, runner: RunnerRecord) -> None:
        now = utcnow()
        if runner.last_seen is not None and now - runner.last_seen < CHECK_IN_EVERY:
            return  # a busy runner claims often: one write per few seconds is enough
        with self.db.write() as tx:
            runner_store.touch_runner(tx.conn, runner.id, now)

    def post_logs(self, runner: RunnerRecord, job_id: str, batch: LogBatch) -> Ack:
        with self.db.write() as tx:
            job = _owned(tx, runner, job_id)
            stored = log_store.append_lines(tx.conn, job.id, batch.lines)
            if stored:
                self.queue.announce(tx, job_topic(job.id))
        return Ack(stored=stored, cancel_requested=job.cancel_requested)

    def update_stage(self, runner: RunnerRecord, job_id: str, update: StageUpdate) -> Ack:
        with self.db.write() as tx:
            job = _owned(tx, runner, job_id)
            if not job.status.finished:
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
        return Ack(cancel_requested=job.cancel_requested)

    def heartbeat(self, runner: RunnerRecord, job_id: str) -> Ack:
        with self.db.write() as tx:
            job = _owned(tx, runner, job_id)
            now = utcnow()
            job_store.touch_job(tx.conn, job.id, now)
            runner_store.touch_runner(tx.conn, runner.id, now)
        return Ack(cancel_requested=job.cancel_requested)

    def complete(self, runner: RunnerRecord, job_id: str, completion: JobCompletion) -> Ack:
        """Record the final status once; later (retried) completions change nothing.

        A job whose cancel was requested and that then fails ends ``cancelled`` (the
        failure is the runner stopping it); one that succeeded anyway stays succeeded.
        """
        with self.db.write() as tx:
            job = _owned(tx, runner, job_id, for_update=True)
            if not job.status.finished:
                status = JobStatus(completion.status)
                if job.cancel_requested and status == JobStatus.FAILED:
                    status = JobStatus.CANCELLED
                job_store.finish_job(tx.conn, job.id, status, completion.outputs, completion.error)
                self.queue.announce(tx, job_topic(job.id))
                finished = job_store.get_job(tx.conn, job.id)
                tx.after_commit(lambda: self.metrics.job_finished(finished))
        return Ack(cancel_requested=job.cancel_requested)


def _narrowed(registered: list[str], claimed: list[str] | None) -> list[str]:
    if claimed is None:
        return registered
    offered = set(claimed)
    return [plugin for plugin in registered if plugin in offered]


def _owned(
    tx: Transaction, runner: RunnerRecord, job_id: str, *, for_update: bool = False
) -> JobRecord:
    resolved = job_store.resolve_job(tx.conn, job_id)
    job = job_store.job_record(tx.conn, resolved, for_update=for_update)
    if job.runner_id != runner.id:
        raise PermissionDeniedError(f"job {job.id} is not claimed by runner {runner.name}")
    return job
