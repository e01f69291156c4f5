"""``/api/sources`` and ``/api/jobs/{ref}/artifacts``: uploading a job's source archive,
listing and downloading a job's artifacts (docs/artifacts.md).

Bodies and answers are raw bytes, streamed: the upload route is exempt from the
request body limit (:class:`~rivet.orchestrator.guard.BodyLimit`) and enforces its
own, ``artifacts.max_source_bytes``."""

from __future__ import annotations

import posixpath

import anyio.to_thread
from fastapi import APIRouter, Request
from fastapi.responses import Response

from rivet.orchestrator.deps import PrincipalDep, ServicesDep
from rivet.orchestrator.routes.downloads import BYTES, RAW_BODY, file_response
from rivet.protocol import ArtifactList, SourceUploaded

__all__ = ["router"]

router = APIRouter(tags=["artifacts"])


@router.post(
    "/sources",
    summary="Upload a job's source archive (tar.gz, streamed)",
    openapi_extra=RAW_BODY,
)
async def upload_source(
    request: Request, services: ServicesDep, principal: PrincipalDep
) -> SourceUploaded:
    """Then launch with ``source_archive`` naming its sha256 (``rivet job launch
    --source``). 413 over ``artifacts.max_source_bytes``; an archive no launch uses
    is removed after an hour."""
    return await services.artifacts.upload_source(principal, request.stream())


@router.get("/jobs/{ref}/artifacts", summary="A job's artifacts and their files")
def list_artifacts(ref: str, services: ServicesDep, principal: PrincipalDep) -> ArtifactList:
    return services.artifacts.list_for(principal, ref)


@router.get(
    "/jobs/{ref}/artifacts/{name}/files/{path:path}",
    summary="Download one file of an artifact (Range supported)",
    response_class=Response,
    responses=BYTES,
)
async def download_file(
    ref: str, name: str, path: str, request: Request, services: ServicesDep, principal: PrincipalDep
) -> Response:
    artifacts = services.artifacts
    file = await anyio.to_thread.run_sync(artifacts.file_for, principal, ref, name, path)
    return file_response(
        request,
        artifacts.read,
        file.sha256,
        file.size,
        posixpath.basename(file.path),
    )
