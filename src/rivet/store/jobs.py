"""Jobs and their stages: rows in, ``JobView`` out. Policy (who may do what) is the caller's."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, func, select, update
from sqlalchemy.engine import Connection

from rivet.domain import InputValue, JobStatus, StageStatus
from rivet.errors import NotFoundError
from rivet.limits import scrub
from rivet.protocol import AttemptView, JobPage, JobView, SourceInfo, StageView
from rivet.store.artifacts import source_of
from rivet.store.attempts import attempts_of
from rivet.store.ids import new_id, resolve_prefix
from rivet.store.pipelines import PipelineVersion
from rivet.store.portable import utcnow
from rivet.store.tables import job_stages, jobs, pipeline_versions, pipelines, runners

__all__ = [
    "RECORD_COLUMNS",
    "JobRecord",
    "claim_times",
    "create_job",
    "finish_job",
    "get_job",
    "job_record",
    "list_jobs",
    "pipeline_of",
    "queue_summary",
    "queued_requirements",
    "record_canceller",
    "record_of",
    "request_cancel",
    "resolve_job",
    "running_jobs_of",
    "running_on",
    "touch_job",
    "update_stage",
]


@dataclass(frozen=True)
class JobRecord:
    """The fields that decide what may happen to a job next."""

    id: str
    status: JobStatus
    runner_id: str | None
    cancel_requested: bool
    attempt: int = 0
    lease_seconds: float | None = None
    lease_expires_at: datetime | None = None
    heartbeat_at: datetime | None = None
    pipeline_version_id: str = ""


def create_job(
    conn: Connection,
    version: PipelineVersion,
    inputs: Mapping[str, InputValue],
    launched_by: str = "unknown",
    *,
    rerun_of: str | None = None,
    trace_parent: str | None = None,
) -> str:
    """Insert a queued job pinned to ``version``, launched by the actor ``launched_by``,
    with one pending row per stage; ``rerun_of``: the job it reruns (``rivet job rerun``);
    ``trace_parent``: the launch span's ``traceparent`` (``rivet.observe.tracing``)."""
    job_id = new_id()
    definition = version.definition
    conn.execute(
        jobs.insert().values(
            id=job_id,
            pipeline_version_id=version.id,
            pipeline_id=version.pipeline_id,
            status=JobStatus.QUEUED.value,
            inputs=dict(inputs),
            outputs={},
            cancel_requested=False,
            attempt=0,
            required_tags={tag.key: tag.value for tag in definition.tags},
            required_plugins=sorted(set(definition.plugins)),
            created_at=utcnow(),
            rerun_of=rerun_of,
            launched_by=launched_by,
            trace_parent=trace_parent,
        )
    )
    if definition.stages:
        conn.execute(
            job_stages.insert(),
            [
                {"job_id": job_id, "idx": i, "name": s.name, "status": StageStatus.PENDING.value}
                for i, s in enumerate(definition.stages)
            ],
        )
    return job_id


def resolve_job(conn: Connection, ref: str) -> str:
    return resolve_prefix(conn, jobs, ref, "job")


def pipeline_of(conn: Connection, job_id: str) -> str:
    """The id of the pipeline of job ``job_id``."""
    found: str | None = conn.execute(
        select(jobs.c.pipeline_id).where(jobs.c.id == job_id)
    ).scalar_one_or_none()
    if found is None:
        raise NotFoundError(f"no job with id {job_id!r}")
    return found


def job_record(conn: Connection, job_id: str, *, for_update: bool = False) -> JobRecord:
    """The state of a job; ``for_update`` row-locks it (PostgreSQL) in a write transaction."""
    query = select(*RECORD_COLUMNS).where(jobs.c.id == job_id)
    if for_update:
        query = query.with_for_update()
    row = conn.execute(query).one_or_none()
    if row is None:
        raise NotFoundError(f"no job with id {job_id!r}")
    return record_of(row)


RECORD_COLUMNS = (
    jobs.c.id,
    jobs.c.status,
    jobs.c.runner_id,
    jobs.c.cancel_requested,
    jobs.c.attempt,
    jobs.c.lease_seconds,
    jobs.c.lease_expires_at,
    jobs.c.heartbeat_at,
    jobs.c.pipeline_version_id,
)


def record_of(row: Any) -> JobRecord:
    return JobRecord(
        row.id,
        JobStatus(row.status),
        row.runner_id,
        row.cancel_requested,
        row.attempt,
        row.lease_seconds,
        row.lease_expires_at,
        row.heartbeat_at,
        row.pipeline_version_id,
    )


def running_on(conn: Connection, runner_id: str) -> list[JobRecord]:
    """The running jobs claimed by ``runner_id``, row-locked (PostgreSQL)."""
    query = (
        select(*RECORD_COLUMNS)
        .where(jobs.c.runner_id == runner_id, jobs.c.status == JobStatus.RUNNING.value)
        .order_by(jobs.c.id)
        .with_for_update()
    )
    return [record_of(row) for row in conn.execute(query)]


def queued_requirements(conn: Connection, job_id: str) -> tuple[dict[str, str], list[str]] | None:
    """The tags and plugins a job requires of its runner while it is queued; None once
    it is not queued. ``NotFoundError`` for an unknown job."""
    query = select(jobs.c.status, jobs.c.required_tags, jobs.c.required_plugins)
    row = conn.execute(query.where(jobs.c.id == job_id)).one_or_none()
    if row is None:
        raise NotFoundError(f"no job with id {job_id!r}")
    if row.status != JobStatus.QUEUED.value:
        return None
    return dict(row.required_tags), list(row.required_plugins)


def running_jobs_of(conn: Connection, runner_id: str) -> list[str]:
    """The ids of the jobs the runner holds (running), oldest first."""
    query = (
        select(jobs.c.id)
        .where(jobs.c.runner_id == runner_id, jobs.c.status == JobStatus.RUNNING.value)
        .order_by(jobs.c.started_at)
    )
    return list(conn.execute(query).scalars())


def request_cancel(conn: Connection, job_id: str, by: str) -> None:
    """Flag the job for cancelling, recording the actor ``by`` who asked."""
    conn.execute(
        update(jobs).where(jobs.c.id == job_id).values(cancel_requested=True, cancelled_by=by)
    )


def record_canceller(conn: Connection, job_id: str, by: str) -> None:
    """Record the actor ``by`` who cancelled the job (without flagging a runner)."""
    conn.execute(update(jobs).where(jobs.c.id == job_id).values(cancelled_by=by))


def touch_job(conn: Connection, job_id: str, at: datetime) -> None:
    conn.execute(update(jobs).where(jobs.c.id == job_id).values(heartbeat_at=at))


def finish_job(
    conn: Connection,
    job_id: str,
    status: JobStatus,
    outputs: Mapping[str, InputValue] | None = None,
    error: str | None = None,
) -> None:
    """Record a final status; stages left open are closed to match it."""
    now = utcnow()
    values: dict[str, Any] = {"status": status.value, "finished_at": now, "error": error}
    values.update(lease_expires_at=None, not_before=None)
    if outputs is not None:
        values["outputs"] = dict(outputs)
    conn.execute(update(jobs).where(jobs.c.id == job_id).values(**values))
    # A stage still running ends as the job did; one never started did not run.
    running_to = StageStatus(status.value)
    pending_to = StageStatus.CANCELLED if status == JobStatus.CANCELLED else StageStatus.SKIPPED
    for current, final in ((StageStatus.RUNNING, running_to), (StageStatus.PENDING, pending_to)):
        conn.execute(
            update(job_stages)
            .where(job_stages.c.job_id == job_id, job_stages.c.status == current.value)
            .values(status=final.value, finished_at=now)
        )


def update_stage(
    conn: Connection,
    job_id: str,
    name: str,
    status: StageStatus,
    started_at: datetime | None,
    finished_at: datetime | None,
    error: str | None,
) -> None:
    values: dict[str, Any] = {"status": status.value, "error": error}
    if started_at is not None:
        values["started_at"] = started_at
    elif status == StageStatus.RUNNING:
        values["started_at"] = utcnow()
    if finished_at is not None:
        values["finished_at"] = finished_at
    elif status.finished:
        values["finished_at"] = utcnow()
    stage = job_stages.c
    result = conn.execute(
        update(job_stages).where(stage.job_id == job_id, stage.name == name).values(**values)
    )
    if result.rowcount == 0:
        raise NotFoundError(f"job {job_id} has no stage named {name!r}")


def _base_query() -> Any:
    return (
        select(
            jobs,
            pipelines.c.name.label("pipeline_name"),
            pipeline_versions.c.version,
            runners.c.name.label("runner_name"),
        )
        .join(pipelines, pipelines.c.id == jobs.c.pipeline_id)
        .join(pipeline_versions, pipeline_versions.c.id == jobs.c.pipeline_version_id)
        .outerjoin(runners, runners.c.id == jobs.c.runner_id)
    )


def _stages(conn: Connection, job_ids: Sequence[str]) -> dict[str, list[StageView]]:
    result: dict[str, list[StageView]] = {job_id: [] for job_id in job_ids}
    if not job_ids:
        return result
    query = (
        select(job_stages)
        .where(job_stages.c.job_id.in_(job_ids))
        .order_by(job_stages.c.job_id, job_stages.c.idx)
    )
    for row in conn.execute(query):
        duration = None
        if row.started_at is not None and row.finished_at is not None:
            duration = (row.finished_at - row.started_at).total_seconds()
        result[row.job_id].append(
            StageView(
                name=row.name,
                status=row.status,
                started_at=row.started_at,
                finished_at=row.finished_at,
                duration=duration,
                error=row.error,
            )
        )
    return result


def _view(row: Row[Any], stages: list[StageView], attempts: list[AttemptView]) -> JobView:
    return JobView(
        id=row.id,
        pipeline=row.pipeline_name,
        pipeline_id=row.pipeline_id,
        version=row.version,
        status=row.status,
        # scrub: rows stored by an older version may hold text no answer can carry.
        inputs=scrub(row.inputs),
        outputs=scrub(row.outputs),
        error=row.error,
        runner=row.runner_name,
        runner_id=row.runner_id,
        cancel_requested=row.cancel_requested,
        launched_by=row.launched_by,
        cancelled_by=row.cancelled_by,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        stages=stages,
        attempt=row.attempt,
        attempts=attempts,
        lease_expires_at=row.lease_expires_at,
        not_before=row.not_before,
        stall_reason=row.stall_reason,
        rerun_of=row.rerun_of,
    )


def get_job(conn: Connection, job_id: str) -> JobView:
    row = conn.execute(_base_query().where(jobs.c.id == job_id)).one_or_none()
    if row is None:
        raise NotFoundError(f"no job with id {job_id!r}")
    view = _view(row, _stages(conn, [job_id])[job_id], attempts_of(conn, [job_id])[job_id])
    source = source_of(conn, job_id)
    if source is None:
        return view
    info = SourceInfo(
        sha256=source.sha256,
        size=source.size,
        files=source.files,
        git_commit=source.git_commit,
        git_dirty=source.git_dirty,
    )
    return view.model_copy(update={"source_archive": info})


def list_jobs(
    conn: Connection,
    statuses: Sequence[JobStatus] = (),
    pipeline_id: str | None = None,
    limit: int = 50,
    offset: int = 0,
    hidden: Collection[str] = (),
) -> JobPage:
    """Newest first; ``total`` counts every job matching the filters. Jobs of the
    pipelines ``hidden`` (ids) are left out."""
    conditions: list[ColumnElement[bool]] = []
    if hidden:
        conditions.append(jobs.c.pipeline_id.not_in(list(hidden)))
    if statuses:
        conditions.append(jobs.c.status.in_([s.value for s in statuses]))
    if pipeline_id is not None:
        conditions.append(jobs.c.pipeline_id == pipeline_id)
    total = conn.execute(select(func.count()).select_from(jobs).where(*conditions)).scalar_one()
    query = (
        _base_query()
        .where(*conditions)
        .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    rows = list(conn.execute(query))
    ids = [row.id for row in rows]
    stages, attempts = _stages(conn, ids), attempts_of(conn, ids)
    return JobPage(
        jobs=[_view(row, stages[row.id], attempts[row.id]) for row in rows],
        total=int(total),
        limit=limit,
        offset=offset,
    )


def queue_summary(conn: Connection) -> tuple[int, datetime | None]:
    """How many jobs are queued and when the oldest was launched: one aggregate over
    the partial index on ``status = 'queued'``, cheap however long the history."""
    row = conn.execute(
        select(func.count(), func.min(jobs.c.created_at)).where(
            jobs.c.status == JobStatus.QUEUED.value
        )
    ).one()
    return int(row[0]), row[1]


def claim_times(conn: Connection, job_id: str) -> tuple[datetime, datetime | None] | None:
    """When a job was launched and when it was claimed; None for an unknown job."""
    row = conn.execute(
        select(jobs.c.created_at, jobs.c.started_at).where(jobs.c.id == job_id)
    ).one_or_none()
    return None if row is None else (row[0], row[1])
