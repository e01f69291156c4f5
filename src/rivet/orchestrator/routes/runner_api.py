"""``/api/runner/*``: the endpoints runners call with their own bearer token.

See :mod:`rivet.protocol` for the contract; every route answers 401 without a valid
runner token and 403 for a job another runner claimed.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from rivet.limits import MAX_INT32
from rivet.orchestrator.deps import RunnerDep, ServicesDep
from rivet.protocol import (
    Ack,
    ClaimRequest,
    Heartbeat,
    JobAssignment,
    JobCompletion,
    LogBatch,
    RestartAnswer,
    RestartReport,
    RunnerView,
    StageUpdate,
)

__all__ = ["router"]

router = APIRouter(prefix="/runner", tags=["runner protocol"])


@router.get("/self", summary="This runner as the server knows it (its stored tags)")
def whoami(runner: RunnerDep, services: ServicesDep) -> RunnerView:
    """What claims are matched with: the tags and plugins stored at registration or
    set since by an admin, whatever the runner was started with."""
    return services.runners.show(runner.id)


@router.post(
    "/claim",
    response_model=JobAssignment,
    responses={204: {"description": "no matching job within wait_seconds"}},
    summary="Long-poll for a job",
)
async def claim(
    body: ClaimRequest, request: Request, runner: RunnerDep, services: ServicesDep
) -> Response | JobAssignment:
    """Use an HTTP read timeout longer than ``wait_seconds``: a job claimed just as the
    client gives up would stay assigned to this runner without it knowing."""
    job = await services.work.claim(runner, body, request.is_disconnected)
    if job is None:
        return Response(status_code=204)
    return job


@router.post("/restarted", summary="A runner starting: end its attempts left running")
def restarted(body: RestartReport, runner: RunnerDep, services: ServicesDep) -> RestartAnswer:
    """The runner runs nothing yet: every attempt still running on it is lost (its
    process died); each ends now, as its retry policy says, without waiting for the
    lease."""
    return services.work.restarted(runner, body)


# The attempt the runner was handed; absent: the job's current one (older runners).
AttemptParam = Annotated[
    int | None, Query(ge=1, le=MAX_INT32, description="the assignment's attempt number")
]


@router.post("/jobs/{job_id}/logs", summary="Store a batch of log lines (idempotent by seq)")
def post_logs(
    job_id: str,
    body: LogBatch,
    runner: RunnerDep,
    services: ServicesDep,
    attempt: AttemptParam = None,
) -> Ack:
    """409 ``attempt_ended`` once the server ended that attempt (nothing is stored)."""
    return services.work.post_logs(runner, job_id, body, attempt)


@router.post("/jobs/{job_id}/stages", summary="Report a stage's status")
def update_stage(
    job_id: str,
    body: StageUpdate,
    runner: RunnerDep,
    services: ServicesDep,
    attempt: AttemptParam = None,
) -> Ack:
    return services.work.update_stage(runner, job_id, body, attempt)


@router.post(
    "/jobs/{job_id}/heartbeat",
    summary="Still working: renew the lease; learn about cancel requests",
)
def heartbeat(
    job_id: str,
    runner: RunnerDep,
    services: ServicesDep,
    attempt: AttemptParam = None,
    body: Heartbeat | None = None,
) -> Ack:
    problem = body.log_problem if body is not None else None
    return services.work.heartbeat(runner, job_id, attempt, problem)


@router.post("/jobs/{job_id}/complete", summary="Final status and outputs (idempotent)")
def complete(
    job_id: str,
    body: JobCompletion,
    runner: RunnerDep,
    services: ServicesDep,
    attempt: AttemptParam = None,
) -> Ack:
    return services.work.complete(runner, job_id, body, attempt)
