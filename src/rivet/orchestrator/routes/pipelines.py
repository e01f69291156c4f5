"""``/api/pipelines``: create (new version per create), list, show, versions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from rivet.limits import MAX_INT32
from rivet.orchestrator.deps import ActorDep, ServicesDep
from rivet.protocol import PipelineCreate, PipelineView

__all__ = ["router"]

router = APIRouter(prefix="/pipelines", tags=["pipelines"])


@router.post("", status_code=201, summary="Create a pipeline, or a new version of it")
def create_pipeline(body: PipelineCreate, services: ServicesDep, actor: ActorDep) -> PipelineView:
    """Validates the Lua source like ``rivet check``; 422 ``invalid_definition`` if not.
    The version records who pushed it (``created_by``): only versions the admin pushes
    after a grant receive that secret. A pipeline with secrets granted to it takes new
    versions from the admin only (403)."""
    return services.pipelines.create(body, actor=actor)


@router.get("", summary="Latest version of every pipeline")
def list_pipelines(services: ServicesDep) -> list[PipelineView]:
    return services.pipelines.list_all()


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
