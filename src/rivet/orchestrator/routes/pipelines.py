"""``/api/pipelines``: create (new version per create), list, show, versions, archive
(``DELETE``) and restore."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from rivet.limits import MAX_INT32
from rivet.orchestrator.deps import ActorDep, ServicesDep
from rivet.protocol import PipelineCreate, PipelinePage, PipelineView

__all__ = ["router"]

router = APIRouter(prefix="/pipelines", tags=["pipelines"])


@router.post("", status_code=201, summary="Create a pipeline, or a new version of it")
def create_pipeline(body: PipelineCreate, services: ServicesDep, actor: ActorDep) -> PipelineView:
    """Validates the Lua source like ``rivet check``; 422 ``invalid_definition`` if not.
    The version records who pushed it (``created_by``): only versions the admin pushes
    after a grant receive that secret. A pipeline with secrets granted to it takes new
    versions from the admin only (403)."""
    return services.pipelines.create(body, actor=actor)


@router.get("", summary="Latest version of every pipeline, by name, with paging")
def list_pipelines(
    services: ServicesDep,
    archived: Annotated[
        Literal["hide", "include", "only"],
        Query(description="archived pipelines: hidden (default), included, or only them"),
    ] = "hide",
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_INT32)] = 0,
) -> PipelinePage:
    """Paged like ``GET /api/jobs``: ``total`` counts every pipeline the filter keeps."""
    return services.pipelines.list_all(archived, limit, offset)


@router.delete("/{ref}", summary="Archive a pipeline (versions and jobs stay readable)")
def archive_pipeline(ref: str, services: ServicesDep) -> PipelineView:
    """New launches and new versions answer 409 until it is restored; jobs already
    queued or running are left alone. Archiving it again changes nothing."""
    return services.pipelines.archive(ref)


@router.post("/{ref}/restore", summary="Restore an archived pipeline")
def restore_pipeline(ref: str, services: ServicesDep) -> PipelineView:
    return services.pipelines.restore(ref)


@router.get("/{ref}", summary="One pipeline version with its source (by name or id prefix)")
def show_pipeline(
    ref: str,
    services: ServicesDep,
    version: Annotated[int | None, Query(ge=1, le=MAX_INT32, description="default: latest")] = None,
) -> PipelineView:
    return services.pipelines.show(ref, version)


@router.get("/{ref}/versions", summary="Every version of a pipeline, oldest first")
def list_versions(ref: str, services: ServicesDep) -> list[PipelineView]:
    return services.pipelines.versions(ref)
