"""Use cases seen by users: launch, list, show and cancel jobs; read their logs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from rivet.domain import JobStatus, resolve_inputs
from rivet.domain.reliability import AttemptEnd
from rivet.errors import ConflictError
from rivet.jobqueue import JOBS_TOPIC, JobQueue, job_topic
from rivet.orchestrator.services.endings import end_attempt, lost_message
from rivet.orchestrator.services.pipelines import archived_message
from rivet.orchestrator.services.secret_service import SecretService
from rivet.orchestrator.services.waiting import explain_wait
from rivet.protocol import JobLaunch, JobLaunched, JobPage, JobView, LogLine, LogPage, Scalar
from rivet.store import Database
from rivet.store import attempts as attempt_store
from rivet.store import jobs as job_store
from rivet.store import logs as log_store
from rivet.store import pipelines as pipeline_store
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

    def __init__(self, db: Database, queue: JobQueue, secrets: SecretService) -> None:
        self.db = db
        self.queue = queue
        self.secrets = secrets

    def launch(self, request: JobLaunch) -> JobLaunched:
        """Check inputs against the pinned version, then queue the job and wake runners.

        ``InputError`` naming every bad input is raised before any row is written. The
        answer warns about every secret granted to the pipeline that this version
        will not receive (an older version, or one the admin did not push): the job
        still runs, and ``secret.get`` of such a secret fails saying why.
        """
        with self.db.read(primary=True) as conn:  # a version pushed just now counts
            version = pipeline_store.get_version(conn, request.pipeline, request.version)
        return self._launch(version, request.inputs)

    def rerun(self, ref: str) -> JobLaunched:
        """``rivet job rerun``: a new job of the same pipeline version with the same
        inputs as job ``ref`` (whatever its state), recording ``rerun_of``. The inputs
        are checked again like a launch's (the stored ones passed once, so they pass
        again unless the job predates a rule); an archived pipeline refuses it."""
        with self.db.read() as conn:
            job_id = job_store.resolve_job(conn, ref)
            original = job_store.get_job(conn, job_id)
            version = pipeline_store.get_version(conn, original.pipeline_id, original.version)
        return self._launch(version, original.inputs, rerun_of=job_id)

    def _launch(
        self,
        version: pipeline_store.PipelineVersion,
        given: Mapping[str, Scalar],
        rerun_of: str | None = None,
    ) -> JobLaunched:
        if version.archived_at is not None:
            raise ConflictError(
                archived_message(version.name, version.archived_at, "it takes no new jobs")
            )
        inputs = resolve_inputs(version.definition, given)
        with self.db.write() as tx:
            archived = pipeline_store.archived_at(tx.conn, version.pipeline_id, share=True)
            if archived is not None:  # archived since the version was read
                raise ConflictError(
                    archived_message(version.name, archived, "it takes no new jobs")
                )
            job_id = job_store.create_job(tx.conn, version, inputs, rerun_of=rerun_of)
            self.queue.announce(tx, JOBS_TOPIC)
            job = job_store.get_job(tx.conn, job_id)
        withheld = self.secrets.withheld(version.name, version.version, version.created_by)
        warnings = [
            f"secret '{name}' will not reach this job: {reason}; the job runs without it"
            for name, reason in withheld.items()
        ]
        # No ``waiting`` here: launches stay as cheap as before; GET /api/jobs/{ref} says it.
        return JobLaunched(**job.model_dump(), warnings=warnings)

    def list_all(
        self,
        statuses: Sequence[JobStatus] = (),
        pipeline: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> JobPage:
        with self.db.read() as conn:
            pipeline_id = None
            if pipeline is not None:
                pipeline_id = pipeline_store.resolve_pipeline(conn, pipeline)
            return job_store.list_jobs(conn, statuses, pipeline_id, limit, offset)

    def resolve(self, ref: str, *, primary: bool = False) -> str:
        with self.db.read(primary=primary) as conn:
            return job_store.resolve_job(conn, ref)

    def show(self, ref: str) -> JobView:
        """The job; a queued one with ``waiting`` (:func:`.waiting.explain_wait`)."""
        with self.db.read() as conn:
            job = job_store.get_job(conn, job_store.resolve_job(conn, ref))
            if job.status == JobStatus.QUEUED.value:
                job = job.model_copy(update={"waiting": explain_wait(conn, job.id)})
        return job

    def cancel(self, ref: str) -> JobView:
        """Queued: cancelled now. Running: flagged; the runner stops it and reports back
        — and if the runner is gone, the job ends when its lease runs out (the reaper,
        or here at once when it already has). Either way the job ends.

        Cancelling a job that is already being cancelled is a no-op; a finished job
        raises ``ConflictError``.
        """
        with self.db.write() as tx:
            job_id = job_store.resolve_job(tx.conn, ref)
            record = job_store.job_record(tx.conn, job_id, for_update=True)
            if record.status.finished:
                raise ConflictError(f"job {job_id} has already {record.status.value}")
            now = utcnow()
            if record.status == JobStatus.QUEUED:
                job_store.finish_job(
                    tx.conn, job_id, JobStatus.CANCELLED, error="cancelled before it started"
                )
            else:
                if not record.cancel_requested:
                    job_store.request_cancel(tx.conn, job_id)
                    record = replace(record, cancel_requested=True)
                expires = record.lease_expires_at
                if expires is not None and expires <= now:  # its runner is already gone
                    runner = job_store.get_job(tx.conn, job_id).runner
                    lost = lost_message(runner, record.heartbeat_at, expires, _lease(record))
                    end_attempt(tx, self.queue, record, AttemptEnd.LOST, lost, now)
            self.queue.announce(tx, job_topic(job_id))
            return job_store.get_job(tx.conn, job_id)

    def retry(self, ref: str) -> JobView:
        """``rivet job retry``: a new attempt of a finished job, same inputs and version
        (the job keeps its id, attempts and logs). ``ConflictError`` unless finished."""
        with self.db.write() as tx:
            job_id = job_store.resolve_job(tx.conn, ref)
            record = job_store.job_record(tx.conn, job_id, for_update=True)
            if not record.status.finished:
                raise ConflictError(
                    f"job {job_id} is {record.status.value}; only a finished job can be "
                    "retried (cancel it first)"
                )
            attempt_store.requeue(tx.conn, job_id, utcnow(), None)
            self.queue.announce(tx, JOBS_TOPIC)
            self.queue.announce(tx, job_topic(job_id))
            return job_store.get_job(tx.conn, job_id)

    def logs(
        self, ref: str, after: int = 0, limit: int = 1000, attempt: int | None = None
    ) -> LogPage:
        """Lines of every attempt (each carries its ``attempt``), or of one."""
        with self.db.read() as conn:
            job_id = job_store.resolve_job(conn, ref)
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
