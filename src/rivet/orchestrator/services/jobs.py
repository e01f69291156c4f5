"""Use cases seen by users: launch, list, show, cancel and retry jobs; read their logs.

Each under the pipeline permissions (:mod:`.access`): viewing a job or its logs needs
``view`` on its pipeline, launching, cancelling and retrying ``launch``; launching a pipeline
that has secrets granted to it also needs a permission on every one of them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from rivet.domain import JobStatus, resolve_inputs
from rivet.domain.inputs import InputValue
from rivet.domain.permissions import PipelineLevel
from rivet.domain.principals import Principal
from rivet.domain.reliability import AttemptEnd
from rivet.errors import ConflictError, PermissionDeniedError
from rivet.jobqueue import JOBS_TOPIC, JobQueue, job_topic
from rivet.observe import tracing
from rivet.orchestrator.metrics import ServerMetrics
from rivet.orchestrator.services.access import AccessService, require_level
from rivet.orchestrator.services.artifacts import attach_source
from rivet.orchestrator.services.endings import end_attempt, lost_message
from rivet.orchestrator.services.pipelines import archived_message
from rivet.orchestrator.services.secret_service import SecretService, unusable_secrets
from rivet.orchestrator.services.waiting import explain_wait
from rivet.protocol import (
    JobLaunch,
    JobLaunched,
    JobPage,
    JobView,
    LogLine,
    LogPage,
    Scalar,
    SourceInfo,
)
from rivet.store import Database, audit
from rivet.store import attempts as attempt_store
from rivet.store import jobs as job_store
from rivet.store import logs as log_store
from rivet.store import pipelines as pipeline_store
from rivet.store import sealed_secrets as secret_store
from rivet.store.jobs import JobRecord
from rivet.store.portable import utcnow

__all__ = ["JobService", "JobSnapshot"]


@dataclass(frozen=True)
class JobSnapshot:
    """A job and the log lines after some sequence number, read consistently."""

    job: JobView
    lines: list[LogLine]

    @property
    def finished(self) -> bool:
        return JobStatus(self.job.status).finished


class JobService:
    """Blocking; called from worker threads."""

    def __init__(
        self,
        db: Database,
        queue: JobQueue,
        secrets: SecretService,
        access: AccessService,
        metrics: ServerMetrics,
    ) -> None:
        self.db = db
        self.queue = queue
        self.secrets = secrets
        self.access = access
        self.metrics = metrics

    def launch(self, principal: Principal, request: JobLaunch) -> JobLaunched:
        """Check inputs against the pinned version, then queue the job and wake runners.

        ``InputError`` naming every bad input is raised before any row is written. The
        answer warns about every secret granted to the pipeline that this version
        will not receive (an older version, or one the admin did not push): the job
        still runs, and ``secret.get`` of such a secret fails saying why.
        """
        with self.db.read(primary=True) as conn:  # a version pushed just now counts
            pipeline_id = pipeline_store.resolve_pipeline(conn, request.pipeline)
            require_level(conn, principal, pipeline_id, PipelineLevel.LAUNCH)
            version = pipeline_store.get_version(conn, request.pipeline, request.version)
        return self._launch(principal, version, request.inputs, source=request.source_archive)

    def rerun(self, principal: Principal, ref: str) -> JobLaunched:
        """``rivet job rerun``: a new job of the same pipeline version with the same
        inputs as job ``ref`` (whatever its state), recording ``rerun_of``. The inputs
        are checked again like a launch's (the stored ones passed once, so they pass
        again unless the job predates a rule); an archived pipeline refuses it. Needs
        ``launch`` on the pipeline, like a launch."""
        with self.db.read(primary=True) as conn:
            job_id = job_store.resolve_job(conn, ref)
            original = job_store.get_job(conn, job_id)
            require_level(conn, principal, original.pipeline_id, PipelineLevel.LAUNCH)
            version = pipeline_store.get_version(conn, original.pipeline_id, original.version)
        return self._launch(
            principal, version, original.inputs, rerun_of=job_id, source=original.source_archive
        )

    def _launch(
        self,
        principal: Principal,
        version: pipeline_store.PipelineVersion,
        given: Mapping[str, Scalar],
        rerun_of: str | None = None,
        source: SourceInfo | None = None,
    ) -> JobLaunched:
        if version.archived_at is not None:
            raise ConflictError(
                archived_message(version.name, version.archived_at, "it takes no new jobs")
            )
        inputs = resolve_inputs(version.definition, given)
        # The job's trace starts here (rivet.observe.tracing); a no-op when not exported.
        with tracing.span(
            "job.launch",
            attributes={"rivet.pipeline": version.name, "rivet.version": version.version},
        ) as launch:
            job = self._queue_job(principal, version, inputs, rerun_of, source, launch)
            launch.set_attribute("rivet.job_id", job.id)
        withheld = self.secrets.withheld(version.name, version.version, version.created_by)
        warnings = [
            f"secret '{name}' will not reach this job: {reason}; the job runs without it"
            for name, reason in withheld.items()
        ]
        # No ``waiting`` here: launches stay as cheap as before; GET /api/jobs/{ref} says it.
        return JobLaunched(**job.model_dump(), warnings=warnings)

    def _queue_job(
        self,
        principal: Principal,
        version: pipeline_store.PipelineVersion,
        inputs: Mapping[str, InputValue],
        rerun_of: str | None,
        source: SourceInfo | None,
        launch: tracing.Span,
    ) -> JobView:
        with self.db.write() as tx:
            archived = pipeline_store.archived_at(tx.conn, version.pipeline_id, share=True)
            if archived is not None:  # archived since the version was read
                raise ConflictError(
                    archived_message(version.name, archived, "it takes no new jobs")
                )
            # Checked again where the job is written: a grant committed since the read
            # above must not let the job through.
            granted = secret_store.granted_names(tx.conn, version.name)
            refused = unusable_secrets(tx.conn, principal, granted)
            if refused:
                raise PermissionDeniedError(
                    f"{principal.display} may not launch '{version.name}': it has secrets "
                    f"granted to it and launching it needs a permission on "
                    f"{', '.join(refused)}; ask an admin"
                )
            job_id = job_store.create_job(
                tx.conn,
                version,
                inputs,
                rerun_of=rerun_of,
                launched_by=principal.actor,
                trace_parent=tracing.traceparent_of(launch),
            )
            details: dict[str, object] = {"pipeline": version.name, "version": version.version}
            if source is not None:  # uploaded with POST /api/sources; refused if it is not
                attach_source(tx.conn, job_id, source)
                details["source"] = source.sha256
            if rerun_of is not None:
                details["rerun_of"] = rerun_of
            audit.record(tx.conn, principal.actor, "job.launch", job_id, details)
            self.queue.announce(tx, JOBS_TOPIC)
            return job_store.get_job(tx.conn, job_id)

    def list_all(
        self,
        principal: Principal,
        statuses: Sequence[JobStatus] = (),
        pipeline: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> JobPage:
        hidden = self.access.hidden(principal)
        with self.db.read() as conn:
            pipeline_id = None
            if pipeline is not None:
                pipeline_id = pipeline_store.resolve_pipeline(conn, pipeline)
                require_level(conn, principal, pipeline_id, PipelineLevel.VIEW)
            return job_store.list_jobs(conn, statuses, pipeline_id, limit, offset, hidden)

    def resolve(self, principal: Principal, ref: str, *, primary: bool = False) -> str:
        """The job's id, when ``principal`` may view its pipeline."""
        with self.db.read(primary=primary) as conn:
            job_id = job_store.resolve_job(conn, ref)
            require_level(conn, principal, job_store.pipeline_of(conn, job_id), PipelineLevel.VIEW)
            return job_id

    def show(self, principal: Principal, ref: str) -> JobView:
        """The job; a queued one with ``waiting`` (:func:`.waiting.explain_wait`)."""
        job_id = self.resolve(principal, ref)
        with self.db.read() as conn:
            job = job_store.get_job(conn, job_id)
            if job.status == JobStatus.QUEUED.value:
                job = job.model_copy(update={"waiting": explain_wait(conn, job.id)})
        return job

    def cancel(self, principal: Principal, ref: str) -> JobView:
        """Queued: cancelled now. Running: flagged; the runner stops it and reports back
        — and if the runner is gone, the job ends when its lease runs out (the reaper,
        or here at once when it already has). Either way the job ends. Needs ``launch``
        on the job's pipeline; ``cancelled_by`` is the first principal who asked.

        Cancelling a job that is already being cancelled is a no-op; a finished job
        raises ``ConflictError``.
        """
        with self.db.write() as tx:
            job_id = job_store.resolve_job(tx.conn, ref)
            pipeline_id = job_store.pipeline_of(tx.conn, job_id)
            require_level(tx.conn, principal, pipeline_id, PipelineLevel.LAUNCH)
            record = job_store.job_record(tx.conn, job_id, for_update=True)
            if record.status.finished:
                raise ConflictError(f"job {job_id} has already {record.status.value}")
            now = utcnow()
            if record.status == JobStatus.QUEUED:
                job_store.record_canceller(tx.conn, job_id, principal.actor)
                job_store.finish_job(
                    tx.conn, job_id, JobStatus.CANCELLED, error="cancelled before it started"
                )
                cancelled = job_store.get_job(tx.conn, job_id)
                tx.after_commit(lambda: self.metrics.job_finished(cancelled))
            else:
                asked = record.cancel_requested
                if not asked:
                    job_store.request_cancel(tx.conn, job_id, principal.actor)
                    record = replace(record, cancel_requested=True)
                expires = record.lease_expires_at
                gone = expires is not None and expires <= now  # its runner is already gone
                if gone and expires is not None:
                    runner = job_store.get_job(tx.conn, job_id).runner
                    lost = lost_message(runner, record.heartbeat_at, expires, _lease(record))
                    end_attempt(tx, self.queue, record, AttemptEnd.LOST, lost, now)
                if asked:
                    if gone:
                        self.queue.announce(tx, job_topic(job_id))
                    return job_store.get_job(tx.conn, job_id)  # already asked: no new event
            audit.record(tx.conn, principal.actor, "job.cancel", job_id)
            self.queue.announce(tx, job_topic(job_id))
            return job_store.get_job(tx.conn, job_id)

    def retry(self, principal: Principal, ref: str) -> JobView:
        """``rivet job retry``: a new attempt of a finished job, same inputs and version
        (the job keeps its id, attempts and logs). Needs ``launch`` on the job's
        pipeline, like a rerun; recorded in the audit trail as ``job.retry``.
        ``ConflictError`` unless finished."""
        with self.db.write() as tx:
            job_id = job_store.resolve_job(tx.conn, ref)
            pipeline_id = job_store.pipeline_of(tx.conn, job_id)
            require_level(tx.conn, principal, pipeline_id, PipelineLevel.LAUNCH)
            record = job_store.job_record(tx.conn, job_id, for_update=True)
            if not record.status.finished:
                raise ConflictError(
                    f"job {job_id} is {record.status.value}; only a finished job can be "
                    "retried (cancel it first)"
                )
            attempt_store.requeue(tx.conn, job_id, utcnow(), None)
            audit.record(
                tx.conn, principal.actor, "job.retry", job_id, {"after_attempt": record.attempt}
            )
            self.queue.announce(tx, JOBS_TOPIC)
            self.queue.announce(tx, job_topic(job_id))
            return job_store.get_job(tx.conn, job_id)

    def logs(
        self,
        principal: Principal,
        ref: str,
        after: int = 0,
        limit: int = 1000,
        attempt: int | None = None,
    ) -> LogPage:
        """Lines of every attempt (each carries its ``attempt``), or of one; needs
        ``view`` on the job's pipeline."""
        job_id = self.resolve(principal, ref)
        snapshot = self.snapshot(job_id, after, limit, attempt)
        last = snapshot.lines[-1].seq if snapshot.lines else after
        return LogPage(
            job_id=job_id, lines=snapshot.lines, next_after=last, finished=snapshot.finished
        )

    def snapshot(
        self,
        job_id: str,
        after: int,
        limit: int,
        attempt: int | None = None,
        *,
        primary: bool = False,
    ) -> JobSnapshot:
        """The job, then its lines after ``after``.

        The status is read *first*: runners send their last lines before completing,
        so when the job reads as finished every line is already visible and the page
        no longer has to stop at gaps (see :func:`rivet.store.logs.read_lines`).
        ``primary``: on the writer even when there is a read database (live streams:
        a stream woken by a commit must see it, and a job launched a moment ago must
        be found).
        """
        with self.db.read(primary=primary) as conn:
            job = job_store.get_job(conn, job_id)
            finished = JobStatus(job.status).finished
            lines = log_store.read_lines(
                conn, job_id, after, limit, contiguous=not finished, attempt=attempt
            )
        return JobSnapshot(job, lines)


def _lease(record: JobRecord) -> float:
    return record.lease_seconds or 30.0
