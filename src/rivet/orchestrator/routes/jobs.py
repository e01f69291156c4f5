"""``/api/jobs``: launch, list, show, rerun, cancel, retry, and log pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from rivet.domain import JobStatus
from rivet.limits import MAX_INT32, MAX_NAME
from rivet.orchestrator.deps import PrincipalDep, ServicesDep
from rivet.protocol import JobLaunch, JobLaunched, JobPage, JobStatusName, JobView, LogPage

__all__ = ["router"]

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.post("", status_code=201, summary="Launch a job")
def launch_job(body: JobLaunch, services: ServicesDep, principal: PrincipalDep) -> JobLaunched:
    """422 ``invalid_inputs`` (``details.problems`` names every bad input) before any job exists.
    ``warnings`` names each secret granted to the pipeline that this version will not
    receive, and why. 403 without ``launch`` on the pipeline, or when it has secrets
    granted to it and the caller has no permission on one of them."""
    return services.jobs.launch(principal, body)


@router.get("", summary="Jobs, newest first, with filters and paging")
def list_jobs(
    services: ServicesDep,
    principal: PrincipalDep,
    status: Annotated[list[JobStatusName] | None, Query(description="repeatable")] = None,
    pipeline: Annotated[
        str | None, Query(max_length=MAX_NAME, description="pipeline name or id prefix")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_INT32)] = 0,
) -> JobPage:
    statuses = [JobStatus(s) for s in status or ()]
    return services.jobs.list_all(principal, statuses, pipeline, limit, offset)


@router.get("/{ref}", summary="One job (id or unique prefix)")
def show_job(ref: str, services: ServicesDep, principal: PrincipalDep) -> JobView:
    """A queued job carries ``waiting``: why no runner has taken it yet."""
    return services.jobs.show(principal, ref)


@router.post("/{ref}/rerun", status_code=201, summary="Launch a job again (same version, inputs)")
def rerun_job(ref: str, services: ServicesDep, principal: PrincipalDep) -> JobLaunched:
    """A new job of the same pipeline version with the same inputs; its ``rerun_of``
    names the original. 409 when the pipeline is archived. Needs ``launch``."""
    return services.jobs.rerun(principal, ref)


@router.post("/{ref}/cancel", summary="Cancel a job")
def cancel_job(ref: str, services: ServicesDep, principal: PrincipalDep) -> JobView:
    """Queued: cancelled at once. Running: ``cancel_requested`` until the runner stops it;
    if its runner is gone, when the lease runs out (``lease_expires_at``; at once if it
    already has). Finished: 409. Needs ``launch`` on the job's pipeline."""
    return services.jobs.cancel(principal, ref)


@router.post("/{ref}/retry", summary="Run a finished job again: a new attempt")
def retry_job(ref: str, services: ServicesDep, principal: PrincipalDep) -> JobView:
    """Same inputs and pipeline version; the job keeps its id, earlier attempts and
    their logs. Queued or running: 409. Needs ``launch`` on the job's pipeline (audit:
    ``job.retry``)."""
    return services.jobs.retry(principal, ref)


@router.get("/{ref}/logs", summary="A page of log lines after a sequence number")
def job_logs(
    ref: str,
    services: ServicesDep,
    principal: PrincipalDep,
    after: Annotated[int, Query(ge=0, le=MAX_INT32)] = 0,
    limit: Annotated[int, Query(ge=1, le=5000)] = 1000,
    attempt: Annotated[
        int | None, Query(ge=1, le=MAX_INT32, description="only this attempt's lines")
    ] = None,
) -> LogPage:
    """Lines of every attempt, in order, each with its ``attempt``; sequence numbers go
    on across attempts. While the job runs the page stops before a missing sequence
    number, so following ``next_after`` never skips a line that arrives late. Needs
    ``view`` on the job's pipeline."""
    return services.jobs.logs(principal, ref, after, limit, attempt)
