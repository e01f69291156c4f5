"""``/api/runner/jobs/{id}/…`` for artifacts and sources: what a runner uploads for the
job it holds and what that job downloads. Runner token; only the attempt the runner
holds and only while it runs (403 for another runner's job, 409 once the attempt
ended), and a download is permission-checked against the job's pipeline (see
:mod:`rivet.orchestrator.services.artifacts`)."""

from __future__ import annotations

import posixpath
from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from rivet.limits import MAX_NAME
from rivet.orchestrator.deps import RunnerDep, ServicesDep
from rivet.orchestrator.routes.downloads import BYTES, RAW_BODY, file_response
from rivet.orchestrator.routes.runner_api import AttemptParam
from rivet.protocol import ArtifactFileView, ArtifactList

__all__ = ["router"]

router = APIRouter(prefix="/runner", tags=["runner protocol"])

PathParam = Annotated[str, Query(min_length=1, max_length=1024, description="file path")]
NameParam = Annotated[str, Query(min_length=1, max_length=100, description="artifact name")]


@router.post(
    "/jobs/{job_id}/artifacts/{name}/files",
    summary="Upload one file of the job's artifact (streamed)",
    openapi_extra=RAW_BODY,
)
async def upload_file(
    job_id: str,
    name: str,
    request: Request,
    runner: RunnerDep,
    services: ServicesDep,
    path: PathParam,
    mode: Annotated[int, Query(ge=0, le=0o7777)] = 0o644,
    attempt: AttemptParam = None,
) -> ArtifactFileView:
    """413 over ``artifacts.max_file_bytes`` or the job's ``max_job_bytes``."""
    return await services.artifacts.runner_upload(
        runner, job_id, attempt, name, path, mode, request.stream()
    )


@router.get("/jobs/{job_id}/artifacts", summary="Find an artifact the job may download")
def lookup(
    job_id: str,
    runner: RunnerDep,
    services: ServicesDep,
    name: NameParam,
    job: Annotated[str, Query(min_length=1, max_length=MAX_NAME + 7)],
    attempt: AttemptParam = None,
) -> ArtifactList:
    """``job``: an id (prefix) or ``latest:PIPELINE``; ``job_id`` of the answer names
    the job found."""
    return services.artifacts.runner_lookup(runner, job_id, attempt, name, job)


@router.get(
    "/jobs/{job_id}/artifact-files",
    summary="Download a file of an artifact the job may read (Range supported)",
    response_class=Response,
    responses=BYTES,
)
async def download_file(
    job_id: str,
    request: Request,
    runner: RunnerDep,
    services: ServicesDep,
    job: Annotated[str, Query(min_length=1, max_length=MAX_NAME)],
    name: NameParam,
    path: PathParam,
    attempt: AttemptParam = None,
) -> Response:
    artifacts = services.artifacts
    file = await anyio.to_thread.run_sync(
        artifacts.runner_file, runner, job_id, attempt, job, name, path
    )
    return file_response(
        request,
        artifacts.read,
        file.sha256,
        file.size,
        posixpath.basename(file.path),
    )


@router.get(
    "/jobs/{job_id}/source",
    summary="Download the job's source archive (tar.gz; Range supported)",
    response_class=Response,
    responses=BYTES,
)
async def download_source(
    job_id: str,
    request: Request,
    runner: RunnerDep,
    services: ServicesDep,
    attempt: AttemptParam = None,
) -> Response:
    artifacts = services.artifacts
    source = await anyio.to_thread.run_sync(artifacts.runner_source, runner, job_id, attempt)
    return file_response(
        request,
        artifacts.read,
        source.sha256,
        source.size,
        "source.tar.gz",
    )
